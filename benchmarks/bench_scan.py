"""Benchmark of `portcheck scan` against nmap and the tutorial's threaded design, side by side.

    python benchmarks/bench_scan.py [--runs 3] [--skip-netns] [--against PORTCHECK]

1. Full loopback range (127.0.0.1, ports 1-65535): `portcheck scan` vs `nmap -sT -p- -n -Pn` vs the
   tutorial's design (100 threads, one blocking connect_ex per port). Wall time, median of --runs;
   ratios against nmap; open-port sets compared. With ``--against``, another version's ``portcheck``
   runs interleaved too, and the two are compared by wall and CPU time (user + system of all their
   processes): for instance the code before a change, built from a worktree into a venv of its own
   (``git worktree add /tmp/old REV && python -m venv /tmp/old-venv && /tmp/old-venv/bin/pip install
   /tmp/old``, then ``--against /tmp/old-venv/bin/portcheck``).
2. 8,192 ports dropped by a firewall rule inside a network namespace this script creates and removes
   (`-t 0.5 --retries 0`): wall time and state counts. Needs root and iptables.
3. Peak memory of the full-range scan: the largest sum of resident memory of the portcheck process
   tree, sampled every 10 ms.

Only loopback and the script's own namespace are scanned. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PORTCHECK = [sys.executable, "-m", "pytest_portcheck"]


CPU_SECONDS: dict[tuple[str, ...], list[float]] = {}
"""Per command run through ``timed``: the CPU time (user + system, all its processes) of each run."""


def timed(command: Sequence[str]) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    CPU_SECONDS.setdefault(tuple(command), []).append(cpu)
    if completed.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr[-400:]}")
    return elapsed, completed.stdout


def portcheck_open_ports(output: str) -> set[int]:
    """Open ports from the plain output: lines like '  127.0.0.1   tcp/22   open   ssh ...'."""
    ports = set()
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1].startswith("tcp/") and fields[2] == "open":
            ports.add(int(fields[1][4:]))
    return ports


def nmap_open_ports(output: str) -> set[int]:
    """Open ports from nmap's normal output: lines like '22/tcp open ssh'."""
    ports = set()
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0].endswith("/tcp") and fields[1] == "open":
            ports.add(int(fields[0].split("/")[0]))
    return ports


def tutorial_scan(host: str, ports: range, threads: int = 100, timeout: float = 1.0) -> set[int]:
    """The tutorial's design, rebuilt for comparison: worker threads, one blocking connect each."""
    work: queue.Queue[int] = queue.Queue()
    for port in ports:
        work.put(port)
    found: set[int] = set()
    lock = threading.Lock()

    def worker() -> None:
        while True:
            try:
                port = work.get_nowait()
            except queue.Empty:
                return
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                if sock.connect_ex((host, port)) == 0:
                    with lock:
                        found.add(port)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return found


def median_of(runs: int, action: Callable[[], tuple[float, object]]) -> tuple[float, list[float], object]:
    times: list[float] = []
    last: object = None
    for _ in range(runs):
        elapsed, last = action()
        times.append(elapsed)
    return statistics.median(times), times, last


def full_range(runs: int, against: str | None) -> None:
    print("== 1. full loopback range: 127.0.0.1 ports 1-65535")
    listeners = []
    for port in (0, 0, 0):  # three listeners of our own, wherever the kernel puts them
        listener = socket.socket()
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        listeners.append(listener)
    ours_cmd = [*PORTCHECK, "scan", "127.0.0.1", "-p", "1-65535"]
    nmap_cmd = ["nmap", "-sT", "-p-", "-n", "-Pn", "127.0.0.1"]
    against_cmd = [against, "scan", "127.0.0.1", "-p", "1-65535"] if against else []
    results: dict[str, tuple[float, list[float], set[int]]] = {}
    for _ in range(runs):  # interleave the tools so machine noise hits both alike
        for name, command, parse in (
            ("portcheck", ours_cmd, portcheck_open_ports),
            ("nmap", nmap_cmd, nmap_open_ports),
            ("against", against_cmd, portcheck_open_ports),
        ):
            if name == "against" and not against:
                continue
            if name == "nmap" and shutil.which("nmap") is None:
                continue
            elapsed, out = timed(command)
            previous = results.get(name, (0.0, [], set()))
            results[name] = (0.0, [*previous[1], elapsed], parse(out))

    def tutorial() -> tuple[float, object]:
        started = time.perf_counter()
        found = tutorial_scan("127.0.0.1", range(1, 65536))
        return time.perf_counter() - started, found

    tutorial_time, _, tutorial_found = median_of(1, tutorial)
    for listener in listeners:
        listener.close()
    ours = statistics.median(results["portcheck"][1])
    print(f"portcheck scan      median {ours:6.2f} s   runs {fmt(results['portcheck'][1])}")
    if "nmap" in results:
        theirs = statistics.median(results["nmap"][1])
        print(f"nmap -sT -p-        median {theirs:6.2f} s   runs {fmt(results['nmap'][1])}")
        same = results["portcheck"][2] == results["nmap"][2]
        print(f"ratio portcheck/nmap: {ours / theirs:.2f}  (goal <= 1.0)")
        print(f"open ports identical: {same}  portcheck {sorted(results['portcheck'][2])}")
        if not same:
            print(f"                                nmap      {sorted(results['nmap'][2])}")
    else:
        print("nmap not installed: apt-get install nmap for the comparison")
    if against:
        theirs = statistics.median(results["against"][1])
        cpu_ours, cpu_theirs = (statistics.median(CPU_SECONDS[tuple(c)]) for c in (ours_cmd, against_cmd))
        print(f"--against           median {theirs:6.2f} s   runs {fmt(results['against'][1])}")
        same = results["against"][2] == results["portcheck"][2]
        print(f"  this code / --against: wall {ours / theirs:.2f}, CPU {cpu_ours:.2f} s / {cpu_theirs:.2f} s "
              f"= {cpu_ours / cpu_theirs:.2f}; open ports identical: {same}")  # fmt: skip
    print(
        f"tutorial 100 threads       {tutorial_time:6.2f} s   (one run; ratio portcheck/tutorial "
        f"{ours / tutorial_time:.2f})"
    )
    assert isinstance(tutorial_found, set)
    extra = sorted(tutorial_found - results["portcheck"][2])
    missed = sorted(results["portcheck"][2] - tutorial_found)
    print(f"tutorial's open ports vs portcheck: {len(extra)} more {extra[:10]}, {len(missed)} fewer")
    print("  (a port the tutorial calls open with no listener behind it is a self-connect)")


def fmt(values: Sequence[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def peak_memory() -> None:
    print("== 3. peak memory of the full-range scan (sum of RSS over the process tree)")
    process = subprocess.Popen(
        [*PORTCHECK, "scan", "127.0.0.1", "-p", "1-65535", "--json", os.devnull],
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_kib(process.pid))
        time.sleep(0.01)
    print(f"peak resident memory: {peak / 1024:.1f} MiB  (goal < 80 MB)")


def tree_rss_kib(root: int) -> int:
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def filtered_namespace(runs: int) -> None:
    print("== 2. 8,192 ports dropped by a firewall rule (namespace), -t 0.5 --retries 0")
    if os.geteuid() != 0 or shutil.which("iptables") is None:
        print("skipped: needs root and iptables")
        return
    name = f"pc-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        inside = ["ip", "netns", "exec", name]
        subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
        rule = ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "20000:28191", "-j", "DROP"]
        subprocess.run([*inside, *rule], check=True)
        command = [*inside, *PORTCHECK, "scan", "127.0.0.1", "-p", "20000-28191", "-t", "0.5",
                   "--retries", "0", "--json", "-"]  # fmt: skip
        times = []
        summary: dict[str, int] = {}
        for _ in range(runs):
            elapsed, out = timed(command)
            times.append(elapsed)
            summary = json.loads(out)["summary"]
        median = statistics.median(times)
        print(f"portcheck scan      median {median:6.2f} s   runs {fmt(times)}  (goal < 2.5 s)")
        print(f"states: {summary}")
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-netns", action="store_true")
    parser.add_argument(
        "--against", metavar="PORTCHECK",
        help="another version's portcheck command, timed interleaved with this one on the full range",
    )  # fmt: skip
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPU(s), python {sys.version.split()[0]}")
    full_range(args.runs, args.against)
    if not args.skip_netns:
        filtered_namespace(args.runs)
    peak_memory()


if __name__ == "__main__":
    main()
