"""Benchmark of the report writers at 1k, 16k, 65k and 1M results: does the time grow linearly?

    python benchmarks/bench_reports.py [--runs 3] [--sizes 1000,16384,65535,1048560]

Builds synthetic scan reports of firewalled hosts (per address 65,535 ports, three open and the rest
filtered — the common internet case) and times the real writers on each, in this process:

- JSON: ``write_report`` to a file (what ``portcheck scan --json`` and ``--portcheck-report`` do);
- HTML: ``portcheck report``'s path: read and check the JSON file, build the page, write it;
- Markdown: ``--portcheck-markdown``'s writer over as many inventory items (three of them drifted);
- nmap XML: ``portcheck scan -oX``'s writer.

Prints the median time per writer and size, the time per result, and the per-result time relative to
the smallest size: a linear writer stays near 1.0 (the page must take at most 2 s at 65,535 results).
No network traffic.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.ports import Protocol
from pytest_portcheck.report.encode import write_report
from pytest_portcheck.report.html import write_html
from pytest_portcheck.report.judged import FoundState, ItemOutcome, read_judged_report
from pytest_portcheck.report.markdown import markdown_summary
from pytest_portcheck.report.model import ScanReport
from pytest_portcheck.report.nmapxml import write_nmap_xml

OPEN_PORTS = (22, 80, 443)
PORTS_PER_ADDRESS = 65535


def synthetic_report(size: int) -> ScanReport:
    """``size`` results over as many addresses of a /16 as needed, 65,535 ports each."""
    results = []
    resolutions = []
    for index in range((size + PORTS_PER_ADDRESS - 1) // PORTS_PER_ADDRESS):
        address = f"10.0.{index // 256}.{index % 256}"
        resolutions.append(Resolution(address, (address,)))
        for port in range(1, min(PORTS_PER_ADDRESS, size - index * PORTS_PER_ADDRESS) + 1):
            opened = port in OPEN_PORTS
            state, reason = (PortState.OPEN, "syn-ack") if opened else (PortState.FILTERED, "no-response")
            results.append(ProbeResult(address, address, Protocol.TCP, port, state, reason, 1.5, 1 + opened))
    return ScanReport(resolutions, results, ScanSettings(), "2026-11-27T00:00:00+00:00", 12.0)


class SyntheticRun:
    """What the Markdown writer reads of a pytest session: one record per inventory item."""

    def __init__(self, report: ScanReport) -> None:
        self.records = {}
        for result in report.results:
            target = f"tcp/{result.port}"
            drifted = result.state is PortState.OPEN
            self.records[f"inventory.yml::{result.host}::{target}::closed"] = ItemOutcome(
                result.host,
                target,
                "closed",
                "failed" if drifted else "passed",
                found=(FoundState(result.address or "", result.state.value, result.reason, 1.5),),
                message=f"{result.host} {target}: expected closed, found OPEN" if drifted else "",
            )


def measure(write: Callable[[], object], runs: int) -> float:
    write()  # once untimed: lazy imports and caches, as in a real run after the first report
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        write()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_writers(size: int, runs: int, folder: Path) -> dict[str, float]:
    """Median seconds of each writer on a synthetic report of ``size`` results."""
    report = synthetic_report(size)
    run = SyntheticRun(report)
    json_path, page, xml_path = folder / "report.json", folder / "report.html", folder / "report.xml"
    return {
        "JSON": measure(lambda: write_report(report, json_path), runs),
        "HTML": measure(lambda: write_html(read_judged_report(json_path), page), runs),  # portcheck report
        "Markdown": measure(lambda: markdown_summary(run.records, report), runs),
        "nmap XML": measure(lambda: write_nmap_xml(report, xml_path), runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1000,16384,65535,1048560")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    table: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="portcheck-bench-") as name:
        for size in sizes:
            times = time_writers(size, args.runs, Path(name))
            for writer, seconds in times.items():
                table.setdefault(writer, []).append(seconds)
            print(f"{size:>9,} results: " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items()), flush=True)
    print(f"\nmedian of {args.runs} run(s); per result; [per-result time relative to {sizes[0]:,}]")
    print(f"{'writer':<10}" + "".join(f"{size:>26,}" for size in sizes))
    for writer, medians in table.items():
        base = medians[0] / sizes[0]
        cells = [
            f"{t:7.3f} s {t / s * 1e6:5.2f} us [{t / s / base:4.2f}]"
            for t, s in zip(medians, sizes, strict=True)
        ]
        print(f"{writer:<10}" + "".join(f"{cell:>26}" for cell in cells))
    page_at_65k = dict(zip(sizes, table["HTML"], strict=True)).get(65535)
    if page_at_65k is not None:
        print(f"HTML page of 65,535 results: {page_at_65k:.2f} s (goal <= 2 s)")


if __name__ == "__main__":
    main()
