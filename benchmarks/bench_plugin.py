"""Benchmark of the plugin: a 10,000-item inventory against 10,000 trivial parametrized tests.

    python benchmarks/bench_plugin.py [--runs 3] [--items 10000]

Both runs are whole `pytest -q -p no:cacheprovider` processes in a temporary folder, interleaved so
machine noise hits both alike. The inventory declares 127.0.0.1 ports 1-10000 closed except a few
that this script opens as listeners (declared open). Prints the median wall times and their ratio;
the goal is at most 1.3. Only loopback is scanned.
"""

from __future__ import annotations

import argparse
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


def run(command: list[str], folder: Path) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    last = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else completed.stderr
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {last}\n{completed.stdout[-2000:]}")
    return elapsed, last


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
        inventory_cmd = [*base, "--portcheck", "inventory.yml"]
        trivial_cmd = [*base, "test_trivial.py"]
        inventory_times, trivial_times = [], []
        for _ in range(args.runs):
            elapsed, inventory_last = run(inventory_cmd, folder)
            inventory_times.append(elapsed)
            elapsed, trivial_last = run(trivial_cmd, folder)
            trivial_times.append(elapsed)
    for listener in listeners:
        listener.close()
    inventory_median = statistics.median(inventory_times)
    trivial_median = statistics.median(trivial_times)
    print(f"items: {args.items} ({len(open_ports)} listeners of ours, {len(taken)} other open ports)")
    print(f"pytest --portcheck inventory.yml   median {inventory_median:.2f} s  ({inventory_last})")
    print(f"pytest test_trivial.py             median {trivial_median:.2f} s  ({trivial_last})")
    print(f"ratio inventory/trivial: {inventory_median / trivial_median:.2f}  (goal <= 1.3)")


if __name__ == "__main__":
    main()
