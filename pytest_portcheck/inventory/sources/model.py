"""What a source file declares: exposures, notes on what cannot be checked, and the error type.

An ``Exposure`` is one declared open port (or range) with where it is open, who may reach it and
the entry that declares it; a ``Note`` is something a source declares that no port check can
confirm (a random host port, a ClusterIP Service, an all-protocols rule). ``SourceError`` holds
every problem of a reading at once, each with its file, line and fix. Values only: nothing here
reads files. Imports only the standard library and the primitives ``ports`` and ``fileproblem``.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_portcheck.fileproblem import FileProblem
from pytest_portcheck.ports import MAX_PORT, MIN_PORT, Protocol


class SourceKind(str, enum.Enum):
    COMPOSE = "compose"
    KUBERNETES = "kubernetes"
    TERRAFORM = "terraform"

    def __str__(self) -> str:
        return self.value


class Reach(str, enum.Enum):
    """Who may connect to a declared exposure."""

    EVERYONE = "everyone"
    """Any source address: a port bound to every address (or a public one), a rule from 0.0.0.0/0 or ::/0."""
    THIS_HOST = "this-host"
    """Only processes on the host itself: bound to a loopback address."""
    NETWORK = "network"
    """Only the sources named in ``Exposure.peer`` (a CIDR, or a named group such as ``sg-123``)."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Origin:
    """The entry of a source file that declares something."""

    path: str
    line: int
    """1-based line of the entry (0 when the file as a whole declares it)."""
    entry: str
    """A short description, e.g. ``service web ports[0] "8080:80"``."""
    owner: str
    """What holds the entry: a Compose service, ``Service/default/web``, a Terraform resource address."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.entry}" if self.line else f"{self.path}: {self.entry}"


@dataclass(frozen=True, slots=True)
class Exposure:
    """One declared open port or range of ports."""

    protocol: Protocol
    first: int
    last: int
    address: str | None
    """Where it is open, as declared: ``0.0.0.0``, ``::``, ``127.0.0.1``, a node or load balancer
    address; None when the source binds every address of its target (Compose's default, both
    families), every node of a cluster, or every instance a firewall rule is attached to."""
    reach: Reach
    peer: str | None
    """The source a rule admits (``10.0.0.0/8``, ``0.0.0.0/0``, ``sg-123``); None for a bind."""
    origin: Origin
    one_of: bool = False
    """True when a single port of first-last, chosen when the container starts, is open (Compose's
    ``"8000-8010:80"``) rather than each of them."""

    def __post_init__(self) -> None:
        # A reader bug must not become an empty or a wrong range that a check would silently pass.
        if not MIN_PORT <= self.first <= self.last <= MAX_PORT:
            raise ValueError(f"{self.origin}: {self.first}-{self.last} is not a range of ports")

    @property
    def ports(self) -> range:
        return range(self.first, self.last + 1)

    @property
    def spec(self) -> str:
        """The ports in the inventory's port-spec syntax: ``8080/tcp``, ``3000-3005/udp``."""
        span = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{span}/{self.protocol.value}"


@dataclass(frozen=True, slots=True)
class Note:
    """Something declared that cannot be checked as a port (or is deliberately not exposed)."""

    origin: Origin
    message: str

    def __str__(self) -> str:
        return f"{self.origin.path}:{self.origin.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class SourceReading:
    """Everything one reading of a source (one or several files) declares."""

    kind: SourceKind
    paths: tuple[str, ...]
    exposures: tuple[Exposure, ...]
    notes: tuple[Note, ...]


class SourceError(FileProblem):
    """A problem in a source file at a line (1-based; 0 when the file as a whole is at fault)."""

    path: str

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(path, line, message)


class Findings:
    """What a reader collects while it walks a file: exposures, notes and problems, in file order."""

    __slots__ = ("exposures", "notes", "problems")

    def __init__(self) -> None:
        self.exposures: list[Exposure] = []
        self.notes: list[Note] = []
        self.problems: list[SourceError] = []

    def problem(self, path: str, line: int, message: str) -> None:
        self.problems.append(SourceError(path, line, message))

    def note(self, origin: Origin, message: str) -> None:
        self.notes.append(Note(origin, message))

    def reading(self, kind: SourceKind, paths: Sequence[str]) -> SourceReading:
        """The reading, or every problem found as one ``SourceError``."""
        if self.problems:
            raise SourceError.all_of(self.problems)
        return SourceReading(kind, tuple(paths), tuple(self.exposures), tuple(self.notes))


def reach_of_bind(address: str | None) -> Reach:
    """A port bound to a loopback address is reachable from this host only; any other from anyone."""
    if address is None:
        return Reach.EVERYONE
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name (a load balancer's): whoever can reach it
        return Reach.EVERYONE
    return Reach.THIS_HOST if loopback else Reach.EVERYONE


def reach_of_peer(peer: str) -> Reach:
    """``0.0.0.0/0`` and ``::/0`` are everyone; any other CIDR or group is that network only."""
    try:
        network = ipaddress.ip_network(peer, strict=False)
    except ValueError:
        return Reach.NETWORK
    return Reach.EVERYONE if network.prefixlen == 0 else Reach.NETWORK
