"""How many processes one scan uses, and the scan itself: one process, or a split over several.

On loopback a connect scan is CPU-bound (socket, connect and close are each a system call, and Python
adds its own time to each), so one process cannot use the machine's other cores: a large scan of this
host's own addresses is split over worker processes (``workers``). Everything else (UDP, paced per
address; remote addresses, under adaptive timing) stays in one process, which must see every probe.
Must not import pytest, yaml, asyncio, ssl or anything outside the engine but ``ports``; the workers'
module (subprocess, json) only for a split scan.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from pytest_portcheck.engine.kernel import is_local_address
from pytest_portcheck.engine.model import ProbeResult, ScanSettings, ScanStats, Target, settings_from_options
from pytest_portcheck.engine.scanner import SocketScanner
from pytest_portcheck.ports import Protocol

# Below this many targets the start-up of a worker (~40 ms) costs more than a second core saves.
SPLIT_MIN_TARGETS = 8192
_MAX_PROCESSES = 4


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def process_count(targets: int, settings: ScanSettings) -> int:
    if settings.processes is not None:
        return max(1, min(settings.processes, targets))
    if targets < SPLIT_MIN_TARGETS:
        return 1
    return max(1, min(_cpu_count(), _MAX_PROCESSES))


def scan(
    targets: Sequence[Target], settings: ScanSettings | None = None, stats: ScanStats | None = None
) -> Iterator[ProbeResult]:
    """Probe every target (plus retries) and yield each result as it is decided.

    ``stats``, when given, is filled in as the scan goes (probes sent, self-connects, back-offs).
    """
    settings = settings or settings_from_options()
    stats = stats if stats is not None else ScanStats()
    # UDP retries are paced per address against ICMP rate limits, and remote addresses get adaptive
    # timing (congestion control on drops): one process must see every probe to such an address.
    # Only scans of this host's own addresses are CPU-bound enough to need several processes.
    one_process = settings.processes is None and not _all_local(targets)
    has_udp = any(target.proto is Protocol.UDP for target in targets)
    processes = 1 if has_udp or one_process else process_count(len(targets), settings)
    stats.processes = processes
    if processes == 1:
        scanner = SocketScanner(settings)
        try:
            yield from scanner.scan(targets)
        finally:
            stats.add(scanner.stats)
        return
    # The engine's one seam: subprocess, tempfile and json load only for a scan split over processes.
    from pytest_portcheck.engine.workers import SplitScan

    yield from SplitScan(targets, settings, processes, stats).run()


def _all_local(targets: Sequence[Target]) -> bool:
    addresses = dict.fromkeys(target.address for target in targets)
    return all(is_local_address(address) for address in addresses)
