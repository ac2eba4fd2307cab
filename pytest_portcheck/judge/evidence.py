"""What the judge reads: one kind of evidence, for a scan and for judged reports alike.

``Evidence`` is everything a verdict rests on, looked up by (vantage, host, address, protocol, port):
each port's result, the facts a protocol probe found there and whether that probe was run for the
requirement at hand, each host's resolution, the addresses on which nothing answered, scan quality,
and — for an ``only_open`` range — the range's ports on one address as ``RangeResults``: the results
that stand out one by one and the rest as counted groups, so that a range a report summarises
("65,530 closed") is never walked port by port. The judge (``expectation``, ``ranges``) takes any
``Evidence`` and nothing else; ``ScanEvidence`` is a session's own scan, seen from the vantage it ran
from; ``sharding.union.ReportUnion`` is the reports of one run. Both modes thus give the same
verdict and the same message from the same data.

Pure: no I/O. Must not import pytest, yaml (the inventory's types are for type checking only), the
scanner or the probes' I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pytest_portcheck.engine import AddressQuality, PortState, ProbeResult, Reason, Resolution
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.ports import Protocol as PortProtocol
from pytest_portcheck.probes.model import ServiceInfo

if TYPE_CHECKING:
    from pytest_portcheck.inventory.model import RangeRule, ServiceRequirement

Vantage = str | None


@dataclass(frozen=True, slots=True)
class PortGroup:
    """Ports of a range on one address that share a state and reason, counted instead of listed."""

    state: PortState
    reason: str
    count: int | None
    """How many ports (None when the source did not count them: a share's usual state)."""
    ports: Callable[[], Sequence[int]]
    """The ports themselves, enumerated on demand (this walks the range: a failure's message only)."""


@dataclass(frozen=True, slots=True)
class RangeResults:
    """What the evidence holds on the ports of a range on one address."""

    listed: Sequence[ProbeResult] = ()
    """Results one by one (any state), each port at most once."""
    grouped: Sequence[PortGroup] = ()
    """The other ports, in groups."""
    unproven: Sequence[tuple[str, int | None]] = ()
    """(why, how many ports or None when uncounted): ports nothing proves were scanned."""


class Evidence(Protocol):
    """What a verdict rests on. Every method answers for one vantage (None: no vantage named)."""

    @property
    def vantages(self) -> Sequence[Vantage]:
        """The vantages the evidence holds, in a fixed order."""

    @property
    def complete(self) -> bool:
        """True when the evidence holds every vantage that looked (a judge run): an obligation that no
        vantage it holds checked is an error. False for a scanning run, which looks from one vantage
        and leaves what must hold elsewhere to the runs there."""

    def absent(self, vantage: Vantage) -> str:
        """Why the evidence holds nothing from ``vantage`` (for an item scoped to it)."""

    def resolution(self, vantage: Vantage, host: str) -> Resolution | None:
        """What ``host`` (as the inventory names it) resolved to; None when it was not looked up."""

    def result(
        self, vantage: Vantage, host: str, address: str, proto: PortProtocol, port: int
    ) -> ProbeResult | None:
        """The port's result on ``address``; an ``error`` result saying why when nothing proves it was
        scanned; None when it was not scanned at all."""

    def service(
        self, vantage: Vantage, host: str, address: str, proto: PortProtocol, port: int
    ) -> ServiceInfo | None:
        """What a protocol probe found on the port (None: no probe ran there)."""

    def unprobed(
        self,
        vantage: Vantage,
        host: str,
        address: str,
        proto: PortProtocol,
        port: int,
        wanted: ServiceRequirement,
    ) -> str | None:
        """Why the probe's facts cannot answer ``wanted`` (it was run for other requirements), or None."""

    def silent(self, vantage: Vantage, host: str) -> tuple[str, ...]:
        """The host's addresses on which nothing answered (``silence.silent_among``)."""

    def quality(self, vantage: Vantage) -> Mapping[str, AddressQuality]:
        """Scan quality per address, where the evidence records it."""

    def range_results(self, vantage: Vantage, host: str, address: str, rule: RangeRule) -> RangeResults:
        """The ports of ``rule`` on ``address``."""


_ANSWERED_NO = frozenset({PortState.CLOSED, PortState.FILTERED})


@dataclass(slots=True)
class ScanEvidence:
    """A session's scan as the judge reads it: one vantage (the one the run scans from, or None)."""

    by_key: Mapping[ResultKey, ProbeResult]
    resolutions: Mapping[str, Resolution]
    services: Mapping[ResultKey, ServiceInfo] = field(default_factory=dict)
    silent_addresses: Collection[str] = frozenset()
    addresses_quality: Mapping[str, AddressQuality] = field(default_factory=dict)
    here: Vantage = None

    @property
    def vantages(self) -> Sequence[Vantage]:
        return (self.here,)

    @property
    def complete(self) -> bool:
        return False

    def absent(self, vantage: Vantage) -> str:
        now = f"from vantage {self.here}" if self.here else "without a vantage (PORTCHECK_VANTAGE is not set)"
        return (
            f"declared for vantage {vantage}, and this run scans {now}; run it there, or judge its "
            "reports with --portcheck-results"
        )

    def resolution(self, vantage: Vantage, host: str) -> Resolution | None:
        return self.resolutions.get(host) if vantage == self.here else None

    def result(
        self, vantage: Vantage, host: str, address: str, proto: PortProtocol, port: int
    ) -> ProbeResult | None:
        return self.by_key.get((address, proto, port)) if vantage == self.here else None

    def service(
        self, vantage: Vantage, host: str, address: str, proto: PortProtocol, port: int
    ) -> ServiceInfo | None:
        return self.services.get((address, proto, port)) if vantage == self.here else None

    def unprobed(
        self,
        vantage: Vantage,
        host: str,
        address: str,
        proto: PortProtocol,
        port: int,
        wanted: ServiceRequirement,
    ) -> str | None:
        return None  # the session's probes were run for this very inventory's requirements

    def silent(self, vantage: Vantage, host: str) -> tuple[str, ...]:
        resolution = self.resolution(vantage, host)
        if resolution is None or resolution.error is not None:
            return ()
        return tuple(address for address in resolution.addresses if address in self.silent_addresses)

    def quality(self, vantage: Vantage) -> Mapping[str, AddressQuality]:
        return self.addresses_quality if vantage == self.here else {}

    def range_results(self, vantage: Vantage, host: str, address: str, rule: RangeRule) -> RangeResults:
        """The scan holds every port one by one: plain refusals and drops are counted per (state,
        reason), everything else is listed (a silent listener too: it is exposure, as in a shard report)."""
        listed: list[ProbeResult] = []
        counted: dict[tuple[PortState, str], list[int]] = {}
        missing = 0
        for port in rule.ports:
            result = self.by_key.get((address, rule.proto, port)) if vantage == self.here else None
            if result is None:
                missing += 1
            elif result.state in _ANSWERED_NO and result.reason != Reason.LISTEN_NO_ACCEPT:
                counted.setdefault((result.state, result.reason), []).append(port)
            else:
                listed.append(result)
        grouped = [
            PortGroup(state, reason, len(ports), _returning(ports))
            for (state, reason), ports in counted.items()
        ]
        return RangeResults(listed, grouped, [("not scanned", missing)] if missing else [])


def _returning(ports: Sequence[int]) -> Callable[[], Sequence[int]]:
    return lambda: ports
