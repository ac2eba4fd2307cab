"""One scan split over several processes: the parent's side, the worker's side, and the lines between.

A split scan (``processes.scan`` decides) is cut into interleaved parts: this process scans one,
worker processes scan the others and stream their results back over a pipe, one line each. A worker
that dies leaves its targets as ``error`` results, never as missing ones.

Workers run ``python -I`` and load this package from the directory this very module came from, by
path: nothing in the working directory, ``PYTHONPATH`` or the user's site-packages can stand in for
the scanner (a planted ``pytest_portcheck/engine/workers.py`` there could report every port closed).
A worker dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and a check of its parent's pid while
scanning), so no probe is sent for a scan nobody waits for.
Must not import pytest, yaml, asyncio, ssl or anything outside the engine but ``ports``. Imported only
for a split scan, and by each worker (its own entry point, ``worker_entry``).
"""

from __future__ import annotations

import ctypes
import itertools
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO

from pytest_portcheck.engine.model import (
    AddressQuality,
    PortState,
    ProbeResult,
    Reason,
    ScanSettings,
    ScanStats,
    Target,
    settings_from_options,
    settings_to_options,
)
from pytest_portcheck.engine.scanner import SocketScanner
from pytest_portcheck.ports import Protocol

_CHECK_WORKERS_EVERY = 128  # local results between two looks at the workers' pipes


# Run by ``python -I -c``: sys.path holds only the standard library and site-packages, and the
# package is loaded from the directory given (where the parent's copy is), whatever else is installed.
_BOOTSTRAP = """
import importlib.machinery, importlib.util, sys
spec = importlib.machinery.PathFinder.find_spec("pytest_portcheck", [sys.argv[1]])
package = importlib.util.module_from_spec(spec)
sys.modules["pytest_portcheck"] = package
spec.loader.exec_module(package)
from pytest_portcheck.engine.workers import worker_entry
worker_entry(int(sys.argv[2]))
"""


def worker_command() -> list[str]:
    """The command line of a scan worker (its last argument is the parent's pid)."""
    package_root = str(Path(__file__).resolve().parents[2])
    return [sys.executable, "-I", "-c", _BOOTSTRAP, package_root, str(os.getpid())]


class _Worker:
    def __init__(self, part: Sequence[Target], settings: ScanSettings) -> None:
        self.part = part
        self.decided = [False] * len(part)
        self.stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            worker_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            close_fds=True,
        )
        assert self.process.stdout is not None
        self.stdout_fd = self.process.stdout.fileno()
        self.buffer = b""
        self.stats: ScanStats | None = None
        self._settings = settings

    def send_targets(self) -> None:
        assert self.process.stdin is not None
        # One line per run of targets that share an address: "ADDRESS<TAB>PORT,PORT,...".
        lines = [encode_settings(self._settings)]
        for address, group in itertools.groupby(self.part, key=lambda t: t.address):
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
            text = line.decode()
            if text.startswith(_STATS_TAG):
                self.stats = decode_stats(text)
                continue
            index = int(text.split("\t", 1)[0])
            self.decided[index] = True
            results.append(decode_result(text, self.part[index]))
        return results, False

    def undecided(self) -> list[ProbeResult]:
        """Error results for what the worker never answered, saying why."""
        status = self.process.wait()
        self.stderr.seek(0)
        tail = self.stderr.read().decode(errors="replace").strip().splitlines()[-1:]
        why = f"scan worker exited with status {status}" + (f" ({tail[0]})" if tail else "")
        return [
            ProbeResult(t.host, t.address, t.proto, t.port, PortState.ERROR, Reason.local_error(why))
            for t, done in zip(self.part, self.decided, strict=True)
            if not done
        ]

    def stop(self) -> None:
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


class SplitScan:
    """A scan cut into interleaved parts: this process scans the first, a worker each other one."""

    def __init__(self, targets: Sequence[Target], settings: ScanSettings, processes: int, stats: ScanStats):
        self._parts = [targets[index::processes] for index in range(processes)]
        # The window and a rate cap are over the whole scan: each process gets its share.
        max_rate = None if settings.max_rate is None else settings.max_rate / processes
        window = max(1, settings.window // processes)
        min_rate = settings.min_rate
        if min_rate is not None and max_rate is not None:
            min_rate = min(min_rate, max_rate)
        self._settings = settings_from_options(
            {"window": window, "processes": 1, "max_rate": max_rate, "min_rate": min_rate}, base=settings
        )
        self._stats = stats

    def run(self) -> Iterator[ProbeResult]:
        workers = [_Worker(part, self._settings) for part in self._parts[1:]]
        local = SocketScanner(self._settings)
        try:
            for worker in workers:
                worker.send_targets()
            open_workers = list(workers)
            for count, result in enumerate(local.scan(self._parts[0]), 1):
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


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to kill this worker when its parent goes (Linux), then check it has not already."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
        except (OSError, AttributeError):  # pragma: no cover - no libc to ask: the pid check remains
            pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(130)


def worker_entry(parent: int) -> None:
    """A worker process: scan what stdin lists, exit 130 on Ctrl-C or when the parent is gone."""
    _die_with_parent(parent)
    try:
        sys.exit(_worker_main(parent))
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(130)


def _worker_main(parent: int) -> int:
    """Scan the targets given on stdin; write one line per result on stdout as they are decided."""
    settings = decode_settings(sys.stdin.readline())
    targets: list[Target] = []
    for line in sys.stdin:
        address, ports = line.rstrip("\n").split("\t")
        for port in ports.split(","):
            # The host field carries the target's index in the part, so duplicates stay apart.
            targets.append(Target(str(len(targets)), address, Protocol.TCP, int(port)))
    scanner = SocketScanner(settings)
    out = sys.stdout.buffer
    batch: list[str] = []
    last_flush = time.monotonic()
    for result in scanner.scan(targets):
        batch.append(encode_result(result))
        if len(batch) >= 512 or time.monotonic() - last_flush > 0.02:
            if os.getppid() != parent:  # orphaned where PR_SET_PDEATHSIG is missing: stop probing
                return 130
            out.write("".join(batch).encode())
            out.flush()
            batch.clear()
            last_flush = time.monotonic()
    batch.append(encode_stats(scanner.stats))
    out.write("".join(batch).encode())
    out.flush()
    return 0


# --- the messages between the parent and a worker: every value by name or by one codec pair ---

_STATS_TAG = "#stats\t"
_STATS_COUNTERS = tuple(f.name for f in fields(ScanStats) if f.type == "int" and f.name != "processes")
"""The ``ScanStats`` counters a worker reports (``processes`` is the parent's to count)."""


def encode_settings(settings: ScanSettings) -> str:
    """The first line a worker reads: every setting by name (JSON)."""
    return json.dumps(settings_to_options(settings))


def decode_settings(line: str) -> ScanSettings:
    """A worker's settings; it is one process whatever the parent's scan uses."""
    return settings_from_options({**json.loads(line), "processes": 1})


def encode_result(result: ProbeResult) -> str:
    """One decided target: ``INDEX<TAB>STATE<TAB>REASON<TAB>LATENCY<TAB>ATTEMPTS``; in a worker the
    result's host is the target's index in its part, so duplicate targets stay apart."""
    latency = "" if result.latency_ms is None else repr(result.latency_ms)
    return f"{result.host}\t{result.state.value}\t{result.reason}\t{latency}\t{result.attempts}\n"


def decode_result(line: str, target: Target) -> ProbeResult:
    """The result ``encode_result`` wrote for ``target`` (its index is the line's first field)."""
    _index, state, reason, latency, attempts = line.rstrip("\n").split("\t")
    return ProbeResult(
        host=target.host,
        address=target.address,
        proto=target.proto,
        port=target.port,
        state=PortState(state),
        reason=reason,
        latency_ms=float(latency) if latency else None,
        attempts=int(attempts),
    )


def encode_stats(stats: ScanStats) -> str:
    """A worker's last line: its counters and per-address quality, by name (JSON)."""
    message = {
        "counters": {name: getattr(stats, name) for name in _STATS_COUNTERS},
        "addresses": [asdict(quality) for quality in stats.addresses.values()],
    }
    return _STATS_TAG + json.dumps(message) + "\n"


def decode_stats(line: str) -> ScanStats:
    message = json.loads(line[len(_STATS_TAG) :])
    stats = ScanStats()
    for name in _STATS_COUNTERS:
        setattr(stats, name, int(message["counters"][name]))
    for entry in message["addresses"]:
        stats.note(AddressQuality(**entry))
    return stats
