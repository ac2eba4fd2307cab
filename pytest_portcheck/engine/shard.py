"""Spreading one large scan over several processes, and the worker side of that.

On loopback a connect scan is CPU-bound (socket, connect and close are each a system call, and Python
adds its own time to each), so one process cannot use the machine's other cores. Large scans are split
into interleaved shards: this process scans one, worker processes (``python -m
pytest_portcheck.engine.shard``) scan the others and stream their results back over a pipe, one line
each. A worker that dies leaves its targets as ``error`` results, never as missing ones.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import select
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO

from pytest_portcheck.engine.connect import ConnectScanner, is_local_address
from pytest_portcheck.engine.model import (
    AddressQuality,
    PortState,
    ProbeResult,
    Reason,
    ScanSettings,
    ScanStats,
    Target,
)
from pytest_portcheck.ports import Protocol

# Below this many targets the start-up of a worker (~40 ms) costs more than a second core saves.
SHARD_MIN_TARGETS = 8192
_MAX_PROCESSES = 4
_CHECK_WORKERS_EVERY = 128  # local results between two looks at the workers' pipes


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def process_count(targets: int, settings: ScanSettings) -> int:
    if settings.processes is not None:
        return max(1, min(settings.processes, targets))
    if targets < SHARD_MIN_TARGETS:
        return 1
    return max(1, min(_cpu_count(), _MAX_PROCESSES))


def scan(
    targets: Sequence[Target], settings: ScanSettings | None = None, stats: ScanStats | None = None
) -> Iterator[ProbeResult]:
    """Probe every target (plus retries) and yield each result as it is decided.

    ``stats``, when given, is filled in as the scan goes (probes sent, self-connects, back-offs).
    """
    settings = settings or ScanSettings()
    stats = stats if stats is not None else ScanStats()
    # UDP retries are paced per address against ICMP rate limits, and remote addresses get adaptive
    # timing (congestion control on drops): one process must see every probe to such an address.
    # Only scans of this host's own addresses are CPU-bound enough to need several processes.
    one_process = settings.processes is None and not _all_local(targets)
    has_udp = any(target.proto is Protocol.UDP for target in targets)
    processes = 1 if has_udp or one_process else process_count(len(targets), settings)
    stats.processes = processes
    if processes == 1:
        scanner = ConnectScanner(settings)
        try:
            yield from scanner.scan(targets)
        finally:
            stats.add(scanner.stats)
        return
    yield from _ShardedScan(targets, settings, processes, stats).run()


def _all_local(targets: Sequence[Target]) -> bool:
    addresses = dict.fromkeys(target.address for target in targets)
    return all(is_local_address(address) for address in addresses)


class _Worker:
    def __init__(self, shard: Sequence[Target], settings: ScanSettings) -> None:
        import subprocess  # only sharded scans pay for it (~8 ms at start-up)
        import tempfile

        self.shard = shard
        self.decided = [False] * len(shard)
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest_portcheck.engine.shard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=env,
        )
        assert self.process.stdout is not None
        self.stdout_fd = self.process.stdout.fileno()
        self.buffer = b""
        self.stats: ScanStats | None = None
        self._settings = settings

    def send_targets(self) -> None:
        assert self.process.stdin is not None
        header = {
            "timeout": self._settings.timeout,
            "retries": self._settings.retries,
            "window": self._settings.window,
            "max_rate": self._settings.max_rate,
            "min_rate": self._settings.min_rate,
        }
        # One line per run of targets that share an address: "ADDRESS<TAB>PORT,PORT,...".
        lines = [json.dumps(header)]
        for address, group in itertools.groupby(self.shard, key=lambda t: t.address):
            lines.append(f"{address}\t{','.join(str(t.port) for t in group)}")
        try:
            self.process.stdin.write(("\n".join(lines) + "\n").encode())
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # the worker died at start; its targets become errors when its output ends
        os.set_blocking(self.stdout_fd, False)

    def read(self) -> tuple[list[ProbeResult], bool]:
        """Results that arrived so far, and whether the worker's output has ended."""
        try:
            chunk = os.read(self.stdout_fd, 1 << 16)
        except BlockingIOError:
            return [], False
        if not chunk:
            return [], True
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        results = []
        for line in lines:
            fields = line.decode().split("\t")
            if fields[0] == "#stats":
                sent, self_connects, backoffs, window, paced, limited = (int(v) for v in fields[1:7])
                self.stats = ScanStats(sent, self_connects, backoffs, window, paced, limited)
                for entry in json.loads(fields[7]) if len(fields) > 7 else []:
                    self.stats.note(AddressQuality(**entry))
                continue
            index = int(fields[0])
            target = self.shard[index]
            self.decided[index] = True
            latency = float(fields[3]) if fields[3] else None
            results.append(
                ProbeResult(
                    target.host,
                    target.address,
                    target.proto,
                    target.port,
                    PortState(fields[1]),
                    fields[2],
                    latency,
                    int(fields[4]),
                )
            )
        return results, False

    def undecided(self) -> list[ProbeResult]:
        """Error results for what the worker never answered, saying why."""
        status = self.process.wait()
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-1:]
        why = f"scan worker exited with status {status}" + (f" ({tail[0]})" if tail else "")
        return [
            ProbeResult(t.host, t.address, t.proto, t.port, PortState.ERROR, Reason.local_error(why))
            for t, done in zip(self.shard, self.decided, strict=True)
            if not done
        ]

    def stop(self) -> None:
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a worker stuck in the kernel
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()


class _ShardedScan:
    def __init__(self, targets: Sequence[Target], settings: ScanSettings, processes: int, stats: ScanStats):
        self._shards = [targets[index::processes] for index in range(processes)]
        # The window and a rate cap are over the whole scan: each process gets its share.
        max_rate = None if settings.max_rate is None else settings.max_rate / processes
        window = max(1, settings.window // processes)
        min_rate = settings.min_rate
        if min_rate is not None and max_rate is not None:
            min_rate = min(min_rate, max_rate)
        self._settings = replace(settings, window=window, processes=1, max_rate=max_rate, min_rate=min_rate)
        self._stats = stats

    def run(self) -> Iterator[ProbeResult]:
        workers = [_Worker(shard, self._settings) for shard in self._shards[1:]]
        local = ConnectScanner(self._settings)
        try:
            for worker in workers:
                worker.send_targets()
            open_workers = list(workers)
            for count, result in enumerate(local.scan(self._shards[0]), 1):
                yield result
                if count % _CHECK_WORKERS_EVERY == 0:
                    for worker in list(open_workers):
                        yield from self._drain(worker, open_workers)
            while open_workers:
                select.select([worker.stdout_fd for worker in open_workers], [], [], 1.0)
                for worker in list(open_workers):
                    yield from self._drain(worker, open_workers)
        finally:
            self._stats.add(local.stats)
            for worker in workers:
                worker.stop()
                if worker.stats is not None:
                    self._stats.add(worker.stats)

    def _drain(self, worker: _Worker, open_workers: list[_Worker]) -> Iterator[ProbeResult]:
        while True:
            results, ended = worker.read()
            yield from results
            if ended:
                open_workers.remove(worker)
                yield from worker.undecided()
                return
            if not results:
                return


def _worker_main() -> int:
    """Scan the targets given on stdin; write one line per result on stdout as they are decided."""
    header = json.loads(sys.stdin.readline())
    settings = ScanSettings(
        timeout=header["timeout"],
        retries=header["retries"],
        window=header["window"],
        processes=1,
        max_rate=header.get("max_rate"),
        min_rate=header.get("min_rate"),
    )
    targets: list[Target] = []
    for line in sys.stdin:
        address, ports = line.rstrip("\n").split("\t")
        for port in ports.split(","):
            # The host field carries the target's index in the shard, so duplicates stay apart.
            targets.append(Target(str(len(targets)), address, Protocol.TCP, int(port)))
    scanner = ConnectScanner(settings)
    out = sys.stdout.buffer
    batch: list[str] = []
    last_flush = time.monotonic()
    for result in scanner.scan(targets):
        latency = "" if result.latency_ms is None else repr(result.latency_ms)
        batch.append(f"{result.host}\t{result.state.value}\t{result.reason}\t{latency}\t{result.attempts}\n")
        if len(batch) >= 512 or time.monotonic() - last_flush > 0.02:
            out.write("".join(batch).encode())
            out.flush()
            batch.clear()
            last_flush = time.monotonic()
    stats = scanner.stats
    batch.append(
        f"#stats\t{stats.probes_sent}\t{stats.self_connects}\t{stats.resource_backoffs}\t"
        f"{stats.smallest_window}\t{stats.paced_probes}\t{stats.rate_limited}\t"
        f"{json.dumps([dataclasses.asdict(q) for q in stats.addresses.values()])}\n"
    )
    out.write("".join(batch).encode())
    out.flush()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(_worker_main())
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(130)
