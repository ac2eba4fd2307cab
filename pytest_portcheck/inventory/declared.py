"""Source entries of an inventory: the ports a Compose file, Kubernetes manifests or a Terraform plan
declare, read live at every load and turned into a host's expectations.

A port list (``open:``, ``only_open:``, or ``open:`` under ``from: VANTAGE``) may hold, beside ports,
an entry such as ``{compose: deploy/compose.yml, services: [web]}``; ``only_open:`` may be that one
entry alone. ``read_entry`` checks its keys; ``HostSources.expectations`` reads the files (paths are
relative to the inventory file, each set read once a load) and keeps the exposures that apply to the
host's address: a port bound to every address applies to any host, one bound to an address (a
loopback, a node, a load balancer) only to the host at that address, one a firewall rule admits from
a named network only under an entry that names it in ``peers:``. Each declared port becomes an
expected-open ``Expectation`` that knows the source line declaring it; a port published as one of a
range (Compose's ``"8000-8010:80"``) or a range a firewall rule admits becomes an ``Allowance``:
allowed by ``only_open``, not required. A source's problems are the inventory's problems, at the
line of the entry, each naming the source file, its line and the fix.
Must not import pytest, the engine's scanner, the judge or the probes' I/O.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pytest_portcheck.inventory.model import Allowance, Expect, Expectation
from pytest_portcheck.inventory.sources import (
    Exposure,
    Reach,
    SourceError,
    SourceKind,
    SourceReading,
    read_compose,
    read_kubernetes,
    read_terraform,
)
from pytest_portcheck.inventory.yamlreader import YamlReader
from pytest_portcheck.ports import PortKey

SOURCE_KEYS = tuple(kind.value for kind in SourceKind)
_OPTIONS: dict[SourceKind, tuple[str, ...]] = {
    SourceKind.COMPOSE: ("services", "profiles", "env_file", "peers"),
    SourceKind.KUBERNETES: ("node_addresses", "addresses", "namespace", "peers"),
    SourceKind.TERRAFORM: ("peers",),
}
_WILDCARDS = {"0.0.0.0": 4, "::": 6}


@dataclass(frozen=True, slots=True)
class SourceRequest:
    """What to read: a kind, its files (as the reader is to open them) and the reader's options."""

    kind: SourceKind
    paths: tuple[str, ...]
    profiles: tuple[str, ...] = ()
    env_file: str | None = None
    node_addresses: tuple[str, ...] = ()
    namespace: str = "default"
    addresses: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Kubernetes: the addresses of load balancers and ingresses the manifests do not hold, by
    ``Service/NAMESPACE/NAME``, ``Ingress/NAMESPACE/NAME`` or ``IngressClass/CLASS``."""


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """A source entry of a port list: what to read, which of its services, which admitted networks."""

    request: SourceRequest
    line: int
    services: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()


def is_source_entry(node: yaml.Node) -> bool:
    """Whether a list entry names a source (``{compose: ...}``) rather than a port."""
    if not isinstance(node, yaml.MappingNode):
        return False
    return any(isinstance(key, yaml.ScalarNode) and key.value in SOURCE_KEYS for key, _ in node.value)


def read_source(request: SourceRequest) -> SourceReading:
    """The reading of one request; ``SourceError`` with every problem of its files."""
    if request.kind is SourceKind.COMPOSE:
        return read_compose(request.paths, profiles=request.profiles, env_file=request.env_file)
    if request.kind is SourceKind.KUBERNETES:
        return read_kubernetes(
            request.paths,
            node_addresses=request.node_addresses,
            addresses=dict(request.addresses),
            namespace=request.namespace,
        )
    if len(request.paths) != 1:
        raise SourceError(request.paths[0], 0, "a terraform source is one JSON file: give one path")
    return read_terraform(request.paths[0])


def read_entry(reader: YamlReader, node: yaml.MappingNode, base: str) -> SourceEntry:
    """A source entry's keys, checked; its paths joined to ``base`` (the inventory's directory)."""
    kinds = [
        key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode) and key.value in SOURCE_KEYS
    ]
    if len(kinds) > 1:
        raise reader.error(node, f"one source per entry, not {' and '.join(kinds)}: write one entry each")
    kind = SourceKind(kinds[0])
    allowed = (kind.value, *_OPTIONS[kind])
    entries = reader.mapping(node, f"the {kind.value} source", allowed)

    def texts(key: str) -> tuple[str, ...]:
        if key not in entries:
            return ()
        return _texts(reader, entries[key][1], key)

    paths = texts(kind.value)
    if not paths:
        raise reader.error(
            node, f"{kind.value}: names no file: write {kind.value}: path/relative/to/inventory"
        )
    joined = tuple(_joined(base, path) for path in paths)
    env_file = texts("env_file")
    namespace = texts("namespace")
    request = SourceRequest(
        kind,
        joined,
        texts("profiles"),
        _joined(base, env_file[0]) if env_file else None,
        texts("node_addresses"),
        namespace[0] if namespace else "default",
        _addresses(reader, entries["addresses"][1]) if "addresses" in entries else (),
    )
    return SourceEntry(request, node.start_mark.line + 1, texts("services"), texts("peers"))


def _joined(base: str, path: str) -> str:
    """``path`` relative to the inventory's directory, as messages show it: relative to the working
    directory when it lies below it (pytest hands plugins absolute paths), else absolute."""
    joined = os.path.normpath(os.path.join(base, path))
    if os.path.isabs(joined):
        here = os.getcwd()
        if os.path.commonpath([here, joined]) == here:
            return os.path.relpath(joined, here)
    return joined


def _addresses(reader: YamlReader, node: yaml.Node) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``addresses: {Service/shop/web: [203.0.113.7]}``: what each object is reached at."""
    found = []
    for name, (_key, value) in reader.mapping(node, "addresses", ()).items():
        found.append((name, _texts(reader, value, f"addresses of {name}")))
    return tuple(found)


def _texts(reader: YamlReader, node: yaml.Node, key: str) -> tuple[str, ...]:
    """A text or a list of texts (``services: [web, api]``, ``compose: a.yml``)."""
    items = node.value if isinstance(node, yaml.SequenceNode) else [node]
    found = []
    for item in items:
        value = reader.scalar(item)
        if not isinstance(value, str) or not value.strip():
            raise reader.error(item, f"{key} takes text or a list of texts, not {value!r}")
        found.append(value.strip())
    return tuple(found)


def _same_address(declared: str, address: str) -> bool:
    try:
        return ipaddress.ip_address(declared) == ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return declared == address


def _family(address: str) -> int | None:
    try:
        return ipaddress.ip_address(address.strip("[]")).version
    except ValueError:
        return None  # a name: it may resolve to either family


def is_allowance(exposure: Exposure, kind: SourceKind) -> bool:
    """Whether a port is allowed rather than required: one port of a range, chosen when the container
    starts, or a range a firewall rule admits (a rule says who may connect, not what listens)."""
    return exposure.one_of or (kind is SourceKind.TERRAFORM and exposure.first != exposure.last)


def applies(exposure: Exposure, address: str, peers: Sequence[str]) -> bool:
    """Whether a declared exposure is open at the inventory host ``address``, for the list reading it."""
    if exposure.reach is Reach.NETWORK and exposure.peer not in peers:
        return False
    if exposure.address is None:
        return True
    wildcard = _WILDCARDS.get(exposure.address)
    if wildcard is not None:
        family = _family(address)
        return family is None or family == wildcard
    return _same_address(exposure.address, address)


@dataclass(slots=True)
class HostSources:
    """The sources one host's lists read: readings shared by the inventory, and what they add to the host."""

    base: str
    """The inventory's directory, as given: source paths are relative to it."""
    address: str
    readings: dict[SourceRequest, SourceReading | SourceError]
    notes: list[str] = field(default_factory=list)
    allowances: list[Allowance] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    unmapped: dict[tuple[str, str | None], str] = field(default_factory=dict)
    """Rules that admit one network, by (origin, peer), that no entry of the host maps to a vantage:
    a note each, unless a later ``from:`` entry names the network."""

    def all_notes(self) -> tuple[str, ...]:
        return (*self.notes, *(note for note in self.unmapped.values() if note))

    def expectations(
        self, reader: YamlReader, node: yaml.MappingNode, host: str, vantage: str | None, taken: _Taken
    ) -> list[Expectation]:
        """The expected-open ports one source entry declares for this host (see the module's docstring)."""
        entry = read_entry(reader, node, self.base)
        reading = self._reading(reader, node, entry)
        exposures = _chosen(reader, node, entry, reading)
        for note in reading.notes:
            if not entry.services or note.origin.owner in entry.services:
                self._note(f"{note}")
        for path in reading.paths:
            if path not in self.paths:
                self.paths.append(path)
        found: list[Expectation] = []
        kept = [e for e in exposures if applies(e, self.address, entry.peers)]
        for exposure in exposures:
            if exposure.reach is not Reach.NETWORK:
                continue
            key = (str(exposure.origin), exposure.peer)
            if exposure.peer in entry.peers:
                self.unmapped[key] = ""
            elif key not in self.unmapped:
                self.unmapped[key] = (
                    f"{exposure.origin}: admits {exposure.spec} from {exposure.peer} only: checked "
                    "closed from elsewhere; to check it open, list the source under from: VANTAGE with "
                    f"peers: [{exposure.peer}]"
                )
        if exposures and not kept:
            self._note(f"{reading.paths[0]}: declares no port at {self.address} ({len(exposures)} elsewhere)")
        for exposure in kept:
            found += self._declare(reader, node, host, vantage, exposure, taken, entry)
        return found

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _reading(self, reader: YamlReader, node: yaml.Node, entry: SourceEntry) -> SourceReading:
        reading = self.readings.get(entry.request)
        if reading is None:
            try:
                reading = read_source(entry.request)
            except SourceError as exc:
                reading = exc
            self.readings[entry.request] = reading
        if isinstance(reading, SourceError):
            kind = entry.request.kind.value
            for problem in reading.problems:  # each its own line; the entry's line names the source
                reader.note(node, f"{kind} source {problem}")
            raise reader.error(node, f"{kind} source unreadable")  # their consequence: not reported again
        return reading

    def _declare(
        self,
        reader: YamlReader,
        node: yaml.Node,
        host: str,
        vantage: str | None,
        exposure: Exposure,
        taken: _Taken,
        entry: SourceEntry,
    ) -> list[Expectation]:
        line = entry.line
        if is_allowance(exposure, entry.request.kind):
            why = (
                "publishes one port of the range, chosen when the container starts"
                if exposure.one_of
                else "admits the range: nothing there has to listen"
            )
            allowance = Allowance(
                exposure.protocol, exposure.first, exposure.last, line, exposure.origin, vantage, why,
                exposure.one_of,
            )  # fmt: skip
            if allowance not in self.allowances:
                self.allowances.append(allowance)
            return []
        found = []
        for port in exposure.ports:
            key = (exposure.protocol, port)
            if key in taken:
                expect, other = taken[key]
                if expect is not Expect.OPEN:
                    raise reader.error(
                        node,
                        f"{exposure.origin} declares {key[0].value}/{port} open, but line {other} "
                        f"declares it {expect.value}: keep one",
                    )
                continue  # declared by hand (that entry, maybe stricter, applies) or by another source
            taken[key] = (Expect.OPEN, line)
            found.append(
                Expectation(
                    host, key[0], port, Expect.OPEN, line, vantage=vantage, declared_at=exposure.origin
                )
            )
        return found


_Taken = dict[PortKey, tuple[Expect, int]]


def _chosen(
    reader: YamlReader, node: yaml.Node, entry: SourceEntry, reading: SourceReading
) -> list[Exposure]:
    """The reading's exposures of the services the entry names (all when it names none)."""
    if not entry.services:
        return list(reading.exposures)
    owners = list(dict.fromkeys(e.origin.owner for e in reading.exposures))
    problems = []
    for service in entry.services:
        if service not in owners:
            close = difflib.get_close_matches(service, owners, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"services with ports: {', '.join(owners) or 'none'}"
            )
            problems.append(f"service {service!r} publishes no port in {', '.join(reading.paths)}: {hint}")
    if problems:
        for problem in problems:
            reader.note(node, problem)
        raise reader.error(node, "unknown services")
    return [e for e in reading.exposures if e.origin.owner in entry.services]


Readings = dict[SourceRequest, "SourceReading | SourceError"]
"""The sources an inventory's load has read, by request: each read once, whichever hosts read it."""


def host_sources(path: Path, address: str, readings: Readings) -> HostSources:
    """The sources of a host at ``address`` of the inventory at ``path``."""
    return HostSources(os.path.dirname(os.fspath(path)) or ".", address, readings)
