"""Benchmark of the finding writers at 1k, 64k and 1M outcomes: does the time grow linearly?

    python benchmarks/bench_findings.py [--runs 3] [--sizes 1000,65536,1048576] [--failing 0.25]

Builds synthetic outcomes (one inventory item per port: a fleet of hosts with 64 declared ports each,
a share of them failing in every kind, some erroring, some waived) and a scan report of as many
results, and times the real writers on each, in this process, writing to a file:

- SARIF: ``write_sarif`` (classify every outcome, keep the 25,000 most severe findings with a
  bounded heap, write them);
- metrics: ``write_metrics`` (one series per outcome, counts per host, results per host and state,
  quality of every 64th address).

Prints the median time per writer and size, the time per outcome, and the per-outcome time relative
to the smallest size: a linear writer stays near 1.0 (the SARIF writer's falls below once the
25,000-result cap is reached: past it, each further outcome is classified but not written).
No network traffic.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_portcheck.engine import (
    AddressQuality,
    PortState,
    ProbeResult,
    Resolution,
    ScanSettings,
    ScanStats,
)
from pytest_portcheck.judge.findings import FindingKind, Outcome
from pytest_portcheck.ports import Protocol
from pytest_portcheck.report.metrics import write_metrics
from pytest_portcheck.report.model import ScanReport
from pytest_portcheck.report.sarif import write_sarif

PORTS_PER_HOST = 64


@dataclass(frozen=True, slots=True)
class Found:
    address: str
    port: int
    state: str


@dataclass(frozen=True, slots=True)
class Declared:
    path: str
    line: int
    description: str


@dataclass(frozen=True, slots=True)
class Item:
    inventory: str
    nodeid: str
    host: str
    target: str
    expected: str
    vantage: str | None
    verdict: str
    message: str
    line: int
    declared_at: Declared | None
    found: tuple[Found, ...]
    kind: FindingKind | None


_CHECK: Outcome = Item("i", "n", "h", "t", "e", None, "passed", "", 1, None, (), None)

# (expected, verdict, found state, kind, message): what each outcome is, in turn, when it fails.
_FAILURES = (
    ("closed", "failed", "open", None, "expected closed, found OPEN — syn-ack in 0.4 ms (postgresql)"),
    ("open", "failed", "closed", None, "expected open, found CLOSED — conn-refused in 0.1 ms"),
    ("filtered", "failed", "closed", None, "expected filtered, found CLOSED — the port is reachable"),
    ("open", "failed", "open", FindingKind.TLS, "TLS version TLSv1.1 is below the minimum TLSv1.2"),
    ("open", "failed", "open", FindingKind.NO_AUTHENTICATION, "redis answers without authentication"),
    ("open", "error", "error", None, "cannot check — the host was not scanned"),
    ("closed", "waived", "open", None, "waived until 2099-01-01: migration"),
)


def synthetic_outcomes(size: int, failing: float) -> list[Item]:
    """``size`` items, one port each, 64 per host; every ``1 / failing``-th item fails, in turn in
    each kind of ``_FAILURES``; every 16th item's port is declared in a Compose file as well."""
    every = max(1, round(1 / failing)) if failing > 0 else size + 1
    outcomes = []
    for index in range(size):
        host_index, port = divmod(index, PORTS_PER_HOST)
        host = f"host-{host_index}"
        address = f"10.{host_index // 65536 % 256}.{host_index // 256 % 256}.{host_index % 256}"
        number = 1000 + port
        if index % every == 0:
            expected, verdict, state, kind, text = _FAILURES[(index // every) % len(_FAILURES)]
        else:
            expected, verdict, state, kind, text = "closed", "passed", "closed", None, "closed as expected"
        target = f"tcp/{number}"
        declared = Declared("compose.yml", index + 1, f"service {host}") if index % 16 == 0 else None
        outcomes.append(
            Item(
                inventory="fleet.yml",
                nodeid=f"fleet.yml::{host}::{target}::{expected}",
                host=host,
                target=target,
                expected=expected,
                vantage=None,
                verdict=verdict,
                message=f"{host} ({address}) {target}: {text}",
                line=index + 3,
                declared_at=declared,
                found=(Found(address, number, state),),
                kind=kind,
            )
        )
    return outcomes


def synthetic_scan(outcomes: list[Item]) -> ScanReport:
    results = []
    resolutions: dict[str, Resolution] = {}
    stats = ScanStats()
    for index, item in enumerate(outcomes):
        found = item.found[0]
        resolutions.setdefault(found.address, Resolution(found.address, (found.address,)))
        state = PortState(found.state) if found.state != "error" else PortState.ERROR
        address = found.address
        results.append(ProbeResult(address, address, Protocol.TCP, found.port, state, "syn-ack", 0.4, 1))
        if index % (PORTS_PER_HOST * 64) == 0:
            stats.note(AddressQuality(found.address, 3000.0, 12, 30, 4, 1, 2))
    started = "2026-11-27T00:00:00+00:00"
    return ScanReport(list(resolutions.values()), results, ScanSettings(), started, 12.0, stats)


def measure(write: Callable[[], object], runs: int) -> float:
    write()  # once untimed: lazy imports and caches, as in a real run after the first report
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        write()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_writers(
    outcomes: list[Item], scan: ScanReport, sarif_file: Path, metrics_file: Path, runs: int
) -> dict[str, float]:
    return {
        "sarif": measure(lambda: write_sarif(sarif_file, outcomes, source_root=sarif_file.parent), runs),
        "metrics": measure(lambda: write_metrics(metrics_file, outcomes, scan), runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000,65536,1048576")
    parser.add_argument("--failing", type=float, default=0.25, help="share of outcomes that are not a pass")
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    per_outcome: dict[str, dict[int, float]] = {"sarif": {}, "metrics": {}}
    with tempfile.TemporaryDirectory() as folder:
        sarif_file, metrics_file = Path(folder) / "findings.sarif", Path(folder) / "portcheck.prom"
        for size in sizes:
            outcomes = synthetic_outcomes(size, options.failing)
            scan = synthetic_scan(outcomes)
            timings = time_writers(outcomes, scan, sarif_file, metrics_file, options.runs)
            sarif_bytes = sarif_file.read_bytes()
            print(
                f"{size:>9,} outcomes: SARIF {timings['sarif']:7.3f} s "
                f"({len(sarif_bytes) / 1e6:.1f} MB, {len(gzip.compress(sarif_bytes)) / 1e6:.2f} MB gzipped), "
                f"metrics {timings['metrics']:7.3f} s ({metrics_file.stat().st_size / 1e6:.1f} MB)"
            )
            for writer, seconds in timings.items():
                per_outcome[writer][size] = seconds / size
    print("\nper outcome (µs), and relative to the smallest size (linear: ~1.0)")
    for writer, by_size in per_outcome.items():
        base = by_size[sizes[0]]
        shown = ", ".join(
            f"{size:,}: {cost * 1e6:.2f} ({cost / base:.2f}x)" for size, cost in by_size.items()
        )
        print(f"  {writer:<8} {shown}")


if __name__ == "__main__":
    main()
