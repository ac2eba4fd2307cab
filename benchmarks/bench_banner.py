"""Benchmark of protocol probes: scanning 1,000 open loopback ports with and without `--banner`.

    python benchmarks/bench_banner.py [--runs 5] [--ports 1000]

A helper process listens on N free loopback ports and sends a one-line banner to every client.
`portcheck scan 127.0.0.1 -p LIST` and the same with `--banner` run interleaved; the script prints
the median wall times and their ratio (goal: at most 3). Only loopback is scanned.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def serve(count: int) -> None:
    """The helper process: open ``count`` listeners, print their ports, greet every client."""
    selector = selectors.DefaultSelector()
    ports = []
    for _ in range(count):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
        ports.append(listener.getsockname()[1])
    print(json.dumps(ports), flush=True)
    while True:
        for key, _ in selector.select():
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            try:
                connection, _ = ready.accept()
            except OSError:
                continue
            with contextlib.suppress(OSError):
                connection.send(b"220 bench.test ESMTP ready\r\n")
            connection.close()


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {completed.stderr[-500:]}")
    return elapsed, completed.stdout


def fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    helper = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.ports)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert helper.stdout is not None
        ports = json.loads(helper.stdout.readline())
        spec = ",".join(map(str, ports))
        base = [sys.executable, "-m", "pytest_portcheck", "scan", "127.0.0.1", "-p", spec]
        plain_times, banner_times = [], []
        identified = 0
        for _ in range(args.runs):
            elapsed, _ = timed(base)
            plain_times.append(elapsed)
            elapsed, out = timed([*base, "--banner", "--json", "-"])
            banner_times.append(elapsed)
            report = json.loads(out)
            identified = sum(1 for r in report["results"] if r.get("probe", {}).get("service") == "smtp")
    finally:
        helper.kill()
        helper.wait()
    plain, banner = statistics.median(plain_times), statistics.median(banner_times)
    print(f"ports: {len(ports)} listeners sending a banner; identified with --banner: {identified}")
    print(f"portcheck scan           median {plain:.2f} s  runs {fmt(plain_times)}")
    print(f"portcheck scan --banner  median {banner:.2f} s  runs {fmt(banner_times)}")
    print(f"ratio banner/plain: {banner / plain:.2f}  (goal <= 3)")


if __name__ == "__main__":
    main()
