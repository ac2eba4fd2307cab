"""A scan of targets as given: resolve → targets → scan → a typed ``ScanReport``, without pytest.

``portcheck scan`` and ``snapshot`` prepare the scan (``prepare_scan``), run it while printing each
result (``PreparedScan.run``) and make the report (``PreparedScan.report``); the ``portcheck_scan``
fixture takes the whole scan at once (``scan_targets``). What answers on the open ports is ``probe``'s,
an inventory's scan ``inventory``'s; judging is not here (see ``judge``).
Must not import pytest, yaml, the inventory, the probes, the plugin or the CLI: a command-line scan
loads this module, and a plain one needs none of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytest_portcheck.engine import (
    ProbeResult,
    Resolution,
    ScanSettings,
    ScanStats,
    Target,
    expand_targets,
    resolve_hosts,
    scan,
)
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.ports import Protocol
from pytest_portcheck.report.model import ScanReport, sort_results

if TYPE_CHECKING:
    from pytest_portcheck.probes.model import ServiceInfo


def now() -> str:
    # What datetime.now(timezone.utc).isoformat(timespec="seconds") writes, without datetime (~2 ms).
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


@dataclass(slots=True)
class PreparedScan:
    """A command-line scan ready to run: its hosts resolved, one target per (address, protocol, port)."""

    hosts: list[str]
    ports: list[tuple[Protocol, int]]
    resolutions: list[Resolution]
    targets: list[Target]
    unresolved: list[ProbeResult]
    started: str = field(default_factory=now)
    clock: float = field(default_factory=time.monotonic)

    def run(
        self,
        settings: ScanSettings,
        stats: ScanStats,
        on_result: Callable[[ProbeResult], None] | None = None,
    ) -> tuple[list[ProbeResult], bool]:
        """Every result (unresolved names first), and whether Ctrl-C cut the scan short."""
        results: list[ProbeResult] = list(self.unresolved)
        stream: Iterator[ProbeResult] = scan(self.targets, settings, stats)
        try:
            for result in stream:
                results.append(result)
                if on_result is not None:
                    on_result(result)
        except KeyboardInterrupt:
            return results, True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # closes every socket still in flight
        return results, False

    def report(
        self,
        results: Sequence[ProbeResult],
        settings: ScanSettings,
        stats: ScanStats,
        *,
        interrupted: bool = False,
        command: Sequence[str] = (),
        services: Mapping[ResultKey, ServiceInfo] | None = None,
    ) -> ScanReport:
        return ScanReport(
            self.resolutions,
            sort_results(results, self.hosts),
            settings,
            self.started,
            time.monotonic() - self.clock,
            stats,
            interrupted,
            list(command),
            dict(services or {}),
        )


def prepare_scan(
    hosts: Sequence[str], ports: Sequence[tuple[Protocol, int]], *, allow_large: bool = False
) -> PreparedScan:
    """Resolve the hosts (ScanError for a bad target) and make one target per (address, port)."""
    started, clock = now(), time.monotonic()
    resolutions = resolve_hosts(hosts, allow_large=allow_large)
    targets, unresolved = expand_targets(resolutions, ports)
    return PreparedScan(list(hosts), list(ports), resolutions, targets, unresolved, started, clock)


def scan_targets(
    hosts: Sequence[str], ports: Sequence[tuple[Protocol, int]], settings: ScanSettings
) -> ScanReport:
    """Resolve, scan and wait for every result: the whole scan as one report (Ctrl-C ends the scan
    with the results it has, in a report that says it was interrupted)."""
    prepared = prepare_scan(hosts, ports)
    stats = ScanStats()
    results, interrupted = prepared.run(settings, stats)
    return prepared.report(results, settings, stats, interrupted=interrupted)
