"""The drift workflow: default-deny ranges, snapshot, diff, waivers, Markdown and HTML reports."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Behaviour, ListenerFactory, greeting, portcheck, skip_or_fail, unused_port

pytest_plugins = ["pytester"]


Greeter = Callable[[bytes], int]


@pytest.fixture
def greeter(peer: Callable[[Behaviour], int]) -> Greeter:
    """``greeter(banner)``: a loopback port whose server sends ``banner`` to every client."""
    return lambda banner: peer(greeting(banner + b"\r\n", linger=0.1))


# --- default-deny ------------------------------------------------------------------------------


def test_only_open_fails_listing_unexpected_ports(pytester: pytest.Pytester, listen: ListenerFactory) -> None:
    allowed = listen().getsockname()[1]
    extra = listen().getsockname()[1]
    closed = unused_port()
    # Just these ports: other tests' servers may listen anywhere in between.
    spec = ",".join(str(port) for port in sorted({allowed, extra, closed}))
    pytester.makefile(
        ".yml",
        inventory=f"hosts:\n  bastion:\n    address: 127.0.0.1\n    only_open: [{allowed}]\n    range: '{spec}'\n",
    )
    result = pytester.runpytest("--portcheck", "inventory.yml", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"inventory.yml::bastion::tcp/{allowed}::open PASSED*",
            f"inventory.yml::bastion::tcp/{spec}::only_open FAILED*",
            f"bastion: 1 unexpected open port(s) in tcp/{spec}: {extra} (*)",
        ]
    )


def test_only_open_over_the_full_range_passes_when_nothing_else_is_open(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    # Everything open on this machine's loopback right now is declared; nothing else may be. Other
    # processes may open or close listeners meanwhile (another test suite, a service restarting): a
    # run during which the machine's set of open ports changed is repeated, not judged.
    mine = listen().getsockname()[1]

    def open_now() -> list[int]:
        report = json.loads(portcheck("scan", "127.0.0.1", "-p", "-", "--json", "-").stdout)
        return sorted({r["port"] for r in report["results"] if r["state"] == "open"} | {mine})

    for _attempt in range(3):
        opened = open_now()
        pytester.makefile(
            ".yml", inventory=f"hosts:\n  box:\n    address: 127.0.0.1\n    only_open: {opened}\n"
        )
        result = pytester.runpytest("--portcheck", "inventory.yml", "-q")
        if open_now() == opened:
            break
    result.assert_outcomes(passed=len(opened) + 1)
    result.stdout.fnmatch_lines(["*scanned 65,535 (address, port) pair(s) once each*"])


# --- snapshot ----------------------------------------------------------------------------------


def test_snapshot_round_trip(pytester: pytest.Pytester, listen: ListenerFactory) -> None:
    ports = [listen().getsockname()[1] for _ in range(2)]
    newcomer = unused_port()
    # Just these ports: other tests' servers may listen anywhere in between.
    spec = ",".join(str(port) for port in sorted({*ports, newcomer}))
    snapshot = pytester.path / "inventory.yml"
    done = portcheck("snapshot", "127.0.0.1", "-p", spec, "-o", str(snapshot))
    assert done.returncode == 0, done.stderr
    text = snapshot.read_text()
    assert text.startswith("# Inventory snapshot written by portcheck at ")
    assert f"# Command: portcheck snapshot 127.0.0.1 -p {spec} -o {snapshot}" in text
    pytester.runpytest("--portcheck", "inventory.yml").assert_outcomes(passed=len(ports) + 1)
    # One more listener inside the range: exactly one item fails, the rest of the range.
    listen(port=newcomer)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-rf")
    result.assert_outcomes(passed=len(ports), failed=1)
    result.stdout.fnmatch_lines([f"*1 unexpected open port(s) in tcp/{spec}: {newcomer} (*"])


def test_snapshot_with_banner_declares_services(pytester: pytest.Pytester, greeter: Greeter) -> None:
    port = greeter(b"SSH-2.0-OpenSSH_9.2p1 Debian")
    snapshot = pytester.path / "inventory.yml"
    done = portcheck("snapshot", "127.0.0.1", "-p", str(port), "--banner", "-o", str(snapshot))
    assert done.returncode == 0, done.stderr
    assert f"- {{port: {port}, service: ssh}}" in snapshot.read_text()
    pytester.runpytest("--portcheck", "inventory.yml").assert_outcomes(passed=2)


def test_snapshot_of_an_unresolvable_host_leaves_it_out() -> None:
    done = portcheck("snapshot", "x" * 70 + ".example", "127.0.0.1", "-p", "1")
    assert done.returncode == 1
    assert "left out" in done.stdout and "dns-error" in done.stderr


# --- diff --------------------------------------------------------------------------------------


def test_diff_exit_codes_and_content(tmp_path: Path, listen: ListenerFactory) -> None:
    stays = listen().getsockname()[1]
    goes_away = listen()
    goes = goes_away.getsockname()[1]
    comes = unused_port()
    spec = ",".join(map(str, [stays, goes, comes]))
    old, new, same = tmp_path / "old.json", tmp_path / "new.json", tmp_path / "same.json"
    assert portcheck("scan", "127.0.0.1", "-p", spec, "--json", str(old)).returncode == 0
    assert portcheck("scan", "127.0.0.1", "-p", spec, "--json", str(same)).returncode == 0
    goes_away.close()
    listen(port=comes)
    assert portcheck("scan", "127.0.0.1", "localhost", "-p", spec, "--json", str(new)).returncode == 0

    equal = portcheck("diff", str(old), str(same))
    assert equal.returncode == 0 and "no differences" in equal.stdout
    different = portcheck("diff", str(old), str(new))
    assert different.returncode == 1
    lines = different.stdout.splitlines()
    assert f"+ opened   127.0.0.1 127.0.0.1 tcp/{comes}: closed -> open" in lines
    assert f"- closed   127.0.0.1 127.0.0.1 tcp/{goes}: open -> closed" in lines
    assert "host appeared: localhost" in lines
    assert not any(f"tcp/{stays}" in line for line in lines)
    machine = json.loads(portcheck("diff", str(new), str(old), "--json").stdout)
    assert machine["equal"] is False and machine["hosts_vanished"] == ["localhost"]
    kinds = {(c["port"], c["kind"]) for c in machine["changes"]}
    assert kinds == {(comes, "closed"), (goes, "opened")}


def test_diff_errors_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    assert portcheck("diff", str(junk), str(junk)).returncode == 2
    missing = portcheck("diff", str(tmp_path / "a.json"), str(junk))
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


# --- waivers -----------------------------------------------------------------------------------


def waived_inventory(pytester: pytest.Pytester, port: int, until: str = "2026-12-31") -> None:
    pytester.makefile(
        ".yml",
        inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    closed:\n"
        f"      - {{port: {port}, waive: {{until: {until}, reason: 'migration, TICKET-12'}}}}\n",
    )


@pytest.mark.parametrize(
    ("today", "outcome", "note"),
    [
        ("2026-12-01", "xfailed", None),
        ("2026-12-20", "xfailed", "expires in 11 day(s), on 2026-12-31: migration, TICKET-12"),
        ("2026-12-31", "xfailed", "expires in 0 day(s), on 2026-12-31: migration, TICKET-12"),
        ("2027-01-01", "failed", "expired on 2026-12-31 (no longer waiving): migration, TICKET-12"),
    ],
)
def test_waiver_before_and_after_its_date(
    pytester: pytest.Pytester, listen: ListenerFactory, monkeypatch: pytest.MonkeyPatch,
    today: str, outcome: str, note: str | None,
) -> None:  # fmt: skip
    port = listen().getsockname()[1]
    waived_inventory(pytester, port)
    monkeypatch.setenv("PORTCHECK_TODAY", today)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-rxf")
    result.assert_outcomes(**{outcome: 1})
    if outcome == "xfailed":
        result.stdout.fnmatch_lines(["XFAIL*waived until 2026-12-31: migration, TICKET-12*"])
    if note:
        result.stdout.fnmatch_lines([f"*web tcp/{port} closed: {note}"])
    else:
        assert "waivers to look at" not in result.stdout.str()


def test_waiver_on_a_port_that_complies_just_passes(pytester: pytest.Pytester) -> None:
    waived_inventory(pytester, unused_port())
    pytester.runpytest("--portcheck", "inventory.yml").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("waive", "message"),
    [
        ("{until: 2026-13-01, reason: x}", "until must be a date like 2026-12-31"),
        ("{until: 2026-12-31}", "a waiver needs until: and reason:"),
        ("{until: soon, reason: x}", "until must be a date"),
        ("{until: 2026-12-31, reason: ''}", "reason must say why"),
        ("{until: 2026-12-31, reason: x, by: me}", "unknown key 'by' in waive"),
    ],
)
def test_malformed_waiver_is_a_collection_error(pytester: pytest.Pytester, waive: str, message: str) -> None:
    pytester.makefile(
        ".yml",
        inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    closed:\n      - {{port: 1, waive: {waive}}}\n",
    )
    result = pytester.runpytest("--portcheck", "inventory.yml")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"portcheck inventory error: *inventory.yml:5: {message}*"])


# --- Markdown ----------------------------------------------------------------------------------


def test_markdown_summary_and_github_step_summary(
    pytester: pytest.Pytester, listen: ListenerFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = listen().getsockname()[1]
    pytester.makefile(
        ".yml", inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    closed: [{port}, {unused_port()}]\n"
    )
    step_summary = tmp_path / "step.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    pytester.runpytest("--portcheck", "inventory.yml", "--portcheck-markdown=summary.md").assert_outcomes(
        passed=1, failed=1
    )
    text = (pytester.path / "summary.md").read_text()
    assert text.startswith("## portcheck: 1 drift, 0 error(s), 0 waived on 1 host(s)\n")
    assert "| web | 127.0.0.1 | 2 closed | 1 closed, 1 open | 1 | 0 |" in text
    assert (
        f"- inventory.yml::web::tcp/{port}::closed: web (127.0.0.1) tcp/{port}: expected closed, found OPEN"
        in text
    )
    assert step_summary.read_text() == "earlier step\n" + text


def test_markdown_lists_are_capped_for_large_drift() -> None:
    from pytest_portcheck.session import ItemRecord
    from pytest_portcheck.summary import MARKDOWN_LIST_LIMIT, markdown_summary

    count = MARKDOWN_LIST_LIMIT + 300
    records = {
        f"inventory.yml::web::tcp/{port}::closed": ItemRecord(
            "web", f"tcp/{port}", "closed", "failed", [("10.0.0.1", "open", "syn-ack", "1.0")],
            message=f"web tcp/{port}: expected closed, found OPEN",
        )
        for port in range(1, count + 1)
    }  # fmt: skip
    text = markdown_summary(records, None)
    assert text.startswith(f"## portcheck: {count} drift, 0 error(s)")
    assert f"| web | 10.0.0.1 | {count} closed | {count} open | {count} | 0 |" in text
    drift = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(drift) == MARKDOWN_LIST_LIMIT + 1
    assert drift[-1] == "- … and 300 more: the JSON report (--portcheck-report) has them all"


# --- HTML in a real browser --------------------------------------------------------------------

HOSTILE = b'<script>window.pwned=1</script><img src=x onerror="window.pwned=2"> \x1b[31m</pre>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        skip_or_fail(
            "chromium is missing: apt-get install chromium chromium-driver", "PORTCHECK_REQUIRE_SERVERS"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is missing: pip install -e '.[test]'", "PORTCHECK_REQUIRE_SERVERS")
    options = Options()
    options.binary_location = str(chromium)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
    ):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(str(driver)), options=options)
    yield session
    session.quit()


@pytest.fixture
def hostile_port(greeter: Greeter) -> int:
    return greeter(HOSTILE)


def test_html_page_in_chromium(
    pytester: pytest.Pytester, listen: ListenerFactory, hostile_port: int, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    good = listen().getsockname()[1]
    closed = unused_port()
    pytester.makefile(
        ".yml",
        inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    open: [{good}, {hostile_port}]\n    closed: [{closed}]\n"
        f"  db:\n    address: 127.0.0.2\n    closed: [{good}]\n",
    )
    pytester.runpytest(
        "--portcheck", "inventory.yml", "--portcheck-banners", "--portcheck-html=page.html"
    ).assert_outcomes(passed=4)
    # Make drift: the same page from a report where web's closed port opened.
    page = pytester.path / "page.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text and "<link" not in text  # self-contained
    browser.get(page.as_uri())
    assert browser.get_log("browser") == []
    assert browser.execute_script("return window.pwned") is None
    rows = browser.find_elements(By.CSS_SELECTOR, "#matrix tr[data-host]")
    assert [row.find_element(By.CSS_SELECTOR, "th").text for row in rows] == [
        "web (127.0.0.1)",
        "db (127.0.0.2)",
    ]
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#matrix tr:first-child th")]
    assert headers == [
        "host / address",
        *sorted({f"tcp/{p}" for p in (good, hostile_port, closed)}, key=lambda t: int(t[4:])),
    ]
    cells = browser.find_elements(By.CSS_SELECTOR, "td.cell")
    assert len(cells) == 4 and {c.text for c in cells} == {"passed"}
    # The host filter hides the other host; the state filter dims cells that do not match.
    browser.find_element(By.ID, "host-filter").send_keys("db")
    assert [r.is_displayed() for r in rows] == [False, True]
    browser.find_element(By.ID, "host-filter").clear()
    browser.execute_script(
        "const s = document.getElementById('host-filter'); s.dispatchEvent(new Event('input'));"
    )
    browser.execute_script(
        "const s = document.getElementById('state-filter'); s.value = 'closed'; s.dispatchEvent(new Event('change'));"
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "td.cell.dim")) == 2
    # Details on click, with the hostile banner shown as text.
    browser.execute_script(
        "const s = document.getElementById('state-filter'); s.value = ''; s.dispatchEvent(new Event('change'));"
    )
    column = headers.index(f"tcp/{hostile_port}")
    rows[0].find_elements(By.CSS_SELECTOR, "td")[column - 1].click()
    details = browser.find_element(By.ID, "details").text
    assert "<script>window.pwned=1</script>" in details and "\\x1b[31m" in details
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, "img") == []


def test_html_report_command_shows_drift(
    tmp_path: Path, listen: ListenerFactory, browser: Any, pytester: pytest.Pytester
) -> None:
    from selenium.webdriver.common.by import By

    port = listen().getsockname()[1]
    pytester.makefile(".yml", inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    closed: [{port}]\n")
    pytester.runpytest("--portcheck", "inventory.yml", "--portcheck-report=report.json").assert_outcomes(
        failed=1
    )
    page = tmp_path / "page.html"
    done = portcheck("report", str(pytester.path / "report.json"), "-o", str(page))
    assert done.returncode == 0, done.stderr
    browser.get(page.as_uri())
    assert browser.get_log("browser") == []
    failed = browser.find_elements(By.CSS_SELECTOR, "td.cell.failed")
    assert len(failed) == 1 and failed[0].text == "failed"
    drift = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#drift li")]
    assert drift == [
        f"failed: web (127.0.0.1) tcp/{port}: expected closed, found OPEN — syn-ack in "
        + drift[0].split(" in ")[-1]
    ]
    assert os.path.getsize(page) < 200_000


def test_diff_reports_a_changed_service(tmp_path: Path, greeter: Greeter) -> None:
    port = greeter(b"SSH-2.0-OpenSSH_9.2p1 Debian")
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert portcheck("scan", "127.0.0.1", "-p", str(port), "--banner", "--json", str(old)).returncode == 0
    document = json.loads(old.read_text())
    [result] = document["results"]
    assert result["probe"]["version"] == "9.2p1"
    result["probe"]["version"] = "9.6p1"  # the same port, an upgraded server
    new.write_text(json.dumps(document))
    different = portcheck("diff", str(old), str(new))
    assert different.returncode == 1
    assert (
        f"~ service  127.0.0.1 127.0.0.1 tcp/{port}: ssh OpenSSH 9.2p1 -> ssh OpenSSH 9.6p1"
        in different.stdout
    )


def test_html_page_of_a_full_range_firewalled_host(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
    from pytest_portcheck.ports import Protocol
    from pytest_portcheck.results import ScanReport, write_report

    # 65,535 results from the real writer: three open ports, the rest dropped by a firewall.
    results = [
        ProbeResult("fw", "10.1.2.3", Protocol.TCP, port, PortState.OPEN, "syn-ack", 2.0, 1)
        if port in (22, 80, 443)
        else ProbeResult("fw", "10.1.2.3", Protocol.TCP, port, PortState.FILTERED, "no-response", None, 2)
        for port in range(1, 65536)
    ]
    report = ScanReport(
        [Resolution("fw", ("10.1.2.3",))], results, ScanSettings(), "2026-11-27T00:00:00+00:00", 9.0
    )
    write_report(report, tmp_path / "full.json")
    page = tmp_path / "full.html"
    done = portcheck("report", str(tmp_path / "full.json"), "-o", str(page))
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(page) < 100_000  # the filtered ports are counted, not drawn
    browser.get(page.as_uri())
    assert browser.get_log("browser") == []
    [row] = browser.find_elements(By.CSS_SELECTOR, "#matrix tr[data-host]")
    assert row.is_displayed()
    summary = row.find_element(By.CSS_SELECTOR, "td.summary")
    assert summary.is_displayed() and summary.text == "Not shown: 65,532 filtered ports (no-response)"
    cells = row.find_elements(By.CSS_SELECTOR, "td.cell")
    assert [c.text for c in cells] == ["open", "open", "open"]
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#matrix tr:first-child th")]
    assert headers == ["host / address", "not shown", "tcp/22", "tcp/80", "tcp/443"]
    cells[2].click()
    assert "reason: syn-ack" in browser.find_element(By.ID, "details").text
    assert (
        "the most common silent state are counted under “not shown”"
        in browser.find_element(By.ID, "meta").text
    )


# --- judged days: the judge's report holds the evidence it weighed --------------------------------


def test_diff_and_snapshot_of_judged_reports(pytester: pytest.Pytester, listen: ListenerFactory) -> None:
    allowed = listen().getsockname()[1]
    newcomer = unused_port()
    ports = sorted({allowed, newcomer, unused_port()})
    spec = ",".join(map(str, ports))
    pytester.makefile(
        ".yml",
        inventory=f"hosts:\n  box:\n    address: 127.0.0.1\n    only_open: [{allowed}]\n    range: '{spec}'\n",
    )

    def judged_day(day: str) -> pytest.RunResult:
        (pytester.path / "reports" / day).mkdir(parents=True)
        for index in (1, 2):
            done = portcheck(
                "scan", "--inventory", "inventory.yml", "--shard", f"{index}/2", "--run-id", day,
                "--json", f"reports/{day}/{index}.json", cwd=pytester.path,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
        return pytester.runpytest_subprocess(
            "--portcheck", "inventory.yml", "--portcheck-results", f"reports/{day}/*.json", "-p", "no:cacheprovider",
            "--portcheck-report", f"{day}.json",
        )  # fmt: skip

    judged_day("monday").assert_outcomes(passed=2)
    listen(port=newcomer)
    judged_day("tuesday").assert_outcomes(passed=1, failed=1)
    monday = json.loads((pytester.path / "monday.json").read_text())
    assert {(r["port"], r["state"]) for r in monday["results"]} == {(allowed, "open")} | {
        (p, "closed") for p in ports if p != allowed
    }
    assert monday["hosts"] == [{"host": "127.0.0.1", "addresses": ["127.0.0.1"], "error": None}]
    different = portcheck("diff", "monday.json", "tuesday.json", cwd=pytester.path)
    assert different.returncode == 1, different.stdout + different.stderr
    assert f"+ opened   127.0.0.1 127.0.0.1 tcp/{newcomer}: closed -> open" in different.stdout.splitlines()
    snapshot = portcheck("snapshot", "--from", "tuesday.json", "-o", "baseline.yml", cwd=pytester.path)
    assert snapshot.returncode == 0, snapshot.stderr
    text = (pytester.path / "baseline.yml").read_text()
    assert f'range: "{",".join(f"{p}/tcp" for p in ports)}"' in text
    assert f"- {allowed}  #" in text and f"- {newcomer}  #" in text
    pytester.runpytest("--portcheck", "baseline.yml").assert_outcomes(passed=3)
