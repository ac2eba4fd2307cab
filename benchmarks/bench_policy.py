"""Benchmark of default-deny: `only_open` over the full range of one loopback host.

    python benchmarks/bench_policy.py [--runs 3]

Compares, interleaved in one run, `pytest --portcheck inventory.yml` where the inventory declares
127.0.0.1 `only_open` (every port open right now, range 1-65535) with a bare
`portcheck scan 127.0.0.1 -p 1-65535`. Prints the median wall times and their ratio (goal: at most
2). Only loopback is scanned.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False, env=env)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({completed.returncode}): {completed.stdout[-1500:]}")
    return elapsed, completed.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    scan = [sys.executable, "-m", "pytest_portcheck", "scan", "127.0.0.1", "-p", "1-65535"]
    with tempfile.TemporaryDirectory(prefix="portcheck-bench-") as name:
        folder = Path(name)
        _, out = timed([*scan, "--json", "-"], folder)
        opened = sorted(r["port"] for r in json.loads(out)["results"] if r["state"] == "open")
        (folder / "inventory.yml").write_text(
            f"hosts:\n  box:\n    address: 127.0.0.1\n    only_open: {opened}\n    range: '1-65535'\n"
        )
        plugin = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--portcheck"]
        plugin.append("inventory.yml")
        # pytest rewrites the asserts of plugin modules at start-up and caches that as bytecode; with
        # PYTHONDONTWRITEBYTECODE set (as on the development machine) the cache is never written and
        # every run pays ~0.5 s. Users normally have the cache: fill it once, then measure.
        env = _without("PYTHONDONTWRITEBYTECODE")
        timed(plugin, folder, env)
        plugin_times, scan_times = [], []
        last = ""
        for _ in range(args.runs):
            elapsed, out = timed(plugin, folder, env)
            plugin_times.append(elapsed)
            last = out.strip().splitlines()[-1]
            elapsed, _ = timed(scan, folder, env)
            scan_times.append(elapsed)
    plugin_median, scan_median = statistics.median(plugin_times), statistics.median(scan_times)
    print(f"only_open over 1-65535 ({len(opened)} open port(s) declared): {last}")
    print(f"pytest --portcheck inventory.yml   median {plugin_median:.2f} s  runs {fmt(plugin_times)}")
    print(f"portcheck scan 127.0.0.1 -p -      median {scan_median:.2f} s  runs {fmt(scan_times)}")
    print(f"ratio pytest/scan: {plugin_median / scan_median:.2f}  (goal <= 2)")


def _without(name: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != name}


def fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    main()
