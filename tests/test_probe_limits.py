"""The probes' descriptor discipline: under a low RLIMIT_NOFILE, probes queue and back off; what
still cannot be made is an error of our own, never a service found missing (issue 11, item 9)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
from conftest import REPO, Behaviour, greeting

pytest_plugins = ["pytester"]

SSH_GREETING = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


def test_120_service_checks_under_ulimit_64_never_drift(
    pytester: pytest.Pytester, peer: Callable[[Behaviour], int]
) -> None:
    ports = [peer(greeting(SSH_GREETING, linger=0.2)) for _ in range(120)]
    entries = "".join(f"      - {{port: {port}, service: ssh}}\n" for port in ports)
    pytester.makefile(".yml", inventory=f"hosts:\n  box:\n    address: 127.0.0.1\n    open:\n{entries}")
    completed = subprocess.run(
        ["bash", "-c", f"ulimit -n 64 && exec {sys.executable} -m pytest -p no:cacheprovider "
         "--portcheck inventory.yml -q -p no:randomly"],
        capture_output=True, text=True, timeout=300, cwd=pytester.path,
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert "found unknown" not in output and " failed" not in output.splitlines()[-1], output[-3000:]
    assert "120 passed" in output.splitlines()[-1], output[-3000:]


def test_no_descriptor_left_is_a_local_failure_and_an_error(peer: Callable[[Behaviour], int]) -> None:
    port = peer(greeting(SSH_GREETING))
    script = textwrap.dedent(
        f"""
        import resource, socket
        from pytest_portcheck.inventory.model import ServiceRequirement
        from pytest_portcheck.engine import PortState, ProbeResult, Reason
        from pytest_portcheck.ports import Protocol
        from pytest_portcheck.probes.connection import ProbeRequest
        from pytest_portcheck.probes.driver import identify_services
        from pytest_portcheck.judge.evidence import ScanEvidence
        from pytest_portcheck.judge.expectation import _judge_service

        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
        hoard = []
        try:
            while True:
                hoard.append(socket.socket())
        except OSError:
            pass
        [starved] = identify_services([ProbeRequest("127.0.0.1", {port}, "ssh")], timeout=0.5)
        print(starved.local_failure, starved.error)
        for held in hoard[-3:]:  # room for the event loop, none for a connection
            held.close()
        hoard = hoard[:-3]
        [info] = identify_services([ProbeRequest("127.0.0.1", {port}, "ssh")], timeout=0.5)
        for held in hoard:
            held.close()
        print(info.local_failure, info.error)
        result = ProbeResult("box", "127.0.0.1", Protocol.TCP, {port}, PortState.OPEN, Reason.SYN_ACK, 0.1)
        scanned = ScanEvidence({{}}, {{}}, services={{("127.0.0.1", Protocol.TCP, {port}): info}})
        judgement = _judge_service("box tcp/{port}", ServiceRequirement("ssh"), [result], scanned, None, "box")
        print(judgement.verdict.value, judgement.message)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert completed.returncode == 0, completed.stderr
    starved, first, second = completed.stdout.splitlines()[:3]
    assert starved.startswith("True ") and "could not start" in starved
    assert first.startswith("True ") and "descriptor" in first
    assert second.startswith("error ") and "cannot check the service" in second
