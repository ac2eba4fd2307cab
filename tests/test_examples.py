"""The quick start's first command must keep working: the demo inventory passes against its services."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_demo_passes() -> None:
    completed = subprocess.run(
        [sys.executable, "examples/demo.py", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "18 passed" in completed.stdout
    assert "drift: 0 expectation(s) not met on 3 host(s)" in completed.stdout


def test_demo_with_xdist_passes() -> None:
    completed = subprocess.run(
        [sys.executable, "examples/demo.py", "-q", "-n", "2", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "18 passed" in completed.stdout
