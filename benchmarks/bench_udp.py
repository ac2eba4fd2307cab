"""Benchmark of UDP scanning against nmap -sU, side by side, with both tools' state counts.

    python benchmarks/bench_udp.py [--runs 3] [--skip-netns] [--python PYTHON]

portcheck is measured as users run it: this checkout is built into a wheel, installed (no
dependencies: a scan needs none) into a fresh virtual environment of the chosen interpreter in a
temporary directory, and that environment's ``portcheck`` console script is run.

1. Loopback: `portcheck scan 127.0.0.1 --udp -p 1-1024` vs `nmap -sU -p 1-1024 -n -Pn 127.0.0.1`, with
   UDP responders on a few ports started by this script. Needs root for nmap -sU. It takes
   milliseconds of scanning, so the ratio is mostly each tool's start-up; the start-up budget itself is
   measured against the interpreter's own floor by bench_startup.py (issue #19 retired the comparison
   of start-ups with nmap).
2. 30 closed ports over a veth link between two namespaces this script creates and removes, with the
   target's ICMP rate limit at its Linux default (about one port-unreachable a second after a burst).

Prints wall times, ratios and state counts; asserts nothing. Only loopback and the script's own
namespaces are scanned.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PORTCHECK: list[str] = []  # the installed console script, set by install_wheel()
RESPONDER_PORTS = (53, 123, 500, 1000)


# Python caches compiled modules unless PYTHONDONTWRITEBYTECODE is set (as on the development
# machine), and then recompiles the package at every start: ~30 ms, most of a loopback UDP scan.
# Users normally have the cache, so it is allowed here and filled by a first, unmeasured run.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def install_wheel(python: str, folder: Path) -> list[str]:
    """Build this checkout's wheel, install it into a new venv of ``python`` under ``folder``, and
    return the command of its ``portcheck`` script."""

    def run(*command: str) -> None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    shutil.rmtree(REPO / "build", ignore_errors=True)  # setuptools' cache would ship modules moved since
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder / "dist"), str(REPO))
    wheels = sorted((folder / "dist").glob("pytest_portcheck-*.whl"))
    venv = folder / "venv"
    run(python, "-m", "venv", str(venv))
    run(
        str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheels[-1])
    )
    version = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"portcheck: {wheels[-1].name} installed in a fresh venv of Python {version} ({python})")
    return [str(venv / "bin" / "portcheck")]


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False, env=ENV)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed: {completed.stderr[-500:]}")
    return elapsed, completed.stdout


def portcheck_counts(output: str) -> dict[str, int]:
    return dict(Counter(r["state"] for r in json.loads(output)["results"]))


def nmap_counts(output: str, total: int) -> dict[str, int]:
    """States from nmap's grepable output: listed ports plus the 'Ignored State' remainder."""
    counts: Counter[str] = Counter()
    for line in output.splitlines():
        if "Ports:" not in line:
            continue
        ports_part = line.split("Ports:", 1)[1]
        listed, _, ignored = ports_part.partition("Ignored State:")
        for entry in listed.split(","):
            fields = entry.strip().split("/")
            if len(fields) > 2:
                counts[fields[1]] += 1
        if ignored.strip():
            state, _, number = ignored.strip().partition(" (")
            counts[state.strip()] += int(number.rstrip(")").strip() or 0)
    missing = total - sum(counts.values())
    if missing > 0:
        counts["(not reported)"] = missing
    return dict(counts)


def start_responders() -> list[socket.socket]:
    sockets = []
    for port in RESPONDER_PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sockets.append(sock)

        def serve(sock: socket.socket = sock) -> None:
            while True:
                try:
                    data, peer = sock.recvfrom(4096)
                    sock.sendto(data or b"hi", peer)
                except OSError:
                    return

        threading.Thread(target=serve, daemon=True).start()
    return sockets


def loopback(runs: int) -> None:
    print("== 1. loopback: 127.0.0.1 udp/1-1024, responders on", ", ".join(map(str, RESPONDER_PORTS)))
    sockets = start_responders()
    ours = [*PORTCHECK, "scan", "127.0.0.1", "--udp", "-p", "1-1024", "--json", "-"]
    theirs = ["nmap", "-sU", "-p", "1-1024", "-n", "-Pn", "-oG", "-", "127.0.0.1"]
    ours_times, theirs_times = [], []
    ours_counts: dict[str, int] = {}
    theirs_counts: dict[str, int] = {}
    timed(ours)  # fills the bytecode cache
    for _ in range(runs):
        elapsed, out = timed(ours)
        ours_times.append(elapsed)
        ours_counts = portcheck_counts(out)
        if shutil.which("nmap") and os.geteuid() == 0:
            elapsed, out = timed(theirs)
            theirs_times.append(elapsed)
            theirs_counts = nmap_counts(out, 1024)
    for sock in sockets:
        sock.close()
    report("portcheck --udp", ours_times, ours_counts)
    if theirs_times:
        report("nmap -sU", theirs_times, theirs_counts)
        print(f"ratio portcheck/nmap: {statistics.median(ours_times) / statistics.median(theirs_times):.2f}")
    else:
        print("nmap -sU needs nmap and root: not run")


def report(label: str, times: list[float], counts: dict[str, int]) -> None:
    runs = ", ".join(f"{1000 * t:.0f}" for t in times)
    print(f"{label:<18} median {1000 * statistics.median(times):7.1f} ms  runs (ms) {runs}  states {counts}")


def rate_limited_link() -> None:
    print("== 2. 30 closed ports over a veth link, target ICMP rate limit at its default")
    if os.geteuid() != 0:
        print("skipped: needs root")
        return
    tag = uuid.uuid4().hex[:6]
    scanner, target = f"pcb-s{tag}", f"pcb-t{tag}"
    run = subprocess.run
    for name in (scanner, target):
        run(["ip", "netns", "add", name], check=True)
    try:
        run(["ip", "link", "add", f"vs{tag}", "type", "veth", "peer", "name", f"vt{tag}"], check=True)
        run(["ip", "link", "set", f"vs{tag}", "netns", scanner], check=True)
        run(["ip", "link", "set", f"vt{tag}", "netns", target], check=True)
        run(["ip", "-n", scanner, "addr", "add", "10.77.0.1/24", "dev", f"vs{tag}"], check=True)
        run(["ip", "-n", target, "addr", "add", "10.77.0.2/24", "dev", f"vt{tag}"], check=True)
        for name, device in ((scanner, f"vs{tag}"), (target, f"vt{tag}")):
            run(["ip", "-n", name, "link", "set", device, "up"], check=True)
        inside = ["ip", "netns", "exec", scanner]
        elapsed, out = timed(
            [*inside, *PORTCHECK, "scan", "10.77.0.2", "--udp", "-p", "20000-20029", "--json", "-"]
        )
        report("portcheck --udp", [elapsed], portcheck_counts(out))
        time.sleep(10)  # let the target's ICMP budget refill before nmap's turn
        if shutil.which("nmap"):
            nmap = ["nmap", "-sU", "-p", "20000-20029", "-n", "-Pn", "-oG", "-", "10.77.0.2"]
            elapsed, out = timed([*inside, *nmap])
            report("nmap -sU", [elapsed], nmap_counts(out, 30))
    finally:
        for name in (scanner, target):
            run(["ip", "netns", "delete", name], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-netns", action="store_true")
    parser.add_argument("--python", default=sys.executable, help="interpreter to install portcheck for")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-udp-") as folder:
        PORTCHECK[:] = install_wheel(args.python, Path(folder))
        loopback(args.runs)
        if not args.skip_netns:
            rate_limited_link()


if __name__ == "__main__":
    main()
