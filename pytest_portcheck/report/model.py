"""The scan report: what a scan found, typed: results in a stable order, counts by state, quality notes.

Every writer and reader of the report package speaks ``ScanReport``; its JSON form is ``encode``'s
(written) and ``decode``'s (read, after ``schema`` checked it), so that both front ends write the same
document. Holds no scanning, no JSON and no diffing: ``portcheck scan`` without ``--json`` loads this
module and nothing of the format.
Must not import pytest, yaml, json or the probes' I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_portcheck.engine import (
    PortState,
    ProbeResult,
    Resolution,
    ScanSettings,
    ScanStats,
)
from pytest_portcheck.engine.model import ResultKey

if TYPE_CHECKING:
    from pytest_portcheck.probes.model import ServiceInfo

REPORT_VERSION = 1
"""The JSON report with every result listed (``encode`` writes it, ``schema`` checks it)."""
SHARD_REPORT_VERSION = 2
"""The shard report of ``portcheck scan --inventory`` (``sharding.report``), summarised per address."""

Asked = tuple[str, str | None, bool, int | None, str | None, str | None]
"""(service, TLS min_version, TLS verify, TLS expires_in_days, auth, name asked for): one requirement a
protocol probe was run for (``name`` None for an address). Both report versions record them per
probed port, so that a judge of another inventory can tell a requirement the probe was not run for."""


STATE_ORDER = (PortState.OPEN, PortState.CLOSED, PortState.FILTERED, PortState.OPEN_FILTERED, PortState.ERROR)


def sort_results(results: Iterable[ProbeResult], host_order: Sequence[str]) -> list[ProbeResult]:
    """Hosts in the order given, then addresses in resolver order, then protocol and port."""
    rank = {host: index for index, host in enumerate(dict.fromkeys(host_order))}
    address_rank: dict[str | None, int] = {}
    for result in results:
        address_rank.setdefault(result.address, len(address_rank))
    return sorted(
        results,
        key=lambda r: (rank.get(r.host, len(rank)), address_rank[r.address], r.proto.value, r.port),
    )


def count_states(results: Iterable[ProbeResult]) -> dict[PortState, int]:
    counts = Counter(result.state for result in results)
    return {state: counts.get(state, 0) for state in STATE_ORDER}


@dataclass(frozen=True, slots=True)
class ScanReport:
    resolutions: Sequence[Resolution]
    results: Sequence[ProbeResult]
    settings: ScanSettings
    started: str
    """When the scan started, ISO 8601 in UTC."""
    elapsed_s: float
    stats: ScanStats = field(default_factory=ScanStats)
    interrupted: bool = False
    command: Sequence[str] = ()
    services: Mapping[ResultKey, ServiceInfo] = field(default_factory=dict)
    """What the protocol probes found on open ports, where they ran."""
    asked: Mapping[ResultKey, Sequence[Asked]] | None = field(default_factory=dict)
    """Per probed port, the requirements its probe was run for (none: run for no requirement, as
    ``portcheck scan --banner``); None when the report read does not say (written before reports did)."""

    def open_ports(self, address: str | None = None) -> set[int]:
        """Open port numbers, of every address or of one."""
        return {
            r.port
            for r in self.results
            if r.state is PortState.OPEN and (address is None or r.address == address)
        }


class ReportError(Exception):
    """A report file that cannot be read; the message names the file and the problem."""


def quality_notes(stats: ScanStats, limit: int = 10) -> list[str]:
    """One line per address that dropped probes or left silence unresolved: what was done about it."""
    notable = [q for q in stats.addresses.values() if q.limited or q.unresolved]
    notable.sort(key=lambda q: (-q.unresolved, -q.drops, q.address))
    lines = []
    for q in notable[:limit]:
        line = (
            f"{q.address} dropped {q.drops:,} probe(s) it answered on retry (rate limiting or loss): "
            f"rate cut {q.slowdowns} time(s), reached {q.rate:,.0f}/s; {q.retries:,} retries, "
            f"{q.reexaminations:,} paced re-examination(s)"
        )
        if q.unresolved:
            line += f"; silence UNRESOLVED on {q.unresolved:,} port(s) (filtered may hide closed or open)"
        lines.append(line)
    if len(notable) > limit:
        lines.append(f"... and {len(notable) - limit:,} more address(es); the JSON report lists them all")
    return lines
