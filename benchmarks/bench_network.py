"""Benchmark of TCP scanning over an emulated real network, side by side with ``nmap -sT``.

    python benchmarks/bench_network.py [--runs 3] [--ports 1-65535] [--scenario NAME ...]
                                       [--nmap-timeout 150] [--no-nmap]

Two network namespaces this script creates (and removes) are joined by a veth pair; the target one
runs 8 TCP listeners and iptables rules that emulate what real networks do (``tc netem`` is not
available in this kernel):

- ``synlimit``: SYNs limited to 2,000/s (burst 100), the rest dropped: a hardened host or a SYN-flood guard.
- ``loss``: 5% of packets dropped at random each way (``-m statistic``); at least 5 runs.
- ``firewalled``: every port dropped but 3 (22, 80, 443).
- ``loopback``: the target namespace's own loopback, scanner and listeners in the same namespace.

For each scenario and run it prints wall time, listeners found, the other ports' states, and the
same for nmap in the same run; then medians and the ratio. Asserts nothing. Needs root, iproute2,
iptables and nmap. Only the script's own namespaces are scanned.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LISTENERS = (22, 80, 443, 3306, 5432, 6379, 8080, 9000)
SCANNER_ADDRESS, TARGET_ADDRESS = "10.78.0.1", "10.78.0.2"
# Byte-code caching as users have it (the development machine may set PYTHONDONTWRITEBYTECODE).
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(REPO)

SERVE = textwrap.dedent(
    """
    import socket, sys, time
    held = []
    for port in map(int, sys.argv[1:]):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port)); s.listen(4096); held.append(s)
    print("ready", flush=True)
    time.sleep(3600)
    """
)

SCENARIOS: dict[str, list[list[str]]] = {
    "synlimit": [
        [
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--syn",
            "-m",
            "limit",
            "--limit",
            "2000/second",
            "--limit-burst",
            "100",
            "-j",
            "ACCEPT",
        ],
        ["-A", "INPUT", "-p", "tcp", "--syn", "-j", "DROP"],
    ],
    "loss": [
        ["-A", "INPUT", "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"],
        ["-A", "OUTPUT", "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"],
    ],
    "firewalled": [
        ["-A", "INPUT", "-p", "tcp", "-m", "multiport", "--dports", "22,80,443", "-j", "ACCEPT"],
        ["-A", "INPUT", "-p", "tcp", "-j", "DROP"],
    ],
    "loopback": [],
}


def netns(name: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", name, *command]


@dataclass
class Link:
    scanner: str
    target: str


@contextmanager
def link() -> Iterator[Link]:
    """Two fresh namespaces joined by a veth pair, removed afterwards whatever happens."""
    tag = uuid.uuid4().hex[:8]
    scanner, target = f"pcb-s{tag}", f"pcb-t{tag}"
    created: list[str] = []
    try:
        for name in (scanner, target):
            subprocess.run(["ip", "netns", "add", name], check=True)
            created.append(name)
            subprocess.run(netns(name, "ip", "link", "set", "lo", "up"), check=True)
        side_a, side_b = f"vs{tag}", f"vt{tag}"
        subprocess.run(["ip", "link", "add", side_a, "type", "veth", "peer", "name", side_b], check=True)
        subprocess.run(["ip", "link", "set", side_a, "netns", scanner], check=True)
        subprocess.run(["ip", "link", "set", side_b, "netns", target], check=True)
        subprocess.run(
            netns(scanner, "ip", "addr", "add", f"{SCANNER_ADDRESS}/24", "dev", side_a), check=True
        )
        subprocess.run(netns(target, "ip", "addr", "add", f"{TARGET_ADDRESS}/24", "dev", side_b), check=True)
        subprocess.run(netns(scanner, "ip", "link", "set", side_a, "up"), check=True)
        subprocess.run(netns(target, "ip", "link", "set", side_b, "up"), check=True)
        yield Link(scanner, target)
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "delete", name], check=False)


def portcheck(namespace: str, address: str, ports: str, timeout: float) -> tuple[float, Counter[str], int]:
    command = netns(
        namespace, sys.executable, "-m", "pytest_portcheck", "scan", address, "-p", ports, "--json", "-"
    )
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=timeout, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise SystemExit(f"portcheck failed: {completed.stderr[-800:]}")
    results = json.loads(completed.stdout)["results"]
    found = sum(1 for r in results if r["port"] in LISTENERS and r["state"] == "open")
    # Like nmap's count below: every port but the listeners found open.
    others = Counter(r["state"] for r in results if not (r["port"] in LISTENERS and r["state"] == "open"))
    return elapsed, others, found


def nmap(namespace: str, address: str, ports: str, timeout: float) -> tuple[float | None, Counter[str], int]:
    command = netns(namespace, "nmap", "-sT", "-n", "-Pn", "-p", ports, "-oG", "-", address)
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, Counter(), 0
    elapsed = time.perf_counter() - started
    counts: Counter[str] = Counter()
    found = 0
    for line in completed.stdout.splitlines():
        if "Ports:" not in line:
            continue
        listed, _, ignored = line.split("Ports:", 1)[1].partition("Ignored State:")
        for entry in listed.split(","):
            fields = entry.strip().split("/")
            if len(fields) > 2:
                if int(fields[0]) in LISTENERS and fields[1] == "open":
                    found += 1
                else:
                    counts[fields[1]] += 1
        if ignored.strip():
            state, _, number = ignored.strip().partition(" (")
            counts[state.strip()] += int(number.rstrip(")").strip() or 0)
    return elapsed, counts, found


def run_scenario(name: str, args: argparse.Namespace) -> None:
    with link() as pair:
        target = pair.target
        for rule in SCENARIOS[name]:
            subprocess.run(netns(target, "iptables", *rule), check=True)
        server = subprocess.Popen(
            netns(target, sys.executable, "-c", SERVE, *map(str, LISTENERS)),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            scanner, address = (target, "127.0.0.1") if name == "loopback" else (pair.scanner, TARGET_ADDRESS)
            ours: list[float] = []
            theirs: list[float] = []
            runs = max(args.runs, 5) if name == "loss" else args.runs  # the issue asks for 5 runs under loss
            for run in range(1, runs + 1):
                elapsed, others, found = portcheck(scanner, address, args.ports, args.portcheck_timeout)
                ours.append(elapsed)
                print(
                    f"  {name} run {run}: portcheck {elapsed:6.1f} s, {found}/{len(LISTENERS)} listeners "
                    f"open, others {dict(others)}",
                    flush=True,
                )
                if args.no_nmap or (run > 1 and name != "loopback"):
                    continue  # nmap over an emulated bad link is slow: once is enough to compare
                nmap_elapsed, counts, found = nmap(scanner, address, args.ports, args.nmap_timeout)
                if nmap_elapsed is None:
                    print(
                        f"  {name} run {run}: nmap -sT did not finish within {args.nmap_timeout:g} s",
                        flush=True,
                    )
                    continue
                theirs.append(nmap_elapsed)
                print(
                    f"  {name} run {run}: nmap -sT  {nmap_elapsed:6.1f} s, {found}/{len(LISTENERS)} "
                    f"listeners open, others {dict(counts)}",
                    flush=True,
                )
            mine = statistics.median(ours)
            if theirs:
                other = statistics.median(theirs)
                print(
                    f"{name}: portcheck median {mine:.2f} s, nmap -sT median {other:.2f} s, "
                    f"ratio {mine / other:.2f}x\n",
                    flush=True,
                )
            else:
                print(f"{name}: portcheck median {mine:.2f} s (no nmap figure)\n", flush=True)
        finally:
            server.kill()
            server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ports", default="1-65535")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--nmap-timeout", type=float, default=150.0)
    parser.add_argument("--portcheck-timeout", type=float, default=600.0)
    parser.add_argument("--no-nmap", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("this benchmark creates network namespaces: run it as root")
    for tool in ("ip", "iptables", *(() if args.no_nmap else ("nmap",))):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    print(
        f"ports {args.ports}, {args.runs} run(s) per scenario; "
        "the machine may be shared, so times are noisy\n"
    )
    for name in args.scenario or ["synlimit", "loss", "firewalled", "loopback"]:
        run_scenario(name, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
