"""Sharded scans judged once: N shard processes + the judge agree with one unsharded run, item by item;
partial, duplicated or foreign shards are errors; vantage points; version 1 reports; SYNs counted."""

from __future__ import annotations

import datetime
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, Behaviour, ListenerFactory, Namespace, greeting, portcheck, unused_port

from pytest_portcheck.inventory.load import parse_inventory
from pytest_portcheck.ports import Protocol
from pytest_portcheck.sharding.plan import ShardSplit, plan_inventory
from pytest_portcheck.sharding.report import load_report

pytest_plugins = ["pytester"]
FLEET = [f"127.77.{i // 200}.{i % 200 + 1}" for i in range(12)]


@pytest.fixture
def fleet(private_loopback: None) -> Iterator[tuple[int, int]]:
    """Twelve loopback hosts 127.77.0.x listening on port P; host 3 also listens on P+5 (drift).
    In a network namespace of the test's own: another xdist worker's fleet may sit within 40 ports."""
    sockets = []
    with socket.socket() as probe:
        probe.bind((FLEET[0], 0))
        port = int(probe.getsockname()[1])
    try:
        for address in FLEET:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(64)
            sockets.append(sock)
        extra = socket.socket()
        extra.bind((FLEET[3], port + 5))
        extra.listen(64)
        sockets.append(extra)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        pytest.skip(f"port {port} is taken on a fleet address: {exc}")
    yield port, port + 5
    for sock in sockets:
        sock.close()


def inventory_text(port: int) -> str:
    lines = ["hosts:"]
    for index, address in enumerate(FLEET):
        lines += [f"  h{index}:", f"    address: {address}"]
        if index % 2:
            lines += [f"    open: [{port}]", f"    closed: [{port + 1}, {port + 2}, {port + 5}]"]
        else:
            lines += [f"    only_open: [{port}]", f'    range: "{port}-{port + 40}"']
    return "\n".join(lines) + "\n"


OUTCOME = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL)", re.MULTILINE)


XDIST_OUTCOME = re.compile(r"\] (PASSED|FAILED|ERROR|SKIPPED|XFAIL) (\S+::\S+)")


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    return dict(OUTCOME.findall(result.stdout.str()))


def scan_shards(folder: Path, count: int, *extra: str, run_id: str = "run-1") -> None:
    """``count`` shard scans in parallel, one run (each process would otherwise make up its own id)."""
    (folder / "reports").mkdir(exist_ok=True)

    def one(index: int) -> subprocess.CompletedProcess[str]:
        return portcheck(
            "scan", "--inventory", "inventory.yml", "--shard", f"{index}/{count}", "--run-id", run_id,
            "--json", f"reports/shard-{index}.json", *extra, cwd=folder,
        )  # fmt: skip

    with ThreadPoolExecutor(count) as pool:
        for completed in pool.map(one, range(1, count + 1)):
            assert completed.returncode == 0, completed.stdout + completed.stderr


def test_shards_and_judge_equal_one_unsharded_run(pytester: pytest.Pytester, fleet: tuple[int, int]) -> None:
    port, extra = fleet
    pytester.makefile(".yml", inventory=inventory_text(port))
    whole = pytester.runpytest("--portcheck", "inventory.yml", "-v", "-p", "no:cacheprovider")
    scan_shards(pytester.path, 4)
    judged = pytester.runpytest(
        "--portcheck",
        "inventory.yml",
        "--portcheck-results",
        "reports/*.json",
        "-v",
        "-p",
        "no:cacheprovider",
    )
    expected = outcomes(whole)
    assert len(expected) == 6 * 4 + 6 * 2  # 6 hosts x (open + 3 closed), 6 x (open + only_open)
    assert outcomes(judged) == expected
    assert expected["inventory.yml::h3::tcp/" + str(extra) + "::closed"] == "FAILED"
    judged.stdout.fnmatch_lines(["judged from 4 report(s), no scan", "*4/4 shard(s)*"])
    # Every unit is in exactly one shard report, and the reports stay small.
    plan = plan_inventory(parse_inventory(inventory_text(port), Path("inventory.yml")))
    reports = [load_report(pytester.path / "reports" / f"shard-{k}.json") for k in range(1, 5)]
    assert {r.shard.digest for r in reports if r.shard} == {plan.digest}
    counted = sum((s.count or 0) + len(s.exceptions) for r in reports for s in r.usual.values())
    assert counted == plan.total


def test_judge_under_xdist_gives_the_same_outcomes(pytester: pytest.Pytester, fleet: tuple[int, int]) -> None:
    port, _extra = fleet
    pytester.makefile(".yml", inventory=inventory_text(port))
    scan_shards(pytester.path, 2)
    args = [
        "--portcheck",
        "inventory.yml",
        "--portcheck-results",
        "reports/*.json",
        "-v",
        "-p",
        "no:cacheprovider",
    ]
    plain = pytester.runpytest(*args)  # only xdist needs a process of its own
    spread = pytester.runpytest_subprocess(*args, "-n", "2")
    spread_outcomes = {nodeid: outcome for outcome, nodeid in XDIST_OUTCOME.findall(spread.stdout.str())}
    assert spread_outcomes == outcomes(plain)
    assert len(spread_outcomes) == 36


def test_missing_duplicated_and_foreign_shards_are_errors(
    pytester: pytest.Pytester, fleet: tuple[int, int]
) -> None:
    port, _extra = fleet
    pytester.makefile(".yml", inventory=inventory_text(port))
    scan_shards(pytester.path, 4)
    reports = pytester.path / "reports"
    args = ["--portcheck", "inventory.yml", "-v", "-p", "no:cacheprovider"]

    (reports / "shard-3.json").rename(pytester.path / "shard-3.json")
    missing = pytester.runpytest(*args, "--portcheck-results", "reports/*.json")
    found = outcomes(missing)
    assert "ERROR" in found.values()
    missing.stdout.fnmatch_lines(["*shard 3/4 is missing*"])
    # Every range item touches every shard: none of them may pass on three quarters of the data.
    assert all(outcome == "ERROR" for nodeid, outcome in found.items() if nodeid.endswith("only_open"))
    assert missing.ret != 0

    shutil.copy(pytester.path / "shard-3.json", reports / "shard-3.json")
    shutil.copy(reports / "shard-2.json", reports / "shard-2-again.json")
    doubled = pytester.runpytest(*args, "--portcheck-results", "reports/*.json")
    doubled.stdout.fnmatch_lines(["*shard 2/4 was given twice*"])
    assert all(
        outcome == "ERROR" for nodeid, outcome in outcomes(doubled).items() if nodeid.endswith("only_open")
    )
    (reports / "shard-2-again.json").unlink()

    # Today's inventory declares one more port: yesterday's reports are of another plan.
    pytester.makefile(
        ".yml",
        inventory=inventory_text(port).replace(
            f"\n    open: [{port}]\n", f"\n    open: [{port}, {port + 3}]\n", 1
        ),
    )
    foreign = pytester.runpytest(*args, "--portcheck-results", "reports/*.json")
    assert set(outcomes(foreign).values()) == {"ERROR"}
    foreign.stdout.fnmatch_lines(["*refused: it is of another inventory*"])
    allowed = pytester.runpytest(
        *args, "--portcheck-results", "reports/*.json", "--portcheck-allow-other-inventory"
    )
    judged = outcomes(allowed)
    assert judged[f"inventory.yml::h1::tcp/{port + 3}::open"] == "ERROR"  # never scanned
    assert judged[f"inventory.yml::h1::tcp/{port}::open"] == "PASSED"
    allowed.stdout.fnmatch_lines([f"*h1*tcp/{port + 3}*not scanned*"])


def test_interrupted_shard_is_an_error(pytester: pytest.Pytester, fleet: tuple[int, int]) -> None:
    port, _extra = fleet
    pytester.makefile(".yml", inventory=inventory_text(port))
    scan_shards(pytester.path, 2)
    path = pytester.path / "reports" / "shard-1.json"
    path.write_text(path.read_text().replace('"interrupted": false', '"interrupted": true'))
    result = pytester.runpytest(
        "--portcheck", "inventory.yml", "--portcheck-results", "reports/*.json", "-p", "no:cacheprovider"
    )
    result.stdout.fnmatch_lines(["*shard 1/2 was interrupted*"])
    assert result.parseoutcomes().get("errors", 0) >= 6


def test_version_1_reports_are_still_judged(pytester: pytest.Pytester, fleet: tuple[int, int]) -> None:
    port, _extra = fleet
    pytester.makefile(".yml", inventory=inventory_text(port))
    args = ["--portcheck", "inventory.yml", "-v", "-p", "no:cacheprovider"]
    whole = pytester.runpytest(*args, "--portcheck-report", "yesterday.json")
    assert json.loads((pytester.path / "yesterday.json").read_text())["version"] == 1
    again = pytester.runpytest(*args, "--portcheck-results", "yesterday.json")
    assert outcomes(again) == outcomes(whole)


VANTAGE_INVENTORY = """\
hosts:
  db:
    address: {address}
    closed: [{port}]
    from:
      app-subnet:
        open: [{port}]
  web:
    address: {address}
    open: [{port}]
"""


def test_vantage_scoped_items(pytester: pytest.Pytester, fleet: tuple[int, int]) -> None:
    port, _extra = fleet
    pytester.makefile(".yml", inventory=VANTAGE_INVENTORY.format(address=FLEET[0], port=port))
    scan_shards(pytester.path, 2, "--vantage", "app-subnet")
    args = ["--portcheck", "inventory.yml", "-v", "-p", "no:cacheprovider", "-rA"]
    only_app = pytester.runpytest(*args, "--portcheck-results", "reports/*.json")
    assert (
        outcomes(only_app)
        == {
            f"inventory.yml::db::tcp/{port}::closed": "ERROR",  # applies from everywhere else: no report from there
            f"inventory.yml::db::tcp/{port}::open-from-app-subnet": "PASSED",
            f"inventory.yml::web::tcp/{port}::open": "PASSED",
        }
    )
    # The same listener seen from "internet": open there too, so the unscoped closed fails.
    (pytester.path / "internet").mkdir()
    for index in (1, 2):
        done = portcheck(
            "scan", "--inventory", "inventory.yml", "--shard", f"{index}/2", "--json",
            f"internet/shard-{index}.json", "--run-id", "run-1", cwd=pytester.path,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    both = pytester.runpytest(
        *args, "--portcheck-results", "reports/*.json", "--portcheck-results", "internet/*.json"
    )
    assert outcomes(both)[f"inventory.yml::db::tcp/{port}::closed"] == "FAILED"
    both.stdout.fnmatch_lines(["db (127.77.0.1) tcp/*: expected closed, found OPEN*"])
    # A scoped vantage without any report: its items are errors.
    only_internet = pytester.runpytest(*args, "--portcheck-results", "internet/*.json")
    assert outcomes(only_internet)[f"inventory.yml::db::tcp/{port}::open-from-app-subnet"] == "ERROR"
    only_internet.stdout.fnmatch_lines(["*cannot check — no report from vantage app-subnet*"])


def test_vantage_in_a_scanning_run(
    pytester: pytest.Pytester, fleet: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _extra = fleet
    pytester.makefile(".yml", inventory=VANTAGE_INVENTORY.format(address=FLEET[0], port=port))
    monkeypatch.setenv("PORTCHECK_VANTAGE", "app-subnet")
    here = pytester.runpytest("--portcheck", "inventory.yml", "-v", "-p", "no:cacheprovider")
    assert outcomes(here) == {
        f"inventory.yml::db::tcp/{port}::closed": "SKIPPED",
        f"inventory.yml::db::tcp/{port}::open-from-app-subnet": "PASSED",
        f"inventory.yml::web::tcp/{port}::open": "PASSED",
    }
    monkeypatch.delenv("PORTCHECK_VANTAGE")
    elsewhere = pytester.runpytest("--portcheck", "inventory.yml", "-v", "-p", "no:cacheprovider")
    assert outcomes(elsewhere)[f"inventory.yml::db::tcp/{port}::open-from-app-subnet"] == "ERROR"


def test_shard_command_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("hosts:\n  a:\n    address: 127.0.0.1\n    closed: [1]\n")
    for arguments, message in (
        (["--shard", "5/4"], "K must be 1 to N"),
        (["--shard", "/4"], "JOB_COMPLETION_INDEX"),
        (["127.0.0.1"], "give no TARGET"),
        (
            ["--shard", "1/100"],
            "100 shares of a plan of 1 unit(s): a share count is at most the number of units",
        ),
        (["--run-id", "two words"], "--run-id 'two words': a run id is 1-128 letters"),
    ):
        done = portcheck("scan", "--inventory", "inv.yml", *arguments, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    (tmp_path / "bad.yml").write_text("hosts:\n  a:\n    closd: [1]\n")
    done = portcheck("scan", "--inventory", "bad.yml", cwd=tmp_path)
    assert done.returncode == 2 and "bad.yml:3: unknown key 'closd'" in done.stderr
    assert "Traceback" not in done.stderr


def test_each_unit_is_probed_exactly_once_across_shards(netns: Namespace, tmp_path: Path) -> None:
    """SYNs counted by iptables, per destination, inside a namespace of the test's own."""
    hosts = [f"127.0.0.{i}" for i in range(2, 6)]
    text = "hosts:\n" + "".join(
        f'  h{i}:\n    address: {a}\n    only_open: []\n    range: "1000-{1000 + 150 * i}"\n    closed: [22]\n'
        for i, a in enumerate(hosts)
    )
    (tmp_path / "inv.yml").write_text(text)
    for address in hosts:
        netns.run("iptables", "-A", "OUTPUT", "-p", "tcp", "--syn", "-d", address)
    processes = [
        netns.popen(
            sys.executable,
            "-m",
            "pytest_portcheck",
            "scan",
            "--inventory",
            str(tmp_path / "inv.yml"),
            "--shard",
            f"{k}/4",
            "--json",
            str(tmp_path / f"shard-{k}.json"),
        )
        for k in range(1, 5)
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, out + err
    counters = netns.run("iptables", "-L", "OUTPUT", "-v", "-n", "-x").stdout
    plan = plan_inventory(parse_inventory(text, tmp_path / "inv.yml"))
    for address in hosts:
        host = plan.host(address)
        assert host is not None
        line = next(line for line in counters.splitlines() if f" {address} " in f" {line} ")
        assert int(line.split()[0]) == host.count, (address, line)
    # And the four reports together list each unit once: the shares the judge recomputes.
    split = ShardSplit(plan.total, plan.digest, 4)
    for k in range(1, 5):
        report = load_report(tmp_path / f"shard-{k}.json")
        assert sum((s.count or 0) + len(s.exceptions) for s in report.usual.values()) == split.size(k)
    assert plan.unit_index(hosts[0], Protocol.TCP, 22) is not None


def test_report_of_another_version_is_refused_by_v1_readers(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("hosts:\n  a:\n    address: 127.0.0.1\n    closed: [1]\n")
    assert portcheck("scan", "--inventory", "inv.yml", "--json", "s.json", cwd=tmp_path).returncode == 0
    done = portcheck("diff", "s.json", "s.json", cwd=tmp_path)
    assert done.returncode == 2 and "a shard report (version 2)" in done.stderr
    assert REPO.is_dir()


def test_judge_warns_of_a_silent_host_and_strict_makes_errors(
    pytester: pytest.Pytester, silent_port: int
) -> None:
    # A judge that passed closed: on an address where nothing answered, without the warning a
    # scanning run gives, would hide a wrong address or a host that is down.
    pytester.makefile(
        ".yml",
        inventory=(
            "defaults:\n  timeout: 0.2\n  retries: 0\nhosts:\n"
            f"  quiet:\n    address: 127.0.0.1\n    closed: [{silent_port}]\n"
            f'    only_open: []\n    range: "{silent_port}-{silent_port}"\n'
        ),
    )
    scan_shards(pytester.path, 2)
    args = ["--portcheck", "inventory.yml", "--portcheck-results", "reports/*.json", "-p", "no:cacheprovider"]
    relaxed = pytester.runpytest(*args)
    # silent_port is a listener whose queue is full: the judge of reports sees the socket behind the
    # silence as the scan does (listen-no-accept), and fails closed: (the range, whose only port is
    # declared closed:, has nothing left to judge).
    relaxed.assert_outcomes(passed=1, failed=1)
    relaxed.stdout.fnmatch_lines(
        [
            f"*quiet (127.0.0.1) tcp/{silent_port}: expected closed, found FILTERED — listen-no-accept*",
            "WARNING: inventory.yml::quiet: no port answered on 127.0.0.1 — is the address right?*",
        ]
    )
    strict = pytester.runpytest(*args, "--portcheck-strict")
    strict.assert_outcomes(errors=2)
    strict.stdout.fnmatch_lines(
        [
            f"*quiet (127.0.0.1) tcp/{silent_port}: no port answered on 127.0.0.1 — is the address right? "
            "(--portcheck-strict)",
            # The range's message names the address as the port's does (and as a scanning run's does).
            f"*quiet (127.0.0.1) tcp/{silent_port}: no port answered on 127.0.0.1 — is the address right? (--portcheck-strict)",
        ]
    )


def test_hosts_sharing_an_address_combine_to_the_gentler_rates() -> None:
    from pytest_portcheck.pipeline.inventory import most_patient

    # No cap is the harshest cap, no floor the gentlest floor; a floor never exceeds the cap.
    assert most_patient((1.0, 1, None, 50.0), (2.0, 0, 10.0, None)) == (2.0, 1, 10.0, None)
    assert most_patient((1.0, 1, 100.0, 50.0), (1.0, 1, 10.0, 20.0)) == (1.0, 1, 10.0, 10.0)
    assert most_patient((1.0, 1, None, None), (1.0, 1, None, 5.0)) == (1.0, 1, None, None)


def test_a_shard_scan_of_hosts_with_crossed_rates_on_one_address(pytester: pytest.Pytester) -> None:
    # One host asks for a floor, another on the same address for a cap below it: the shard scan
    # once combined them into min 50 > max 10 and stopped with a command-line error.
    closed = [str(unused_port()) for _ in range(2)]
    pytester.makefile(
        ".yml",
        inventory=(
            f"hosts:\n  a:\n    address: 127.0.0.1\n    min_rate: 50\n    closed: [{closed[0]}]\n"
            f"  b:\n    address: 127.0.0.1\n    max_rate: 10\n    closed: [{closed[0]}, {closed[1]}]\n"
        ),
    )
    scan_shards(pytester.path, 1)
    judged = pytester.runpytest(
        "--portcheck", "inventory.yml", "--portcheck-results", "reports/*.json", "-p", "no:cacheprovider"
    )
    judged.assert_outcomes(passed=3)
    # Unsharded, the port both declare was scanned under the combined timing: the same mistake made
    # both its items errors.
    whole = pytester.runpytest("--portcheck", "inventory.yml", "-p", "no:cacheprovider")
    whole.assert_outcomes(passed=3)


def test_a_judged_item_carries_what_answered_in_its_junit_properties(
    pytester: pytest.Pytester, peer: Callable[[Behaviour], int]
) -> None:
    # The shard's protocol probe found ssh; the judge's items once reported it in no JUnit property.
    port = peer(greeting(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"))
    pytester.makefile(
        ".yml",
        inventory=f"hosts:\n  box:\n    address: 127.0.0.1\n    open:\n      - {{port: {port}, service: ssh}}\n",
    )
    scan_shards(pytester.path, 2)
    junit = pytester.path / "junit.xml"
    judged = pytester.runpytest(
        "--portcheck", "inventory.yml", "--portcheck-results", "reports/*.json", f"--junitxml={junit}",
        "-p", "no:cacheprovider",
    )  # fmt: skip
    judged.assert_outcomes(passed=1)
    [value] = [p.get("value") for p in ET.parse(junit).getroot().iter("property") if p.get("name") == "portcheck"]
    [service] = json.loads(str(value))["services"]  # ADDRESS SERVICE (PRODUCT VERSION) "BANNER"
    assert service.startswith("127.0.0.1 ssh (OpenSSH 9.2p1")


# --- one run, fresh, intact: the seams, with real scans --------------------------------------------

JUDGE = [
    "--portcheck",
    "inventory.yml",
    "--portcheck-results",
    "reports/*.json",
    "-p",
    "no:cacheprovider",
    "-rA",
]


def one_port_inventory(pytester: pytest.Pytester, port: int, expect: str = "closed") -> None:
    pytester.makefile(".yml", inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    {expect}: [{port}]\n")


def shard_scan(folder: Path, shard: str, report: str, *extra: str, env: dict[str, str] | None = None) -> None:
    done = portcheck(
        "scan", "--inventory", "inventory.yml", "--shard", shard, "--json", report, *extra, cwd=folder,
        env=env or os.environ.copy(),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("old_name", ["a-yesterday.json", "z-yesterday.json"])
def test_yesterdays_complete_shard_set_never_answers_for_today(
    pytester: pytest.Pytester, listen: ListenerFactory, old_name: str
) -> None:
    port = unused_port()
    one_port_inventory(pytester, port)
    (pytester.path / "reports").mkdir()
    shard_scan(pytester.path, "1/1", f"reports/{old_name}")  # yesterday: closed, a run id of its own
    listen(port=port)  # today it is open
    for index in (1, 2):
        shard_scan(pytester.path, f"{index}/2", f"reports/today-{index}.json", "--run-id", "today")
    judged = pytester.runpytest(*JUDGE)
    judged.assert_outcomes(failed=1)
    judged.stdout.fnmatch_lines([
        f"*web (127.0.0.1) tcp/{port}: expected closed, found OPEN*",
        "inventory.yml: judged run today: 2 report(s), started *",
        f"ignored: reports/{old_name}: another run (*",
    ])  # fmt: skip


def test_a_missing_share_is_not_filled_by_an_older_plain_scan(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    port = listen().getsockname()[1]
    ports = [port, *(unused_port() for _ in range(3))]
    text = f"hosts:\n  web:\n    address: 127.0.0.1\n    closed: {ports}\n"
    pytester.makefile(".yml", inventory=text)
    plan = plan_inventory(parse_inventory(text, Path("inventory.yml")))
    unit = plan.unit_index("127.0.0.1", Protocol.TCP, port)
    assert unit is not None
    holder = ShardSplit(plan.total, plan.digest, 2).shard_of(unit)
    (pytester.path / "reports").mkdir()
    spec = ",".join(map(str, ports))
    older = portcheck("scan", "127.0.0.1", "-p", spec, "--json", "reports/old-v1.json", cwd=pytester.path)
    assert older.returncode == 0, older.stderr
    # As if the port had been closed when that scan ran, an hour ago.
    document = json.loads((pytester.path / "reports" / "old-v1.json").read_text())
    for result in document["results"]:
        result["state"], result["reason"] = "closed", "conn-refused"
    an_hour_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    document["started"] = an_hour_ago.isoformat(timespec="seconds")
    (pytester.path / "reports" / "old-v1.json").write_text(json.dumps(document))
    other = 3 - holder  # today's run gave only the share that does not hold the open port
    shard_scan(pytester.path, f"{other}/2", f"reports/today-{other}.json", "--run-id", "today")
    judged = pytester.runpytest(*JUDGE)
    judged.assert_outcomes(passed=2, errors=2)
    judged.stdout.fnmatch_lines(
        [f"*tcp/{port}: cannot check 127.0.0.1 — not covered: shard {holder}/2 is missing*"]
    )


def test_stale_reports_are_errors_naming_them_and_their_age(pytester: pytest.Pytester) -> None:
    port = unused_port()
    one_port_inventory(pytester, port)
    (pytester.path / "reports").mkdir()
    shard_scan(pytester.path, "1/1", "reports/shard.json", "--run-id", "nightly")
    path = pytester.path / "reports" / "shard.json"
    three_days = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=3, hours=1, minutes=1)
    document = json.loads(path.read_text())
    document["started"] = three_days.isoformat(timespec="seconds")
    path.write_text(json.dumps(document))
    stale = pytester.runpytest(*JUDGE)  # the default limit: 24 hours
    stale.assert_outcomes(errors=1)
    started = document["started"]
    stale.stdout.fnmatch_lines([
        f"*shard 1/1 (reports/shard.json) is too old: started {started}, 3 d 1 h ago (--portcheck-max-age 24h)*",
        f"inventory.yml: judged run nightly: 1 report(s), started {started} to {started}",
    ])  # fmt: skip
    pytester.runpytest(*JUDGE, "--portcheck-max-age", "7d").assert_outcomes(passed=1)
    bad = pytester.runpytest(*JUDGE, "--portcheck-max-age", "soon")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(
        [
            "*--portcheck-max-age 'soon' is not a duration: write a whole number and a unit, e.g. 90m, 24h or 7d*"
        ]
    )


def test_with_a_key_only_signed_untouched_reports_are_judged(
    pytester: pytest.Pytester, listen: ListenerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = listen().getsockname()[1]
    one_port_inventory(pytester, port, "open")
    (pytester.path / "reports").mkdir()
    keyed = {**os.environ, "PORTCHECK_REPORT_KEY": "a shared secret"}
    for index in (1, 2):
        shard_scan(pytester.path, f"{index}/2", f"reports/shard-{index}.json", "--run-id", "r", env=keyed)
    unchecked = pytester.runpytest(*JUDGE)
    unchecked.assert_outcomes(passed=1)
    unchecked.stdout.fnmatch_lines(
        [
            "WARNING: the reports are unauthenticated (PORTCHECK_REPORT_KEY is not set): anyone who can write them can forge a pass*"
        ]
    )
    monkeypatch.setenv("PORTCHECK_REPORT_KEY", "a shared secret")
    signed = pytester.runpytest(*JUDGE)
    signed.assert_outcomes(passed=1)
    signed.stdout.fnmatch_lines(
        ["reports checked with PORTCHECK_REPORT_KEY (HMAC-SHA256): unsigned or altered ones are errors"]
    )
    # Whoever can write the folder turns the open port into "closed": no longer a report of ours.
    for path in (pytester.path / "reports").iterdir():
        path.write_text(path.read_text().replace('"syn-ack"', '"conn-refused"').replace('"open"', '"closed"'))
    forged = pytester.runpytest(*JUDGE)
    forged.assert_outcomes(errors=1)
    forged.stdout.fnmatch_lines(["*cannot be trusted: its signature does not match: it was altered*"])
    monkeypatch.setenv("PORTCHECK_REPORT_KEY", "another secret")
    pytester.runpytest(*JUDGE).assert_outcomes(errors=1)


def test_the_plugins_own_report_is_signed_with_the_key(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_portcheck.report.provenance import signature_problem

    one_port_inventory(pytester, unused_port())
    monkeypatch.setenv("PORTCHECK_REPORT_KEY", "k")
    pytester.runpytest("--portcheck", "inventory.yml", "--portcheck-report", "plugin.json").assert_outcomes(
        passed=1
    )
    document = json.loads((pytester.path / "plugin.json").read_text())
    assert signature_problem(document, b"k") is None
    assert "does not match" in (signature_problem(document, b"x") or "")


def test_a_malformed_report_is_one_error_naming_file_and_field_with_the_summary(
    pytester: pytest.Pytester,
) -> None:
    one_port_inventory(pytester, unused_port())
    (pytester.path / "reports").mkdir()
    shard_scan(pytester.path, "1/1", "reports/shard.json", "--run-id", "r")
    path = pytester.path / "reports" / "shard.json"
    document = json.loads(path.read_text())
    document["plan"][0][3] = "abc,,"
    path.write_text(json.dumps(document))
    judged = pytester.runpytest(*JUDGE, "--portcheck-allow-other-inventory")
    judged.assert_outcomes(errors=1)
    assert "Traceback" not in judged.stdout.str() and "PortSpecError" not in judged.stdout.str()
    judged.stdout.fnmatch_lines([
        "*portcheck exposure*",
        "host*addresses*expected*",
        "ERROR: portcheck: cannot judge: reports/shard.json: not a valid portcheck JSON report: "
        '$.plan[[]0[]][[]3[]]: expected port runs, not "abc,,": *',
    ])  # fmt: skip


STOP_HERE = """
import os, time

def pytest_runtest_teardown(item):
    # The first item was judged (so the reports were read and weighed): tell the test, then wait
    # for its SIGTERM.
    with open(os.environ["READY_FIFO"], "w") as fifo:
        fifo.write("ready\\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
"""


def test_sigterm_stops_the_judge_promptly(pytester: pytest.Pytester, tmp_path: Path) -> None:
    one_port_inventory(pytester, unused_port())
    (pytester.path / "reports").mkdir()
    shard_scan(pytester.path, "1/1", "reports/shard.json", "--run-id", "r")
    path = pytester.path / "reports" / "shard.json"
    document = json.loads(path.read_text())
    document["shard"]["count"] = 10**12  # once: a loop to 10^12 that SIGTERM did not stop
    path.write_text(json.dumps(document))
    pytester.makeconftest(STOP_HERE)
    fifo = tmp_path / "ready"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opened first: the writer never blocks
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *JUDGE], cwd=pytester.path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "READY_FIFO": str(fifo)},
    )  # fmt: skip
    try:
        # Before the fix the judge never got there: it counted shares to 10^12 first.
        assert select.select([reader], [], [], 120)[0], "the judge never finished its first item"
        assert os.read(reader, 16) == b"ready\n"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        os.close(reader)
        process.kill()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output
    assert "KeyboardInterrupt: signal SIGTERM" in output and "portcheck exposure" in output
    assert "refused: shard.count says 1,000,000,000,000 shares of a plan of 1 unit(s)" in output


RANGE_FROM_APP = """\
hosts:
  db:
    address: {address}
    only_open: []
    range: "{port}-{last}"
    from:
      app-subnet:
        open: [{port}]
"""


def test_a_scanning_run_from_a_vantage_allows_in_a_range_what_that_vantage_may_reach(
    pytester: pytest.Pytester, fleet: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _extra = fleet
    pytester.makefile(".yml", inventory=RANGE_FROM_APP.format(address=FLEET[0], port=port, last=port + 3))
    monkeypatch.setenv("PORTCHECK_VANTAGE", "app-subnet")
    args = ["--portcheck", "inventory.yml", "-v", "-p", "no:cacheprovider", "--portcheck-report", "here.json"]
    here = pytester.runpytest(*args)
    # Once the range failed on the port its own vantage may reach, which the judge let pass.
    assert outcomes(here) == {
        f"inventory.yml::db::tcp/{port}::open-from-app-subnet": "PASSED",
        f"inventory.yml::db::tcp/{port}-{port + 3}::only_open": "PASSED",
    }
    verdicts = json.loads((pytester.path / "here.json").read_text())["expectations"]
    ranged = next(v for v in verdicts if v["expected"] == "only_open")
    assert ranged["message"] == (
        f"from app-subnet: db ({FLEET[0]}) tcp/{port}-{port + 3}: nothing else open ({port} allowed from app-subnet)"
    )
    # A judge holds every vantage that reported: from app-subnet alone, nothing shows the port is
    # shut from anywhere else (as a closed: entry would be an error), while a scanning run leaves
    # that to the runs from elsewhere (as it skips such a closed: entry).
    monkeypatch.delenv("PORTCHECK_VANTAGE")
    scan_shards(pytester.path, 2, "--vantage", "app-subnet")
    judged = pytester.runpytest(
        "--portcheck", "inventory.yml", "--portcheck-results", "reports/*.json", "-p", "no:cacheprovider"
    )
    judged.assert_outcomes(passed=1, errors=1)
    judged.stdout.fnmatch_lines([
        f"db tcp/{port}-{port + 3}: cannot check {port} — allowed from app-subnet only, and no report from another vantage*"
    ])  # fmt: skip


def test_the_judge_takes_the_run_it_is_told_to(pytester: pytest.Pytester) -> None:
    port = unused_port()
    one_port_inventory(pytester, port)
    (pytester.path / "reports").mkdir()
    shard_scan(pytester.path, "1/1", "reports/shard.json", "--run-id", "nightly-0427")
    named = pytester.runpytest(*JUDGE, "--portcheck-run-id", "nightly-0427")
    named.assert_outcomes(passed=1)
    other = pytester.runpytest(*JUDGE, "--portcheck-run-id", "nightly-0428")
    other.assert_outcomes(errors=1)
    other.stdout.fnmatch_lines(
        ["*no report of run nightly-0428 (--portcheck-run-id): runs found: nightly-0427*"]
    )
    bad = pytester.runpytest(*JUDGE, "--portcheck-run-id", "two words")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--portcheck-run-id 'two words': a run id is 1-128 letters*"])


def test_a_plugin_report_is_judged_again_with_its_service_requirements(
    pytester: pytest.Pytester, peer: Callable[[Behaviour], int]
) -> None:
    """The plugin's own report records what each probe was run for, so judging it again passes a
    service requirement it was probed for, and stays an error for one it was not (#18)."""
    port = peer(greeting(b"SSH-2.0-OpenSSH_9.2p1\r\n"))
    entry = f"{{port: {port}, service: ssh}}"
    pytester.makefile(".yml", inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    open: [{entry}]\n")
    args = ["--portcheck", "inventory.yml", "-p", "no:cacheprovider", "-rA"]
    pytester.runpytest(*args, "--portcheck-report", "plugin.json").assert_outcomes(passed=1)
    document = json.loads((pytester.path / "plugin.json").read_text())
    [probed] = [result for result in document["results"] if "probe" in result]
    assert probed["asked"] == [["ssh", None, False, None, None, None]]
    pytester.runpytest(*args, "--portcheck-results", "plugin.json", "--portcheck-report", "judged.json").assert_outcomes(
        passed=1
    )
    # The judge's own report does not know what the probes it judged from were run for: it says nothing
    # (read as "does not say"), rather than "run for no requirement".
    [weighed] = [r for r in json.loads((pytester.path / "judged.json").read_text())["results"] if "probe" in r]
    assert weighed["probe"]["service"] == "ssh" and "asked" not in weighed
    pytester.makefile(".yml", inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    open: [{entry.replace('ssh', 'http')}]\n")
    other = pytester.runpytest(*args, "--portcheck-results", "plugin.json")
    other.assert_outcomes(errors=1)
    other.stdout.fnmatch_lines(["*not probed for http: plugin.json probed it for ssh*"])
