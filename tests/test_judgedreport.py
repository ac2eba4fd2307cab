"""The judged report: each item's outcome as a type, its two JSON forms (a report's entry, and the
compact one an item hands the controller and JUnit), and reading a report file (JSON with or without
verdicts, nmap XML) into the one typed report the HTML page takes."""

from __future__ import annotations

import datetime
import json
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.encode import write_report
from pytest_portcheck.report.html import page_data
from pytest_portcheck.report.judged import (
    FoundService,
    FoundState,
    ItemOutcome,
    ItemWaiver,
    JudgedReport,
    read_judged_report,
)
from pytest_portcheck.report.model import ReportError, ScanReport
from pytest_portcheck.report.nmapxml import write_nmap_xml

VERDICT = ItemOutcome(
    host="web",
    target="tcp/22",
    expected="closed",
    verdict="failed",
    nodeid="inv.yml::web::tcp/22::closed",
    line=7,
    message="web tcp/22: expected closed, found OPEN",
    found=(FoundState("127.0.0.1", "open", "syn-ack", 0.25), FoundState("::1", "closed", "conn-refused")),
    services=(FoundService("127.0.0.1", "ssh (OpenSSH 9.2p1)"),),
    waiver=ItemWaiver(datetime.date(2026, 12, 1), "ticket 12"),
    silent=("::1",),
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


def test_an_outcome_is_written_as_the_plugin_always_wrote_it_plus_line_waiver_silence() -> None:
    document = VERDICT.to_dict()
    assert document == {
        "nodeid": "inv.yml::web::tcp/22::closed", "host": "web", "target": "tcp/22", "expected": "closed",
        "verdict": "failed", "line": 7, "message": "web tcp/22: expected closed, found OPEN",
        "found": [
            {"address": "127.0.0.1", "state": "open", "reason": "syn-ack", "latency_ms": 0.25},
            {"address": "::1", "state": "closed", "reason": "conn-refused", "latency_ms": None},
        ],
        "services": ["127.0.0.1 ssh (OpenSSH 9.2p1)"],
        "waiver": {"until": "2026-12-01", "reason": "ticket 12"},
        "silent": ["::1"],
    }  # fmt: skip
    assert ItemOutcome.from_dict(document) == VERDICT
    assert VERDICT.inventory == "inv.yml"
    assert VERDICT.services[0].service == "ssh"
    # The fields the report schema leaves optional default as an older writer meant them.
    bare = ItemOutcome.from_dict({"host": "h", "target": "tcp/1", "expected": "open", "verdict": "passed"})
    assert (bare.nodeid, bare.line, bare.message, bare.found, bare.services) == ("", 0, "", (), ())
    assert (bare.waiver, bare.silent) == (None, ())


def test_the_compact_form_leaves_out_the_node_id_and_what_is_empty() -> None:
    passed = ItemOutcome(
        host="web", target="tcp/80", expected="open", verdict="passed", nodeid="inv.yml::web::tcp/80::open",
        line=3, found=(FoundState("127.0.0.1", "open", "syn-ack", 0.1),),
    )  # fmt: skip
    compact = passed.to_dict(compact=True)
    assert compact == {
        "host": "web", "target": "tcp/80", "expected": "open", "verdict": "passed", "line": 3,
        "found": [{"address": "127.0.0.1", "state": "open", "reason": "syn-ack", "latency_ms": 0.1}],
    }  # fmt: skip
    # Read back with the node id its test report names: the same outcome, JSON text or not.
    assert ItemOutcome.from_dict(compact, passed.nodeid) == passed
    assert ItemOutcome.from_dict(json.loads(json.dumps(compact)), passed.nodeid) == passed
    full = VERDICT.to_dict(compact=True)
    assert "nodeid" not in full and ItemOutcome.from_dict(full, VERDICT.nodeid) == VERDICT


def test_only_outcomes_that_say_more_than_a_pass_are_notable() -> None:
    plain = ItemOutcome(
        "web", "tcp/80", "open", "passed", found=(FoundState("127.0.0.1", "open", "syn-ack"),)
    )
    assert not plain.notable
    assert ItemOutcome("web", "tcp/80", "open", "failed").notable
    assert ItemOutcome("web", "tcp/80", "open", "passed", services=(FoundService("::1", "http"),)).notable
    assert ItemOutcome("web", "tcp/80", "closed", "passed", silent=("::1",)).notable
    assert ItemOutcome("web", "tcp/80", "open", "passed", waiver=VERDICT.waiver).notable


def test_a_waiver_note_warns_two_weeks_ahead_and_after_expiry() -> None:
    assert VERDICT.waiver_note(datetime.date(2026, 11, 1)) is None
    assert (
        VERDICT.waiver_note(datetime.date(2026, 11, 20)) == "expires in 11 day(s), on 2026-12-01: ticket 12"
    )
    assert (
        VERDICT.waiver_note(datetime.date(2026, 12, 2))
        == "expired on 2026-12-01 (no longer waiving): ticket 12"
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"line": "7"}, '$.expectations[0].line: expected an integer of at least 0, not "7"'),
        ({"waiver": {"until": "2026-12-01"}}, "$.expectations[0].waiver.reason: missing (expected a string)"),
        (
            {"waiver": {"until": "soon", "reason": "x"}},
            '$.expectations[0].waiver.until: expected a date like 2026-12-31, not "soon"',
        ),
        ({"silent": "::1"}, '$.expectations[0].silent: expected a list, not "::1"'),
    ],
)
def test_a_report_with_a_broken_outcome_is_refused_naming_the_field(
    tmp_path: Path, change: dict[str, object], problem: str
) -> None:
    path = tmp_path / "report.json"
    write_report(scan(), path, {"expectations": [{**VERDICT.to_dict(), **change}]})
    with pytest.raises(ReportError) as caught:
        read_judged_report(path)
    assert str(caught.value) == f"{path}: not a valid portcheck JSON report: {problem}"


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


def test_an_outcome_keeps_its_kind_vantage_port_and_declaring_line_through_json() -> None:
    """What ``portcheck report --sarif`` needs of each expectation (issue 20)."""
    from pytest_portcheck.judge.findings import FindingKind
    from pytest_portcheck.report.judged import DeclaredAt

    outcome = replace(
        VERDICT,
        kind=FindingKind.UNEXPECTED_OPEN,
        vantage="dmz",
        declared_at=DeclaredAt("/srv/deploy/compose.yml", 9, 'service db ports[0] "5432:5432"'),
        found=(FoundState("127.0.0.1", "open", "syn-ack", 0.25),),
    )
    ranged = replace(outcome, target="tcp/1-1024", found=(FoundState("127.0.0.1", "open", "syn-ack", 0.25, 80),))
    for compact in (False, True):
        document = json.loads(json.dumps(outcome.to_dict(compact=compact)))
        assert document["kind"] == "unexpected-open-port" and document["vantage"] == "dmz"
        assert document["declared_at"] == {
            "path": "/srv/deploy/compose.yml", "line": 9, "description": 'service db ports[0] "5432:5432"'
        }
        assert "port" not in document["found"][0]  # a port item's own port, not repeated
        assert ItemOutcome.from_dict(document, outcome.nodeid) == outcome
        document = json.loads(json.dumps(ranged.to_dict(compact=compact)))
        assert document["found"][0]["port"] == 80  # a range's item names the port
        assert ItemOutcome.from_dict(document, outcome.nodeid) == ranged
    broken = outcome.to_dict() | {"kind": "no-such-kind"}
    with pytest.raises(ValueError):
        ItemOutcome.from_dict(broken)
