"""Benchmark of the plugin: a 10,000-item inventory against 10,000 trivial parametrized tests.

    python benchmarks/bench_plugin.py [--runs 3] [--items 10000]

Both runs are whole `pytest -q -p no:cacheprovider --junitxml=...` processes in a temporary folder,
interleaved so machine noise hits both alike (a gate writes JUnit XML for its CI). The inventory
declares 127.0.0.1 ports 1-10000 closed except a few that this script opens as listeners (declared
open). Prints the median wall times and their ratio (goal: at most 1.2), and the two JUnit files'
sizes and their ratio (goal: at most 2). Bytecode caching is on (PYTHONDONTWRITEBYTECODE removed), after
one warm-up run of each side. Only loopback is scanned.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def open_listeners(count: int, highest: int) -> list[socket.socket]:
    listeners = []
    for port in range(highest - 10 * count, highest, 10):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError:
            listener.close()
            continue
        listener.listen(128)
        listeners.append(listener)
    return listeners


def write_inventory(folder: Path, items: int, open_ports: list[int]) -> Path:
    closed = [p for p in range(1, items + 1) if p not in open_ports]
    lines = ["hosts:", "  box:", "    address: 127.0.0.1", f"    open: {open_ports}", "    closed:"]
    lines += [f"      - {port}" for port in closed]
    path = folder / "inventory.yml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_trivial(folder: Path, items: int) -> Path:
    path = folder / "test_trivial.py"
    path.write_text(
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('n', range({items}))\n"
        "def test_trivial(n):\n"
        "    assert n >= 0\n"
    )
    return path


def taken_ports(items: int) -> set[int]:
    taken = set()
    for port in range(1, items + 1):
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                taken.add(port)
    return taken


def environment() -> dict[str, str]:
    """This environment with bytecode caching on, as users have it: with PYTHONDONTWRITEBYTECODE
    set, every run would compile (and assertion-rewrite, as a pytest plugin) the whole package
    again, which the trivial suite does not pay."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run(command: list[str], folder: Path) -> tuple[float, float, str]:
    """Wall time, CPU time (user + system, the process and its children) and last output line of
    ``command``; stops the benchmark when it fails. On a machine shared with other work, the CPU
    times compare more steadily than the wall times."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, check=False, env=environment()
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    last = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else completed.stderr
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {last}\n{completed.stdout[-2000:]}")
    return elapsed, cpu, last


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--items", type=int, default=10000)
    args = parser.parse_args()
    listeners = open_listeners(5, args.items)
    open_ports = [listener.getsockname()[1] for listener in listeners]
    taken = taken_ports(args.items) - set(open_ports)
    with tempfile.TemporaryDirectory(prefix="portcheck-bench-") as name:
        folder = Path(name)
        # Ports something else on this machine listens on are declared open too: no drift.
        write_inventory(folder, args.items, sorted({*open_ports, *taken}))
        write_trivial(folder, args.items)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        inventory_cmd = [*base, "--junitxml=inventory.xml", "--portcheck", "inventory.yml"]
        trivial_cmd = [*base, "--junitxml=trivial.xml", "test_trivial.py"]
        inventory_times, trivial_times, inventory_cpu, trivial_cpu = [], [], [], []
        run(inventory_cmd, folder)  # warm-up, untimed: bytecode caches written as in a user's second run
        run(trivial_cmd, folder)
        for _ in range(args.runs):
            elapsed, cpu, inventory_last = run(inventory_cmd, folder)
            inventory_times.append(elapsed)
            inventory_cpu.append(cpu)
            elapsed, cpu, trivial_last = run(trivial_cmd, folder)
            trivial_times.append(elapsed)
            trivial_cpu.append(cpu)
        inventory_xml = (folder / "inventory.xml").stat().st_size
        trivial_xml = (folder / "trivial.xml").stat().st_size
    for listener in listeners:
        listener.close()
    inventory_median = statistics.median(inventory_times)
    trivial_median = statistics.median(trivial_times)
    print(f"items: {args.items} ({len(open_ports)} listeners of ours, {len(taken)} other open ports)")
    print(f"pytest --portcheck inventory.yml   median {inventory_median:.2f} s  ({inventory_last})")
    print(f"pytest test_trivial.py             median {trivial_median:.2f} s  ({trivial_last})")
    print(f"ratio inventory/trivial: {inventory_median / trivial_median:.2f}  (goal <= 1.2)")
    cpu_ratio = statistics.median(inventory_cpu) / statistics.median(trivial_cpu)
    print(f"CPU time (user + system): inventory {statistics.median(inventory_cpu):.2f} s, trivial "
          f"{statistics.median(trivial_cpu):.2f} s, ratio {cpu_ratio:.2f}")  # fmt: skip
    print(f"JUnit XML: inventory {inventory_xml:,} bytes, trivial {trivial_xml:,} bytes, "
          f"ratio {inventory_xml / trivial_xml:.2f}  (goal <= 2)")  # fmt: skip


if __name__ == "__main__":
    main()
