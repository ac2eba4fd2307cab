"""The quick start's first command must keep working: the demo inventory passes against its services."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO


# The demo's services take fixed ports of 127.0.0.1: each run gets a loopback of its own, so that
# neither the other run here (xdist) nor another suite at the same time holds them.
@pytest.mark.usefixtures("private_loopback")
@pytest.mark.parametrize("extra", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_demo_passes(extra: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "examples/demo.py", "-q", "-p", "no:cacheprovider", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "20 passed" in completed.stdout
    assert "drift: 0 expectation(s) not met on 4 host(s)" in completed.stdout
    assert 'ssh (OpenSSH 9.2p1) "SSH-2.0-OpenSSH_9.2p1 portcheck-demo"' in completed.stdout
