"""The report format's one declaration (report/schema.py over report/fields.py), in memory: it covers
every key the writers write, its fast path agrees with it, each problem of a shard report is named by
its JSON path, and reports of older writers still read back."""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from hypothesis import given
from hypothesis import strategies as st

from pytest_portcheck.engine import (
    AddressQuality,
    PortState,
    ProbeResult,
    Resolution,
    ScanSettings,
    ScanStats,
)
from pytest_portcheck.inventory.load import parse_inventory
from pytest_portcheck.judge.findings import FindingKind
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import NameAnswer, ServiceInfo, TlsInfo
from pytest_portcheck.report import schema
from pytest_portcheck.report.decode import read_report, result_from_dict
from pytest_portcheck.report.encode import write_report
from pytest_portcheck.report.fields import ListOf, Obj, ReportProblem, member, walk
from pytest_portcheck.report.judged import (
    DeclaredAt,
    FoundService,
    FoundState,
    ItemOutcome,
    ItemWaiver,
    JudgedReport,
)
from pytest_portcheck.report.model import ReportError, ScanReport
from pytest_portcheck.report.schema import REPORT, RESULT, SHARD_REPORT, _plain_result, parse_report_json
from pytest_portcheck.sharding.plan import plan_inventory
from pytest_portcheck.sharding.report import (
    ShardInfo,
    ShardScanReport,
    load_report,
    summarise,
    write_shard_report,
)

TLS = TlsInfo(
    "TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=web", "CN=ca", "2027-01-01T00:00:00+00:00", 30, True,
    below_minimum="TLSv1.1", certificate_error=None, fingerprint_sha256="ab" * 32,
)  # fmt: skip
PROBE = ServiceInfo(
    "https", "HTTP/1.1 200 OK", "nginx", "1.22.1", TLS, auth="none", error=None, local_failure=False,
    auth_note="anonymous", names=(NameAnswer("web.test", True, None), NameAnswer(None, False, "mismatch")),
)  # fmt: skip
KEY = ("127.0.0.1", Protocol.TCP, 443)
INVENTORY = "hosts:\n  web:\n    address: 127.0.0.1\n    open: [{port: 443, service: https}]\n    closed: [80]\n"


def every_feature() -> JudgedReport:
    """A report using every key the writers know: probe with TLS and names, asked, quality, outcomes."""
    results = [
        ProbeResult("web", "127.0.0.1", Protocol.TCP, 443, PortState.OPEN, "syn-ack", 0.2, 1),
        ProbeResult("web", "127.0.0.1", Protocol.TCP, 80, PortState.CLOSED, "conn-refused", None, 2),
    ]
    stats = ScanStats()
    stats.note(AddressQuality("127.0.0.1", 100.0, 2, 3, 1, 0, 1))
    scan = ScanReport(
        [Resolution("web", ("127.0.0.1",)), Resolution("gone", (), "dns-error")], results,
        ScanSettings(max_rate=500.0, min_rate=5.0), "2026-11-27T00:00:00+00:00", 1.0, stats, False,
        ["pytest"], {KEY: PROBE}, {KEY: [("https", None, False, None, None, None)]},
    )  # fmt: skip
    outcome = ItemOutcome(
        "web", "tcp/443", "open", "waived", "inv.yml::web::tcp/443::open", 4, "drifted",
        (FoundState("127.0.0.1", "open", "syn-ack", 0.2, 443),), (FoundService("127.0.0.1", "https nginx"),),
        ItemWaiver(datetime.date(2026, 12, 31), "ticket"), ("::1",), FindingKind.DECLARED_UNREACHABLE, "dmz",
        DeclaredAt("compose.yml", 5, 'service web ports[0] "443:443"'),
    )  # fmt: skip
    return JudgedReport(scan, (outcome,))


def declared_paths(kind: Obj, path: str = "$") -> set[str]:
    """Every key path the declaration names; an object in a list is entered as ``KEY[]``."""
    found = set()
    for field in kind.fields:
        where = member(path, field.name)
        found.add(where)
        inner = field.kind
        if isinstance(inner, ListOf):
            inner, where = inner.item, where + "[]"
        if isinstance(inner, Obj):
            found |= declared_paths(inner, where)
    return found


def written_paths(document: Any) -> set[str]:
    """Every key path of a document in the same spelling: indices as ``[]``, a list's (or a row's)
    own elements not entered."""
    paths = {re.sub(r"\[\d+\]", "[]", path) for path, _value in walk(document)}
    return {re.sub(r"(\[\])+$", "", path) for path in paths}


def test_the_declaration_names_every_key_the_version_1_writer_writes(tmp_path: Path) -> None:
    judged = every_feature()
    path = tmp_path / "r.json"
    write_report(judged.scan, path, {**judged.expectations_document(), "run_id": "r-1"})
    written = written_paths(json.loads(path.read_text()))
    assert len(written) > 60 and not written - declared_paths(REPORT)
    read = read_report(path)
    assert read.asked == {KEY: [("https", None, False, None, None, None)]}
    assert read.services == {KEY: PROBE} and read.resolutions == judged.scan.resolutions
    assert read.stats.addresses == judged.scan.stats.addresses and read.results == judged.scan.results


def test_the_declaration_names_every_key_the_shard_writer_writes(tmp_path: Path) -> None:
    inventory = parse_inventory(INVENTORY, tmp_path / "inv.yml")
    plan = plan_inventory(inventory)
    results = every_feature().scan.results
    report = ShardScanReport(
        ShardInfo(plan.digest, 1, 1, "dmz"), plan, [Resolution("127.0.0.1", ("127.0.0.1",))],
        summarise(results), ScanSettings(), "2026-11-27T00:00:00+00:00", 0.5, services={KEY: PROBE},
        run_id="r", asked={KEY: [("https", None, False, None, None, None)]},
    )  # fmt: skip
    path = tmp_path / "s.json"
    write_shard_report(report, path)
    written = written_paths(json.loads(path.read_text()))
    assert len(written) > 40 and not written - declared_paths(SHARD_REPORT)
    assert load_report(path).services[KEY] == PROBE


def shard_document(tmp_path: Path) -> dict[str, Any]:
    inventory = parse_inventory(INVENTORY, tmp_path / "inv.yml")
    plan = plan_inventory(inventory)
    report = ShardScanReport(
        ShardInfo(plan.digest, 1, 1), plan, [Resolution("127.0.0.1", ("127.0.0.1",))],
        summarise(every_feature().scan.results), ScanSettings(), "2026-11-27T00:00:00+00:00", 0.5,
        services={KEY: PROBE}, run_id="r", asked={KEY: [("https", None, False, None, None, None)]},
    )  # fmt: skip
    write_shard_report(report, tmp_path / "s.json")
    document: dict[str, Any] = json.loads((tmp_path / "s.json").read_text())
    return document


SHARD_PROBLEMS: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "shard-missing": (lambda d: d.pop("shard"), "$.shard: missing (expected an object)"),
    "index-over-count": (
        lambda d: d["shard"].update(index=2), "$.shard.index: expected at most shard.count (1), not 2"
    ),
    "count-zero": (lambda d: d["shard"].update(count=0), "$.shard.count: expected an integer of at least 1, not 0"),
    "row-short": (
        lambda d: d["addresses"][0].pop(),
        "$.addresses[0]: expected an array [host, address, proto, usual, reason, count, exceptions], not a list",
    ),
    "row-object": (
        lambda d: d["addresses"].__setitem__(0, {"host": "web"}),
        "$.addresses[0]: expected an array [host, address, proto, usual, reason, count, exceptions], "
        "not an object",
    ),
    "exception-port": (
        lambda d: d["addresses"][0][6][0].__setitem__(0, "443"),
        '$.addresses[0][6][0][0]: expected an integer 0 to 65535, not "443"',
    ),
    "usual-state": (
        lambda d: d["addresses"][0].__setitem__(3, "shut"),
        '$.addresses[0][3]: expected one of open, closed, filtered, open|filtered, error, not "shut"',
    ),
    "plan-timeout": (
        lambda d: d["plan"][0].__setitem__(1, -1),
        "$.plan[0][1]: expected a number more than 0, not -1",
    ),
    "requirement-port": (
        lambda d: d["plan"][0][4][0].__setitem__(1, 0),
        "$.plan[0][4][0][1]: expected an integer 1 to 65535, not 0",
    ),
    "service-asked": (
        lambda d: d["services"][0]["asked"].__setitem__(0, ["https"]),
        "$.services[0].asked[0]: expected an array [service, min_version, verify, expires_in_days, auth, name], "
        "not a list",
    ),
    "probe-tls": (
        lambda d: d["services"][0]["probe"]["tls"].update(days_left="30"),
        '$.services[0].probe.tls.days_left: expected an integer -1000000 to 1000000, not "30"',
    ),
}


@pytest.mark.parametrize("name", sorted(SHARD_PROBLEMS))
def test_each_problem_of_a_shard_report_is_named_by_its_json_path(tmp_path: Path, name: str) -> None:
    change, problem = SHARD_PROBLEMS[name]
    document = shard_document(tmp_path)
    change(document)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ReportError) as caught:
        load_report(path)
    assert str(caught.value) == f"{path}: not a valid portcheck JSON report: {problem}"


def test_a_report_of_the_oldest_shape_reads_back(tmp_path: Path) -> None:
    """Only the required keys, as the first version 1 writers wrote: every later key takes its default,
    and a probe that does not say what it was run for reads as "not said" (None), not "nothing"."""
    result = {"host": "web", "address": "127.0.0.1", "proto": "tcp", "port": 443, "state": "open",
              "reason": "syn-ack", "probe": {"service": "https"}}  # fmt: skip
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"version": 1, "results": [result]}))
    report = read_report(path)
    assert report.results[0].attempts == 0 and report.results[0].latency_ms is None
    assert report.services[KEY].service == "https" and report.asked is None
    assert not report.interrupted and report.command == []


RESULT_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 70000), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["tcp", "udp", "open", "closed", "x", ""]), st.lists(st.integers(), max_size=1),
)  # fmt: skip
PLAIN_KEYS = ("host", "address", "proto", "port", "state", "reason", "service", "latency_ms", "attempts")


@given(st.fixed_dictionaries({key: RESULT_VALUES for key in PLAIN_KEYS}))
def test_the_fast_path_accepts_only_results_the_declaration_accepts(result: dict[str, Any]) -> None:
    try:
        RESULT.check(result, "$")
    except ReportProblem:
        assert not _plain_result(result)
    else:
        assert _plain_result(result) == (set(result) == set(PLAIN_KEYS))


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        ({"kind": "bogus"}, r"\$\.expectations\[0\]\.kind: expected one of unexpected-open-port, .*, not \"bogus\""),
        ({"declared_at": {"path": "c.yml", "line": "5", "description": "d"}},
         r"\$\.expectations\[0\]\.declared_at\.line: expected an integer"),
        ({"declared_at": {"path": "c.yml", "line": 5}}, r"\$\.expectations\[0\]\.declared_at\.description: missing"),
        ({"found": [{"address": "a", "state": "open", "reason": "r", "port": 70000}]},
         r"\$\.expectations\[0\]\.found\[0\]\.port: expected an integer 0 to 65535"),
    ],
)  # fmt: skip
def test_the_outcome_fields_of_sources_and_findings_are_named_by_path(
    tmp_path: Path, expectation: dict[str, Any], message: str
) -> None:
    base = {"host": "web", "target": "tcp/80", "expected": "open", "verdict": "failed"}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"version": 1, "results": [], "expectations": [{**base, **expectation}]}))
    with pytest.raises(ReportError, match=message):
        read_report(path)


def test_refused_numbers_are_named_where_they_sit() -> None:
    with pytest.raises(ReportProblem, match=r"^\$\.hosts\[1\]\.x: Infinity is not a number a report can hold$"):
        parse_report_json('{"hosts": [{}, {"x": Infinity}]}')
    assert parse_report_json('{"a": 1e3, "b": [2.5E-1]}') == {"a": 1000.0, "b": [0.25]}


@pytest.mark.parametrize("name", ["REPORT", "SHARD_REPORT"])
def test_the_docs_show_the_field_tables_of_the_declaration(name: str) -> None:
    # The suite may run from a copy of tests/ beside the installed wheel: the page is in the checkout.
    checkout = Path(os.environ.get("PORTCHECK_SOURCE") or REPO)
    page = (checkout / "docs" / "reports.md").read_text(encoding="utf-8")
    shown = page.split(f"<!-- generated: {name} -->\n", 1)[1].split("<!-- end generated -->", 1)[0]
    assert shown == schema.field_table(getattr(schema, name)), (
        f"docs/reports.md's {name} table differs from the declaration: paste schema.field_table({name})"
    )


VALID_RESULTS = st.fixed_dictionaries(
    {
        "host": st.text(max_size=5), "address": st.none() | st.sampled_from(["127.0.0.1", "::1"]),
        "proto": st.sampled_from(["tcp", "udp"]), "port": st.integers(0, 65535),
        "state": st.sampled_from([state.value for state in PortState]), "reason": st.text(max_size=5),
    },
    optional={
        "service": st.text(max_size=3), "attempts": st.integers(0, 9),
        "latency_ms": st.none() | st.integers(0, 9) | st.floats(0, 1e6),
    },
)  # fmt: skip


@given(VALID_RESULTS)
def test_the_spelled_out_result_reader_reads_what_the_declaration_reads(result: dict[str, Any]) -> None:
    RESULT.check(result, "$")
    assert result_from_dict(result) == RESULT.load(result)
