"""Benchmark of start-up against issue #19's budgets, in paired, interleaved runs.

    python benchmarks/bench_startup.py [--pairs 30] [--python PYTHON]

The package is measured as users run it: this checkout is built into a wheel and installed, with pytest,
into a fresh virtual environment of the chosen interpreter in a temporary folder (an editable install's
import hook would add imports of its own). Two comparisons, each a series of pairs whose two commands run
back to back in rotating order, so that the load of a shared machine falls on both sides alike:

1. ``portcheck scan 127.0.0.1 -p PORT`` against a loopback listener this script opens, vs ``python -c
   "import socket, argparse, json"`` on the same interpreter: what the command costs over the modules it
   cannot do without. Budget: at most 40 ms more (median of the paired differences). A third command
   splits the difference: the same baseline plus the standard library the house's decisions import on
   every scan (``HOUSE_MODULES``), so that what those cost and what our own code costs show apart.
2. ``pytest -q`` on a folder holding one trivial test, with the plugin installed vs the same run with
   ``-p no:portcheck``: what the plugin adds to a run without an inventory. Budget: at most 10 ms.

Prints the median of each command and the median of the paired differences against the budget, by wall
time and by CPU time (user + system of the child: far steadier on a shared or virtual machine, where a
run's wall time here varies from 160 to 380 ms for the same command); asserts nothing (timing never fails
a test here). Only loopback is touched.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCAN_BUDGET_MS = 40.0
PLUGIN_BUDGET_MS = 10.0
BASELINE = "import socket, argparse, json"
HOUSE_MODULES = "dataclasses, typing, signal"
"""What the house's decisions add to any scan before a line of ours runs: the standard library's value
classes (``dataclasses``, which imports ``inspect``), ``typing`` (annotations' names, one TYPE_CHECKING
style) and ``signal`` (SIGTERM ends a scan as Ctrl-C does)."""
TRIVIAL_TEST = "def test_nothing() -> None:\n    assert 1 + 1 == 2\n"


def environment() -> dict[str, str]:
    """The caller's environment, with bytecode caching on as users have it."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def install(python: str, folder: Path) -> Path:
    """Build this checkout's wheel and install it and pytest into a new venv of ``python``; its bin/."""

    def quiet(*command: str) -> None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    dist = folder / "dist"
    shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools' cache would ship modules moved since
    quiet(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO))
    wheel = sorted(dist.glob("pytest_portcheck-*.whl"))[-1]
    venv = folder / "venv"
    quiet(python, "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    quiet(*pip, "--no-deps", str(wheel))
    quiet(*pip, "pytest")
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"{wheel.name} and pytest installed in a fresh venv of Python {version} ({python})")
    return venv / "bin"


def elapsed_ms(command: list[str], cwd: Path) -> tuple[float, float]:
    """The wall time and the CPU time (user + system) of one run of ``command``, in milliseconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=environment(), check=False
    )
    elapsed = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {completed.returncode}: {completed.stderr[-500:]}")
    return elapsed, cpu


Timings = list[list[tuple[float, float]]]


def series(commands: list[list[str]], runs: int, cwd: Path) -> Timings:
    """``runs`` timings of each command, run back to back in a rotating order, so that each command
    runs first, second... equally often and the load of a shared machine falls on all alike."""
    for command in commands:  # warm-up: bytecode written, files cached
        elapsed_ms(command, cwd)
    times: Timings = [[] for _ in commands]
    for run in range(runs):
        for step in range(len(commands)):
            index = (run + step) % len(commands)
            times[index].append(elapsed_ms(commands[index], cwd))
    return times


def report(title: str, names: list[str], times: Timings, budget: float, pairs: list[tuple[int, int]]) -> None:
    """Medians of each command (named with a letter), and of the paired differences ``pairs`` name (the
    first one against the budget), by wall time (the budget's measure) and by CPU time, which a shared
    or virtual machine's noise (other work, stolen time) disturbs far less."""
    print(f"\n{title} ({len(times[0])} runs each)")
    for letter, name, timings in zip("ABC", names, times, strict=False):
        wall = statistics.median(t[0] for t in timings)
        cpu = statistics.median(t[1] for t in timings)
        print(f"  {letter}  {name:<56} median {wall:7.1f} ms wall, {cpu:7.1f} ms CPU")
    for number, (a, b) in enumerate(pairs):
        added = [
            statistics.median(x[index] - y[index] for x, y in zip(times[a], times[b], strict=True))
            for index in (0, 1)
        ]
        verdict = (
            f"  (budget {budget:.0f} ms: {'within' if added[0] <= budget else 'OVER'})" if number == 0 else ""
        )
        print(f"  {'ABC'[a]} - {'ABC'[b]}: median of the paired differences {added[0]:+6.1f} ms wall, "
              f"{added[1]:+6.1f} ms CPU{verdict}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to install into")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as temporary:
        folder = Path(temporary)
        bin_ = install(args.python, folder)
        (folder / "suite").mkdir()
        (folder / "suite" / "test_trivial.py").write_text(TRIVIAL_TEST)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1024)  # never accepted: room for every pair's connection
            port = listener.getsockname()[1]
            scan = [str(bin_ / "portcheck"), "scan", "127.0.0.1", "-p", str(port)]
            python = str(bin_ / "python")
            commands = [scan, [python, "-c", BASELINE], [python, "-c", f"{BASELINE}, {HOUSE_MODULES}"]]
            times = series(commands, args.pairs, folder)
        report(
            "portcheck scan vs the modules it cannot do without",
            [f"portcheck scan 127.0.0.1 -p {port}", f'python -c "{BASELINE}"', f"the same, {HOUSE_MODULES}"],
            times,
            SCAN_BUDGET_MS,
            [(0, 1), (2, 1), (0, 2)],
        )
        pytest = [str(bin_ / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_trivial.py"]
        times = series([pytest, [*pytest, "-p", "no:portcheck"]], args.pairs, folder / "suite")
        report(
            "pytest without an inventory: the plugin loaded vs not",
            ["pytest -q test_trivial.py", "pytest -q test_trivial.py -p no:portcheck"],
            times,
            PLUGIN_BUDGET_MS,
            [(0, 1)],
        )


if __name__ == "__main__":
    main()
