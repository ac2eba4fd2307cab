"""The quick start's first command must keep working: the demo inventory passes against its services."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO, Namespace


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
    assert "drift: 0 expectation(s) not met on 0 of 4 host(s)" in completed.stdout
    assert 'ssh (OpenSSH 9.2p1) "SSH-2.0-OpenSSH_9.2p1 portcheck-demo"' in completed.stdout


# --- examples/compose, kubernetes, terraform: a source file and the inventory that reads it ------

NODE = "10.90.0.10"
"""The address the examples give their host: on the loopback interface of a namespace of the test's own."""
STAND_INS = {
    # What answers where the services would: bound as the source file declares.
    "compose": ["0.0.0.0:80", "0.0.0.0:443", "0.0.0.0:8000", "127.0.0.1:5432"],
    "kubernetes": ["0.0.0.0:30080", "0.0.0.0:9100"],
    "terraform": ["0.0.0.0:443", "0.0.0.0:22"],
}


def run_example(netns: Namespace, name: str, listeners: list[str], *env: str) -> subprocess.CompletedProcess[str]:
    netns.run("ip", "addr", "add", f"{NODE}/32", "dev", "lo")
    with netns.serving(*listeners):
        inventory = REPO / "examples" / name / "inventory.yml"
        command = ["env", *env, sys.executable, "-m", "pytest", "--portcheck", str(inventory), "-p", "no:cacheprovider"]
        return netns.run(*command, check=False, timeout=180)


@pytest.mark.parametrize("name", sorted(STAND_INS))
def test_each_source_example_passes_against_its_stand_ins(netns: Namespace, name: str) -> None:
    # The terraform example's ssh is open from the office only: the run scans from there.
    env = ["PORTCHECK_VANTAGE=office"] if name == "terraform" else []
    completed = run_example(netns, name, STAND_INS[name], *env)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "drift: 0 expectation(s) not met" in completed.stdout


def test_the_compose_example_fails_when_the_database_listens_on_every_address(netns: Namespace) -> None:
    listeners = [spec.replace("127.0.0.1:5432", "0.0.0.0:5432") for spec in STAND_INS["compose"]]
    completed = run_example(netns, "compose", listeners)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "5432 (unknown): open, declared by no source (" in completed.stdout
    assert "compose/compose.yml)" in completed.stdout
