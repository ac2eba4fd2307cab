"""The Prometheus text-format writer: files promtool accepts, label values that survive hostile host
names, the counts a dashboard needs, and a write the textfile collector never sees half done."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from dataclasses import replace
from dataclasses import replace as replace_record
from pathlib import Path

import pytest
from conftest import skip_or_fail
from outcomes import Item, fleet, port

from pytest_portcheck.engine import (
    AddressQuality,
    PortState,
    ProbeResult,
    Resolution,
    ScanSettings,
    ScanStats,
)
from pytest_portcheck.judge.verdict import Verdict
from pytest_portcheck.ports import Protocol
from pytest_portcheck.report.metrics import MetricsError, dump_metrics, write_metrics
from pytest_portcheck.report.model import ScanReport

Sample = tuple[str, tuple[tuple[str, str], ...], str]
"""(metric, ((label, value), ...), value) of one sample line, labels unescaped."""


def promtool_check(text: str) -> None:
    """``promtool check metrics``: the format and Prometheus's naming rules (lint problems fail too)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        skip_or_fail("promtool is missing: apt-get install prometheus", "PORTCHECK_REQUIRE_SERVERS")
    assert promtool is not None
    checked = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout and not checked.stderr, checked.stdout + checked.stderr


def parse(text: str) -> list[Sample]:
    """Sample lines read as the exposition format defines them (escapes: backslash, quote, newline)."""
    samples: list[Sample] = []
    for line in text.split("\n"):  # the format's only line end: a raw CR is data in a label value
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
        else:
            name, rest = line.split(" ", 1)[0], ""
        labels: list[tuple[str, str]] = []
        position = 0
        while rest and rest[position] != "}":
            equals = rest.index("=", position)
            label, value, position = rest[position:equals].lstrip(","), [], equals + 2
            while rest[position] != '"':
                if rest[position] == "\\":
                    position += 1
                    value.append({"n": "\n", "\\": "\\", '"': '"'}[rest[position]])
                else:
                    value.append(rest[position])
                position += 1
            labels.append((label, "".join(value)))
            position += 1
        samples.append((name, tuple(labels), line.rsplit(" ", 1)[1]))
    return samples


def value_of(samples: list[Sample], metric: str, **labels: str) -> str:
    [found] = [value for name, pairs, value in samples if name == metric and set(labels.items()) <= set(pairs)]
    return found


def scan_report() -> ScanReport:
    def result(host: str, address: str | None, number: int, state: PortState) -> ProbeResult:
        return ProbeResult(host, address, Protocol.TCP, number, state, "syn-ack", 0.4, 1)

    return ScanReport(
        resolutions=[Resolution("10.0.0.1", ("10.0.0.1", "10.0.0.2")), Resolution("gone.example", (), "no such name")],
        results=[
            result("10.0.0.1", "10.0.0.1", 22, PortState.OPEN),
            result("10.0.0.1", "10.0.0.1", 23, PortState.CLOSED),
            result("10.0.0.1", "10.0.0.2", 22, PortState.FILTERED),
            result("gone.example", None, 22, PortState.ERROR),
        ],
        settings=ScanSettings(),
        started="2026-11-27T00:38:01+00:00",
        elapsed_s=12.3456,
        stats=ScanStats(probes_sent=4711, addresses={"10.0.0.2": AddressQuality("10.0.0.2", 3494.5, 5201, 5300, 812, 3, 2)}),
    )


def metrics(outcomes: list[Item], scan: ScanReport | None = None, **options: float) -> str:
    stream = io.StringIO()
    dump_metrics(outcomes, stream, scan, **options)
    promtool_check(stream.getvalue())
    return stream.getvalue()


def test_each_expectation_says_whether_it_is_met_with_its_verdict() -> None:
    samples = parse(metrics(fleet(), scan_report()))
    met = {(dict(labels)["host"], dict(labels)["target"]): (dict(labels)["verdict"], value)
           for name, labels, value in samples if name == "portcheck_expectation_met"}  # fmt: skip
    assert len(met) == len(fleet())
    assert met[("web", "tcp/22")] == ("passed", "1")
    assert met[("web", "tcp/5432")] == ("failed", "0")
    assert met[("ghost", "tcp/22")] == ("error", "0")
    assert met[("old", "tcp/23")] == ("waived", "0")
    assert met[("edge", "tcp/1-65535")] == ("failed", "0")
    first = next(labels for name, labels, _ in samples if name == "portcheck_expectation_met")
    assert first == (("inventory", "inventory.yml"), ("host", "web"), ("target", "tcp/22"), ("expected", "open"), ("verdict", "passed"))


def test_counts_per_host_by_verdict_and_by_state_include_the_zeros() -> None:
    samples = parse(metrics(fleet(), scan_report()))
    assert value_of(samples, "portcheck_host_expectations", host="web", verdict="failed") == "3"
    assert value_of(samples, "portcheck_host_expectations", host="web", verdict="passed") == "1"
    assert value_of(samples, "portcheck_host_expectations", host="web", verdict="waived") == "0"
    assert value_of(samples, "portcheck_host_expectations", host="ghost", verdict="error") == "1"
    assert value_of(samples, "portcheck_host_ports", host="10.0.0.1", state="open") == "1"
    assert value_of(samples, "portcheck_host_ports", host="10.0.0.1", state="filtered") == "1"
    assert value_of(samples, "portcheck_host_ports", host="10.0.0.1", state="open|filtered") == "0"
    assert value_of(samples, "portcheck_host_ports", host="gone.example", state="error") == "1"
    assert value_of(samples, "portcheck_host_addresses", host="10.0.0.1") == "2"
    assert value_of(samples, "portcheck_host_addresses", host="gone.example") == "0"


def test_scan_quality_per_address_and_the_run_itself() -> None:
    samples = parse(metrics(fleet(), scan_report()))
    assert value_of(samples, "portcheck_address_drops", address="10.0.0.2") == "5201"
    assert value_of(samples, "portcheck_address_retries", address="10.0.0.2") == "5300"
    assert value_of(samples, "portcheck_address_reexaminations", address="10.0.0.2") == "812"
    assert value_of(samples, "portcheck_address_unresolved_ports", address="10.0.0.2") == "3"
    assert value_of(samples, "portcheck_address_slowdowns", address="10.0.0.2") == "2"
    assert value_of(samples, "portcheck_address_rate_probes_per_second", address="10.0.0.2") == "3494.5"
    assert float(value_of(samples, "portcheck_run_start_timestamp_seconds")) == 1795739881.0  # 2026-11-27T00:38:01Z
    assert value_of(samples, "portcheck_run_duration_seconds") == "12.346"
    assert value_of(samples, "portcheck_run_interrupted") == "0"
    assert value_of(samples, "portcheck_run_probes_sent") == "4711"
    assert value_of(samples, "portcheck_run_results") == "4"


def test_the_run_time_without_a_scan_is_the_time_given_or_of_writing() -> None:
    assert value_of(parse(metrics(fleet(), timestamp=1700000000.5)), "portcheck_run_start_timestamp_seconds") == "1700000000.5"
    before = time.time()
    written = float(value_of(parse(metrics(fleet(), replace_record(scan_report(), started=""))), "portcheck_run_start_timestamp_seconds"))
    assert before <= written <= time.time()


HOSTILE_NAMES = ['a"b', "back\\slash", "new\nline", "</script><script>alert(1)</script>", "\u202egnp.exe",
                 'all\\"of\n\\nthem\\', "tab\tand\rcarriage", "\x00nul\x1b[31m"]  # fmt: skip


def test_hostile_host_names_survive_as_label_values_in_a_file_promtool_accepts() -> None:
    outcomes = [port(name, 22, "closed", "failed", "open", message="m") for name in HOSTILE_NAMES]
    outcomes.append(port("undecodable", 22, "open", "passed", "open", inventory="inv\udcff.yml"))
    scan = replace_record(scan_report(), resolutions=[Resolution(name, ()) for name in HOSTILE_NAMES])
    text = metrics(outcomes, scan)
    text.encode("utf-8")  # valid UTF-8 throughout: a lone surrogate would make the collector refuse the file
    samples = parse(text)
    hosts = [dict(labels)["host"] for name, labels, _ in samples if name == "portcheck_expectation_met"]
    assert hosts == [*HOSTILE_NAMES, "undecodable"]
    assert value_of(samples, "portcheck_expectation_met", host="undecodable") == "1"
    assert ("inventory", "inv\ufffd.yml") in next(labels for name, labels, _ in samples if dict(labels).get("host") == "undecodable")
    resolved = [dict(labels)["host"] for name, labels, _ in samples if name == "portcheck_host_addresses"]
    assert resolved == HOSTILE_NAMES
    lines = text.split("\n")
    assert lines.pop() == "" and len(lines) == sum(line.startswith("#") for line in lines) + len(samples)


def test_a_vantage_makes_its_own_series_and_two_items_of_one_series_are_refused() -> None:
    plain = port("web", 22, "open", "passed", "open")
    from_dmz = replace(plain, vantage="dmz", verdict="failed")
    samples = parse(metrics([plain, from_dmz]))
    assert value_of(samples, "portcheck_expectation_met", vantage="dmz") == "0"
    with pytest.raises(MetricsError, match=r"inventory.yml::web::tcp/22::open and inventory.yml::web::tcp/22::open"):
        dump_metrics([plain, replace(plain, verdict="failed")], io.StringIO())


def test_a_judge_verdict_enum_is_written_as_its_value() -> None:
    samples = parse(metrics([port("web", 22, "open", Verdict.PASSED, "open")]))
    assert value_of(samples, "portcheck_expectation_met", verdict="passed") == "1"
    assert value_of(samples, "portcheck_host_expectations", verdict="passed") == "1"


def test_the_file_is_replaced_whole_or_not_at_all_and_keeps_its_mode(tmp_path: Path) -> None:
    destination = tmp_path / "portcheck.prom"
    write_metrics(destination, fleet(), scan_report())
    destination.chmod(0o640)
    write_metrics(destination, fleet()[:2])
    promtool_check(destination.read_text("utf-8"))
    assert destination.stat().st_mode & 0o777 == 0o640
    assert len([line for line in destination.read_text().splitlines() if line.startswith("portcheck_expectation_met")]) == 2
    before = destination.read_text()
    duplicate = fleet()[:1] * 2
    with pytest.raises(MetricsError):  # fails halfway through writing: the collector must not see it
        write_metrics(destination, duplicate)
    assert destination.read_text() == before
    assert os.listdir(tmp_path) == ["portcheck.prom"]


def test_enum_members_where_the_protocol_says_str_write_as_their_values() -> None:
    from pytest_portcheck.inventory.model import Expect

    plain = port("web", 22, "open", "passed", "open")
    typed = replace(plain, expected=Expect.OPEN, verdict=Verdict.PASSED)
    assert metrics([typed], timestamp=1.0) == metrics([plain], timestamp=1.0)
