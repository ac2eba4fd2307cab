"""diff.compare_reports: what changed between two typed reports, without files or sockets."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo, TlsInfo
from pytest_portcheck.report.decode import read_report
from pytest_portcheck.report.diff import compare_reports
from pytest_portcheck.report.encode import write_report
from pytest_portcheck.report.model import ScanReport


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


# --- what the probes found on a port that stayed open ---------------------------------------------

CERTIFICATE = TlsInfo(
    "TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=web", "CN=web", "2027-06-01T00:00:00+00:00", 180, False,
    fingerprint_sha256="a" * 64,
)  # fmt: skip


def probed(*infos: ServiceInfo | None) -> ScanReport:
    """One open port per info (None: the probes did not run there), on 127.0.0.1."""
    results = [
        ProbeResult("web", "127.0.0.1", Protocol.TCP, port, PortState.OPEN, "syn-ack")
        for port in range(1, len(infos) + 1)
    ]
    services = {
        ("127.0.0.1", Protocol.TCP, port): info
        for port, info in enumerate(infos, start=1)
        if info is not None
    }
    return ScanReport(
        [Resolution("web", ("127.0.0.1",))], results, ScanSettings(), "", 0.0, services=services
    )


def test_each_fact_the_probes_found_is_compared() -> None:
    old = probed(
        ServiceInfo("mqtt", "", auth="required"),
        ServiceInfo("https", "", tls=CERTIFICATE),
        ServiceInfo("https", "", tls=CERTIFICATE),
        ServiceInfo("https", "", tls=CERTIFICATE),
        ServiceInfo("ssh", "", "OpenSSH", "9.2p1"),
        ServiceInfo("redis", "", tls=CERTIFICATE),
    )
    new = probed(
        ServiceInfo("mqtt", "", auth="none"),  # anonymous access turned on
        ServiceInfo("https", "", tls=replace(CERTIFICATE, version="TLSv1.2")),
        ServiceInfo("https", "", tls=replace(CERTIFICATE, fingerprint_sha256="b" * 64)),  # same dates
        ServiceInfo("https", "", tls=replace(CERTIFICATE, not_after="2026-12-01T00:00:00+00:00")),
        ServiceInfo("ssh", "", "OpenSSH", "9.6p1"),
        ServiceInfo("redis", ""),  # TLS turned off
    )
    diff = compare_reports(old, new)
    assert [(c.port, c.kind, c.old, c.new) for c in diff.changes] == [
        (1, "auth", "required", "none"),
        (2, "tls", "TLSv1.3", "TLSv1.2"),
        (3, "certificate", "a" * 64, "b" * 64),
        (4, "expiry", "2027-06-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00"),
        (5, "service", "ssh OpenSSH 9.2p1", "ssh OpenSSH 9.6p1"),
        (6, "tls", "TLSv1.3", "no TLS"),
    ]
    assert not diff.equal and diff.facts_one_side == 0
    lines = diff.to_text("a", "b").splitlines()
    assert "~ auth     web 127.0.0.1 tcp/1: required -> none" in lines
    assert f"~ certificate web 127.0.0.1 tcp/3: {'a' * 64} -> {'b' * 64}" in lines
    assert lines[-1] == "6 difference(s)"
    machine = diff.to_dict()
    assert [c["kind"] for c in machine["changes"]] == [
        "auth",
        "tls",
        "certificate",
        "expiry",
        "service",
        "tls",
    ]
    assert machine["probe_facts_in_one_report_only"] == 0


def test_a_fact_only_one_report_knows_is_counted_not_changed() -> None:
    older = replace(CERTIFICATE, fingerprint_sha256=None)  # a report from before fingerprints
    old = probed(
        ServiceInfo("https", "", tls=older),
        None,  # the probes did not run in the old scan
        ServiceInfo("redis", "", auth="none"),
        ServiceInfo("ssh", "", "OpenSSH", None),
        ServiceInfo("unknown", "", error="timed out"),
    )
    new = probed(
        ServiceInfo("https", "", tls=CERTIFICATE),
        ServiceInfo("ssh", "", "OpenSSH", "9.6p1"),
        ServiceInfo("redis", "", auth=None, error="connection reset"),  # could not tell this time
        ServiceInfo("ssh", "", "OpenSSH", "9.6p1"),
        ServiceInfo("ssh", "", "OpenSSH", "9.6p1"),
    )
    diff = compare_reports(old, new)
    assert diff.equal and diff.changes == []
    # the fingerprint; the port probed once; the auth answer and the TLS fact (a failed probe cannot
    # tell "no TLS"); the version; service, product, version and TLS where the old probe timed out
    assert diff.facts_one_side == 1 + 1 + 2 + 1 + 4
    text = diff.to_text("a", "b")
    assert text.endswith(
        "(9 probe fact(s) known in one report only (the probes ran in one scan only, could not tell, "
        "or an older report lacks the fact): not counted)\nno differences\n"
    )


def test_another_service_is_one_change_not_one_per_fact() -> None:
    old = probed(ServiceInfo("https", "", "nginx", None, tls=CERTIFICATE))
    new = probed(ServiceInfo("redis", "", "Redis", "7.0.15", auth="none"))
    assert [(c.kind, c.old, c.new) for c in compare_reports(old, new).changes] == [
        ("service", "https nginx", "redis Redis 7.0.15")
    ]


def test_reports_written_before_fingerprints_read_back_without_one(tmp_path: Path) -> None:
    report = probed(ServiceInfo("https", "", tls=CERTIFICATE))
    path = tmp_path / "new.json"
    write_report(report, path)
    assert read_report(path).services == report.services  # the fingerprint round-trips
    document = json.loads(path.read_text())
    del document["results"][0]["probe"]["tls"]["fingerprint_sha256"]
    older = tmp_path / "old.json"
    older.write_text(json.dumps(document))
    [info] = read_report(older).services.values()
    assert info.tls is not None and info.tls.fingerprint_sha256 is None
    assert compare_reports(read_report(older), report).facts_one_side == 1
