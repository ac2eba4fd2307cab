"""diff.compare_reports: what changed between two typed reports, without files or sockets."""

from __future__ import annotations

from pytest_portcheck.diff import compare_reports
from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.ports import Protocol
from pytest_portcheck.results import ScanReport


def report(*found: tuple[str, int, PortState]) -> ScanReport:
    hosts = list(dict.fromkeys(host for host, _, _ in found))
    results = [ProbeResult(host, host, Protocol.TCP, port, state, "x") for host, port, state in found]
    return ScanReport([Resolution(h, (h,)) for h in hosts], results, ScanSettings(), "", 0.0)


def test_equal_reports_have_no_differences() -> None:
    one = report(("127.0.0.1", 22, PortState.OPEN), ("127.0.0.1", 23, PortState.CLOSED))
    assert compare_reports(one, one).equal


def test_opened_closed_and_hosts_that_came_and_went() -> None:
    old = report(
        ("127.0.0.1", 22, PortState.OPEN), ("127.0.0.1", 80, PortState.CLOSED), ("::1", 1, PortState.OPEN)
    )
    new = report(
        ("127.0.0.1", 22, PortState.CLOSED),
        ("127.0.0.1", 80, PortState.OPEN),
        ("127.0.0.2", 1, PortState.OPEN),
    )
    diff = compare_reports(old, new)
    assert diff.hosts_appeared == ["127.0.0.2"] and diff.hosts_vanished == ["::1"]
    assert {(c.port, c.kind) for c in diff.changes} == {(22, "closed"), (80, "opened")}
    assert diff.to_text("a", "b").endswith("4 difference(s)\n") and not diff.equal


def test_closed_ports_scanned_once_only_are_coverage_not_change() -> None:
    old = report(("127.0.0.1", 22, PortState.OPEN))
    new = report(
        ("127.0.0.1", 22, PortState.OPEN),
        ("127.0.0.1", 23, PortState.CLOSED),
        ("127.0.0.1", 24, PortState.OPEN),
    )
    diff = compare_reports(old, new)
    assert diff.coverage_only == 1
    assert [(c.port, c.kind) for c in diff.changes] == [(24, "added")]
