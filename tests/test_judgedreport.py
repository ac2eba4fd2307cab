"""The judged report: each expectation's verdict as a type, its JSON form, and reading a report file
(JSON with or without verdicts, nmap XML) into the one typed report the HTML page takes."""

from __future__ import annotations

from pathlib import Path

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.htmlreport import page_data
from pytest_portcheck.judgedreport import ExpectationVerdict, FoundState, JudgedReport, read_judged_report
from pytest_portcheck.nmapxml import write_nmap_xml
from pytest_portcheck.ports import Protocol
from pytest_portcheck.results import ScanReport, write_report
from pytest_portcheck.services import ServiceInfo

VERDICT = ExpectationVerdict(
    host="web",
    target="tcp/22",
    expected="closed",
    verdict="failed",
    nodeid="inv.yml::web::tcp/22::closed",
    message="web tcp/22: expected closed, found OPEN",
    found=(FoundState("127.0.0.1", "open", "syn-ack", 0.25), FoundState("::1", "closed", "conn-refused")),
    services=("127.0.0.1 ssh (OpenSSH 9.2p1)",),
)


def scan() -> ScanReport:
    results = [
        ProbeResult("web", "127.0.0.1", Protocol.TCP, 22, PortState.OPEN, "syn-ack", 0.25, 1),
        ProbeResult("web", "::1", Protocol.TCP, 22, PortState.CLOSED, "conn-refused", 0.1, 1),
    ]
    services = {
        ("127.0.0.1", Protocol.TCP, 22): ServiceInfo("ssh", "SSH-2.0-OpenSSH_9.2p1", "OpenSSH", "9.2p1")
    }
    resolutions = [Resolution("web", ("127.0.0.1", "::1"))]
    return ScanReport(
        resolutions, results, ScanSettings(), "2026-11-27T00:00:00+00:00", 0.5, services=services
    )


def test_an_expectation_verdict_is_written_as_the_plugin_always_wrote_it_and_read_back() -> None:
    document = VERDICT.to_dict()
    assert document == {
        "nodeid": "inv.yml::web::tcp/22::closed", "host": "web", "target": "tcp/22", "expected": "closed",
        "verdict": "failed", "message": "web tcp/22: expected closed, found OPEN",
        "found": [
            {"address": "127.0.0.1", "state": "open", "reason": "syn-ack", "latency_ms": 0.25},
            {"address": "::1", "state": "closed", "reason": "conn-refused", "latency_ms": None},
        ],
        "services": ["127.0.0.1 ssh (OpenSSH 9.2p1)"],
    }  # fmt: skip
    assert list(document) == [
        "nodeid",
        "host",
        "target",
        "expected",
        "verdict",
        "message",
        "found",
        "services",
    ]
    assert ExpectationVerdict.from_dict(document) == VERDICT
    assert VERDICT.inventory == "inv.yml"
    # The fields the report schema leaves optional default as an older writer meant them.
    bare = ExpectationVerdict.from_dict(
        {"host": "h", "target": "tcp/1", "expected": "open", "verdict": "passed"}
    )
    assert (bare.nodeid, bare.message, bare.found, bare.services) == ("", "", (), ())


def test_a_report_file_reads_back_into_the_page_the_session_drew(tmp_path: Path) -> None:
    judged = JudgedReport(scan(), [VERDICT])
    path = tmp_path / "report.json"
    write_report(judged.scan, path, judged.expectations_document())
    back = read_judged_report(path)
    assert list(back.expectations) == [VERDICT]
    assert back.scan.results == judged.scan.results and back.scan.services == judged.scan.services
    # `portcheck report FILE` draws the page the plugin drew from the same session.
    assert page_data(back) == page_data(judged)
    cell = page_data(back)["grid"][0][0]
    assert cell["verdict"] == "failed" and cell["details"]["identified"].startswith("ssh (OpenSSH 9.2p1)")


def test_plain_scans_and_nmap_xml_have_no_verdicts(tmp_path: Path) -> None:
    json_path, xml_path = tmp_path / "scan.json", tmp_path / "scan.xml"
    write_report(scan(), json_path)
    write_nmap_xml(scan(), xml_path)
    for path in (json_path, xml_path):
        judged = read_judged_report(path)
        assert judged.expectations == ()
        assert [(r.address, r.port, r.state) for r in judged.scan.results] == [
            ("127.0.0.1", 22, PortState.OPEN),
            ("::1", 22, PortState.CLOSED),
        ]
        assert page_data(judged)["drift"] == []
