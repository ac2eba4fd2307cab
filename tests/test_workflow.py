"""The drift workflow: default-deny ranges, snapshot, diff, waivers, Markdown and HTML reports."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import servers
from conftest import (
    REPO,
    Behaviour,
    ListenerFactory,
    Namespace,
    greeting,
    portcheck,
    skip_or_fail,
    unused_port,
)

from pytest_portcheck.ports import format_ports

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


@pytest.mark.usefixtures("private_loopback")  # the full range of a loopback holding only this test's listener
def test_only_open_over_the_full_range_passes_when_nothing_else_is_open(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    # The test's own network namespace: nothing listens on its loopback but this, so the inventory can
    # declare exactly what is open instead of what a scan of the machine found open.
    mine = listen().getsockname()[1]
    pytester.makefile(".yml", inventory=f"hosts:\n  box:\n    address: 127.0.0.1\n    only_open: [{mine}]\n")
    result = pytester.runpytest("--portcheck", "inventory.yml", "-q")
    result.assert_outcomes(passed=2)
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


def test_snapshot_of_a_block_holds_every_address_of_it(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    everywhere = listen(host="0.0.0.0").getsockname()[1]  # open on every 127.x address
    newcomer = unused_port()
    spec = format_ports({everywhere, newcomer})
    snapshot = pytester.path / "inventory.yml"
    done = portcheck("snapshot", "127.0.0.0/30", "-p", spec, "-o", str(snapshot))
    assert done.returncode == 0, done.stderr
    text = snapshot.read_text()
    assert text.count("    address: ") == 1 and '    address: "127.0.0.0/30"\n' in text
    pytester.runpytest("--portcheck", "inventory.yml").assert_outcomes(passed=2)
    # A listener on the block's last address, which the baseline must hold too.
    listen(host="127.0.0.3", port=newcomer)
    result = pytester.runpytest("--portcheck", "inventory.yml", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"*1 unexpected open port(s) in tcp/{spec} on 127.0.0.3: {newcomer} (*"])


def test_snapshot_of_a_block_whose_addresses_differ(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    mine = listen(host="127.0.0.1").getsockname()[1]  # open on 127.0.0.1 only
    newcomer = unused_port()
    spec = format_ports({mine, newcomer})
    snapshot = pytester.path / "inventory.yml"
    done = portcheck("snapshot", "127.0.0.0/30", "-p", spec, "-o", str(snapshot))
    assert done.returncode == 0, done.stderr
    text = snapshot.read_text()
    # The block for what its addresses share (the range without the port they differ on), and each
    # address with all it showed.
    assert f'  "127.0.0.0_30":\n    address: "127.0.0.0/30"\n    range: "{newcomer}/tcp"\n' in text
    ranged = ",".join(f"{piece}/tcp" for piece in spec.split(","))
    for address in ("127.0.0.0", "127.0.0.1", "127.0.0.2", "127.0.0.3"):
        assert f'  "127.0.0.0_30-{address}":\n    address: "{address}"\n    range: "{ranged}"' in text
    # the block's range, 127.0.0.1's open port and its range, and the range of each other address
    pytester.runpytest("--portcheck", "inventory.yml").assert_outcomes(passed=1 + 2 + 3)
    listen(host="127.0.0.3", port=mine)  # open where it was shut
    result = pytester.runpytest("--portcheck", "inventory.yml", "-rf")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines([f"FAILED inventory.yml::127.0.0.0_30-127.0.0.3::tcp/{spec}::only_open*"])
    listen(host="127.0.0.2", port=newcomer)  # open where every address was shut: the block fails too
    result = pytester.runpytest("--portcheck", "inventory.yml", "-rf")
    result.assert_outcomes(passed=3, failed=3)
    result.stdout.fnmatch_lines([f"FAILED inventory.yml::127.0.0.0_30::tcp/{newcomer}::only_open*"])


def test_interrupted_snapshot_writes_nothing(tmp_path: Path, silent_port: int) -> None:
    inventory = tmp_path / "inventory.yml"
    process = interrupted_in_its_scan(
        "snapshot", "127.0.0.0/26", "-p", str(silent_port), "-t", "30", "-o", str(inventory)
    )
    assert process.returncode == 130, process.stderr
    assert "interrupted: no inventory written" in process.stderr and "Traceback" not in process.stderr
    assert not inventory.exists()


def test_snapshot_from_an_interrupted_report_is_refused_unless_allowed(
    tmp_path: Path, silent_port: int
) -> None:
    report = tmp_path / "scan.json"
    scanned = interrupted_in_its_scan(
        "scan", "127.0.0.0/26", "-p", f"1,{silent_port}", "-t", "30", "--json", str(report)
    )
    assert scanned.returncode == 130 and json.loads(report.read_text())["interrupted"] is True
    refused = portcheck("snapshot", "--from", str(report))
    assert refused.returncode == 2 and refused.stdout == ""
    assert (
        f"portcheck: error: {report}: an interrupted scan (partial report): the ports it never reached "
        "would leave the baseline's range. Scan again, or pass --allow-interrupted"
    ) in refused.stderr
    allowed = portcheck("snapshot", "--from", str(report), "--allow-interrupted")
    assert allowed.returncode == 0, allowed.stderr
    assert f"portcheck: WARNING: {report} is an interrupted scan" in allowed.stderr
    assert "only_open" in allowed.stdout
    live = portcheck("snapshot", "127.0.0.1", "-p", "1", "--allow-interrupted")
    assert live.returncode == 2 and "--allow-interrupted goes with --from REPORT" in live.stderr


def interrupted_in_its_scan(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run the command and send it SIGTERM once its scan has sockets open (it is then in the scan)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_portcheck", *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not scanning(process.pid) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def scanning(pid: int) -> bool:
    """Whether the process holds a socket: the scan's first probe is out (the command opens none before)."""
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link.startswith("socket:") for link in links)


# --- snapshot of names: every address, new and dropped ones (namespaces) -------------------------

def judged_in(netns: Namespace, pytester: pytest.Pytester) -> pytest.RunResult:
    command = ["ip", "netns", "exec", netns.name, sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
    return pytester.run(*command, "--portcheck", "inventory.yml", "-rf", timeout=120)


@pytest.mark.parametrize("option", ["--json", "-oX"])
def test_snapshot_from_a_report_keeps_the_name_every_address_must_satisfy(
    netns: Namespace, pytester: pytest.Pytester, option: str
) -> None:
    # The README's case: a name with an IPv4 and an IPv6 address; the database later bound to ::1.
    netns.add_hosts("127.0.0.1 db.test\n::1 db.test\n")
    report = pytester.path / "scan.report"
    with netns.serving("127.0.0.1:5432", "::1:5432"):
        scanned = netns.portcheck("scan", "db.test", "-p", "5432,5433", option, str(report))
        assert scanned.returncode == 0, scanned.stderr
        made = portcheck("snapshot", "--from", str(report), "-o", str(pytester.path / "inventory.yml"))
        assert made.returncode == 0, made.stderr
        text = (pytester.path / "inventory.yml").read_text()
        assert text.count("    address: ") == 1 and '    address: "db.test"\n' in text
        judged_in(netns, pytester).assert_outcomes(passed=2)
        with netns.serving("::1:5433"):
            result = judged_in(netns, pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["db.test: 1 unexpected open port(s) in tcp/5432-5433 on ::1: 5433 (*"])


def test_snapshot_of_a_name_whose_addresses_differ_judges_new_and_dropped_addresses(
    netns: Namespace, pytester: pytest.Pytester
) -> None:
    netns.add_hosts("127.0.0.1 db.test\n::1 db.test\n")
    inventory = pytester.path / "inventory.yml"
    with netns.serving("127.0.0.1:5432"):  # IPv4 only
        made = netns.portcheck("snapshot", "db.test", "-p", "5432,5433", "-o", str(inventory))
        assert made.returncode == 0, made.stderr
        text = inventory.read_text()
        assert '  "db.test":\n    address: "db.test"\n    range: "5433/tcp"\n    only_open: []\n' in text
        assert '    address: "127.0.0.1"\n    range: "5432-5433/tcp"\n    only_open:\n      - 5432' in text
        assert '    address: "::1"\n    range: "5432-5433/tcp"\n    only_open: []\n' in text
        # the name's range, 127.0.0.1's open port and range, ::1's range
        judged_in(netns, pytester).assert_outcomes(passed=4)
        # A new address of the name, with a port open that no known address has open.
        (netns.etc / "hosts").write_text("127.0.0.1 db.test\n::1 db.test\n127.0.0.2 db.test\n")
        with netns.serving("127.0.0.2:5433"):
            result = judged_in(netns, pytester)
        result.assert_outcomes(passed=3, failed=1)
        result.stdout.fnmatch_lines(["db.test: 1 unexpected open port(s) in tcp/5433 on 127.0.0.2: 5433 (*"])
        # The name stops resolving to ::1, where the database now listens too: still judged there.
        (netns.etc / "hosts").write_text("127.0.0.1 db.test\n")
        with netns.serving("::1:5432"):
            result = judged_in(netns, pytester)
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["FAILED inventory.yml::db.test--1::tcp/5432-5433::only_open*"])


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
    from pytest_portcheck.report.judged import FoundState, ItemOutcome
    from pytest_portcheck.report.markdown import MARKDOWN_LIST_LIMIT, markdown_summary

    count = MARKDOWN_LIST_LIMIT + 300
    records = {
        f"inventory.yml::web::tcp/{port}::closed": ItemOutcome(
            "web", f"tcp/{port}", "closed", "failed", found=(FoundState("10.0.0.1", "open", "syn-ack", 1.0),),
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


def scanned_as(tmp_path: Path, name: str, port: int, as_port: int) -> Path:
    """The --banner report of a real server on ``port``, filed as if it answered on ``as_port``: one
    port before and after a change a test cannot make to a running server in place."""
    path = tmp_path / f"{name}.json"
    done = portcheck("scan", "127.0.0.1", "-p", str(port), "--banner", "--json", str(path))
    assert done.returncode == 0, done.stderr
    document = json.loads(path.read_text())
    for result in document["results"]:
        result["port"] = as_port
    path.write_text(json.dumps(document))
    return path


def test_diff_sees_a_swapped_certificate_and_an_older_tls_version(tmp_path: Path) -> None:
    with servers.nginx() as ports:
        port = ports.https
        old = scanned_as(tmp_path, "old", port, port)
        swapped = scanned_as(tmp_path, "swapped", ports.https_expiring, port)  # another certificate
        downgraded = scanned_as(tmp_path, "downgraded", ports.https_tls12_only, port)  # TLSv1.2 at most
        served = ssl.get_server_certificate(("127.0.0.1", port))
    fingerprint = hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest()
    [before] = json.loads(old.read_text())["results"]
    [after] = json.loads(swapped.read_text())["results"]
    assert before["probe"]["tls"]["fingerprint_sha256"] == fingerprint  # the leaf certificate's DER
    other, expiry = after["probe"]["tls"]["fingerprint_sha256"], after["probe"]["tls"]["not_after"]
    assert other != fingerprint
    different = portcheck("diff", str(old), str(swapped))
    assert different.returncode == 1, different.stderr
    assert different.stdout.splitlines()[2:] == [
        f"~ certificate 127.0.0.1 127.0.0.1 tcp/{port}: {fingerprint} -> {other}",
        f"~ expiry   127.0.0.1 127.0.0.1 tcp/{port}: {before['probe']['tls']['not_after']} -> {expiry}",
        "2 difference(s)",
    ]
    machine = json.loads(portcheck("diff", "--json", str(old), str(downgraded)).stdout)
    assert [(c["kind"], c["old"], c["new"]) for c in machine["changes"]] == [("tls", "TLSv1.3", "TLSv1.2")]
    assert portcheck("diff", str(old), str(old)).returncode == 0


@pytest.mark.parametrize("server", ["mosquitto", "redis"])
def test_diff_sees_authentication_turned_off(tmp_path: Path, server: str) -> None:
    if server == "mosquitto":
        locked, opened = servers.mosquitto(anonymous=False), servers.mosquitto(anonymous=True)
    else:
        locked, opened = servers.redis(password="secret"), servers.redis()
    with locked as locked_port, opened as open_port:
        old = scanned_as(tmp_path, "old", locked_port, locked_port)
        new = scanned_as(tmp_path, "new", open_port, locked_port)
    different = portcheck("diff", str(old), str(new))
    assert different.returncode == 1, different.stderr
    lines = different.stdout.splitlines()
    assert f"~ auth     127.0.0.1 127.0.0.1 tcp/{locked_port}: required -> none" in lines
    assert lines[-1] == "1 difference(s)"
    if server == "redis":  # a locked Redis does not tell its version: known in the new report only
        assert lines[-2].startswith("(1 probe fact(s) known in one report only")


def test_html_page_of_a_full_range_firewalled_host(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
    from pytest_portcheck.ports import Protocol
    from pytest_portcheck.report.encode import write_report
    from pytest_portcheck.report.model import ScanReport

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
        return pytester.runpytest(
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
