"""Benchmark: what loading the plugin adds to a pytest run that has no inventory.

    python benchmarks/bench_plugin_import.py [--runs 5]

pytest loads the plugin through its entry point in every run where the package is installed. Two
measures, each as the median of the runs, in a temporary folder holding one trivial test:

1. ``python -X importtime``: pytest starts with ``-p no:portcheck`` (so everything pytest and the
   other plugins import is loaded), then the plugin is imported; the cumulative import time of
   ``pytest_portcheck`` and ``pytest_portcheck.plugin.hooks`` is what the plugin adds (goal: <= 10 ms).
   For scale, the same measure of what an inventory run imports on top (engine, YAML, probes with
   asyncio and ssl, filelock, report writers), which the plugin defers.
2. Wall clock of ``pytest --co -q`` with and without ``-p no:portcheck``, interleaved; this
   difference is noisier than the import time on a shared machine.

Bytecode caching is left on (``PYTHONDONTWRITEBYTECODE`` is removed), as users have it, after one
warm-up run. No network traffic.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARK = "--- portcheck-bench: pytest is loaded ---"
PREPARE = f"""
import sys, pytest
pytest.main(["--co", "-q", "-p", "no:portcheck", "-p", "no:cacheprovider"])
sys.stdout.flush()
print({MARK!r}, file=sys.stderr, flush=True)
"""


def environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def added_import_ms(folder: Path, modules: str) -> float:
    """Milliseconds of the top-level imports of ``modules`` after pytest has loaded without us."""
    code = PREPARE + f"import {modules}\n"
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True, text=True, cwd=folder, env=environment(), check=False,
    )  # fmt: skip
    if MARK not in completed.stderr:
        raise SystemExit(f"the measurement run failed: {completed.stderr[-1500:]}")
    total_us = 0
    for line in completed.stderr.split(MARK, 1)[1].splitlines():
        fields = line.split("|")  # "import time:  SELF | CUMULATIVE | NAME", nested names indented
        if len(fields) != 3 or not line.startswith("import time:") or fields[2].startswith("  "):
            continue  # nested imports are inside their parent's cumulative time
        total_us += int(fields[1])
    return total_us / 1000


def wall_clock(folder: Path, *extra: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *extra],
        capture_output=True, cwd=folder, env=environment(), check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portcheck-bench-") as name:
        folder = Path(name)
        (folder / "test_trivial.py").write_text("def test_trivial():\n    pass\n")
        heavy = (
            "pytest_portcheck.plugin.hooks, pytest_portcheck.plugin.items, pytest_portcheck.plugin.summary"
        )
        added_import_ms(folder, heavy)  # warm-up: bytecode caches written
        plugin, deferred, with_plugin, without_plugin = [], [], [], []
        for _ in range(args.runs):
            plugin.append(added_import_ms(folder, "pytest_portcheck.plugin.hooks"))
            deferred.append(added_import_ms(folder, heavy))
            with_plugin.append(wall_clock(folder))
            without_plugin.append(wall_clock(folder, "-p", "no:portcheck"))
    print(f"median of {args.runs} run(s); machine shared with other work, wall clock is noisy")
    print(f"plugin import with no inventory (-X importtime): {statistics.median(plugin):6.1f} ms "
          f"(runs {fmt(plugin)}; goal <= 10 ms)")  # fmt: skip
    print(f"what an inventory run imports on top, deferred:   {statistics.median(deferred):6.1f} ms "
          f"(runs {fmt(deferred)})")  # fmt: skip
    with_median, without_median = statistics.median(with_plugin), statistics.median(without_plugin)
    difference = (with_median - without_median) * 1000
    print(f"pytest --co -q: {with_median * 1000:.0f} ms with the plugin, "
          f"{without_median * 1000:.0f} ms without (difference {difference:+.0f} ms)")  # fmt: skip


def fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.1f}" for value in values)


if __name__ == "__main__":
    main()
