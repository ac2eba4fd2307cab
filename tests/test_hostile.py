"""The hostile-input corpus in one place: report files, output paths, signals and planted code.

Each test here reproduces a way pytest-portcheck was broken by input it does not control (a JSON
report from anywhere, a path another local user prepared, a signal, a working directory with code in
it) and checks the promise the README makes about it. Real files, real processes, real signals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import pytest
from conftest import REPO, ListenerFactory, connecting_to, interruptible, portcheck, unused_port, wait_until

import pytest_portcheck
from pytest_portcheck.atomicfile import WriteError, check_writable, write_atomically
from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.engine.resolve import resolve_one
from pytest_portcheck.inventory.load import load_inventory
from pytest_portcheck.inventory.model import InventoryError
from pytest_portcheck.inventory.snapshot import snapshot_inventory
from pytest_portcheck.ports import Protocol
from pytest_portcheck.report.decode import read_report
from pytest_portcheck.report.encode import report_to_dict, write_report
from pytest_portcheck.report.html import page_data
from pytest_portcheck.report.judged import ItemOutcome, JudgedReport
from pytest_portcheck.report.model import ReportError, ScanReport

pytest_plugins = ["pytester"]


def small_report(results: int = 3, interrupted: bool = False) -> ScanReport:
    found = [
        ProbeResult("h", "127.0.0.1", Protocol.TCP, port, PortState.CLOSED, "conn-refused", 0.1, 1)
        for port in range(1, results + 1)
    ]
    resolutions = [Resolution("h", ("127.0.0.1",))]
    return ScanReport(
        resolutions, found, ScanSettings(), "2026-11-27T00:00:00+00:00", 0.5, interrupted=interrupted
    )


def others_in(directory: Path, keep: str) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name != keep)


# --- the atomic writer: predictable names, symlinks, failures, concurrency (items 8 and 14) ---------


def test_a_planted_dot_tmp_symlink_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    destination = tmp_path / "r.json"
    (tmp_path / "r.json.tmp").symlink_to(victim)
    write_report(small_report(), destination)
    assert victim.read_text() == "precious\n"
    assert not destination.is_symlink() and json.loads(destination.read_text())["version"] == 1
    assert os.readlink(tmp_path / "r.json.tmp") == str(victim)  # left as it was, never used


def test_a_planted_dot_tmp_file_never_becomes_the_report(tmp_path: Path) -> None:
    planted = tmp_path / "r.json.tmp"
    planted.write_text("attacker's\n")
    planted.chmod(0o666)
    before = planted.stat().st_ino
    destination = tmp_path / "r.json"
    write_report(small_report(), destination)
    assert destination.stat().st_ino != before
    assert planted.read_text() == "attacker's\n"


def test_temporary_is_exclusive_unguessable_and_in_the_destination_directory(tmp_path: Path) -> None:
    seen: list[str] = []

    def writer(stream: TextIO) -> None:
        seen.extend(others_in(tmp_path, "r.json"))
        stream.write("x")

    write_atomically(tmp_path / "r.json", writer)
    write_atomically(tmp_path / "r.json", writer)
    assert len(seen) == 2 and seen[0] != seen[1]
    assert all(name.startswith(".r.json.") and name.endswith(".tmp") for name in seen)
    assert others_in(tmp_path, "r.json") == []


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    destination = tmp_path / "r.json"
    destination.write_text("the previous report\n")

    def half_then_disk_full(stream: TextIO) -> None:
        stream.write("{" * 100_000)
        raise OSError(27, "File too large")

    with pytest.raises(WriteError, match=r"r\.json: cannot write: File too large"):
        write_atomically(destination, half_then_disk_full)
    assert destination.read_text() == "the previous report\n"
    assert others_in(tmp_path, "r.json") == []

    def interrupted(stream: TextIO) -> None:
        stream.write("{")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(destination, interrupted)
    assert destination.read_text() == "the previous report\n" and others_in(tmp_path, "r.json") == []


def _limit_file_size() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))


@pytest.mark.parametrize("command", ["snapshot", "report"])
def test_ulimit_f_truncates_nothing(tmp_path: Path, listen: ListenerFactory, command: str) -> None:
    good = tmp_path / "good.json"
    write_report(small_report(200), good)
    output = tmp_path / "out"
    output.write_text("the previous output\n")
    if command == "snapshot":  # 80 open ports: an inventory of more than 2,000 bytes
        ports = ",".join(str(listen().getsockname()[1]) for _ in range(80))
        arguments = ["snapshot", "127.0.0.1", "-p", ports, "-o", str(output)]
    else:
        arguments = ["report", str(good), "-o", str(output)]
    # No bytecode written under the limit: CPython would write a truncated .pyc of any module not yet
    # compiled (it does not check for a short write), and every later import of it would fail.
    unwritten = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    completed = portcheck(*arguments, preexec_fn=_limit_file_size, env=unwritten)
    assert completed.returncode == 2, completed.stderr  # an output that cannot be written (issue #18)
    assert "cannot write: File too large" in completed.stderr and "Traceback" not in completed.stderr
    assert output.read_text() == "the previous output\n"
    assert others_in(tmp_path, "out") == ["good.json"]


def test_a_private_report_stays_private_when_replaced(tmp_path: Path) -> None:
    destination = tmp_path / "r.json"
    write_report(small_report(), destination)
    destination.chmod(0o600)
    write_report(small_report(5), destination)
    assert stat.S_IMODE(destination.stat().st_mode) == 0o600
    assert len(json.loads(destination.read_text())["results"]) == 5


def test_concurrent_writers_never_produce_invalid_json(tmp_path: Path) -> None:
    destination = tmp_path / "r.json"
    report = small_report(5000)
    failures: list[BaseException] = []

    def write_many() -> None:
        try:
            for _ in range(5):
                write_report(report, destination)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(json.loads(destination.read_text())["results"]) == 5000
    assert others_in(tmp_path, "r.json") == []


def test_special_files_are_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_report(small_report(), fifo)
    reader.join(timeout=10)
    assert json.loads(received[0])["version"] == 1 and stat.S_ISFIFO(fifo.stat().st_mode)
    write_report(small_report(), "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_symlink_destination_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    destination = tmp_path / "r.json"
    destination.symlink_to(victim)
    write_report(small_report(), destination)
    assert victim.read_text() == "precious\n" and not destination.is_symlink()


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: None, "the directory .* does not exist"),
    ],
)
def test_unwritable_destinations_are_named(
    tmp_path: Path, make: Callable[[Path], None], problem: str
) -> None:
    destination = tmp_path / "out" if problem == "is a directory" else tmp_path / "missing" / "out"
    make(destination)
    with pytest.raises(WriteError, match=problem):
        check_writable(destination)
    with pytest.raises(WriteError, match=r"is a directory|No such file or directory"):
        write_report(small_report(), destination)


@pytest.mark.parametrize("command", ["scan", "snapshot", "report"])
def test_cli_output_paths_are_checked_before_scanning(tmp_path: Path, command: str) -> None:
    good = tmp_path / "good.json"
    write_report(small_report(), good)
    missing = str(tmp_path / "missing" / "out")
    arguments = {
        "scan": ["scan", "127.0.0.1", "-p", "1", "--json", missing],
        "snapshot": ["snapshot", "127.0.0.1", "-p", "1", "-o", missing],
        "report": ["report", str(good), "-o", missing],
    }[command]
    completed = portcheck(*arguments)
    assert completed.returncode == 2
    assert f"portcheck: error: {missing}: cannot write: the directory" in completed.stderr
    assert "Summary" not in completed.stdout and "Traceback" not in completed.stderr


def test_dev_stdout_is_written_through() -> None:
    completed = portcheck("scan", "127.0.0.1", "-p", "1", "--json", "/dev/stdout")
    assert completed.returncode == 0, completed.stderr
    assert '"version": 1' in completed.stdout and os.path.islink("/dev/stdout")


# --- unwritable report options in pytest (item 13) ---------------------------------------------


INVENTORY = "hosts:\n  local:\n    address: 127.0.0.1\n    closed: [{port}]\n"


def test_unwritable_report_path_is_a_usage_error_before_scanning(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", inventory=INVENTORY.format(port=unused_port()))
    for option, path in [
        ("--portcheck-report", "missing/r.json"),
        ("--portcheck-html", "."),
        ("--portcheck-markdown", "missing/r.md"),
    ]:
        result = pytester.runpytest("--portcheck", "inventory.yml", option, path)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: portcheck: {option}: *"])
        assert "Traceback" not in result.stderr.str() + result.stdout.str()
        assert "passed" not in result.stdout.str()  # refused before anything ran


def test_a_report_failing_while_written_loses_nothing_else(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yml", inventory=INVENTORY.format(port=unused_port()))
    result = pytester.runpytest(
        "--portcheck", "inventory.yml", "--portcheck-html", "/dev/full",
        "--portcheck-report", "r.json", "--portcheck-markdown", "r.md",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        ["*portcheck exposure*", "*ERROR: portcheck: --portcheck-html: /dev/full: cannot write: No space*"]
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert json.loads((pytester.path / "r.json").read_text())["expectations"][0]["verdict"] == "passed"
    assert "## portcheck" in (pytester.path / "r.md").read_text()


# --- hostile report files (item 15) -------------------------------------------------------------


def _report_text(**changes: Any) -> str:
    document = json.loads(json.dumps(report_to_dict(small_report())))
    document.update(changes)
    return json.dumps(document)


def _result_with(**changes: Any) -> str:
    document = json.loads(_report_text())
    document["results"][0].update(changes)
    return json.dumps(document).replace('"__INF__"', "1e999")


def _result_without(key: str) -> str:
    document = json.loads(_report_text())
    del document["results"][0][key]
    return json.dumps(document)


_FOUND = {"host": "h", "target": "tcp/1", "expected": "open", "verdict": "x", "found": 3}
HOSTILE_REPORTS = {  # every kind of problem: one line naming the field by its JSON path
    "list": ("[]", "$: expected a JSON object, not a list"),
    "null": ("null", "$: expected a JSON object, not null"),
    "text": ('"x"', '$: expected a JSON object, not "x"'),
    "not-json": ("{", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    "deep": ("[" * 100_000 + "]" * 100_000, "$: nested too deeply to be a report"),
    "long-integer": (
        _result_with(port="__LONG__").replace('"__LONG__"', "9" * 5000),
        "$: a number of more than 4,300 digits is not a number a report can hold",
    ),
    "huge-port": (_result_with(port="__INF__"), "$.results[0].port: 1e999 is not a number a report can hold"),
    "port-text": (_result_with(port="x"), '$.results[0].port: expected an integer 0 to 65535, not "x"'),
    "port-out-of-range": (_result_with(port=70000), "$.results[0].port: expected an integer 0 to 65535, not 70000"),
    "port-bool": (_result_with(port=True), "$.results[0].port: expected an integer 0 to 65535, not true"),
    "port-missing": (_result_without("port"), "$.results[0].port: missing (expected an integer 0 to 65535)"),
    "result-nested-wrong": (
        _report_text(results=[[1]]), "$.results[0]: expected an object, not a list"
    ),
    "probe-text": (_result_with(probe="x"), '$.results[0].probe: expected an object, not "x"'),
    "probe-service-number": (
        _result_with(probe={"service": 7}),
        "$.results[0].probe.service: expected a string, not 7",
    ),
    "probe-tls": (
        _result_with(probe={"service": "https", "tls": {"version": 1}}),
        "$.results[0].probe.tls.version: expected a string, not 1",
    ),
    "asked-row": (
        _result_with(probe={"service": "ssh"}, asked=[["ssh", None, "yes", None, None, None]]),
        '$.results[0].asked[0][2]: expected true or false, not "yes"',
    ),
    "state": (
        _result_with(state="wide-open"),
        '$.results[0].state: expected one of open, closed, filtered, open|filtered, error, not "wide-open"',
    ),
    "nan": (
        _report_text(elapsed_s="__NAN__").replace('"__NAN__"', "NaN"),
        "$.elapsed_s: NaN is not a number a report can hold",
    ),
    "infinity-in-an-unknown-key": (
        _report_text(extra=["__INF__"]).replace('"__INF__"', "-Infinity"),
        "$.extra[0]: -Infinity is not a number a report can hold",
    ),
    "expectations-text": (_report_text(expectations="x"), '$.expectations: expected a list, not "x"'),
    "expectation-host": (
        _report_text(expectations=[{"host": 1}]), "$.expectations[0].host: expected a string, not 1"
    ),
    "expectation-found": (
        _report_text(expectations=[_FOUND]), "$.expectations[0].found: expected a list, not 3"
    ),
    "version": (_report_text(version=True), "$.version: unsupported report version true (this reads 1 and 2)"),
    "no-version": (json.dumps({"results": []}), "$.version: unsupported report version missing (this reads 1 and 2)"),
    "no-results": (json.dumps({"version": 1}), "$.results: missing (expected a list)"),
    "timeout-zero": (
        _report_text(settings={"timeout_s": 0}), "$.settings.timeout_s: expected a number more than 0, not 0"
    ),
    "run-id": (
        _report_text(run_id="a b"),
        "$.run_id: expected a run id (1-128 letters, digits, '.', '_', ':', '-'), not \"a b\"",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_REPORTS))
def test_hostile_reports_are_refused_with_the_file_and_the_problem(tmp_path: Path, name: str) -> None:
    text, problem = HOSTILE_REPORTS[name]
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    with pytest.raises(ReportError) as caught:
        read_report(bad)
    assert str(caught.value) == f"{bad}: not a valid portcheck JSON report: {problem}"


@pytest.mark.parametrize(
    "name", ["list", "deep", "huge-port", "probe-text", "probe-service-number", "expectation-found"]
)
def test_diff_and_report_exit_2_on_hostile_reports(tmp_path: Path, name: str) -> None:
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text(HOSTILE_REPORTS[name][0])
    write_report(small_report(), good)
    for arguments in (["diff", str(good), str(bad)], ["report", str(bad), "-o", str(tmp_path / "out.html")]):
        completed = portcheck(*arguments)
        assert completed.returncode == 2, (arguments, completed.stderr)
        assert f"portcheck: error: {bad}: not a valid portcheck JSON report" in completed.stderr
        assert "Traceback" not in completed.stderr
    assert not (tmp_path / "out.html").exists()


def test_not_utf8_and_missing_reports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"version": 1, "results": ["\xff"]}')
    completed = portcheck("diff", str(bad), str(bad))
    assert completed.returncode == 2 and "not UTF-8" in completed.stderr
    completed = portcheck("diff", str(tmp_path / "none.json"), str(bad))
    assert completed.returncode == 2 and "cannot read" in completed.stderr


def test_diff_output_neutralises_what_a_report_names(tmp_path: Path) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write_report(small_report(1), old)
    document = json.loads(_report_text())
    document["results"][0]["host"] = "h\x1b]0;pwned\x07"
    document["results"][0]["state"] = "open"
    new.write_text(json.dumps(document))
    completed = portcheck("diff", str(old), str(new))
    assert completed.returncode == 1
    assert "\x1b" not in completed.stdout and "\\x1b]0;pwned\\x07" in completed.stdout


# --- signals (item 16) ---------------------------------------------------------------------------


def test_diff_refuses_an_interrupted_report(tmp_path: Path) -> None:
    partial, whole = tmp_path / "partial.json", tmp_path / "whole.json"
    write_report(small_report(1, interrupted=True), partial)
    write_report(small_report(3), whole)
    completed = portcheck("diff", str(whole), str(partial))
    assert completed.returncode == 2
    assert f"{partial}: an interrupted scan" in completed.stderr and "no differences" not in completed.stdout
    allowed = portcheck("diff", str(whole), str(partial), "--allow-interrupted")
    assert allowed.returncode in (0, 1) and f"WARNING: {partial} is an interrupted scan" in allowed.stdout


def _pytest_process(directory: Path, *arguments: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "TMPDIR": str(directory / "tmp")}
    (directory / "tmp").mkdir()
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *arguments],
        cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
        preexec_fn=interruptible,
    )  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_pytest_interrupted_writes_a_report_marked_interrupted(
    tmp_path: Path, silent_port: int, listen: ListenerFactory, signum: int
) -> None:
    port = listen().getsockname()[1]
    (tmp_path / "inventory.yml").write_text(
        f"defaults:\n  timeout: 30\nhosts:\n  local:\n    address: 127.0.0.1\n"
        f"    open: [{port}]\n    closed: [{silent_port}]\n"
    )
    report = tmp_path / "r.json"
    write_report(small_report(), report)  # the previous run's report
    process = _pytest_process(tmp_path, "--portcheck", "inventory.yml", "--portcheck-report", str(report))
    wait_until(lambda: connecting_to(silent_port, process.pid), "the run's scan to probe the silent port")
    process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "Traceback" not in output
    document = json.loads(report.read_text())
    assert document["interrupted"] is True
    assert os.listdir(tmp_path / "tmp") == []  # the shared results directory went too


def _scan_process(*arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pytest_portcheck", *arguments],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
    )  # fmt: skip


def test_cli_sigterm_writes_the_partial_report(tmp_path: Path, silent_port: int) -> None:
    report = tmp_path / "r.json"
    process = _scan_process("scan", "127.0.0.0/28", "-p", str(silent_port), "-t", "30", "--json", str(report))
    wait_until(lambda: connecting_to(silent_port, process.pid), "the scan to probe the silent port")
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "INTERRUPTED after" in stdout and "Traceback" not in stderr
    assert json.loads(report.read_text())["interrupted"] is True


def _client_first_listener(listen: ListenerFactory) -> tuple[str, int]:
    """A listener on a port whose probe speaks first and then waits for the whole probe timeout."""
    for port in (8080, 8000, 80):
        try:
            return "127.71.3.9", int(listen(port=port, host="127.71.3.9").getsockname()[1])
        except OSError:
            continue
    pytest.skip("no HTTP-hinted port free on 127.71.3.9")


def _unread_request_at(port: int) -> bool:
    """Whether a connection to ``port`` holds bytes its server has not read: the probe has spoken."""
    with open("/proc/net/tcp") as rows:
        for row in list(rows)[1:]:
            fields = row.split()
            local_port, state, unread = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[4].split(":")[1]
            if local_port == port and state == "01" and int(unread, 16) > 0:
                return True
    return False


@pytest.mark.usefixtures("private_loopback")  # fixed ports: another suite may hold them at this moment
def test_cli_ctrl_c_during_banner_probes_writes_the_partial_report(
    tmp_path: Path, listen: ListenerFactory
) -> None:
    address, port = _client_first_listener(listen)  # never accepts, never answers: the probe waits
    report = tmp_path / "r.json"
    process = _scan_process(
        "scan", address, "-p", str(port), "--banner", "--probe-timeout", "60", "--json", str(report)
    )
    wait_until(lambda: _unread_request_at(port), "the banner probe's request")
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "INTERRUPTED after" in stdout and "Traceback" not in stderr
    document = json.loads(report.read_text())
    assert document["interrupted"] is True
    assert [(r["port"], r["state"]) for r in document["results"]] == [(port, "open")]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_shard_workers_die_with_their_parent(tmp_path: Path, silent_port: int) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(
            f"""
            from pytest_portcheck.engine import ScanSettings, Target, scan
            from pytest_portcheck.ports import Protocol
            targets = [Target("h", f"127.0.{{i // 250}}.{{i % 250 + 1}}", Protocol.TCP, {silent_port})
                       for i in range(600)]
            for result in scan(targets, ScanSettings(timeout=60, processes=2)):
                pass
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(driver)], cwd=tmp_path)
    deadline = time.monotonic() + 20
    while not (workers := _children(parent.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers, "the scan started no worker"
    wait_until(lambda: connecting_to(silent_port, parent.pid), "the workers to probe the silent port")
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 3
    while any(_alive(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [worker for worker in workers if _alive(worker)]
    for worker in alive:
        os.kill(worker, signal.SIGKILL)
    assert alive == [], "a scan worker outlived its parent"


# --- code planted in the working directory (item 1) ------------------------------------------------


def test_code_planted_in_the_working_directory_never_runs_as_the_worker(
    tmp_path: Path, listen: ListenerFactory
) -> None:
    port = listen().getsockname()[1]
    planted = tmp_path / "shared"
    marker = tmp_path / "planted-code-ran"
    for package in ("pytest_portcheck", "pytest_portcheck/engine"):
        (planted / package).mkdir(parents=True)
        (planted / package / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('init\\n')\n")
    (planted / "pytest_portcheck/engine/workers.py").write_text(
        f"open({str(marker)!r}, 'a').write('shard\\n')\nimport sys\nsys.exit(0)\n"
    )
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(
            f"""
            import pytest_portcheck
            from pytest_portcheck.engine import ScanSettings, Target, scan
            from pytest_portcheck.ports import Protocol
            assert {str(planted)!r} not in pytest_portcheck.__file__
            targets = [Target("h", "127.0.0.1", Protocol.TCP, p) for p in range(1, 3000)]
            targets.append(Target("h", "127.0.0.1", Protocol.TCP, {port}))
            found = {{r.port: r.state.value for r in scan(targets, ScanSettings(timeout=2, processes=3))}}
            print(found[{port}])
            """
        )
    )
    completed = subprocess.run(
        [sys.executable, str(driver)], cwd=planted, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},  # the tree under test, not the planted one
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert not marker.exists(), marker.read_text()
    assert completed.stdout.strip() == "open"


def test_the_package_launches_no_other_subprocess() -> None:
    launches = []
    package = Path(pytest_portcheck.__file__).parent  # the code that runs: the wheel under ./run tests
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        for needle in ("Popen(", "subprocess.run(", "os.system(", "os.exec", "os.spawn", "multiprocessing"):
            if needle in text:
                launches.append(f"{path.relative_to(package.parent).as_posix()}: {needle}")
    assert launches == ["pytest_portcheck/engine/workers.py: Popen("]  # audited: workers start with -I


# --- bad environment and bad inventory paths (item 17 and the cosmetic list) ------------------------


@pytest.mark.parametrize("value", ["garbage", "2028-02-30"])
def test_invalid_portcheck_today_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    pytester.makefile(".yml", inventory=INVENTORY.format(port=unused_port()))
    monkeypatch.setenv("PORTCHECK_TODAY", value)
    result = pytester.runpytest("--portcheck", "inventory.yml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: portcheck: PORTCHECK_TODAY='{value}' is not a date*YYYY-MM-DD*"])
    assert "Traceback" not in result.stderr.str()


def test_fifo_and_directory_inventories_are_named_for_what_they_are(pytester: pytest.Pytester) -> None:
    os.mkfifo(pytester.path / "fifo.yml")
    (pytester.path / "dir.yml").mkdir()
    fifo = pytester.runpytest("--portcheck", "fifo.yml")
    fifo.stderr.fnmatch_lines(["*inventory fifo.yml given by --portcheck is a FIFO, not a regular file*"])
    directory = pytester.runpytest("--portcheck", "dir.yml")
    directory.stderr.fnmatch_lines(["*inventory dir.yml given by --portcheck is a directory*"])
    with pytest.raises(InventoryError, match="is a FIFO"):
        load_inventory(pytester.path / "fifo.yml")  # and it does not wait for a writer


def test_only_open_errors_print_no_traceback(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yml",
        inventory="hosts:\n  gone:\n    address: nonexistent.invalid\n    range: '1-3'\n    only_open: []\n",
    )
    result = pytester.runpytest("--portcheck", "inventory.yml")
    result.assert_outcomes(errors=1)
    output = result.stdout.str()
    assert "dns-error" in output
    assert "def setup" not in output and "pytest_portcheck/plugin/" not in output


@pytest.mark.parametrize("text", ["1e-9", "0.000000001", "0.0009", "3601"])
def test_absurd_timeouts_are_refused(text: str) -> None:
    completed = portcheck("scan", "127.0.0.1", "-p", "1", "-t", text)
    assert (
        completed.returncode == 2
        and "is not a usable timeout: give 0.001 to 3600 seconds" in completed.stderr
    )


def test_absurd_inventory_timeouts_are_refused(tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "defaults:\n  timeout: 0.000000001\nhosts:\n  a:\n    address: 127.0.0.1\n    closed: [1]\n"
    )
    with pytest.raises(InventoryError, match=r"timeout in defaults must be 0.001 to 3600 seconds"):
        load_inventory(inventory)


def test_snapshot_timeouts_are_written_as_the_loader_reads_them(tmp_path: Path) -> None:
    for timeout, written in [(0.00001, "0.00001"), (0.0012345, "0.0012345"), (100.0, "100.0"), (1.0, "1.0")]:
        report = ScanReport([Resolution("h", ("127.0.0.1",))], [], ScanSettings(timeout=timeout), "", 0.0)
        text = snapshot_inventory(report, {}, [(Protocol.TCP, 1)], ["portcheck"])
        assert f"  timeout: {written}\n" in text
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(text.replace("timeout: 1.0\n", "timeout: 0.0012345\n"))
    assert load_inventory(inventory).hosts[0].timeout == 0.0012345


def test_snapshot_of_one_address_written_twice_has_unique_host_keys(tmp_path: Path) -> None:
    output = tmp_path / "inventory.yml"
    completed = portcheck(
        "snapshot", "127.0.0.1", "[127.0.0.1]", "-p", "1-3", "-t", "0.001", "-o", str(output)
    )
    assert completed.returncode == 0, completed.stderr
    hosts = load_inventory(output).hosts
    assert [host.name for host in hosts] == ["127.0.0.1", "127.0.0.1-2"]
    assert hosts[0].timeout == 0.001


def test_ipv4_mapped_addresses_keep_their_dotted_quad() -> None:
    assert resolve_one("::ffff:127.1.2.3").addresses == ("::ffff:127.1.2.3",)
    assert resolve_one("[::ffff:127.1.2.3]").addresses == ("::ffff:127.1.2.3",)
    with socket.socket(socket.AF_INET6) as probe:  # the kernel spells peers the same way
        try:
            probe.bind(("::ffff:127.1.2.3", 0))
        except OSError:
            return
        assert probe.getsockname()[0] == "::ffff:127.1.2.3"


def test_duplicate_host_names_across_inventories_stay_apart_in_the_html_matrix() -> None:
    def expectation(inventory: str, verdict: str) -> dict[str, Any]:
        found = [{"address": "127.0.0.1", "state": "open", "reason": "syn-ack", "latency_ms": 0.1}]
        return {
            "nodeid": f"{inventory}::web::tcp/22::closed", "host": "web", "target": "tcp/22",
            "expected": "closed", "verdict": verdict, "message": "", "found": found, "services": [],
        }  # fmt: skip

    verdicts = [expectation("a.yml", "failed"), expectation("b.yml", "passed")]
    data = page_data(JudgedReport(small_report(), [ItemOutcome.from_dict(e) for e in verdicts]))
    assert [(row["host"], row["address"]) for row in data["rows"]] == [
        ("web [a.yml]", "127.0.0.1"),
        ("web [b.yml]", "127.0.0.1"),
    ]
    assert [row[0]["verdict"] for row in data["grid"]] == ["failed", "passed"]
