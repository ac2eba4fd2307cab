"""The ``portcheck`` command as a user runs it: a real process, real listeners, exit codes, output."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, ListenerFactory, connecting_to, interruptible, unused_port, wait_until
from conftest import portcheck_process as portcheck


def test_scan_prints_addresses_open_ports_and_summary(listen: ListenerFactory) -> None:
    port = listen().getsockname()[1]
    closed = unused_port()
    completed = portcheck("scan", "localhost", "-p", f"{port},{closed}", "-t", "2", "-w", "50")
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("portcheck ") and "TCP connect scan of 1 target(s), 2 port(s)" in lines[0]
    assert any(line.startswith("localhost: ") and "127.0.0.1" in line for line in lines)
    listed = [line.split()[:3] for line in lines if f"tcp/{port}" in line]
    assert listed == [["127.0.0.1", f"tcp/{port}", "open"]]
    assert not [line for line in lines if f"tcp/{closed}" in line]  # only open ports listed by default
    summary = [line for line in lines if line.startswith("Summary:")]
    assert summary and "1 open, 1 closed, 0 filtered, 0 error" in summary[0]
    assert completed.stderr == ""  # no progress bar when stderr is not a terminal


def test_show_lists_other_states(listen: ListenerFactory) -> None:
    closed = unused_port()
    completed = portcheck("scan", "127.0.0.1", "-p", str(closed), "--show", "closed")
    assert f"tcp/{closed}" in completed.stdout and "conn-refused" in completed.stdout


def test_json_report_to_file_follows_the_contract(listen: ListenerFactory, tmp_path: object) -> None:
    from pathlib import Path

    report_path = Path(str(tmp_path)) / "report.json"
    port = listen().getsockname()[1]
    completed = portcheck("scan", "127.0.0.1", "-p", f"{port},22", "--json", str(report_path))
    assert completed.returncode == 0, completed.stderr
    report = json.loads(report_path.read_text())
    assert report["version"] == 1
    assert report["hosts"] == [{"host": "127.0.0.1", "addresses": ["127.0.0.1"], "error": None}]
    ports = [r["port"] for r in report["results"]]
    assert ports == sorted(ports)
    keys = {"host", "address", "proto", "port", "state", "reason", "service", "latency_ms", "attempts"}
    for result in report["results"]:
        assert keys <= set(result)
    mine = next(r for r in report["results"] if r["port"] == port)
    assert (mine["state"], mine["reason"], mine["proto"], mine["attempts"]) == ("open", "syn-ack", "tcp", 1)
    ssh = next(r for r in report["results"] if r["port"] == 22)
    assert ssh["service"] == "ssh"


def test_json_to_stdout_moves_the_human_output_to_stderr(listen: ListenerFactory) -> None:
    port = listen().getsockname()[1]
    completed = portcheck("scan", "127.0.0.1", "-p", str(port), "--json", "-")
    report = json.loads(completed.stdout)
    assert report["summary"]["open"] == 1
    assert "Summary:" in completed.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["scan", "127.0.0.1", "-p", "0"], "port 0 in '0' is out of range"),
        (["scan", "127.0.0.1", "-p", "80-20"], "reversed"),
        (["scan", "127.0.0.1", "-p", "22,,80"], "empty item"),
        (["scan", "127.0.0.1", "-t", "0"], "must be a positive number"),
        (["scan", "127.0.0.1", "-t", "soon"], "is not a number"),
        (["scan", "127.0.0.1", "-w", "0"], "must be at least 1"),
        (["scan", "127.0.0.1", "--max-rate", "0"], "must be a positive number of probes per second"),
        (
            ["scan", "127.0.0.1", "--min-rate", "100", "--max-rate", "10"],
            "the minimum rate (100/s) is above the maximum rate (10/s): lower --min-rate or raise --max-rate",
        ),
        (["scan", "127.0.0.1", "--retries", "-1"], "must be at least 0"),
        (
            ["scan", "127.0.0.0/8"],
            "target '127.0.0.0/8' has 16,777,216 addresses, more than 65,536: split it, or pass "
            "--allow-large-targets if you mean it",
        ),
        (["scan", "127.0.0.1/99"], "not a valid address block"),
        (["scan", "127.0.0.1", "--show", "opne"], "list states from"),
        (["scan"], "scan needs TARGET(s), or --inventory INVENTORY"),
        (["scna", "127.0.0.1"], "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_a_message(arguments: list[str], message: str) -> None:
    completed = portcheck(*arguments)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


def test_share_scan_of_a_broken_inventory_reports_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(
        "hosts:\n  web:\n    address: 10.0.0.256\n    open: [0]\n    opne: [22]\n", encoding="utf-8"
    )
    completed = portcheck("scan", "--inventory", str(path))
    assert completed.returncode == 2 and completed.stdout == ""  # refused before anything is scanned
    assert completed.stderr.splitlines() == [
        f"portcheck: error: {path}:3: '10.0.0.256' is not a plain IPv4 address: write four decimal numbers "
        "without leading zeros",
        f"{path}:4: port 0 in '0' is out of range: ports are 1-65535",
        f"{path}:5: unknown key 'opne' in host 'web': did you mean 'open'?",
    ]


def test_unresolvable_host_exits_1_with_error_results() -> None:
    completed = portcheck("scan", "x" * 70 + ".example", "-p", "22", "--json", "-")
    assert completed.returncode == 1
    [result] = json.loads(completed.stdout)["results"]
    assert result["state"] == "error" and result["address"] is None
    assert "ERROR: 1 probe(s) could not be made: dns-error" in completed.stderr


def test_unwritable_report_is_refused_before_scanning(listen: ListenerFactory) -> None:
    completed = portcheck("scan", "127.0.0.1", "-p", "22", "--json", "/nonexistent/dir/report.json")
    assert completed.returncode == 2
    assert "portcheck: error:" in completed.stderr and "Traceback" not in completed.stderr
    assert "Summary" not in completed.stdout  # nothing was scanned


def test_report_failing_while_written_exits_2_after_the_summary(listen: ListenerFactory) -> None:
    # 2, as every output that cannot be written (issue #18): 1 would read as "ports in error" here
    # and as "different" for diff.
    completed = portcheck("scan", "127.0.0.1", "-p", "22", "--json", "/dev/full")
    assert completed.returncode == 2
    assert "Summary" in completed.stdout
    assert "/dev/full: cannot write: No space left on device" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_python_dash_m_and_version() -> None:
    completed = portcheck("--version")
    assert completed.returncode == 0 and completed.stdout.startswith("portcheck ")


@pytest.mark.parametrize("argv", [["--help"], ["-h", "scan"], ["--version", "scan"]])
def test_top_level_help_lists_every_subcommand(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_portcheck.cli import COMMANDS, main

    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 0
    shown = capsys.readouterr().out
    if argv[0] == "--version":
        assert shown.startswith("portcheck ")
        return
    listed = [line.split()[0] for line in shown.splitlines() if line.startswith("    ") and line.split()]
    assert [word for word in listed if word in COMMANDS] == list(COMMANDS)


@pytest.mark.parametrize("command", ["scan", "snapshot", "diff", "report", "declared"])
def test_subcommand_help_shows_its_own_options(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_portcheck.cli import main

    with pytest.raises(SystemExit) as stopped:
        main([command, "--help"])
    assert stopped.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: portcheck {command} [-h]")
    expected = {"scan": "--run-id ID", "snapshot": "--from REPORT", "diff": "--allow-interrupted",
                "report": "--source-root DIR", "declared": "--node-address"}  # fmt: skip
    assert expected[command] in shown


@pytest.mark.parametrize("processes", ["1", "2"])
def test_ctrl_c_stops_promptly_with_a_partial_summary(silent_port: int, processes: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_portcheck", "scan", "127.0.0.0/26", "-p", str(silent_port),
         "-t", "30", "--processes", processes],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=interruptible,
    )  # fmt: skip
    wait_until(lambda: connecting_to(silent_port, process.pid), "the scan to probe the silent port")
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=20)
    assert time.monotonic() - started < 5
    assert process.returncode == 130, stderr
    assert "INTERRUPTED after" in stdout
    assert "Traceback" not in stderr


def test_progress_bar_on_request_and_never_mixed_into_results(listen: ListenerFactory) -> None:
    port = listen().getsockname()[1]
    completed = portcheck("scan", "127.0.0.1", "-p", f"1-3000,{port}", "--progress", "always")
    assert completed.returncode == 0
    assert "[##############################] " in completed.stderr and " probes " in completed.stderr
    assert "\r" not in completed.stdout  # results stay clean on stdout
    assert f"tcp/{port}" in completed.stdout


def test_command_never_imports_pytest() -> None:
    code = (
        "import sys, pytest_portcheck, pytest_portcheck.cli, pytest_portcheck.inventory, "
        "pytest_portcheck.judge; assert 'pytest' not in sys.modules and '_pytest' not in sys.modules"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert completed.returncode == 0, completed.stderr


def test_report_to_a_device_writes_through(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE, text=True)
    completed = portcheck("scan", "127.0.0.1", "-p", "1", "--json", str(fifo))
    assert completed.returncode == 0, completed.stderr
    assert json.loads(reader.communicate(timeout=30)[0])["version"] == 1
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a FIFO: not replaced by a file


@pytest.mark.parametrize("target", ["0127.0.0.1", "127.1", "0x7f.0.0.1", "2130706433", "127.0.0.01/32"])
def test_numeric_shorthand_targets_are_refused_before_anything_is_sent(target: str) -> None:
    # The system resolver would read each of these as 127.0.0.1 (or, for a leading zero, as octal:
    # 010.0.0.1 would be 8.0.0.1): the command refuses them rather than scan a host it does not name.
    completed = portcheck("scan", target, "-p", "1")
    assert completed.returncode == 2, completed.stdout
    assert "is not a plain IPv4 address" in completed.stderr
    assert "write four decimal numbers without leading zeros" in completed.stderr
    assert "Traceback" not in completed.stderr


# --- outputs: a reader that leaves, a device that is full (issue #18) ----------------------------


def quits_after_first_line(*arguments: str) -> tuple[subprocess.Popen[str], str]:
    """``portcheck ARGS | head -1``: a real pipe whose reader closes it after one line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_portcheck", *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.readline()
    process.stdout.close()
    return process, first


def test_a_reader_that_leaves_never_loses_the_report(tmp_path: Path) -> None:
    # 4,000 result lines are far more than a pipe holds: the command meets the closed pipe for sure.
    report = tmp_path / "out.json"
    process, first = quits_after_first_line(
        "scan", "127.0.0.1", "-p", "1-4000", "--show", "all", "--json", str(report)
    )
    stderr = process.stderr.read() if process.stderr else ""
    assert process.wait(timeout=120) == 0, stderr
    assert first.startswith("portcheck ")
    assert "Traceback" not in stderr and "Exception ignored" not in stderr and "Broken pipe" not in stderr
    written = json.loads(report.read_text())
    assert len(written["results"]) == 4000 and written["interrupted"] is False


def test_diff_keeps_its_status_when_its_reader_leaves(tmp_path: Path) -> None:
    from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
    from pytest_portcheck.ports import Protocol
    from pytest_portcheck.report.encode import write_report
    from pytest_portcheck.report.model import ScanReport

    def report(state: PortState) -> ScanReport:
        results = [ProbeResult("h", "127.0.0.1", Protocol.TCP, port, state, "x") for port in range(1, 4001)]
        return ScanReport([Resolution("h", ("127.0.0.1",))], results, ScanSettings(), "", 0.0)

    old, new = tmp_path / "old.json", tmp_path / "new.json"
    write_report(report(PortState.FILTERED), old)
    write_report(report(PortState.OPEN), new)
    process, first = quits_after_first_line("diff", str(old), str(new))
    stderr = process.stderr.read() if process.stderr else ""
    assert process.wait(timeout=120) == 1, stderr  # different, as when the whole text is read
    assert first == f"--- {old}\n"
    assert stderr == ""  # the reader had what it wanted: no error, no traceback


@pytest.mark.parametrize(
    "command",
    [
        ["diff", "--json", "{report}", "{report}"],
        ["diff", "{report}", "{report}"],
        ["scan", "127.0.0.1", "-p", "1", "--json", "-"],
        ["scan", "127.0.0.1", "-p", "1", "-oX", "-"],
        ["snapshot", "--from", "{report}"],
        ["snapshot", "127.0.0.1", "-p", "1"],
    ],
)
def test_standard_output_that_cannot_be_written_exits_2(tmp_path: Path, command: list[str]) -> None:
    report = tmp_path / "scan.json"
    assert portcheck("scan", "127.0.0.1", "-p", "1", "--json", str(report)).returncode == 0
    arguments = [argument.replace("{report}", str(report)) for argument in command]
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_portcheck", *arguments],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, cwd=REPO,
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "portcheck: error: standard output: cannot write: No space left on device" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.parametrize("command", [["report", "{report}", "-o"], ["snapshot", "--from", "{report}", "-o"]])
def test_output_file_failing_while_written_exits_2(tmp_path: Path, command: list[str]) -> None:
    report = tmp_path / "scan.json"
    assert portcheck("scan", "127.0.0.1", "-p", "1", "--json", str(report)).returncode == 0
    done = portcheck(*[argument.replace("{report}", str(report)) for argument in command], "/dev/full")
    assert done.returncode == 2, done.stderr
    assert "portcheck: error: /dev/full: cannot write: No space left on device" in done.stderr
    assert "Traceback" not in done.stderr
