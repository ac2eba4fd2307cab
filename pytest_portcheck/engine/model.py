"""The engine's data: port states, reasons, targets, results and settings, and the key results are
filed under (``ResultKey``).

Frozen values only; every module of the engine and both front ends speak in these types.
Must not import pytest, yaml or anything outside the engine but ``ports``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from pytest_portcheck.ports import Protocol, service_name

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


class PortState(str, enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"
    OPEN_FILTERED = "open|filtered"
    """UDP only: no reply and no ICMP error, so open and dropping look the same."""
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class Reason:
    """Why a probe ended as it did, in nmap's words where nmap has one."""

    SYN_ACK = "syn-ack"
    UDP_RESPONSE = "udp-response"
    PORT_UNREACH = "port-unreach"
    CONN_REFUSED = "conn-refused"
    NO_RESPONSE = "no-response"
    HOST_UNREACH = "host-unreach"
    NET_UNREACH = "net-unreach"
    ADMIN_PROHIBITED = "admin-prohibited"
    LOCAL_FIREWALL = "local-firewall"
    LISTEN_NO_ACCEPT = "listen-no-accept"

    @staticmethod
    def dns_error(message: str) -> str:
        return f"dns-error: {message}"

    @staticmethod
    def local_error(name: str) -> str:
        return f"local-error: {name}"


DEFAULT_WINDOW = 4096


class ScanError(Exception):
    """A scan that cannot run as asked (bad target, too large a block); the message names the fix."""


class RatesCrossed(ScanError):
    """A minimum rate above the maximum: the facts only, each front end names its own options."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum
        super().__init__(f"the minimum rate ({minimum:g}/s) is above the maximum rate ({maximum:g}/s)")

    def __reduce__(self) -> tuple[type[RatesCrossed], tuple[float, float]]:
        return type(self), (self.minimum, self.maximum)  # copies and pickles rebuild it from the facts


@dataclass(frozen=True, slots=True)
class Resolution:
    """What one target, as the user wrote it, resolved to: addresses in resolver order, or an error."""

    host: str
    addresses: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """One (address, protocol, port) to probe, remembering the host it came from."""

    host: str
    address: str
    proto: Protocol
    port: int


@dataclass(frozen=True, slots=True)
class ProbeResult:
    host: str
    address: str | None
    proto: Protocol
    port: int
    state: PortState
    reason: str
    latency_ms: float | None = None
    """Time of the deciding attempt; None when no attempt decided (timeouts still carry it)."""
    attempts: int = 0

    @property
    def service(self) -> str:
        return service_name(self.proto, self.port)


MIN_TIMEOUT = 0.001
"""Seconds: below a millisecond even loopback cannot answer, and every port would seem filtered."""
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True, slots=True)
class ScanSettings:
    timeout: float = 1.0
    """Seconds each connect attempt may take before it counts as no-response."""
    retries: int = 1
    """Extra attempts for a port that did not answer; refusals and opens are never retried."""
    window: int = DEFAULT_WINDOW
    """Maximum connects in flight at once, over all processes."""
    processes: int | None = None
    """Scanning processes; None picks one per CPU for large scans (CPU-bound on loopback)."""
    udp_rate: float = 0.95
    """UDP retries per second to an address that rate-limits its ICMP errors (Linux: ~1/s after a burst)."""
    max_rate: float | None = None
    """TCP probes per second at most, over the whole scan (nmap's --max-rate); None: no cap."""
    min_rate: float | None = None
    """TCP probes per second each remote address keeps at least, however many drops it shows."""

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ScanError(f"the timeout must be more than 0 seconds, not {self.timeout}")
        if self.retries < 0:
            raise ScanError(f"retries must be 0 or more, not {self.retries}")
        if self.window < 1:
            raise ScanError(f"the window (connects in flight) must be at least 1, not {self.window}")
        if not self.udp_rate > 0:
            raise ScanError(f"the UDP rate must be more than 0 probes per second, not {self.udp_rate}")
        if self.processes is not None and self.processes < 1:
            raise ScanError(f"processes must be at least 1, not {self.processes}")
        for name, rate in (("maximum", self.max_rate), ("minimum", self.min_rate)):
            if rate is not None and not rate > 0:
                raise ScanError(f"the {name} rate must be more than 0 probes per second, not {rate}")
        if self.max_rate is not None and self.min_rate is not None and self.min_rate > self.max_rate:
            raise RatesCrossed(self.min_rate, self.max_rate)


SETTING_NAMES = tuple(f.name for f in fields(ScanSettings))
"""Every field of ``ScanSettings``, by the name front ends and files give it."""


def _kind(annotation: object) -> tuple[type[float] | type[int], bool]:
    """A setting's annotation as written (``int``, ``float | None``): its number and whether None
    (no cap, the default choice) is a value. Only numbers are settings: anything else fails here."""
    name, _, rest = str(annotation).partition(" | ")
    return {"int": int, "float": float}[name], rest == "None"


_SETTING_KINDS = {f.name: _kind(f.type) for f in fields(ScanSettings)}
"""Per setting: the number it is, and whether None (no cap, the default choice) is a value."""


def settings_from_options(
    options: Mapping[str, object] | None = None, *, base: ScanSettings | None = None
) -> ScanSettings:
    """The one way settings are built from what a user, an inventory or a file gave: the named
    ``options`` over ``base`` (the defaults when None), every field carried by name.

    Unknown names are a TypeError naming them (a caller's mistake); a value that is not a number of
    the right kind, or out of range, is a ScanError saying which and why (``ScanSettings`` validates).
    """
    unknown = [name for name in options or {} if name not in _SETTING_KINDS]
    if unknown:
        raise TypeError(f"unknown scan settings: {', '.join(unknown)}")
    values = settings_to_options(base if base is not None else ScanSettings())
    for name, value in (options or {}).items():
        values[name] = _setting_value(name, value)
    return ScanSettings(**values)  # type: ignore[arg-type]


def settings_to_options(settings: ScanSettings) -> dict[str, object]:
    """Every field of ``settings`` by name: what ``settings_from_options`` takes back unchanged."""
    return {name: getattr(settings, name) for name in SETTING_NAMES}


def _setting_value(name: str, value: object) -> float | int | None:
    kind, optional = _SETTING_KINDS[name]
    if value is None and optional:
        return None
    whole = kind is int
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        raise ScanError(
            f"the {name} setting must be {'a whole number' if whole else 'a number'}, not {value!r}"
        )
    return value  # as given (a whole number of seconds stays one): the messages quote it


@dataclass(frozen=True, slots=True)
class AddressQuality:
    """How one address answered the scan: what the adaptive timing did there and what stayed unknown."""

    address: str
    rate: float = 0.0
    """Highest TCP send rate reached (probes per second, over half-second spans)."""
    drops: int = 0
    """Probes that met silence but whose retry was answered: evidence of loss or rate limiting."""
    retries: int = 0
    """Attempts after the first, for ports that did not answer at once."""
    reexaminations: int = 0
    """Paced extra probes of ports still silent after their retries, on an address seen dropping."""
    unresolved: int = 0
    """Ports left silent on an address seen dropping, without a paced sample showing the silence is real."""
    slowdowns: int = 0
    """Times the send rate was cut for drops."""

    @property
    def limited(self) -> bool:
        """True when the address dropped probes it later answered: it limits or loses packets."""
        return self.drops > 0

    def merged(self, other: AddressQuality) -> AddressQuality:
        return AddressQuality(
            self.address,
            max(self.rate, other.rate),
            self.drops + other.drops,
            self.retries + other.retries,
            self.reexaminations + other.reexaminations,
            self.unresolved + other.unresolved,
            self.slowdowns + other.slowdowns,
        )


@dataclass(slots=True)
class ScanStats:
    """How hard the engine worked for honest answers; front ends may show it."""

    probes_sent: int = 0
    self_connects: int = 0
    resource_backoffs: int = 0
    smallest_window: int = 0
    """The narrowest the window of connects in flight became (0: not started)."""
    paced_probes: int = 0
    """UDP retries sent slowly because their address rate-limits ICMP errors."""
    rate_limited: int = 0
    """Addresses found rate-limiting ICMP port-unreachable replies."""
    processes: int = 1
    addresses: dict[str, AddressQuality] = field(default_factory=dict)
    """Per address, where anything beyond one clean answer per port happened."""

    def note(self, quality: AddressQuality) -> None:
        known = self.addresses.get(quality.address)
        self.addresses[quality.address] = quality if known is None else known.merged(quality)

    def add(self, other: ScanStats) -> None:
        """Fold in the counters of another process's part of the same scan."""
        self.probes_sent += other.probes_sent
        self.self_connects += other.self_connects
        self.resource_backoffs += other.resource_backoffs
        self.paced_probes += other.paced_probes
        self.rate_limited += other.rate_limited
        for quality in other.addresses.values():
            self.note(quality)
        if other.smallest_window:
            self.smallest_window = min(filter(None, (self.smallest_window, other.smallest_window)))


ResultKey = tuple[str, Protocol, int]
"""(address, protocol, port): what is probed once per run."""


def port_key(address: str, proto: Protocol, port: int) -> ResultKey:
    """The one way to build the key a port's result and service are filed under."""
    return (address, proto, port)


def result_key(result: ProbeResult) -> ResultKey | None:
    return None if result.address is None else port_key(result.address, result.proto, result.port)


def index_results(results: Iterable[ProbeResult]) -> dict[ResultKey, ProbeResult]:
    """Each resolved result under its (address, protocol, port) key."""
    return {port_key(r.address, r.proto, r.port): r for r in results if r.address is not None}
