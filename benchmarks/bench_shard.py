"""Sharded scans, measured side by side in one run (see docs/sharding.md).

1. A loopback fleet: 1,000 hosts 127.90.x.y x 64 ports (two of them answered by 0.0.0.0 listeners,
   so every host has two open ports), as ``only_open`` hosts. One unsharded ``pytest --portcheck`` run
   against 4 ``portcheck scan --inventory --shard K/4`` processes in parallel plus the judge
   (``pytest --portcheck-results``): outcomes compared item by item, time ratio printed.
2. Shard balance: the largest deviation of a share from the mean, for that plan and a fleet plan.
3. A simulated fleet: 5,000 hosts x 1-65535 with 64 synthetic shard reports (written by the real
   writer, about 10 open ports a host, one run id, started now): total report size, the judge's time
   and peak memory — with the run, the maximum age and, in a second variant, the reports' signatures
   (PORTCHECK_REPORT_KEY) checked.

    python benchmarks/bench_shard.py [--runs 3] [--skip-loopback] [--skip-fleet] [--skip-signed]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.inventory.load import load_inventory
from pytest_portcheck.ports import Protocol
from pytest_portcheck.sharding.plan import ShardSplit, WorkPlan, plan_inventory
from pytest_portcheck.sharding.report import AddressSummary, ShardInfo, ShardScanReport, write_shard_report

OUTCOME = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED)", re.MULTILINE)


def timed(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str, int]:
    """Wall time, standard output and the peak resident memory (KiB) of one child process."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _pid, _status, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return time.monotonic() - started, output, usage.ru_maxrss


def fleet_addresses(count: int, prefix: str = "127.90") -> list[str]:
    return [f"{prefix}.{i // 250}.{i % 250 + 1}" for i in range(count)]


def _drain(listener: socket.socket) -> None:
    while True:
        try:
            connection, _peer = listener.accept()
        except OSError:
            return
        connection.close()


def loopback_inventory(folder: Path, hosts: int, ports: int) -> Path:
    listeners = [socket.socket() for _ in range(2)]
    for sock in listeners:
        sock.bind(("0.0.0.0", 0))
        sock.listen(4096)
        # Accept and close, or the queue fills and later runs would see these ports filtered.
        threading.Thread(target=_drain, args=(sock,), daemon=True).start()
    opened = sorted(int(sock.getsockname()[1]) for sock in listeners)
    with socket.socket() as probe:  # a base for the closed ports: free now on every loopback address
        probe.bind(("127.0.0.1", 0))
        base = min(int(probe.getsockname()[1]), 60000)
    spec = ",".join(str(p) for p in sorted({*opened, *range(base, base + ports - 2)}))
    lines = ["hosts:"]
    for index, address in enumerate(fleet_addresses(hosts)):
        lines += [
            f"  h{index}:",
            f"    address: {address}",
            f"    only_open: {opened}",
            f'    range: "{spec}"',
        ]
    path = folder / "fleet.yml"
    path.write_text("\n".join(lines) + "\n")
    loopback_inventory.listeners = listeners  # type: ignore[attr-defined]  # kept open for the run
    return path


def bench_loopback(runs: int) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        inventory = loopback_inventory(folder, 1000, 64)
        plan = plan_inventory(load_inventory(inventory))
        print(f"loopback fleet: {len(plan.hosts):,} hosts, {plan.total:,} probes")
        # -v, not -rA: pytest's -rA summary is quadratic in the number of items. hypothesis is a test
        # dependency, not the user's: its plugin costs 2 s of import.
        pytest = [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-v",
            "--portcheck", str(inventory),
        ]  # fmt: skip
        whole_times, sharded_times, scan_times = [], [], []
        for _run in range(runs):
            elapsed, whole, _rss = timed(pytest, folder)
            whole_times.append(elapsed)
            started = time.monotonic()

            def shard(index: int) -> None:
                command = [
                    sys.executable, "-m", "pytest_portcheck", "scan", "--inventory", str(inventory),
                    "--shard", f"{index}/4", "--json", str(folder / "reports" / f"shard-{index}.json"),
                    "--run-id", "loopback",  # the four shares are one run (each run rewrites them)
                    "--processes", "1",  # four shards on two CPUs: more processes would only compete
                ]  # fmt: skip
                subprocess.run(command, cwd=folder, capture_output=True, check=True)

            (folder / "reports").mkdir(exist_ok=True)
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(shard, range(1, 5)))
            scan_times.append(time.monotonic() - started)
            _elapsed, judged, _rss = timed(
                [*pytest, "--portcheck-results", str(folder / "reports" / "*.json")], folder
            )
            sharded_times.append(time.monotonic() - started)
            expected, found = _outcomes(whole), _outcomes(judged)
            same = expected == found and len(expected) == 3000
            print(
                f"  run: unsharded {elapsed:.2f} s, 4 shards {scan_times[-1]:.2f} s + judge "
                f"= {sharded_times[-1]:.2f} s; {len(found):,} items, identical outcomes: {same}"
            )
        ratio = statistics.median(sharded_times) / statistics.median(whole_times)
        print(
            f"  median: unsharded {statistics.median(whole_times):.2f} s, sharded + judge "
            f"{statistics.median(sharded_times):.2f} s: ratio {ratio:.2f} (target <= 1.30)"
        )
        balance("loopback plan", plan, 4)


def _outcomes(output: str) -> dict[str, str]:
    # -v lists every item with its outcome: "nodeid PASSED"
    found = dict(OUTCOME.findall(output))
    for outcome, nodeid in re.findall(r"^(PASSED|FAILED|ERROR|SKIPPED) (\S+::\S+)", output, re.MULTILINE):
        found[nodeid] = outcome
    return found


def balance(name: str, plan: WorkPlan, count: int) -> None:
    split = ShardSplit(plan.total, plan.digest, count)
    sizes = [split.size(k) for k in range(1, count + 1)]
    mean = plan.total / count
    worst = max(abs(size - mean) / mean for size in sizes) * 100
    shown = f"{min(sizes):,}..{max(sizes):,} probes"
    print(f"  balance, {name}, {count} shards: {shown}, worst {worst:.4f}% (target 1%)")


SIGNING_KEY = "bench-shard-signing-key"


def fleet_reports(folder: Path, hosts: int, shards: int, *, all_drift: bool, signed: bool = False) -> Path:
    """The fleet inventory and its shard reports of synthetic results, through the real writer.

    Ten host profiles (roles), each allowing ten ports under ``only_open`` over 1-65535; every host
    has its profile's ten ports open, and one host in a hundred one port more (drift). With
    ``all_drift`` every host allows only 22 and 443 and has eight more open: 5,000 failures.
    """
    addresses = fleet_addresses(hosts, "127.91")
    rng = random.Random(7)
    profiles = [sorted(rng.sample(range(1, 65536), 10)) for _ in range(10)]
    allowed = {a: [22, 443] if all_drift else profiles[i % 10] for i, a in enumerate(addresses)}
    opened = {a: list(allowed[a]) for a in addresses}
    for index, address in enumerate(addresses):
        if all_drift:
            opened[address] += rng.sample(range(1024, 65536), 8)
        elif index % 100 == 0:
            opened[address].append(rng.choice([p for p in range(30000, 30100) if p not in allowed[address]]))
    lines = ["hosts:"]
    for index, address in enumerate(addresses):
        lines += [f"  f{index}:", f"    address: {address}", f"    only_open: {allowed[address]}"]
        lines.append('    range: "1-65535"')
    inventory = folder / "fleet.yml"
    inventory.write_text("\n".join(lines) + "\n")
    plan = plan_inventory(load_inventory(inventory))
    split = ShardSplit(plan.total, plan.digest, shards)
    per_shard: dict[int, dict[str, list[ProbeResult]]] = {k: {} for k in range(1, shards + 1)}
    for address, ports in opened.items():
        for port in sorted(set(ports)):
            unit = plan.unit_index(address, Protocol.TCP, port)
            assert unit is not None
            result = ProbeResult(address, address, Protocol.TCP, port, PortState.OPEN, "syn-ack", 0.3, 1)
            per_shard[split.shard_of(unit)].setdefault(address, []).append(result)
    resolutions = [Resolution(a, (a,)) for a in addresses]
    (folder / "reports").mkdir()
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if signed:  # the writer signs when the key is set, as a scan job would
        os.environ["PORTCHECK_REPORT_KEY"] = SIGNING_KEY
    for index in range(1, shards + 1):
        summaries = [
            AddressSummary(
                a, a, Protocol.TCP, PortState.CLOSED, "conn-refused", None, tuple(per_shard[index].get(a, ()))
            )
            for a in addresses
        ]
        report = ShardScanReport(
            ShardInfo(plan.digest, index, shards, None), plan, resolutions, summaries, ScanSettings(),
            started, 0.0, run_id="fleet",
        )  # fmt: skip
        write_shard_report(report, folder / "reports" / f"shard-{index}.json")
    os.environ.pop("PORTCHECK_REPORT_KEY", None)
    return inventory


def bench_fleet(runs: int, all_drift: bool, signed: bool = False) -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        started = time.monotonic()
        inventory = fleet_reports(folder, 5000, 64, all_drift=all_drift, signed=signed)
        size = sum(path.stat().st_size for path in (folder / "reports").iterdir())
        plan = plan_inventory(load_inventory(inventory))
        kind = "every host drifting" if all_drift else "1 host in 100 drifting"
        kind += ", signed reports checked with PORTCHECK_REPORT_KEY" if signed else ""
        print(f"simulated fleet ({kind}): {len(plan.hosts):,} hosts, {plan.total:,} units, 64 shard reports")
        took = time.monotonic() - started
        print(f"  reports written in {took:.1f} s: {size / 2**20:.1f} MiB in all (target <= 64 MB)")
        balance("fleet plan", plan, 64)
        command = [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q",
            "--portcheck", str(inventory), "--portcheck-results", str(folder / "reports" / "*.json"),
        ]  # fmt: skip
        # With every host drifting there are 5,000 failures, and pytest's own failure section is
        # quadratic in their number (each one scans every report for its teardown sections): those
        # runs are timed with --tb=no, and once with tracebacks for the record.
        quiet = ["--tb=no"] if all_drift else []
        env = {**os.environ, "PORTCHECK_REPORT_KEY": SIGNING_KEY} if signed else None
        times, peaks = [], []
        for _run in range(runs):
            elapsed, output, peak = timed([*command, *quiet], folder, env)
            times.append(elapsed)
            peaks.append(peak)
            last = output.strip().splitlines()[-1]
            checked = "reports checked with PORTCHECK_REPORT_KEY" in output
            assert checked == signed, output[-2000:]
            print(
                f"  judge{' (--tb=no)' if quiet else ''}: {elapsed:.1f} s, peak {peak / 1024:.0f} MiB: {last}"
            )
        print(
            f"  median judge {statistics.median(times):.1f} s (target <= 120 s), "
            f"peak {max(peaks) / 1024:.0f} MiB (target <= 2048 MiB)"
        )
        if all_drift:
            elapsed, output, peak = timed(command, folder)
            print(f"  judge with 5,000 failure tracebacks: {elapsed:.1f} s, peak {peak / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-loopback", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument(
        "--skip-signed", action="store_true", help="skip the fleet variant with signed reports"
    )
    args = parser.parse_args()
    print(f"bench_shard: {os.cpu_count()} CPU(s); the machine may be shared, so read medians")
    if not args.skip_loopback:
        bench_loopback(args.runs)
    if not args.skip_fleet:
        bench_fleet(args.runs, all_drift=False)
        if not args.skip_signed:
            bench_fleet(args.runs, all_drift=False, signed=True)
        bench_fleet(1, all_drift=True)


if __name__ == "__main__":
    main()
