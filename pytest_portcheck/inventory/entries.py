"""The port lists of an inventory host: ``open:``, ``closed:``, ``filtered:`` (and ``only_open:``), at
the host's level and under ``from: VANTAGE``; each entry a port or ``{port:, service:, tls:, auth:,
waive:, silence_counts_as_closed:}``, checked on its own so that one bad entry hides no other, or a
source (``{compose: FILE}``: ``declared``), read after the list's ports so that an entry written by
hand for a port the source declares too applies.
Must not import pytest, the engine or the probes' I/O.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

import yaml

from pytest_portcheck.inventory.declared import HostSources, is_source_entry
from pytest_portcheck.inventory.model import (
    Expect,
    Expectation,
    InventoryError,
    ServiceRequirement,
    TlsRequirement,
    Waiver,
)
from pytest_portcheck.inventory.yamlreader import YamlReader
from pytest_portcheck.ports import PortKey, PortSpecError, Protocol, parse_port_spec
from pytest_portcheck.probes.model import AUTH_SERVICES, SERVICES, TLS_VERSIONS

_ENTRY_KEYS = ("port", "service", "tls", "auth", "waive", "silence_counts_as_closed")
_TLS_KEYS = tuple(f.name for f in fields(TlsRequirement))
_WAIVE_KEYS = tuple(f.name for f in fields(Waiver))
_LISTS = (
    ("open", Expect.OPEN),
    ("only_open", Expect.OPEN),
    ("closed", Expect.CLOSED),
    ("filtered", Expect.FILTERED),
)


def flag(reader: YamlReader, node: yaml.Node, name: str) -> bool:
    value = reader.scalar(node)
    if not isinstance(value, bool):
        raise reader.error(node, f"{name} must be true or false, not {value!r}")
    return value


def _mapping_entry(
    reader: YamlReader, node: yaml.MappingNode, expect: Expect, host: str
) -> tuple[yaml.Node, ServiceRequirement | None, Waiver | None, bool | None]:
    """``{port: 22, service: ssh, waive: {...}}``: the port's node, what must answer, the waiver, and
    whether UDP silence counts as closed (None: as the host says)."""
    entries = reader.mapping(node, f"an entry of {host!r}", _ENTRY_KEYS)
    if "port" not in entries:
        raise reader.error(node, "this entry has no 'port:': write {port: 22, service: ssh}")
    waiver = _waiver(reader, entries["waive"][1]) if "waive" in entries else None
    silence = None
    if "silence_counts_as_closed" in entries:
        if expect is not Expect.CLOSED:
            raise reader.error(
                entries["silence_counts_as_closed"][0], "silence_counts_as_closed goes with closed: entries"
            )
        silence = flag(reader, entries["silence_counts_as_closed"][1], "silence_counts_as_closed")
    service = None
    if "service" in entries:
        if expect is not Expect.OPEN:
            raise reader.error(
                entries["service"][0], f"only open: entries can name a service, not {expect.value}: ones"
            )
        service = _service_requirement(reader, entries)
    elif "tls" in entries or "auth" in entries:
        raise reader.error(node, f"tls: and auth: need a 'service:': name one of {', '.join(SERVICES)}")
    elif waiver is None and silence is None:
        raise reader.error(
            node, f"this entry has no 'service:' or 'waive:': name one of {', '.join(SERVICES)}"
        )
    return entries["port"][1], service, waiver, silence


def _waiver(reader: YamlReader, node: yaml.Node) -> Waiver:
    entries = reader.mapping(node, "waive", _WAIVE_KEYS)
    if "until" not in entries or "reason" not in entries:
        raise reader.error(
            node, 'a waiver needs until: and reason:, e.g. {until: 2026-12-31, reason: "TICKET-12"}'
        )
    until_node, reason_node = entries["until"][1], entries["reason"][1]
    try:
        until = reader.scalar(until_node)
    except InventoryError as exc:
        raise reader.error(until_node, f"until must be a date like 2026-12-31 ({exc.message})") from None
    if isinstance(until, str):
        with contextlib.suppress(ValueError):  # a quoted date; anything else is refused just below
            until = datetime.date.fromisoformat(until)
    if isinstance(until, datetime.datetime) or not isinstance(until, datetime.date):
        raise reader.error(until_node, f"until must be a date like 2026-12-31, not {until!r}")
    reason = reader.scalar(reason_node)
    if not isinstance(reason, str) or not reason.strip():
        raise reader.error(reason_node, "reason must say why the port is waived (a ticket, a plan)")
    return Waiver(until, reason.strip())


def _service_requirement(
    reader: YamlReader, entries: dict[str, tuple[yaml.Node, yaml.Node]]
) -> ServiceRequirement:
    service_node = entries["service"][1]
    service = reader.scalar(service_node)
    if service not in SERVICES:
        close = difflib.get_close_matches(str(service), SERVICES, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(SERVICES)}"
        raise reader.error(service_node, f"unknown service {service!r}: {hint}")
    assert isinstance(service, str)
    tls = None
    if "tls" in entries:
        if service not in ("https", "tls"):
            raise reader.error(entries["tls"][0], f"tls: checks need service https or tls, not {service}")
        tls = _tls_requirement(reader, entries["tls"][1])
    auth = None
    if "auth" in entries:
        if service not in AUTH_SERVICES:
            raise reader.error(
                entries["auth"][0],
                f"auth: cannot be checked for {service}; the probes tell it for {', '.join(AUTH_SERVICES)}",
            )
        value = reader.scalar(entries["auth"][1])
        if value not in ("required", "none"):
            raise reader.error(entries["auth"][1], f"auth must be 'required' or 'none', not {value!r}")
        auth = str(value)
    return ServiceRequirement(service, tls, auth)


def _tls_requirement(reader: YamlReader, node: yaml.Node) -> TlsRequirement:
    entries = reader.mapping(node, "tls", _TLS_KEYS)
    min_version = None
    if "min_version" in entries:
        value = reader.scalar(entries["min_version"][1])
        if value not in TLS_VERSIONS:
            raise reader.error(
                entries["min_version"][1], f"min_version {value!r} is not one of {', '.join(TLS_VERSIONS)}"
            )
        min_version = str(value)
    days = None
    if "expires_in_days" in entries:
        number = reader.number(
            entries["expires_in_days"][1], "expires_in_days", integer=True, minimum=0, above=False
        )
        days = int(number)
    verify = False
    if "verify" in entries:
        value = reader.scalar(entries["verify"][1])
        if not isinstance(value, bool):
            raise reader.error(entries["verify"][1], f"verify must be true or false, not {value!r}")
        verify = value
    return TlsRequirement(min_version, days, verify)


def _ports(reader: YamlReader, node: yaml.Node) -> list[tuple[Protocol, int]]:
    value = reader.scalar(node)
    is_number = isinstance(value, int) and not isinstance(value, bool)
    if is_number and isinstance(node, yaml.ScalarNode) and not node.value.isdigit():
        # YAML 1.1 reads 22:80 as the base-60 number 1360, and 0x50 as 80: never what a port list means.
        raise reader.error(
            node,
            f"{node.value!r} is read by YAML as the number {value}: quote it or write ports as plain numbers",
        )
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise reader.error(node, f'a port entry must be a number or text like "8000-8010", not {value!r}')
    try:
        return parse_port_spec(value)
    except PortSpecError as exc:
        raise reader.error(node, str(exc)) from None


def list_expectations(
    reader: YamlReader,
    name: str,
    entries: Mapping[str, tuple[yaml.Node, yaml.Node]],
    host_silence: bool,
    sources: HostSources | None = None,
) -> list[Expectation]:
    """The expectations of the open:, closed: and filtered: lists, each port declared once."""
    declared: dict[tuple[Protocol, int], tuple[Expect, int]] = {}
    expectations: list[Expectation] = []
    deferred: list[tuple[yaml.Node, _List]] = []
    for list_key, expect in _LISTS:
        if list_key not in entries:
            continue
        list_node = entries[list_key][1]
        if list_key == "only_open" and is_source_entry(list_node):
            deferred.append((list_node, _List(name, expect, host_silence)))
            continue
        if not isinstance(list_node, yaml.SequenceNode):
            reader.note(
                list_node, f'{list_key} of {name!r} must be a list, e.g. {list_key}: [22, "8000-8010"]'
            )
            continue
        try:
            reader.check_tag(list_node)
        except InventoryError as exc:
            reader.problems.append(exc)
            continue
        for item in list_node.value:  # each entry on its own: one bad entry does not hide the next
            entry = _List(name, expect, host_silence)
            if is_source_entry(item):
                deferred.append((item, entry))
                continue
            expectations += reader.attempt([], _entry_expectations, reader, entry, item, declared)
    for item, entry in deferred:
        expectations += reader.attempt([], _source_expectations, reader, sources, entry, item, declared)
    return expectations


def _source_expectations(
    reader: YamlReader, sources: HostSources | None, where: _List, item: yaml.Node, declared: _Declared
) -> list[Expectation]:
    """The ports a source entry (``{compose: FILE}``) declares open for the host."""
    if where.expect is not Expect.OPEN or sources is None or not isinstance(item, yaml.MappingNode):
        raise reader.error(
            item,
            f"a source declares open ports: list it under open: or only_open:, not {where.expect.value}:",
        )
    return sources.expectations(reader, item, where.host, where.vantage, declared)


@dataclass(frozen=True, slots=True)
class _List:
    """The list an entry sits in: its host, what it declares, the host's word on UDP silence, and
    the vantage (``from: VANTAGE``) it is scoped to, if any."""

    host: str
    expect: Expect
    silence: bool
    vantage: str | None = None


_Declared = dict[PortKey, tuple[Expect, int]]
"""The ports declared so far in one scope (the host's lists, or one vantage's): what, and on which line."""


def _entry_expectations(
    reader: YamlReader, where: _List, item: yaml.Node, declared: _Declared
) -> list[Expectation]:
    """The expectations of one entry of a port list (``open:``, ``closed:``, ``filtered:``, at the
    host's level or under ``from: VANTAGE``), each port declared once in its scope."""
    service = waiver = silence = None
    port_node = item
    if isinstance(item, yaml.MappingNode):
        port_node, service, waiver, silence = _mapping_entry(reader, item, where.expect, where.host)
    quiet = where.silence if silence is None else silence
    line = item.start_mark.line + 1
    found = []
    for key in _ports(reader, port_node):
        if service is not None and key[0] is not Protocol.TCP:
            # Service probes speak TCP: nothing could check this requirement.
            raise reader.error(
                item,
                f"{key[0].value}/{key[1]}: service checks run over TCP only; a UDP port "
                "proves open by replying: list it without service:",
            )
        if key in declared:
            raise _declared_twice(reader, item, where, key, declared[key])
        declared[key] = (where.expect, line)
        found.append(
            Expectation(where.host, key[0], key[1], where.expect, line, service, waiver, quiet, where.vantage)
        )
    return found


def _declared_twice(
    reader: YamlReader, item: yaml.Node, where: _List, key: PortKey, earlier: tuple[Expect, int]
) -> InventoryError:
    other, other_line = earlier
    port = f"{key[0].value}/{key[1]}"
    if where.vantage is not None:
        return reader.error(
            item, f"{port} is declared twice from {where.vantage} (also line {other_line}): keep one"
        )
    if other is where.expect:
        return reader.error(
            item,
            f"{port} of {where.host!r} is listed twice under {other.value} (also line {other_line}): "
            "keep one",
        )
    return reader.error(
        item,
        f"{port} of {where.host!r} is declared both {other.value} (line {other_line}) and "
        f"{where.expect.value}: keep one",
    )


_VANTAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_VANTAGE_LISTS = (("open", Expect.OPEN), ("closed", Expect.CLOSED), ("filtered", Expect.FILTERED))


def vantage_expectations(
    reader: YamlReader, host: str, node: yaml.Node, silence: bool, sources: HostSources | None = None
) -> list[Expectation]:
    """``from: {app-subnet: {open: [5432]}}``: expectations that hold from one vantage point only.
    Each vantage and each entry is checked on its own: every problem is noted, not only the first."""
    found: list[Expectation] = []
    for vantage, (key_node, lists_node) in reader.mapping(node, f"from: of {host!r}", ()).items():
        if not _VANTAGE_NAME.fullmatch(vantage):
            reader.note(
                key_node,
                f"vantage name {vantage!r}: use letters, digits, '.', '_' and '-' (it goes in test ids)",
            )
        allowed = tuple(key for key, _ in _VANTAGE_LISTS)
        lists = reader.attempt({}, reader.mapping, lists_node, f"from: {vantage} of {host!r}", allowed)
        declared: _Declared = {}
        for list_key, expect in _VANTAGE_LISTS:
            if list_key not in lists:
                continue
            list_node = lists[list_key][1]
            if not isinstance(list_node, yaml.SequenceNode):
                reader.note(list_node, f"{list_key} under from: {vantage} must be a list, e.g. [5432]")
                continue
            deferred = []
            for item in list_node.value:
                entry = _List(host, expect, silence, vantage)
                if is_source_entry(item):
                    deferred.append((item, entry))
                    continue
                found += reader.attempt([], _entry_expectations, reader, entry, item, declared)
            for item, entry in deferred:
                found += reader.attempt([], _source_expectations, reader, sources, entry, item, declared)
    return found
