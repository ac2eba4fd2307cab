"""Benchmark: the failing end against the passing end, in a scan and in judge mode.

    python benchmarks/bench_failing.py [--runs 3] [--hosts 200] [--ports 16]

A gate must answer as fast when a fleet drifts as when it is clean. ``--hosts`` loopback addresses
(127.0.1.1, 127.0.1.2, ...) times ``--ports`` ports that nothing listens on (checked first), every
run a whole ``pytest -p no:cacheprovider --junitxml`` process with the default ``--tb``, in a
temporary folder, the two sides of each pair interleaved so machine noise hits both alike:

(a) scan mode: every port declared ``open:`` (all drift: found closed) against every port declared
    ``closed:`` (all pass). Goal: at most 1.3.
(b) judge mode (``--portcheck-results``), no scan: an inventory with one more port than the scanned
    one, judged against the reports of the scanned inventory (``portcheck scan --inventory ...
    --shard 1/1 --json``): reports of another inventory, so every item is an error; against the
    same judge of its own reports (all pass). Goal: at most 1.5.

Only the command line is driven (``portcheck scan``, ``pytest``), so the benchmark keeps working
whatever judge mode does inside. Prints the median wall times and the ratios. Only loopback is
scanned. Bytecode caching is on (PYTHONDONTWRITEBYTECODE removed), after one warm-up run.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_PORT = 47001


def free_ports(count: int) -> list[int]:
    """``count`` consecutive ports on which nothing answers on 127.0.1.1 (nor on the wildcard)."""
    start = FIRST_PORT
    while start + count < 65535:
        block = list(range(start, start + count + 1))  # one more: the judge's extra port
        if not any(_answers(port) for port in block):
            return block
        start += count + 1
    raise SystemExit("no free block of ports on 127.0.1.1")


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.1.1", port)) == 0


def write_inventory(path: Path, hosts: int, expect: str, ports: list[int], extra: int | None = None) -> Path:
    lines = ["defaults:", "  timeout: 1.0", "hosts:"]
    for index in range(1, hosts + 1):
        declared = [*ports, extra] if extra is not None and index == 1 else ports
        lines += [f"  h{index}:", f"    address: 127.0.1.{index}", f"    {expect}: {declared}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def environment() -> dict[str, str]:
    """This environment with bytecode caching on, as users have it: with PYTHONDONTWRITEBYTECODE
    set, every run would compile (and assertion-rewrite, as a pytest plugin) the whole package
    again, which the trivial suite does not pay."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run(command: list[str], folder: Path, want: str) -> tuple[float, float]:
    """Wall and CPU time (user + system, with children) of ``command``; stops the benchmark when its
    outcome is not ``want`` (e.g. '3200 failed')."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, check=False, env=environment()
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    lines = completed.stdout.strip().splitlines()
    last = lines[-1] if lines else completed.stderr.strip()[-500:]
    counts = dict((word, int(n)) for n, word in re.findall(r"(\d+) (passed|failed|errors?)", last))
    counts = {("error" if word.startswith("error") else word): n for word, n in counts.items()}
    wanted = {word: int(n) for n, word in (part.split() for part in want.split(","))}
    if counts != wanted:
        raise SystemExit(f"{' '.join(command)}: expected {want}, got: {last}\n{completed.stdout[-3000:]}")
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--ports", type=int, default=16)
    args = parser.parse_args()
    *ports, extra = free_ports(args.ports)
    items = args.hosts * args.ports
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=junit.xml"]
    with tempfile.TemporaryDirectory(prefix="portcheck-bench-") as name:
        folder = Path(name)
        write_inventory(folder / "passing.yml", args.hosts, "closed", ports)
        write_inventory(folder / "drifting.yml", args.hosts, "open", ports)
        write_inventory(folder / "scanned.yml", args.hosts, "closed", ports)
        write_inventory(folder / "judged.yml", args.hosts, "closed", ports, extra)
        scan = [sys.executable, "-m", "pytest_portcheck", "scan", "--shard", "1/1", "--progress", "never"]
        for inventory, report in (("scanned.yml", "other"), ("judged.yml", "own")):
            (folder / report).mkdir()
            subprocess.run(
                [*scan, "--inventory", inventory, "--json", f"{report}/shard.json"],
                cwd=folder, capture_output=True, check=True,
            )  # fmt: skip
        pairs = {
            "scan": (
                ([*pytest_cmd, "--portcheck", "drifting.yml"], f"{items} failed"),
                ([*pytest_cmd, "--portcheck", "passing.yml"], f"{items} passed"),
            ),
            "judge": (
                ([*pytest_cmd, "--portcheck", "judged.yml", "--portcheck-results", "other/*.json"],
                 f"{items + 1} error"),
                ([*pytest_cmd, "--portcheck", "judged.yml", "--portcheck-results", "own/*.json"],
                 f"{items + 1} passed"),
            ),
        }  # fmt: skip
        times: dict[tuple[str, int], list[float]] = {}
        cpus: dict[tuple[str, int], list[float]] = {}
        warm_up, outcome = pairs["scan"][1]
        run(warm_up, folder, outcome)  # untimed: bytecode caches written
        for _ in range(args.runs):
            for mode, sides in pairs.items():
                for side, (command, want) in enumerate(sides):
                    elapsed, cpu = run(command, folder, want)
                    times.setdefault((mode, side), []).append(elapsed)
                    cpus.setdefault((mode, side), []).append(cpu)
    median = {key: statistics.median(values) for key, values in times.items()}
    cpu_median = {key: statistics.median(values) for key, values in cpus.items()}
    print(f"{args.hosts} loopback addresses x {args.ports} ports ({items} items), median of {args.runs} "
          "run(s), --junitxml on")  # fmt: skip
    print(f"(a) scan  all drifting  {median['scan', 0]:7.2f} s   all passing {median['scan', 1]:7.2f} s   "
          f"ratio {median['scan', 0] / median['scan', 1]:.2f}  (goal <= 1.3)")  # fmt: skip
    print(f"(b) judge all errors    {median['judge', 0]:7.2f} s   all passing {median['judge', 1]:7.2f} s   "
          f"ratio {median['judge', 0] / median['judge', 1]:.2f}  (goal <= 1.5)")  # fmt: skip
    for mode in ("scan", "judge"):
        failing, passing = cpu_median[mode, 0], cpu_median[mode, 1]
        print(f"    CPU time (user + system), {mode}: {failing:.2f} s vs {passing:.2f} s, "
              f"ratio {failing / passing:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
