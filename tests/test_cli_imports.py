"""What ``portcheck scan`` imports: a plain TCP or UDP scan loads only what it needs.

On a few ports the command's start-up is most of its time (nmap's whole scan takes ~30 ms), so the
scan path must not grow again: each test runs the command in a fresh interpreter against a loopback
listener and lists the modules it loaded. The interpreter runs with ``-S`` and the package on
``PYTHONPATH``: an editable install's import hook (which imports pathlib and typing itself) must not
hide or cause anything. No timing is asserted here; ``benchmarks/bench_udp.py`` measures.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_portcheck

PACKAGE_ROOT = Path(pytest_portcheck.__file__).resolve().parents[1]

HEAVY = (
    # standard library modules a scan can do without (each costs 1-10 ms to import); dataclasses,
    # typing and pathlib, with what they import (inspect, ast, dis, contextlib, fnmatch, urllib), are
    # allowed since issue #19: the standard library's value classes are worth their few milliseconds
    "ipaddress", "datetime", "shutil", "secrets", "hashlib", "hmac", "asyncio", "ssl", "concurrent",
    "subprocess", "tempfile", "threading", "bz2", "lzma", "email",
    # third-party and our own modules that only other commands or options need
    "yaml", "cryptography", "pytest", "filelock",
    "pytest_portcheck.probes", "pytest_portcheck.inventory", "pytest_portcheck.judge",
    "pytest_portcheck.sharding", "pytest_portcheck.plugin", "pytest_portcheck.pipeline.inventory",
    "pytest_portcheck.pipeline.probe", "pytest_portcheck.report.schema", "pytest_portcheck.report.decode",
    "pytest_portcheck.report.diff", "pytest_portcheck.report.nmapxml", "pytest_portcheck.report.html",
    "pytest_portcheck.report.judged", "pytest_portcheck.report.markdown", "pytest_portcheck.cli.shard",
    "pytest_portcheck.cli.snapshot", "pytest_portcheck.cli.diff", "pytest_portcheck.cli.report",
)  # fmt: skip

RUN = """
import sys
from pytest_portcheck.cli import main
status = main(sys.argv[2:])
modules = sorted(sys.modules)  # before the json this recording needs
import json
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "modules": modules}, out)
"""


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port that accepts (and a UDP socket on the same number that answers nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(16)
        yield tcp.getsockname()[1]


def scan_modules(tmp_path: Path, *argv: str) -> set[str]:
    """The modules a fresh ``python -S`` loaded for ``portcheck scan ARGV``."""
    record = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    completed = subprocess.run(
        [sys.executable, "-S", "-c", RUN, str(record), "scan", *argv],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(record.read_text())
    assert result["status"] == 0, completed.stdout + completed.stderr
    return set(result["modules"])


def heavy(modules: set[str], also: tuple[str, ...] = ()) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY + also))


def test_a_tcp_scan_with_a_json_report_imports_nothing_heavy(tmp_path: Path, listener: int) -> None:
    report = tmp_path / "report.json"
    modules = scan_modules(tmp_path, "127.0.0.1", "-p", f"{listener},{listener + 1}", "--json", str(report))
    assert heavy(modules) == []
    assert "pytest_portcheck.engine.scanner" in modules  # it did scan
    states = {r["port"]: r["state"] for r in json.loads(report.read_text())["results"]}
    assert states[listener] == "open"


def test_a_udp_scan_without_a_report_imports_nothing_heavy_not_even_json(
    tmp_path: Path, listener: int
) -> None:
    modules = scan_modules(tmp_path, "127.0.0.1", "--udp", "-p", f"{listener},{listener + 1}")
    assert heavy(modules, also=("json",)) == []
    assert "pytest_portcheck.engine.scanner" in modules


def test_heavy_modules_do_come_with_banners(tmp_path: Path, listener: int) -> None:
    # The checks above must be able to fail: probing what answers needs asyncio, ssl and the probes.
    modules = scan_modules(
        tmp_path, "127.0.0.1", "-p", str(listener), "--banner", "--probe-timeout", "0.5", "--json", "-"
    )
    assert {"asyncio", "ssl", "pytest_portcheck.probes", "pytest_portcheck.probes.model"} <= set(heavy(modules))
