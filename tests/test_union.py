"""The judge's evidence from reports, in memory: reports written by the real writers and read back,
judged without sockets (as h11 tests its state machine). Grouped by what a verdict rests on: the
shares of one run, one run only, fresh evidence, evidence that matches the requirement, signatures,
malformed reports, and the same judge for a scan and for its reports."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.inventory.load import parse_inventory
from pytest_portcheck.inventory.model import Expectation, HostSpec, Inventory
from pytest_portcheck.judge.verdict import Judgement, Verdict
from pytest_portcheck.pipeline.inventory import asked_for
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo, TlsInfo
from pytest_portcheck.report.encode import write_report
from pytest_portcheck.report.model import ScanReport
from pytest_portcheck.sharding.plan import ShardSplit, plan_inventory
from pytest_portcheck.sharding.report import (
    ShardInfo,
    ShardScanReport,
    load_report,
    summarise,
    write_shard_report,
)
from pytest_portcheck.sharding.union import ReportUnion

INVENTORY = 'hosts:\n  dns:\n    address: 127.0.0.9\n    only_open: ["53/udp"]\n    range: "1-200/udp"\n'


def write_shares(folder: Path, text: str, states: dict[int, PortState], count: int = 3) -> list[Path]:
    inventory = parse_inventory(text, folder / "inv.yml")
    plan = plan_inventory(inventory)
    split = ShardSplit(plan.total, plan.digest, count)
    paths = []
    for index in range(1, count + 1):
        results = []
        for unit in split.units(index):
            host, proto, port = plan.unit(unit)
            state = states.get(port, PortState.OPEN_FILTERED)
            reason = {PortState.OPEN: "udp-response", PortState.CLOSED: "port-unreach"}.get(
                state, "no-response"
            )
            results.append(ProbeResult(host.address, host.address, proto, port, state, reason, None, 2))
        report = ShardScanReport(
            ShardInfo(plan.digest, index, count), plan, [Resolution("127.0.0.9", ("127.0.0.9",))],
            summarise(results), ScanSettings(), "", 0.0, run_id="run-1",
        )  # fmt: skip
        paths.append(folder / f"shard-{index}.json")
        write_shard_report(report, paths[-1])
    return paths


def judged(folder: Path, text: str, paths: list[Path]) -> tuple[Verdict, str]:
    inventory = parse_inventory(text, folder / "inv.yml")
    union = ReportUnion([load_report(p) for p in paths], plan_inventory(inventory))
    host = inventory.hosts[0]
    assert host.range_rule is not None
    judgement = union.judge_range(host, host.range_rule)
    return judgement.verdict, judgement.message


def test_silent_udp_ports_fail_a_range_unless_silence_counts(tmp_path: Path) -> None:
    states = {53: PortState.OPEN, **{port: PortState.CLOSED for port in range(1, 200) if port != 77}}
    paths = write_shares(tmp_path, INVENTORY, states)
    verdict, message = judged(tmp_path, INVENTORY, paths)
    # 77 and 200 were silent: listed or folded into their share's usual state, both are found.
    assert verdict is Verdict.FAILED and "2 port(s) in udp/1-200 gave no reply" in message
    assert "(open|filtered): 77,200 " in message
    quiet = INVENTORY.replace("    range:", "    silence_counts_as_closed: true\n    range:")
    assert judged(tmp_path, quiet, write_shares(tmp_path, quiet, states))[0] is Verdict.PASSED


def test_a_missing_share_is_an_error_naming_it(tmp_path: Path) -> None:
    states = {port: PortState.CLOSED for port in range(1, 201)}
    states[53] = PortState.OPEN
    paths = write_shares(tmp_path, INVENTORY, states)
    assert judged(tmp_path, INVENTORY, paths)[0] is Verdict.PASSED
    verdict, message = judged(tmp_path, INVENTORY, paths[:2])
    assert verdict is Verdict.ERROR and "shard 3/3 is missing" in message


# --- builders: a run of shard reports through the real writer ------------------------------------

TODAY = "2026-11-27T08:00:00+00:00"
YESTERDAY = "2026-11-26T08:00:00+00:00"
NOW = datetime.datetime(2026, 11, 27, 9, 0, tzinfo=datetime.timezone.utc)
REASONS = {
    PortState.OPEN: "syn-ack", PortState.CLOSED: "conn-refused", PortState.FILTERED: "no-response",
    PortState.OPEN_FILTERED: "no-response", PortState.ERROR: "local-error: EMFILE",
}  # fmt: skip


def stamp(path: Path, **fields: Any) -> None:
    """Add fields to a written report (run_id, started, ...), as a newer writer puts them."""
    document = json.loads(path.read_text())
    document.update(fields)
    path.write_text(json.dumps(document, indent=1))


def write_run(
    folder: Path,
    text: str,
    states: Mapping[tuple[str, int], PortState],
    count: int,
    *,
    run_id: str | None,
    started: str = TODAY,
    vantage: str | None = None,
    name: str = "shard",
    services: Mapping[ResultKey, ServiceInfo] | None = None,
    asked: Mapping[ResultKey, Sequence[Sequence[Any]]] | None = None,
) -> list[Path]:
    """Shard reports of ``text`` for one run: every unit closed unless ``states`` says otherwise (by
    (address, port)); each host resolves to its address. Services go with the share holding the port."""
    inventory = parse_inventory(text, folder / "inv.yml")
    plan = plan_inventory(inventory)
    split = ShardSplit(plan.total, plan.digest, count)
    resolutions = [Resolution(host.address, (host.address,)) for host in plan.hosts]
    paths = []
    for index in range(1, count + 1):
        results = []
        for unit in split.units(index):
            host, proto, port = plan.unit(unit)
            state = states.get((host.address, port), PortState.CLOSED)
            results.append(
                ProbeResult(host.address, host.address, proto, port, state, REASONS[state], 0.1, 1)
            )
        held = {
            key
            for key in (services or {})
            if split.shard_of(plan.unit_index(key[0], key[1], key[2]) or 0) == index
        }
        report = ShardScanReport(
            ShardInfo(plan.digest, index, count, vantage), plan, resolutions, summarise(results),
            ScanSettings(), started, 0.0, services={key: (services or {})[key] for key in held},
        )  # fmt: skip
        path = folder / f"{name}-{index}.json"
        write_shard_report(report, path)
        document = json.loads(path.read_text())
        for entry in document.get("services", []):
            key = (entry["address"], Protocol(entry["proto"]), entry["port"])
            entry["asked"] = [list(a) for a in (asked or {}).get(key, [])]
        if run_id is not None:
            document["run_id"] = run_id
        path.write_text(json.dumps(document, indent=1))
        paths.append(path)
    return paths


def union_of(paths: Sequence[Path], inventory: Inventory, **options: Any) -> ReportUnion:
    return ReportUnion([load_report(p) for p in paths], plan_inventory(inventory), **options)


def item(
    inventory: Inventory, host: str, port: int, vantage: str | None = None
) -> tuple[HostSpec, Expectation]:
    spec = next(h for h in inventory.hosts if h.name == host)
    return spec, next(e for e in spec.expectations if e.port == port and e.vantage == vantage)


def port_verdict(union: ReportUnion, inventory: Inventory, host: str, port: int) -> Judgement:
    return union.judge_port(*item(inventory, host, port))


def range_verdict(union: ReportUnion, inventory: Inventory, host: str) -> Judgement:
    spec = next(h for h in inventory.hosts if h.name == host)
    assert spec.range_rule is not None
    return union.judge_range(spec, spec.range_rule)


WEB = """\
hosts:
  web:
    address: 127.0.0.20
    closed: [8080]
  box:
    address: 127.0.0.21
    only_open: [22]
    range: "1-300"
"""


# --- one run: the newest, whole, never mixed with another --------------------------------------


@pytest.mark.parametrize("yesterday_name", ["a-yesterday", "z-yesterday"])
def test_two_complete_shard_sets_the_newest_run_is_judged_whatever_the_file_names(
    tmp_path: Path, yesterday_name: str
) -> None:
    # Yesterday 8080 and 200 were closed (one share); today both are open (two shares).
    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    old = write_run(tmp_path, WEB, {}, 1, run_id="nightly-26", started=YESTERDAY, name=yesterday_name)
    opened = {("127.0.0.20", 8080): PortState.OPEN, ("127.0.0.21", 200): PortState.OPEN}
    new = write_run(tmp_path, WEB, opened, 2, run_id="nightly-27", started=TODAY, name="m-today")
    union = union_of(sorted([*old, *new]), inventory)
    port, ranged = port_verdict(union, inventory, "web", 8080), range_verdict(union, inventory, "box")
    # The port item and the range item read the same run: both see today's open ports.
    assert port.verdict is Verdict.FAILED and "expected closed, found OPEN" in port.message
    assert (
        ranged.verdict is Verdict.FAILED and "1 unexpected open port(s) in tcp/1-300: 200" in ranged.message
    )


def test_a_missing_share_is_never_filled_by_a_plain_report(tmp_path: Path) -> None:
    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    # An older plain scan saw every port closed; today's run gave only share 2 of 2.
    results = [ProbeResult("127.0.0.20", "127.0.0.20", Protocol.TCP, 8080, PortState.CLOSED, "conn-refused")]
    results += [
        ProbeResult("127.0.0.21", "127.0.0.21", Protocol.TCP, p, PortState.CLOSED, "conn-refused")
        for p in range(1, 301)
    ]
    plain = tmp_path / "old-v1.json"
    resolutions = [Resolution("127.0.0.20", ("127.0.0.20",)), Resolution("127.0.0.21", ("127.0.0.21",))]
    write_report(ScanReport(resolutions, results, ScanSettings(), YESTERDAY, 1.0), plain)
    opened = {("127.0.0.20", 8080): PortState.OPEN, ("127.0.0.21", 200): PortState.OPEN}
    today = write_run(tmp_path, WEB, opened, 2, run_id="nightly-27", started=TODAY)
    union = union_of([plain, today[1]], inventory)
    for judgement in (port_verdict(union, inventory, "web", 8080), range_verdict(union, inventory, "box")):
        assert judgement.verdict is not Verdict.PASSED, judgement.message
    missing = [
        j for j in (port_verdict(union, inventory, "web", 8080), range_verdict(union, inventory, "box"))
        if "shard 1/2 is missing" in j.message
    ]  # fmt: skip
    assert missing, "the missing share is named"


def test_a_broken_share_of_the_newest_run_is_an_error_not_filled_from_an_older_run(tmp_path: Path) -> None:
    from pytest_portcheck.sharding.union import Freshness

    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    write_run(tmp_path, WEB, {}, 2, run_id="nightly-26", started=YESTERDAY, name="old")
    new = write_run(tmp_path, WEB, {}, 2, run_id="nightly-27", started=TODAY, name="new")
    stamp(new[0], interrupted=True)
    paths = sorted(tmp_path.glob("*.json"))
    union = union_of(paths, inventory, freshness=Freshness(now=NOW))
    assert range_verdict(union, inventory, "box").verdict is Verdict.ERROR
    assert "shard 1/2 was interrupted" in range_verdict(union, inventory, "box").message
    assert {ignored.path for ignored in union.ignored} == {str(p) for p in paths if "old" in p.name}
    assert all("another run (nightly-26" in ignored.why for ignored in union.ignored)
    # Duplicated: the same share twice in the newest run.
    (tmp_path / "new-1b.json").write_text(
        (tmp_path / "old-1.json").read_text().replace("nightly-26", "nightly-27")
    )
    stamp(new[0], interrupted=False)
    union = union_of(sorted(tmp_path.glob("*.json")), inventory)
    assert "shard 1/2 was given twice" in range_verdict(union, inventory, "box").message


def test_the_run_named_is_judged_and_an_unknown_run_is_an_error(tmp_path: Path) -> None:
    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    write_run(
        tmp_path,
        WEB,
        {("127.0.0.20", 8080): PortState.OPEN},
        1,
        run_id="nightly-26",
        started=YESTERDAY,
        name="a",
    )
    write_run(tmp_path, WEB, {}, 1, run_id="nightly-27", started=TODAY, name="b")
    paths = sorted(tmp_path.glob("*.json"))
    assert port_verdict(union_of(paths, inventory), inventory, "web", 8080).verdict is Verdict.PASSED
    named = union_of(paths, inventory, run_id="nightly-26")
    assert port_verdict(named, inventory, "web", 8080).verdict is Verdict.FAILED
    unknown = port_verdict(union_of(paths, inventory, run_id="nightly-99"), inventory, "web", 8080)
    assert unknown.verdict is Verdict.ERROR
    assert (
        "no report of run nightly-99 (--portcheck-run-id): runs found: nightly-26, nightly-27"
        in unknown.message
    )


def test_reports_without_a_run_id_are_each_a_run_of_their_own(tmp_path: Path) -> None:
    # Written by a version before run ids: nothing proves two files belong together.
    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    paths = write_run(tmp_path, WEB, {}, 2, run_id=None)
    stamp(paths[1], started=YESTERDAY)
    union = union_of(paths, inventory)
    assert union.run == f"{paths[0]} (written without a run id: a run of its own)"
    assert "shard 2/2 is missing" in range_verdict(union, inventory, "box").message
    assert any(
        line.startswith("hint: shares of other runs were ignored") for line in union.summary_lines("inv.yml")
    )


def test_two_shard_sets_or_plain_and_shard_reports_in_one_run_are_an_error(tmp_path: Path) -> None:
    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    one = write_run(tmp_path, WEB, {}, 1, run_id="r", name="one")
    two = write_run(tmp_path, WEB, {}, 2, run_id="r", name="two")
    judgement = port_verdict(union_of([*one, *two], inventory), inventory, "web", 8080)
    assert judgement.verdict is Verdict.ERROR
    assert (
        "run r holds a shard set of 1 share(s)" in judgement.message
        and "give each scan its own --run-id" in judgement.message
    )
    plain = tmp_path / "plain.json"
    results = [ProbeResult("127.0.0.20", "127.0.0.20", Protocol.TCP, 8080, PortState.CLOSED, "conn-refused")]
    write_report(
        ScanReport([Resolution("127.0.0.20", ("127.0.0.20",))], results, ScanSettings(), TODAY, 0.1),
        plain,
        {"run_id": "r"},
    )
    judgement = port_verdict(union_of([*one, plain], inventory), inventory, "web", 8080)
    assert judgement.verdict is Verdict.ERROR and "a plain report" in judgement.message


def test_a_report_of_another_inventory_is_listed_as_ignored(tmp_path: Path) -> None:
    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    other = WEB.replace("closed: [8080]", "closed: [8080, 8081]")
    paths = write_run(tmp_path, other, {}, 1, run_id="r")
    union = union_of(paths, inventory)
    assert [i.why.split(" (")[0] for i in union.ignored] == ["refused: it is of another inventory"]
    judgement = port_verdict(union, inventory, "web", 8080)
    assert judgement.verdict is Verdict.ERROR and "no report of this inventory" in judgement.message


# --- fresh evidence -------------------------------------------------------------------------------


def test_a_report_older_than_the_maximum_age_is_an_error_naming_it_and_its_age(tmp_path: Path) -> None:
    from pytest_portcheck.sharding.union import Freshness

    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    paths = write_run(tmp_path, WEB, {}, 2, run_id="r", started="2026-11-25T06:30:00+00:00")
    stamp(paths[1], started=TODAY)
    fresh = Freshness(datetime.timedelta(hours=24), "24h", NOW)
    union = union_of(paths, inventory, freshness=fresh)
    message = range_verdict(union, inventory, "box").message
    assert range_verdict(union, inventory, "box").verdict is Verdict.ERROR
    assert (
        f"shard 1/2 ({paths[0]}) is too old: started 2026-11-25T06:30:00+00:00, 2 d 2 h ago (--portcheck-max-age 24h)"
        in message
    )
    assert union.evidence_span() == ("2026-11-25T06:30:00+00:00", "2026-11-27T08:00:00+00:00")
    # A week's limit takes it; a report with no start time cannot be aged.
    assert (
        range_verdict(
            union_of(paths, inventory, freshness=Freshness(datetime.timedelta(days=7), "7d", NOW)),
            inventory,
            "box",
        ).verdict
        is Verdict.PASSED
    )
    stamp(paths[0], started="")
    assert (
        "has no start time"
        in range_verdict(union_of(paths, inventory, freshness=fresh), inventory, "box").message
    )


# --- evidence must match the requirement ----------------------------------------------------------

TLS_WEB = """\
hosts:
  site:
    address: 127.0.0.30
    open:
      - {port: 443, service: https}
"""
CERT = TlsInfo(
    "TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=site", "CN=site", "2027-11-27T00:00:00+00:00", 365, False
)


def test_a_tls_minimum_is_not_judged_from_a_probe_that_was_not_asked_for_it(tmp_path: Path) -> None:
    stricter = TLS_WEB.replace("service: https}", "service: https, tls: {min_version: TLSv1.2}}")
    assert (
        plan_inventory(parse_inventory(stricter, tmp_path / "a.yml")).digest
        != plan_inventory(parse_inventory(TLS_WEB, tmp_path / "b.yml")).digest
    )  # the requirement is part of what the reports prove
    # Scanned for the first inventory: no handshake below a minimum was tried (below_minimum null).
    key = ("127.0.0.30", Protocol.TCP, 443)
    services = {key: ServiceInfo("https", "HTTP/1.1 200 OK", "nginx", "1.22.1", CERT)}
    paths = write_run(
        tmp_path, TLS_WEB, {("127.0.0.30", 443): PortState.OPEN}, 1, run_id="r", services=services,
        asked={key: [["https", None, False, None, None, None]]},
    )  # fmt: skip
    inventory = parse_inventory(stricter, tmp_path / "inv.yml")
    refused = port_verdict(union_of(paths, inventory), inventory, "site", 443)
    assert refused.verdict is Verdict.ERROR and "refused: it is of another inventory" not in refused.message
    allowed = port_verdict(union_of(paths, inventory, allow_other_inventory=True), inventory, "site", 443)
    assert allowed.verdict is Verdict.ERROR, allowed.message
    assert "not probed for https min_version TLSv1.2" in allowed.message
    # Its own inventory passes on the same report.
    own = parse_inventory(TLS_WEB, tmp_path / "inv.yml")
    assert port_verdict(union_of(paths, own), own, "site", 443).verdict is Verdict.PASSED


def test_ports_added_to_a_range_since_the_scan_are_errors_with_another_inventory(tmp_path: Path) -> None:
    paths = write_run(tmp_path, WEB, {}, 2, run_id="r")
    wider = WEB.replace('range: "1-300"', 'range: "1-400"')
    inventory = parse_inventory(wider, tmp_path / "inv.yml")
    judgement = range_verdict(union_of(paths, inventory, allow_other_inventory=True), inventory, "box")
    assert judgement.verdict is Verdict.ERROR
    assert "cannot check 100 port(s) of 127.0.0.21 — not scanned: they were added after" in judgement.message
    # The same ports under closed: were errors already; the range is not laxer.
    closed = WEB.replace("closed: [8080]", "closed: [8080, 8081]")
    inventory = parse_inventory(closed, tmp_path / "inv.yml")
    assert (
        port_verdict(union_of(paths, inventory, allow_other_inventory=True), inventory, "web", 8081).verdict
        is Verdict.ERROR
    )


REDIS = """\
hosts:
  cache:
    address: 127.0.0.40
    open:
      - {port: 6379, service: redis, auth: required}
"""


def test_service_facts_are_judged_per_vantage_never_merged(tmp_path: Path) -> None:
    inventory = parse_inventory(REDIS, tmp_path / "inv.yml")
    key = ("127.0.0.40", Protocol.TCP, 6379)
    asked = {key: [["redis", None, False, None, "required", None]]}
    opened = {("127.0.0.40", 6379): PortState.OPEN}
    # Seen from the DMZ without a password; from the office behind one (a different redis answers).
    open_door = {key: ServiceInfo("redis", "+PONG", "redis", "7.0.15", auth="none")}
    locked = {key: ServiceInfo("redis", "-NOAUTH", "redis", None, auth="required")}
    dmz = write_run(
        tmp_path, REDIS, opened, 1, run_id="r", vantage="dmz", name="dmz", services=open_door, asked=asked
    )
    office = write_run(
        tmp_path, REDIS, opened, 1, run_id="r", vantage="office", name="office", services=locked, asked=asked
    )
    for order in ([*dmz, *office], [*office, *dmz]):
        judgement = port_verdict(union_of(order, inventory), inventory, "cache", 6379)
        assert judgement.verdict is Verdict.FAILED, judgement.message
        assert (
            "from dmz: cache (127.0.0.40) tcp/6379: redis answers without authentication" in judgement.message
        )


SCOPED = """\
hosts:
  db:
    address: 127.0.0.50
    only_open: []
    range: "5430-5440"
    from:
      app:
        open: [5432, 9000]
"""


def test_a_port_allowed_from_one_vantage_must_be_checked_from_another(tmp_path: Path) -> None:
    inventory = parse_inventory(SCOPED, tmp_path / "inv.yml")
    opened = {("127.0.0.50", 5432): PortState.OPEN}
    app = write_run(tmp_path, SCOPED, opened, 1, run_id="r", vantage="app", name="app")
    only_app = range_verdict(union_of(app, inventory), inventory, "db")
    assert only_app.verdict is Verdict.ERROR, only_app.message
    # 9000, allowed from app too, is outside the range: the range has nothing to say of it.
    assert "db tcp/5430-5440: cannot check 5432 — allowed from app only" in only_app.message
    # As closed: [5432] would be without a report from anywhere else.
    closed = SCOPED.replace('only_open: []\n    range: "5430-5440"\n', "closed: [5432]\n")
    closed_inventory = parse_inventory(closed, tmp_path / "c.yml")
    closed_app = write_run(tmp_path, closed, opened, 1, run_id="r", vantage="app", name="capp")
    assert (
        port_verdict(union_of(closed_app, closed_inventory), closed_inventory, "db", 5432).verdict
        is Verdict.ERROR
    )
    # From the internet too: closed there, the range holds; open there, it fails.
    internet = write_run(tmp_path, SCOPED, {}, 1, run_id="r", name="internet")
    assert range_verdict(union_of([*app, *internet], inventory), inventory, "db").verdict is Verdict.PASSED
    exposed = write_run(tmp_path, SCOPED, opened, 1, run_id="r", name="internet")
    judgement = range_verdict(union_of([*app, *exposed], inventory), inventory, "db")
    assert (
        judgement.verdict is Verdict.FAILED
        and "from (no vantage): db: 1 unexpected open port(s)" in judgement.message
    )


# --- integrity ------------------------------------------------------------------------------------


def test_signed_reports_are_checked_and_altered_or_unsigned_ones_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    monkeypatch.setenv("PORTCHECK_REPORT_KEY", "s3cret")
    shard = tmp_path / "shard.json"
    write_shard_report(
        ShardScanReport(
            ShardInfo(plan_inventory(inventory).digest, 1, 1), plan_inventory(inventory),
            [Resolution("127.0.0.20", ("127.0.0.20",)), Resolution("127.0.0.21", ("127.0.0.21",))],
            [], ScanSettings(), TODAY, 0.0,
        ),
        shard,
    )  # fmt: skip
    plain = tmp_path / "plain.json"
    write_report(ScanReport([], [], ScanSettings(), TODAY, 0.0), plain, {"run_id": "r"})
    for path in (shard, plain):
        signature = json.loads(path.read_text())["signature"]
        assert signature["algorithm"] == "hmac-sha256" and len(signature["value"]) == 64
        assert load_report(path, b"s3cret").integrity is None
        assert "does not match" in (load_report(path, b"another key").integrity or "")
    stamp(shard, started="2026-11-28T08:00:00+00:00")  # a changed field: the signature no longer holds
    assert "altered" in (load_report(shard, b"s3cret").integrity or "")
    monkeypatch.delenv("PORTCHECK_REPORT_KEY")
    unsigned = tmp_path / "unsigned.json"
    write_report(ScanReport([], [], ScanSettings(), TODAY, 0.0), unsigned)
    assert "signature" not in json.loads(unsigned.read_text())
    assert "not signed" in (load_report(unsigned, b"s3cret").integrity or "")
    # The judge makes the share of a report that cannot be trusted an error.
    union = union_of([shard], inventory)
    assert union.failure is None
    from pytest_portcheck.sharding.union import Freshness

    keyed = ReportUnion([load_report(shard, b"s3cret")], plan_inventory(inventory), freshness=Freshness())
    judgement = port_verdict(keyed, inventory, "web", 8080)
    assert (
        judgement.verdict is Verdict.ERROR
        and "cannot be trusted: its signature does not match" in judgement.message
    )


# --- malformed reports: one clear error, bounded work ---------------------------------------------


def test_a_huge_shard_count_is_refused_at_once(tmp_path: Path) -> None:
    inventory = parse_inventory(WEB, tmp_path / "inv.yml")
    paths = write_run(tmp_path, WEB, {}, 1, run_id="r")
    document = json.loads(paths[0].read_text())
    document["shard"]["count"] = 10**12
    paths[0].write_text(json.dumps(document))
    union = union_of(paths, inventory)  # once looped to 10^12, and SIGTERM did not stop it
    assert (
        len(union.problems) == 1 and "refused: shard.count says 1,000,000,000,000 shares" in union.problems[0]
    )
    assert port_verdict(union, inventory, "web", 8080).verdict is Verdict.ERROR


def test_a_bad_plan_row_is_one_error_naming_the_file_and_field(tmp_path: Path) -> None:
    from pytest_portcheck.report.model import ReportError

    paths = write_run(tmp_path, WEB, {}, 1, run_id="r")
    document = json.loads(paths[0].read_text())
    document["plan"][0][3] = "abc,,"
    paths[0].write_text(json.dumps(document))
    with pytest.raises(ReportError) as caught:
        load_report(paths[0])
    assert str(caught.value) == (
        f'{paths[0]}: not a valid portcheck JSON report: $.plan[0][3]: expected port runs, not "abc,,": '
        "'abc' is not a run of ports like '1-1024/tcp' or '53/udp'"
    )


# --- one judge: a scan and the same scan's reports give the same verdicts and messages -----------

EVERYTHING = """\
hosts:
  web:
    address: web.test
    open: [22, {port: 443, service: https, tls: {expires_in_days: 14}}]
    closed: [8080, 5432]
    filtered: [9200]
  edge:
    address: 127.0.0.61
    only_open: [22, {port: 6379, service: redis, auth: required}]
    closed: [23]
    range: "1-400"
  dns:
    address: 127.0.0.62
    only_open: ["53/udp"]
    range: "1-120/udp"
  gone:
    address: gone.test
    closed: [1]
  quiet:
    address: 127.0.0.63
    closed: [7]
    filtered: [8]
  lab:
    address: 127.0.0.64
    only_open: []
    range: "1-50"
"""
STANDING_OUT = {
    ("127.0.1.1", Protocol.TCP, 22): PortState.OPEN, ("127.0.1.2", Protocol.TCP, 22): PortState.OPEN,
    ("127.0.1.1", Protocol.TCP, 443): PortState.OPEN, ("127.0.1.2", Protocol.TCP, 443): PortState.OPEN,
    ("127.0.1.2", Protocol.TCP, 8080): PortState.OPEN, ("127.0.1.1", Protocol.TCP, 9200): PortState.CLOSED,
    ("127.0.1.2", Protocol.TCP, 9200): PortState.FILTERED, ("127.0.0.61", Protocol.TCP, 22): PortState.OPEN,
    ("127.0.0.61", Protocol.TCP, 6379): PortState.OPEN, ("127.0.0.61", Protocol.TCP, 200): PortState.OPEN,
    ("127.0.0.61", Protocol.TCP, 300): PortState.OPEN, ("127.0.0.62", Protocol.UDP, 53): PortState.OPEN,
    ("127.0.0.62", Protocol.UDP, 77): PortState.OPEN_FILTERED, ("127.0.0.63", Protocol.TCP, 7): PortState.FILTERED,
    ("127.0.0.63", Protocol.TCP, 8): PortState.FILTERED, ("127.0.0.64", Protocol.TCP, 10): PortState.ERROR,
}  # fmt: skip


def one_scan(inventory: Inventory) -> ScanReport:
    """Every unit of the inventory scanned once on every address: a scan as the session holds it.
    Ports in their address's common state carry no latency (a shard report folds them, keeping none)."""
    addresses = {
        "web.test": ("127.0.1.1", "127.0.1.2"),
        "127.0.0.61": ("127.0.0.61",),
        "127.0.0.62": ("127.0.0.62",),
        "127.0.0.63": ("127.0.0.63",),
        "127.0.0.64": ("127.0.0.64",),
    }
    resolutions = [Resolution(name, found) for name, found in addresses.items()]
    resolutions.append(Resolution("gone.test", (), "dns-error: Name or service not known"))
    results = []
    for host in plan_inventory(inventory).hosts:
        for proto, first, last in host.runs:
            for port in range(first, last + 1):
                for address in addresses.get(host.address, ()):
                    state = STANDING_OUT.get((address, proto, port))
                    if state is None:  # refused: the common state, folded by a shard report
                        reason = "port-unreach" if proto is Protocol.UDP else "conn-refused"
                        results.append(
                            ProbeResult(host.address, address, proto, port, PortState.CLOSED, reason)
                        )
                    elif address == "127.0.0.63":  # all silent: the common state there
                        results.append(ProbeResult(host.address, address, proto, port, state, REASONS[state]))
                    else:
                        result = ProbeResult(
                            host.address, address, proto, port, state, REASONS[state], 0.25, 2
                        )
                        results.append(result)
    certificate = TlsInfo(
        "TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=web", "CN=web", "2026-12-01T00:00:00+00:00", 4, False
    )
    services = {
        ("127.0.1.1", Protocol.TCP, 443): ServiceInfo(
            "https", "HTTP/1.1 200 OK", "nginx", "1.22.1", certificate
        ),
        ("127.0.1.2", Protocol.TCP, 443): ServiceInfo(
            "https", "HTTP/1.1 200 OK", "nginx", "1.22.1", certificate
        ),
        ("127.0.0.61", Protocol.TCP, 6379): ServiceInfo("redis", "+PONG", "redis", "7.0.15", auth="none"),
        ("127.0.0.61", Protocol.TCP, 200): ServiceInfo("http", "HTTP/1.1 404", "nginx", "1.22.1"),
    }
    return ScanReport(resolutions, results, ScanSettings(), TODAY, 1.0, services=services)


def as_shard_reports(folder: Path, inventory: Inventory, scan: ScanReport, count: int) -> list[Path]:
    """The scan cut into ``count`` shares and written by the shard writer, each share's probes with it."""
    plan = plan_inventory(inventory)
    split = ShardSplit(plan.total, plan.digest, count)
    addresses = {r.host: r.addresses for r in scan.resolutions}
    asked = asked_for(list(inventory.expectations()), addresses, scan.services)
    paths = []
    for index in range(1, count + 1):

        def mine(host: str, proto: Protocol, port: int, index: int = index) -> bool:
            unit = plan.unit_index(host, proto, port)
            return unit is not None and split.shard_of(unit) == index

        results = [r for r in scan.results if mine(r.host, r.proto, r.port)]
        hosts = {r.address: r.host for r in scan.results if r.address}
        services = {k: v for k, v in scan.services.items() if mine(hosts[k[0]], k[1], k[2])}
        report = ShardScanReport(
            ShardInfo(plan.digest, index, count), plan, scan.resolutions, summarise(results), ScanSettings(),
            TODAY, 0.1, services=services, run_id="r", asked={k: v for k, v in asked.items() if k in services},
        )  # fmt: skip
        paths.append(folder / f"share-{index}.json")
        write_shard_report(report, paths[-1])
    return paths


def every_item(inventory: Inventory, evidence: Any, strict: bool) -> dict[str, tuple[str, str]]:
    from pytest_portcheck.judge.expectation import judge
    from pytest_portcheck.judge.ranges import judge_range

    found = {}
    for host in inventory.hosts:
        for e in host.expectations:
            j = judge(host, e, evidence, strict=strict)
            found[f"{host.name} {e.proto.value}/{e.port} {e.expect.value}"] = (j.verdict.value, j.message)
        if host.range_rule is not None:
            j = judge_range(host, host.range_rule, evidence, strict=strict)
            found[f"{host.name} {host.range_rule.label}"] = (j.verdict.value, j.message)
    return found


@pytest.mark.parametrize("strict", [False, True])
def test_a_scan_and_its_reports_give_every_item_the_same_verdict_and_message(
    tmp_path: Path, strict: bool
) -> None:
    from pytest_portcheck.engine.model import index_results
    from pytest_portcheck.judge.evidence import ScanEvidence
    from pytest_portcheck.judge.silence import silent_addresses

    inventory = parse_inventory(EVERYTHING, tmp_path / "inv.yml")
    scan = one_scan(inventory)
    resolutions = {r.host: r for r in scan.resolutions}
    seen = ScanEvidence(
        index_results(scan.results), resolutions, scan.services, silent_addresses(scan.results)
    )
    from_scan = every_item(inventory, seen, strict)
    shards = union_of(as_shard_reports(tmp_path, inventory, scan, 3), inventory)
    assert every_item(inventory, shards, strict) == from_scan
    # Every kind of outcome is in there, so the comparison compares something.
    verdicts = {verdict for verdict, _ in from_scan.values()}
    assert verdicts == {"passed", "failed", "error"}
    assert from_scan["edge tcp/1-400"] == (
        "failed",
        "edge: 2 unexpected open port(s) in tcp/1-400: 200 (http nginx 1.22.1), 300 (unknown)",
    )
    assert from_scan["lab tcp/1-50"] == (
        "error",
        "lab (127.0.0.64) tcp/1-50: cannot check 1 port(s) of 127.0.0.64 — local-error: EMFILE",
    )
    # The same scan as a plain report (version 1) records what each probe was run for, as the
    # session's scan fills it: identical too, service requirements included.
    plain = tmp_path / "plain.json"
    write_report(with_asked(scan, inventory), plain, {"run_id": "p"})
    assert every_item(inventory, union_of([plain], inventory), strict) == from_scan
    # A plain report written before reports said so cannot pass a service requirement.
    older = tmp_path / "older.json"
    document = json.loads(plain.read_text())
    for result in document["results"]:
        result.pop("asked", None)
    older.write_text(json.dumps(document))
    from_older = every_item(inventory, union_of([older], inventory), strict)
    services = {"web tcp/443 open", "edge tcp/6379 open"}
    assert {k: v for k, v in from_older.items() if k not in services} == {
        k: v for k, v in from_scan.items() if k not in services
    }
    assert all(
        from_older[k][0] == "error" and "does not say what its probes were run for" in from_older[k][1]
        for k in services
    )


def with_asked(scan: ScanReport, inventory: Inventory) -> ScanReport:
    """The scan with what each probe was run for, as ``scan_inventory`` records it."""
    addresses = {r.host: r.addresses for r in scan.resolutions}
    return replace(scan, asked=asked_for(list(inventory.expectations()), addresses, scan.services))


def test_a_plain_report_passes_no_requirement_its_probes_were_not_run_for(tmp_path: Path) -> None:
    """A plain report of an inventory whose ``auth: required`` was added after the scan: the probe
    found redis, but was not run for that requirement, so the item is an error, never a pass."""
    before = parse_inventory(EVERYTHING.replace(", auth: required}", "}"), tmp_path / "inv.yml")
    after = parse_inventory(EVERYTHING, tmp_path / "inv.yml")
    scan = one_scan(after)
    services = dict(scan.services)
    services[("127.0.0.61", Protocol.TCP, 6379)] = ServiceInfo(
        "redis", "-NOAUTH", "redis", None, auth="required"
    )
    plain = tmp_path / "plain.json"
    write_report(with_asked(replace(scan, services=services), before), plain, {"run_id": "p"})
    union = union_of([plain], after)
    verdict = port_verdict(union, after, "edge", 6379)
    assert verdict.verdict is Verdict.ERROR
    assert f"not probed for redis auth required: {plain} probed it for redis" in verdict.message
    assert port_verdict(union_of([plain], before), before, "edge", 6379).verdict is Verdict.PASSED
