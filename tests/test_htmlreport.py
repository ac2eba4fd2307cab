"""The HTML page's data: which cells are drawn and how each host's silent ports are summarised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_portcheck.engine import PortState, ProbeResult, ScanSettings
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.html import SUMMARY_THRESHOLD, page_data
from pytest_portcheck.report.judged import FoundState, ItemOutcome, JudgedReport
from pytest_portcheck.report.model import ScanReport


def result(host: str, port: int, state: str, reason: str, address: str | None = None) -> ProbeResult:
    return ProbeResult(host, address or host, Protocol.TCP, port, PortState(state), reason, None, 1)


def page(
    results: Sequence[ProbeResult],
    expectations: Sequence[ItemOutcome] = (),
    services: Mapping[ResultKey, ServiceInfo] | None = None,
) -> dict[str, Any]:
    """The page's data for a typed report of these results (and verdicts, and probe answers)."""
    scan = ScanReport([], results, ScanSettings(), "", 0.0, services=dict(services or {}))
    return page_data(JudgedReport(scan, expectations))


def test_majority_silent_state_and_closed_ports_are_summarised_per_host() -> None:
    results = [result("fw", port, "filtered", "no-response") for port in range(1, 101)]
    results[9] = result("fw", 10, "open", "syn-ack")
    results[19] = result("fw", 20, "closed", "conn-refused")
    results[29] = result("fw", 30, "filtered", "admin-prohibited")
    # Another host with few filtered ports: they stay cells, its closed ports are counted.
    results += [result("lan", port, "closed", "conn-refused") for port in range(1, 51)]
    results += [result("lan", 60, "filtered", "no-response"), result("lan", 61, "open", "syn-ack")]
    data = page(results)
    assert [row["host"] for row in data["rows"]] == ["fw", "lan"]
    assert data["rows"][0]["not_shown"] == (
        "Not shown: 98 filtered ports (97 no-response, 1 admin-prohibited), 1 closed port (conn-refused)"
    )
    assert data["rows"][1]["not_shown"] == "Not shown: 50 closed ports (conn-refused)"
    assert data["columns"] == ["tcp/10", "tcp/60", "tcp/61"]
    states = [[cell and cell["state"] for cell in line] for line in data["grid"]]
    assert states == [["open", None, None], [None, "filtered", "open"]]
    assert data["summarised"] is True


def test_a_host_with_nothing_but_silence_still_gets_its_row() -> None:
    results = [result("dark", port, "filtered", "no-response") for port in range(1, SUMMARY_THRESHOLD + 2)]
    data = page(results)
    assert data["rows"] == [
        {
            "host": "dark",
            "address": "dark",
            "not_shown": f"Not shown: {SUMMARY_THRESHOLD + 1} filtered ports (no-response)",
        }
    ]
    assert data["grid"] == [[]]


def test_few_filtered_ports_are_drawn_and_errors_never_summarised() -> None:
    results = [result("box", port, "filtered", "no-response") for port in range(1, SUMMARY_THRESHOLD + 1)]
    results += [result(f"ghost{n}", 22, "error", "dns-error: nope") for n in range(SUMMARY_THRESHOLD + 5)]
    data = page(results)
    assert len(data["columns"]) == SUMMARY_THRESHOLD and data["rows"][0]["not_shown"] == ""
    column = data["columns"].index("tcp/22")
    assert [line[column]["state"] for line in data["grid"][1:]] == ["error"] * (SUMMARY_THRESHOLD + 5)


def test_plugin_reports_show_every_expectation_and_no_summary() -> None:
    results = [result("127.0.0.1", port, "closed", "conn-refused") for port in range(1, 41)]
    expectation = ItemOutcome(
        host="web", target="tcp/5", expected="closed", verdict="passed",
        nodeid="inventory.yml::web::tcp/5::closed", found=(FoundState("127.0.0.1", "closed", "conn-refused"),),
    )  # fmt: skip
    data = page(results, [expectation])
    assert data["rows"] == [{"host": "web", "address": "127.0.0.1", "not_shown": ""}]
    assert data["columns"] == ["tcp/5"] and data["grid"][0][0]["verdict"] == "passed"
    assert data["summarised"] is False


def test_a_probed_cell_says_what_answers_with_product_and_exposure() -> None:
    probed = result("db", 45000, "open", "syn-ack")
    redis = ServiceInfo("redis", "+PONG", product="Redis", version="7.0.15", auth="none")
    hostile = result("db", 45001, "open", "syn-ack")
    # A hand-edited report's service that is no name of ours: shown raw, never a crash. (A service
    # that is not text at all never gets this far: tests/test_hostile.py, probe-service-number.)
    odd = ServiceInfo("7", "")
    data = page(
        [probed, hostile], services={("db", Protocol.TCP, 45000): redis, ("db", Protocol.TCP, 45001): odd}
    )
    first, second = data["grid"][0]
    assert first["details"]["identified"] == 'redis (Redis 7.0.15) EXPOSED: no authentication "+PONG"'
    assert first["details"]["probe"]["product"] == "Redis"
    assert second["details"]["identified"] == "7"
