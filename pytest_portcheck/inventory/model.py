"""What an inventory is: hosts, their expected ports, ranges, services and waivers, as frozen values.

Reading the YAML is ``load``'s, writing one from a scan ``snapshot``'s; both speak these types, and so
do the judge, the plan and the front ends. ``check_host_name_syntax`` is the one rule of how an
inventory may spell an address (the loader refuses others, the snapshot writes none).
Must not import pytest, yaml or the probes' I/O.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_portcheck.engine import ScanError
from pytest_portcheck.fileproblem import FileProblem
from pytest_portcheck.ports import Protocol

if TYPE_CHECKING:
    from pytest_portcheck.inventory.sources.model import Origin

INVENTORY_VERSION = 1
DEFAULT_TIMEOUT = 1.0
DEFAULT_RETRIES = 1


class Expect(str, enum.Enum):
    """What a port must be: ``closed`` is satisfied by refused or filtered (not reachable)."""

    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"

    def __str__(self) -> str:
        return self.value


class InventoryError(FileProblem):
    """A problem in an inventory file, at a line (1-based; 0 when the file as a whole is at fault)."""

    path: Path

    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(path, line, message)


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
    declared_by: tuple[str, ...] = ()
    """The source files (Compose, Kubernetes, Terraform) that declare the range's allowed ports, if
    any: an open port outside them is named as declared by no source."""


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
    declared_at: Origin | None = None
    """The entry of a source file (Compose, Kubernetes, Terraform) that declares the port, when one
    does; ``line`` is then the inventory line that reads that source."""


@dataclass(frozen=True, slots=True)
class Allowance:
    """One port of ``first``-``last`` that a source publishes, chosen when the service starts (Compose's
    ``"8000-8010:80"``): allowed by ``only_open``, not required."""

    proto: Protocol
    first: int
    last: int
    line: int
    """The inventory line that reads the source."""
    declared_at: Origin
    vantage: str | None = None
    why: str = ""
    """Why the port is allowed, not required: ``publishes one port of the range, chosen when...``."""
    one_of: bool = False
    """One port of the range is published, so at most one may be open (its item checks that); else a
    firewall rule admits the range and anything in it may listen (its item says so, and is skipped)."""

    @property
    def label(self) -> str:
        return f"{self.proto.value}/{self.first}-{self.last}"

    def rule(self, host: str) -> RangeRule:
        """The range as the scanner and the judge take one: every port of it."""
        return RangeRule(host, self.proto, tuple(range(self.first, self.last + 1)), self.label, self.line)


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
    notes: tuple[str, ...] = ()
    """What the host's sources declare that no port check can confirm (``file:line: why``)."""
    allowed: tuple[Allowance, ...] = ()
    """Ports a source allows without requiring them (one port of a range, chosen at start)."""


@dataclass(frozen=True, slots=True)
class Inventory:
    path: Path
    hosts: tuple[HostSpec, ...]

    def expectations(self) -> Iterator[tuple[HostSpec, Expectation]]:
        for host in self.hosts:
            for expectation in host.expectations:
                yield host, expectation


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
