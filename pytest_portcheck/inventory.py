"""The inventory file: YAML in, validated frozen hosts and expectations out, every error with its line.

The YAML is composed into nodes (safe-loader level: no tags, no objects) so that every value keeps the
line it came from; validation then walks the nodes to the end, noting each problem (each key, entry
and host is checked on its own), and raises one ``InventoryError(path, line, message)`` holding them
all, in file order, each message saying how to fix it. Nothing here scans or imports pytest.
Must not import pytest, the plugin or the probes.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import difflib
import enum
import functools
import ipaddress
import json
import re
import shlex
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, TypeVar

import yaml

from pytest_portcheck.engine import ScanError, check_target
from pytest_portcheck.engine.model import MAX_TIMEOUT, MIN_TIMEOUT
from pytest_portcheck.engine.resolve import TargetTooLarge
from pytest_portcheck.ports import (
    PortKey,
    PortSpecError,
    Protocol,
    format_ports,
    parse_port_spec,
    service_name,
)
from pytest_portcheck.probes.model import AUTH_SERVICES, SERVICES, TLS_VERSIONS, ServiceInfo
from pytest_portcheck.results import ResultKey, ScanReport

# libyaml's parser, where PyYAML was built with it, composes a 10,000-line inventory ~10x faster.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
INVENTORY_VERSION = 1
DEFAULT_TIMEOUT = 1.0
DEFAULT_RETRIES = 1
_FORBIDDEN_IN_NAMES = ("::", "[", "]", "@", "/")
_T = TypeVar("_T")
_P = ParamSpec("_P")


class Expect(str, enum.Enum):
    """What a port must be: ``closed`` is satisfied by refused or filtered (not reachable)."""

    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"

    def __str__(self) -> str:
        return self.value


class InventoryError(Exception):
    """A problem in an inventory file, at a line (1-based; 0 when the file as a whole is at fault)."""

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")
        self.path = path
        self.line = line
        self.message = message
        self.problems: tuple[InventoryError, ...] = (self,)

    @classmethod
    def all_of(cls, problems: Sequence[InventoryError]) -> InventoryError:
        """One error for several problems: each on its own line (file:line: fix), the first one first."""
        if len(problems) == 1:
            return problems[0]
        first = problems[0]
        rest = "\n".join(str(problem) for problem in problems[1:])
        combined = cls(first.path, first.line, f"{first.message}\n{rest}")
        combined.problems = tuple(problems)
        return combined


@dataclass(frozen=True, slots=True)
class TlsRequirement:
    min_version: str | None = None
    """Lowest acceptable protocol version, one of TLS_VERSIONS."""
    expires_in_days: int | None = None
    """The certificate must stay valid at least this many more days."""
    verify: bool = False
    """Verify the chain against the system's CAs and the name (off: internal self-signed hosts)."""


@dataclass(frozen=True, slots=True)
class ServiceRequirement:
    """What must answer on an open port: ``{port: 443, service: https, tls: {...}}`` in the YAML."""

    service: str
    tls: TlsRequirement | None = None
    auth: str | None = None
    """Redis only: ``required`` or ``none``."""


@dataclass(frozen=True, slots=True)
class Waiver:
    """Until ``until`` (inclusive), a violation is reported as xfail with ``reason``."""

    until: datetime.date
    reason: str

    def active(self, today: datetime.date) -> bool:
        return today <= self.until


@dataclass(frozen=True, slots=True)
class RangeRule:
    """``only_open``: every port of the range that is not listed must not be open."""

    host: str
    proto: Protocol
    ports: tuple[int, ...]
    """The range minus the listed ports: what must not be open."""
    label: str
    """The range as written in ids and messages: ``tcp/1-65535``."""
    line: int
    silence_counts_as_closed: bool = False
    """UDP: accept open|filtered in the range, as ``closed:`` entries do; off, silence fails it."""


@dataclass(frozen=True, slots=True)
class Expectation:
    host: str
    proto: Protocol
    port: int
    expect: Expect
    line: int
    """1-based line of the entry that declared it."""
    service: ServiceRequirement | None = None
    waiver: Waiver | None = None
    silence_counts_as_closed: bool = False
    """UDP: accept open|filtered (no reply, no ICMP error) as closed. Off: silence proves nothing."""
    vantage: str | None = None
    """Set for entries under ``from: {VANTAGE: ...}``: judged only against scans from that vantage."""


@dataclass(frozen=True, slots=True)
class HostSpec:
    name: str
    """The name used in node ids and reports."""
    address: str
    """What is resolved: a hostname, an IP literal or a CIDR block."""
    timeout: float
    retries: int
    expectations: tuple[Expectation, ...]
    line: int
    range_rule: RangeRule | None = None
    max_rate: float | None = None
    """TCP probes per second at most while this host is scanned (None: adaptive, no cap)."""
    min_rate: float | None = None
    """TCP probes per second the adaptive timing keeps at least for this host."""


@dataclass(frozen=True, slots=True)
class Inventory:
    path: Path
    hosts: tuple[HostSpec, ...]

    def expectations(self) -> Iterator[tuple[HostSpec, Expectation]]:
        for host in self.hosts:
            for expectation in host.expectations:
                yield host, expectation


_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")
_PLAIN_NUMBER = re.compile(r"[-+]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)
_TOP_KEYS = ("version", "defaults", "hosts")
_DEFAULT_KEYS = ("timeout", "retries", "max_rate", "min_rate")
_HOST_KEYS = (
    "address", "open", "only_open", "range", "closed", "filtered", "timeout", "retries",
    "silence_counts_as_closed", "max_rate", "min_rate", "from",
)  # fmt: skip


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._constructor = yaml.SafeLoader("")
        self.problems: list[InventoryError] = []
        """Every problem found so far: a file is checked to the end and reports them all at once."""

    def attempt(self, fallback: _T, check: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run one check; its problem is noted and ``fallback`` stands in, so that the checks after it
        (the next key, entry or host) still run. A problem raised after the check itself noted some
        (an unknown key skipped, then a key found missing) is their consequence: only those are kept."""
        noted = len(self.problems)
        try:
            return check(*args, **kwargs)
        except InventoryError as exc:
            if len(self.problems) == noted:
                self.problems.append(exc)
            return fallback

    def note(self, node: yaml.Node | None, message: str) -> None:
        """A problem that does not stop the checks after it."""
        self.problems.append(self.error(node, message))

    def error(self, node: yaml.Node | None, message: str) -> InventoryError:
        return InventoryError(self.path, node.start_mark.line + 1 if node is not None else 0, message)

    def check_tag(self, node: yaml.Node) -> None:
        if node.tag not in _PLAIN_TAGS:
            raise self.error(node, f"YAML tag {node.tag!r} is not allowed: write plain values")

    def scalar(self, node: yaml.Node) -> object:
        self.check_tag(node)
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            raise self.error(node, f"expected a single value here, found {kind}")
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (ValueError, yaml.YAMLError) as exc:  # e.g. a timestamp with month 13
            raise self.error(node, f"cannot read {node.value!r}: {exc}") from None
        if (
            not node.style
        ):  # quoted text is what it says; plain values go through YAML 1.1 rules (libyaml: "")
            self.refuse_surprises(node, value)
        return value

    def refuse_surprises(self, node: yaml.ScalarNode, value: object) -> None:
        """YAML 1.1 turns 0443 into 291 (octal), 22:30 into 1350 (base 60), 0x50 into 80 and yes/on
        into true: an inventory means none of these, so they are refused rather than read."""
        text = node.value
        if _LEADING_ZERO.fullmatch(text):
            octal = f" (YAML 1.1 reads it as the octal number {value})" if isinstance(value, int) else ""
            decimal = text.lstrip("+-").replace("_", "").lstrip("0") or "0"
            raise self.error(
                node,
                f"{text!r} starts with a zero{octal}: drop the zero ({decimal}), or in a port list "
                f'quote it ("{text}" is read as {decimal})',
            )
        if isinstance(value, bool) and text.lower() not in ("true", "false"):
            raise self.error(
                node,
                f"{text!r} is read by YAML as the boolean {str(value).lower()}: write true or false, "
                "or quote it if you mean text",
            )
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and not _PLAIN_NUMBER.fullmatch(text)
        ):
            raise self.error(
                node,
                f"{text!r} is read by YAML as the number {value}: write plain decimal numbers, or quote it",
            )

    def mapping(
        self, node: yaml.Node, what: str, allowed: tuple[str, ...]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, f"{what} must be a mapping of 'key: value' lines")
        self.check_tag(node)
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            # A bad key is noted and left out; the other keys are still read and checked.
            self.attempt(None, self._entry, entries, key_node, value_node, what, allowed)
        return entries

    def _entry(
        self,
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        key_node: yaml.Node,
        value_node: yaml.Node,
        what: str,
        allowed: tuple[str, ...],
    ) -> None:
        key = self.scalar(key_node)
        if not isinstance(key, str):
            raise self.error(key_node, f"keys of {what} must be text, not {key!r}")
        if key in entries:
            first = entries[key][0].start_mark.line + 1
            raise self.error(key_node, f"{key!r} appears twice in {what} (first on line {first}): keep one")
        if allowed and key not in allowed:
            raise self.error(key_node, _unknown_key_message(key, what, allowed))
        entries[key] = (key_node, value_node)

    def number(
        self, node: yaml.Node, what: str, *, integer: bool, minimum: float, above: bool, unit: str = "seconds"
    ) -> float:
        value = self.scalar(node)
        valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not valid_type:
            kind = "a whole number" if integer else f"a number of {unit}"
            raise self.error(node, f"{what} must be {kind}, not {value!r}")
        assert isinstance(value, (int, float))
        if (value <= minimum if above else value < minimum) or value != value or value == float("inf"):
            bound = f"more than {minimum:g}" if above else f"at least {minimum:g}"
            raise self.error(node, f"{what} must be {bound}, not {value!r}")
        return value


def _unknown_key_message(key: str, what: str, allowed: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(allowed)}"
    return f"unknown key {key!r} in {what}: {hint}"


_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]+(?<!-)")
"""A host-name label by its characters. Lengths (63 a label, 253 a name) are left to the resolver,
which refuses them without sending a query: the same DNS error at run time as before."""


def check_host_name_syntax(address: str) -> None:
    """ScanError for an address that is neither an IP address, an address block nor a host name by its
    spelling (labels of letters, digits, hyphens and underscores): such a name
    is a typo, reported with its line at collection — it is never resolved or scanned."""
    candidate = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        ipaddress.ip_network(candidate, strict=False)
        return
    except ValueError:
        pass
    name = candidate[:-1] if candidate.endswith(".") else candidate
    labels = name.split(".")
    if all(_LABEL.fullmatch(label) for label in labels):
        if not all(label.isdigit() for label in labels):  # all-numeric is a (bad) IPv4 address
            return
        raise ScanError(f"{address!r} is not a valid IP address: each of the four numbers must be 0 to 255")
    raise ScanError(
        f"{address!r} is neither an IP address nor a valid host name: a host name is dot-separated "
        "labels of letters, digits, '-' and '_' (no label starts or ends with '-'); fix the spelling"
    )


def range_pairs(host: HostSpec) -> list[tuple[HostSpec, Expectation]]:
    """What a host's ``only_open`` range asks the scanner for: every other port of the range."""
    rule = host.range_rule
    if rule is None:
        return []
    return [(host, Expectation(host.name, rule.proto, port, Expect.CLOSED, rule.line)) for port in rule.ports]


def load_inventory(path: Path | str) -> Inventory:
    """Read and validate an inventory file; raises InventoryError naming the file, the line and the fix."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise InventoryError(path, 0, "is a directory: give the inventory YAML file in it")
        if not stat.S_ISREG(mode):  # reading a FIFO would wait for a writer, maybe forever
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
            raise InventoryError(path, 0, f"is {kind}, not a regular file: give the inventory YAML file")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InventoryError(path, 0, "no such file: check the path given to --portcheck") from None
    except OSError as exc:
        raise InventoryError(path, 0, f"cannot read the file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InventoryError(
            path, line, f"not UTF-8 (byte 0x{raw[exc.start]:02x}): save the file as UTF-8"
        ) from None
    return parse_inventory(text, path)


def parse_inventory(text: str, path: Path) -> Inventory:
    """Validate the whole file; InventoryError with every problem found, in file order, when any."""
    reader = _Reader(path)
    inventory = reader.attempt(None, _parse, reader, text, path)
    if reader.problems:
        # Stable: problems on one line keep the order they were found in (the cause first).
        raise InventoryError.all_of(sorted(reader.problems, key=lambda problem: problem.line))
    assert inventory is not None
    return inventory


def _parse(reader: _Reader, text: str, path: Path) -> Inventory:
    try:
        root = yaml.compose(text, Loader=_SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "invalid YAML"
        raise InventoryError(path, line, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise InventoryError(path, 0, f"invalid YAML: {exc}") from None
    if root is None:
        raise InventoryError(path, 0, "the inventory is empty: declare at least one host under 'hosts:'")
    noted = len(reader.problems)
    top = reader.mapping(root, "the inventory", _TOP_KEYS)
    misspelt_top = len(reader.problems) > noted  # e.g. 'host:': "no hosts" would repeat it
    if "version" in top:
        _key, value_node = top["version"]
        version = reader.scalar(value_node)
        if isinstance(version, bool) or version != INVENTORY_VERSION:
            raise reader.error(
                value_node, f"unsupported version: this plugin reads version {INVENTORY_VERSION}"
            )
    timeout, retries = DEFAULT_TIMEOUT, DEFAULT_RETRIES
    rates: _Rates = (None, None)
    if "defaults" in top:
        defaults = reader.attempt({}, reader.mapping, top["defaults"][1], "defaults", _DEFAULT_KEYS)
        timing = (timeout, retries)
        timeout, retries = reader.attempt(timing, _timing, reader, defaults, timeout, retries, "defaults")
        rates = reader.attempt(rates, _rates, reader, defaults, rates, "defaults")
    if "hosts" not in top:
        if not misspelt_top:  # noted, not raised: a problem in defaults above is reported too
            reader.note(root, "no 'hosts:' section: declare the hosts to check")
        return Inventory(path, ())
    hosts_node = top["hosts"][1]
    if isinstance(hosts_node, yaml.ScalarNode) and reader.scalar(hosts_node) is None:
        raise reader.error(hosts_node, "'hosts:' is empty: declare at least one host")
    hosts = reader.mapping(hosts_node, "hosts", ())
    if not hosts:
        raise reader.error(hosts_node, "'hosts:' is empty: declare at least one host")
    specs: list[HostSpec] = []
    for name, (key_node, value_node) in hosts.items():
        # Every host is checked, each to its end: a file with several problems reports them all at once.
        spec = reader.attempt(None, _host, reader, name, key_node, value_node, timeout, retries, rates)
        if spec is not None:
            specs.append(spec)
    return Inventory(path, tuple(specs))


def _timing(
    reader: _Reader, entries: dict[str, tuple[yaml.Node, yaml.Node]], timeout: float, retries: int, where: str
) -> tuple[float, int]:
    if "timeout" in entries:
        node = entries["timeout"][1]
        timeout = reader.number(node, f"timeout in {where}", integer=False, minimum=0, above=True)
        if not MIN_TIMEOUT <= timeout <= MAX_TIMEOUT:
            bounds = f"{MIN_TIMEOUT:g} to {MAX_TIMEOUT:g} seconds"
            raise reader.error(node, f"timeout in {where} must be {bounds}, not {timeout!r}")
    if "retries" in entries:
        retries = int(
            reader.number(entries["retries"][1], f"retries in {where}", integer=True, minimum=0, above=False)
        )
    return timeout, retries


_Rates = tuple[float | None, float | None]


def _rates(
    reader: _Reader, entries: dict[str, tuple[yaml.Node, yaml.Node]], rates: _Rates, where: str
) -> _Rates:
    """``max_rate`` / ``min_rate`` (TCP probes per second), as nmap's --max-rate / --min-rate."""
    found = list(rates)
    for index, key in enumerate(("max_rate", "min_rate")):
        if key in entries:
            found[index] = reader.number(
                entries[key][1],
                f"{key} in {where}",
                integer=False,
                minimum=0,
                above=True,
                unit="probes per second",
            )
    high, low = found
    if high is not None and low is not None and low > high:
        node = entries.get("min_rate", entries.get("max_rate"))
        line = node[1].start_mark.line + 1 if node is not None else 1
        raise InventoryError(
            reader.path, line, f"min_rate ({low:g}) is above max_rate ({high:g}) in {where}: lower min_rate"
        )
    return high, low


def _host(
    reader: _Reader,
    name: str,
    key_node: yaml.Node,
    node: yaml.Node,
    timeout: float,
    retries: int,
    rates: _Rates = (None, None),
) -> HostSpec:
    """One host, checked to its end: each problem is noted (``_Reader.attempt``) and the next key or
    entry still checked; only a host that is not a mapping at all stops here."""
    noted = len(reader.problems)
    bad_name = not name.strip() or any(piece in name for piece in _FORBIDDEN_IN_NAMES) or name != name.strip()
    if bad_name:
        reader.note(
            key_node,
            f"host name {name!r} cannot be used in test ids: avoid spaces at the ends and "
            f"{' '.join(_FORBIDDEN_IN_NAMES)}; put the address under 'address:'",
        )
    if isinstance(node, yaml.ScalarNode) and reader.scalar(node) is None:
        raise reader.error(key_node, f"host {name!r} declares nothing: add open:, closed: or filtered: ports")
    where = f"host {name!r}"
    entries = reader.mapping(node, where, _HOST_KEYS)
    address = name
    if "address" in entries or not bad_name:  # a refused name is not checked again as an address
        address = reader.attempt(name, _host_address, reader, name, key_node, entries)
    timeout, retries = reader.attempt((timeout, retries), _timing, reader, entries, timeout, retries, where)
    rates = reader.attempt(rates, _rates, reader, entries, rates, where)
    if "open" in entries and "only_open" in entries:
        reader.note(entries["only_open"][0], f"{where} has both open: and only_open:: keep one")
    if "range" in entries and "only_open" not in entries:
        reader.note(entries["range"][0], "range: goes with only_open:, which it bounds")
    host_silence = False
    if "silence_counts_as_closed" in entries:
        silence_node = entries["silence_counts_as_closed"][1]
        host_silence = reader.attempt(False, _flag, reader, silence_node, "silence_counts_as_closed")
    expectations = _list_expectations(reader, name, entries, host_silence)
    if "from" in entries:
        from_node = entries["from"][1]
        expectations += reader.attempt([], _vantage_expectations, reader, name, from_node, host_silence)
    rule = None
    if "only_open" in entries:
        rule = reader.attempt(None, _range_rule, reader, name, entries, expectations, host_silence)
    if not expectations and rule is None and len(reader.problems) == noted:  # else: their consequence
        raise reader.error(
            key_node, f"host {name!r} declares no ports: add open:, closed: or filtered: entries"
        )
    line = key_node.start_mark.line + 1
    return HostSpec(name, address, timeout, retries, tuple(expectations), line, rule, *rates)


def _host_address(
    reader: _Reader, name: str, key_node: yaml.Node, entries: Mapping[str, tuple[yaml.Node, yaml.Node]]
) -> str:
    """The host's address (its name when it gives none), checked by spelling only: never resolved here."""
    address = name
    if "address" in entries:
        value = reader.scalar(entries["address"][1])
        if not isinstance(value, str) or not value.strip():
            raise reader.error(entries["address"][1], f"address of {name!r} must be a hostname or IP address")
        address = value.strip()
    try:
        check_target(address)
        check_host_name_syntax(address)
    except ScanError as exc:
        node = entries["address"][1] if "address" in entries else key_node
        raise reader.error(node, _address_problem(exc)) from None
    return address


def _address_problem(exc: ScanError) -> str:
    """The spelling check's message, with the fix an inventory offers (it has no --allow-large-targets)."""
    if isinstance(exc, TargetTooLarge):
        return (
            f"{exc} into hosts of at most {exc.limit:,} addresses each "
            "(--allow-large-targets is for 'portcheck scan', not inventories)"
        )
    return str(exc)


def _list_expectations(
    reader: _Reader, name: str, entries: Mapping[str, tuple[yaml.Node, yaml.Node]], host_silence: bool
) -> list[Expectation]:
    """The expectations of the open:, closed: and filtered: lists, each port declared once."""
    declared: dict[tuple[Protocol, int], tuple[Expect, int]] = {}
    expectations: list[Expectation] = []
    for list_key, expect in _LISTS:
        if list_key not in entries:
            continue
        list_node = entries[list_key][1]
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
            expectations += reader.attempt([], _list_item, reader, name, item, expect, host_silence, declared)
    return expectations


def _list_item(
    reader: _Reader,
    name: str,
    item: yaml.Node,
    expect: Expect,
    host_silence: bool,
    declared: dict[tuple[Protocol, int], tuple[Expect, int]],
) -> list[Expectation]:
    """The expectations of one entry of an open:, closed: or filtered: list."""
    service = waiver = silence = None
    port_node = item
    if isinstance(item, yaml.MappingNode):
        port_node, service, waiver, silence = _mapping_entry(reader, item, expect, name)
    silent_ok = host_silence if silence is None else silence
    found = []
    for key in _ports(reader, port_node):
        line = item.start_mark.line + 1
        if service is not None and key[0] is not Protocol.TCP:
            # Service probes speak TCP: nothing could check this requirement.
            raise reader.error(
                item,
                f"{key[0].value}/{key[1]}: service checks run over TCP only; a UDP port "
                "proves open by replying: list it without service:",
            )
        if key in declared:
            raise _declared_twice(reader, item, name, key, expect, declared[key])
        declared[key] = (expect, line)
        found.append(Expectation(name, key[0], key[1], expect, line, service, waiver, silent_ok))
    return found


def _declared_twice(
    reader: _Reader,
    item: yaml.Node,
    name: str,
    key: tuple[Protocol, int],
    expect: Expect,
    earlier: tuple[Expect, int],
) -> InventoryError:
    other, other_line = earlier
    where = f"{key[0].value}/{key[1]}"
    if other is expect:
        return reader.error(
            item,
            f"{where} of {name!r} is listed twice under {expect.value} (also line {other_line}): keep one",
        )
    return reader.error(
        item,
        f"{where} of {name!r} is declared both {other.value} (line {other_line}) and "
        f"{expect.value}: keep one",
    )


def _range_rule(
    reader: _Reader,
    name: str,
    entries: dict[str, tuple[yaml.Node, yaml.Node]],
    expectations: list[Expectation],
    silence_counts_as_closed: bool,
) -> RangeRule:
    """The rest of ``range`` after the ports the host declares (each has its own item, which
    judges it at least as strictly): nothing there may be open."""
    spec, node = "1-65535/tcp", entries["only_open"][0]
    if "range" in entries:
        node = entries["range"][1]
        value = reader.scalar(node)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise reader.error(node, f'range must be a port spec like "1-65535/tcp", not {value!r}')
        spec = str(value)
    # A port declared under from: is judged from its vantage only: the range still covers it elsewhere.
    listed = frozenset((e.proto, e.port) for e in expectations if e.vantage is None)
    try:
        proto, rest, label = _range_rest(spec, listed)
    except PortSpecError as exc:
        raise reader.error(node, str(exc)) from None
    except ValueError:
        raise reader.error(
            node, "range must cover one protocol: write one only_open host per protocol"
        ) from None
    return RangeRule(name, proto, rest, label, node.start_mark.line + 1, silence_counts_as_closed)


@functools.lru_cache(maxsize=64)
def _range_rest(spec: str, listed: frozenset[tuple[Protocol, int]]) -> tuple[Protocol, tuple[int, ...], str]:
    """(protocol, the range minus the listed ports, label), computed once per distinct range: a fleet
    of hosts with one full range then shares one tuple instead of holding 65,535 ports each."""
    keys = parse_port_spec(spec)
    protocols = {proto for proto, _ in keys}
    if len(protocols) != 1:
        raise ValueError("more than one protocol")
    rest = tuple(port for proto, port in keys if (proto, port) not in listed)
    proto = protocols.pop()
    return proto, rest, f"{proto.value}/{format_ports(port for _, port in keys)}"


_ENTRY_KEYS = ("port", "service", "tls", "auth", "waive", "silence_counts_as_closed")
_TLS_KEYS = ("min_version", "expires_in_days", "verify")
_WAIVE_KEYS = ("until", "reason")
_LISTS = (
    ("open", Expect.OPEN),
    ("only_open", Expect.OPEN),
    ("closed", Expect.CLOSED),
    ("filtered", Expect.FILTERED),
)


def _flag(reader: _Reader, node: yaml.Node, name: str) -> bool:
    value = reader.scalar(node)
    if not isinstance(value, bool):
        raise reader.error(node, f"{name} must be true or false, not {value!r}")
    return value


def _mapping_entry(
    reader: _Reader, node: yaml.MappingNode, expect: Expect, host: str
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
        silence = _flag(reader, entries["silence_counts_as_closed"][1], "silence_counts_as_closed")
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


def _waiver(reader: _Reader, node: yaml.Node) -> Waiver:
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
    reader: _Reader, entries: dict[str, tuple[yaml.Node, yaml.Node]]
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


def _tls_requirement(reader: _Reader, node: yaml.Node) -> TlsRequirement:
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


def _ports(reader: _Reader, node: yaml.Node) -> list[tuple[Protocol, int]]:
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


_VANTAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_VANTAGE_LISTS = (("open", Expect.OPEN), ("closed", Expect.CLOSED), ("filtered", Expect.FILTERED))


def _vantage_expectations(reader: _Reader, host: str, node: yaml.Node, silence: bool) -> list[Expectation]:
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
        declared: dict[tuple[Protocol, int], int] = {}
        for list_key, expect in _VANTAGE_LISTS:
            if list_key not in lists:
                continue
            list_node = lists[list_key][1]
            if not isinstance(list_node, yaml.SequenceNode):
                reader.note(list_node, f"{list_key} under from: {vantage} must be a list, e.g. [5432]")
                continue
            for item in list_node.value:
                entry = _VantageEntry(host, vantage, expect, silence)
                found += reader.attempt([], _vantage_item, reader, entry, item, declared)
    return found


@dataclass(frozen=True)
class _VantageEntry:
    host: str
    vantage: str
    expect: Expect
    silence: bool


def _vantage_item(
    reader: _Reader, entry: _VantageEntry, item: yaml.Node, declared: dict[tuple[Protocol, int], int]
) -> list[Expectation]:
    """The expectations of one entry of a list under ``from: VANTAGE``."""
    service = waiver = entry_silence = None
    port_node = item
    if isinstance(item, yaml.MappingNode):
        port_node, service, waiver, entry_silence = _mapping_entry(reader, item, entry.expect, entry.host)
    line = item.start_mark.line + 1
    quiet = entry.silence if entry_silence is None else entry_silence
    found = []
    for key in _ports(reader, port_node):
        if key in declared:
            raise reader.error(
                item,
                f"{key[0].value}/{key[1]} is declared twice from {entry.vantage} (also line "
                f"{declared[key]}): keep one",
            )
        declared[key] = line
        found.append(
            Expectation(entry.host, key[0], key[1], entry.expect, line, service, waiver, quiet, entry.vantage)
        )
    return found


def _plain_number(value: float) -> str:
    """``0.00001``, not ``1e-05``: YAML 1.1 reads the exponent form as text, which the loader refuses."""
    return format(decimal.Decimal(repr(value)).normalize(), "f")


def _safe_name(text: str) -> str:
    name = text.replace("::", "-").replace("/", "_").replace("@", "-").replace("[", "").replace("]", "")
    return name.strip() or "host"


def _spec(proto: Protocol, ports: Iterable[int]) -> str:
    # Every piece carries its protocol: in "1-5,7/udp" the suffix belongs to 7 only.
    return ",".join(f"{piece}/{proto.value}" for piece in format_ports(ports).split(","))


def _decimal(seconds: float) -> str:
    """Seconds as YAML reads a float: ``1e-05`` would be text in YAML 1.1, ``0.00001`` is not."""
    text = format(decimal.Decimal(repr(seconds)), "f")
    return text if "." in text else text + ".0"


@dataclass(frozen=True, slots=True)
class _Declared:
    """What one port of one address is declared as: open (with the service the probes named, and
    whether it asked for a password), or silent (UDP open|filtered, declared ``filtered:``)."""

    silent: bool = False
    service: str | None = None
    auth_required: bool = False


_Declaration = dict[int, _Declared]
"""Per port of one address and protocol: what it is declared as (ports absent must not be open)."""


def snapshot_inventory(
    report: ScanReport,
    services: Mapping[ResultKey, ServiceInfo],
    ports: Sequence[PortKey],
    command: Sequence[str],
) -> str:
    """An inventory of what is open now: ``only_open`` per host and protocol, the scanned ports as
    its range; UDP ports that stayed silent are declared ``filtered:`` (they would fail the range).

    Each target is written as given (the name, the block), never as one address it resolved to:
    every address it resolves to when the inventory is checked must satisfy it. Where its addresses
    differ in what is open (or in what answers there), every known address gets a host of its own
    holding all it showed, pinned to that address, so it is still checked if the name stops
    resolving to it; and the target keeps a host for what they all share (its range without the
    ports they differ on), which a new address of the target must satisfy. A scan of TCP and UDP
    gets one host per protocol, since a range covers one protocol.
    """
    protocols = sorted({proto for proto, _ in ports})
    lines = [
        f"# Inventory snapshot written by {report.command[0] if report.command else 'portcheck'} "
        f"at {report.started}",
        f"# Command: {shlex.join(command)}",
        "# Every port under only_open may be open; every other port of its range must stay shut.",
        "# Review it before committing it: what is open today is not always what should be.",
        "version: 1",
        "defaults:",
        f"  timeout: {_decimal(report.settings.timeout)}",
        f"  retries: {report.settings.retries}",
        "hosts:",
    ]
    found = _what_was_found(report, services)
    names: set[str] = set()
    before = len(lines)
    for resolution in report.resolutions:
        if resolution.error is not None:
            lines.append(f"  # {_comment(resolution.host)}: left out, {_comment(resolution.error)}")
            continue
        for target, addresses, note in _inventory_targets(resolution.host, resolution.addresses):
            if note:
                lines.append(f"  # {note}")
            for proto in protocols:
                scanned = [port for key_proto, port in ports if key_proto is proto]
                base = target if len(protocols) == 1 else f"{target}-{proto.value}"
                per_address = {address: found.get((resolution.host, address, proto)) for address in addresses}
                declared = {
                    address: known if known is not None else found.get(("", address, proto), {})
                    for address, known in per_address.items()
                }
                lines += _target_hosts(target, base, proto, scanned, declared, services, names)
    if len(lines) == before or all(line.startswith("  #") for line in lines[before:]):
        lines.append("  # no host resolved: nothing to declare")
    return "\n".join(lines) + "\n"


def _comment(text: str) -> str:
    """Text from a report (a resolver's message, a name nmap's XML held) safe on one YAML comment line."""
    return " ".join(text.split())


def _inventory_targets(target: str, addresses: Sequence[str]) -> list[tuple[str, Sequence[str], str | None]]:
    """(what to write as the address, the addresses it stands for, a comment): the target itself
    where an inventory takes it; a block too large for one host as blocks of the largest size one
    takes; anything else an inventory refuses (a name from a foreign report) as its addresses."""
    try:
        check_target(target)
        check_host_name_syntax(target)
    except TargetTooLarge as exc:
        network = ipaddress.ip_network(target.strip("[]"), strict=False)
        prefix = network.max_prefixlen - (exc.limit.bit_length() - 1)
        shift = network.max_prefixlen - prefix
        blocks: dict[int, list[str]] = {}
        for address in addresses:
            blocks.setdefault(int(ipaddress.ip_address(address)) >> shift, []).append(address)
        split = [
            (str(type(network)((number << shift, prefix))), members, None)
            for number, members in blocks.items()
        ]
        note = f"{target}: more addresses than one inventory host takes, one host per /{prefix} block"
        return [(split[0][0], split[0][1], note), *split[1:]] if split else []
    except ScanError as exc:
        note = (
            f"{_comment(target)} cannot be an inventory address ({_comment(str(exc))}): one host per address"
        )
        return [
            (address, (address,), note if index == 0 else None) for index, address in enumerate(addresses)
        ]
    return [(target, addresses, None)]


def _target_hosts(
    target: str,
    base: str,
    proto: Protocol,
    scanned: Sequence[int],
    declared: Mapping[str, _Declaration],
    services: Mapping[ResultKey, ServiceInfo],
    names: set[str],
) -> list[str]:
    """The hosts one target needs for one protocol: itself alone when its addresses agree; else one
    host per known address and the target for what they share (module docstring of snapshot_inventory)."""
    addresses = list(declared)
    first = declared[addresses[0]]
    range_spec = _spec(proto, scanned)
    if all(declaration == first for declaration in declared.values()):
        name = _unique_name(_safe_name(base), names)
        return _snapshot_host(name, target, addresses[0], proto, range_spec, first, services)
    differ = sorted(
        {port for declaration in declared.values() for port in declaration}
        - {port for port, what in first.items() if all(d.get(port) == what for d in declared.values())}
    )
    shared = {port: what for port, what in first.items() if port not in differ}
    rest = [port for port in scanned if port not in set(differ)]
    lines = [
        f"  # {target}: its addresses differ in what is open on {_spec(proto, differ)}: one host per known",
        "  # address (checked even if the name stops resolving to it), and the target for what they share",
    ]
    if rest:
        name = _unique_name(_safe_name(base), names)
        lines += _snapshot_host(name, target, addresses[0], proto, _spec(proto, rest), shared, services)
    else:
        lines.append(
            f"  # {target}: every port scanned differs between its addresses: a new address is not judged"
        )
    for address in addresses:
        name = _unique_name(_safe_name(f"{base}-{address}"), names)
        lines += _snapshot_host(name, address, address, proto, range_spec, declared[address], services)
    return lines


def _what_was_found(
    report: ScanReport, services: Mapping[ResultKey, ServiceInfo]
) -> dict[tuple[str, str, Protocol], _Declaration]:
    """Per (target, address, protocol), and per ("", address, protocol) for any target: the ports that
    answered open (with what answers there) or stayed silent. A plugin's report files a port shared by
    two hosts under one of them only: the other finds it by its address."""
    found: dict[tuple[str, str, Protocol], _Declaration] = {}
    for result in report.results:
        if result.address is None:
            continue
        own = found.setdefault((result.host, result.address, result.proto), {})
        anyone = found.setdefault(("", result.address, result.proto), {})
        if result.state.value == "open":
            what = _Declared()
            info = (
                services.get((result.address, result.proto, result.port))
                if result.proto is Protocol.TCP
                else None
            )
            if info is not None and info.service in SERVICES:
                # a password found in place is kept in place; an exposure is only noted
                what = _Declared(service=info.service, auth_required=info.auth == "required")
        elif result.state.value == "open|filtered":
            what = _Declared(silent=True)
        else:
            continue
        own[result.port] = what
        anyone.setdefault(result.port, what)
    return found


def _unique_name(name: str, taken: set[str]) -> str:
    """``::1`` and ``[::1]`` are one name once cleaned: the second gets a number, not a duplicate key."""
    unique, number = name, 2
    while unique in taken:
        unique, number = f"{name}-{number}", number + 1
    taken.add(unique)
    return unique


def _snapshot_host(
    name: str,
    address: str,
    described: str,
    proto: Protocol,
    range_spec: str,
    declared: _Declaration,
    services: Mapping[ResultKey, ServiceInfo],
) -> list[str]:
    """One host: ``address`` as written; ``described`` the address whose probes the comments quote."""
    lines = [
        f"  {json.dumps(name)}:",
        f"    address: {json.dumps(address)}",
        f"    range: {json.dumps(range_spec)}",
    ]
    opened = sorted(port for port, what in declared.items() if not what.silent)
    silent = sorted(port for port, what in declared.items() if what.silent)
    lines.append("    only_open:" + ("" if opened else " []"))
    for port in opened:
        what = declared[port]
        if what.service is not None:
            info = services.get((described, proto, port))
            note = f"  # {info.describe()}" if info is not None and (info.evidence or info.product) else ""
            auth = ", auth: required" if what.auth_required else ""
            lines.append(f"      - {{port: {port}, service: {what.service}{auth}}}{note}")
        elif proto is Protocol.TCP:
            lines.append(f"      - {port}  # {service_name(proto, port)}")
        else:
            lines.append(f"      - {json.dumps(f'{port}/{proto.value}')}  # {service_name(proto, port)}")
    if silent:
        lines.append("    # no reply and no ICMP error (open|filtered): a silent service, or a drop")
        lines.append("    filtered:")
        lines += [f"      - {json.dumps(f'{port}/{proto.value}')}" for port in silent]
    return lines
