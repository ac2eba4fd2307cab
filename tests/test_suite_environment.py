"""What the pytest runs the suite starts inherit: a user's environment, not the suite's own extras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ListenerFactory, portcheck, portcheck_process, unused_port

CHILD_TEST = """\
import sys

def test_as_a_user_runs_it():
    # pytest caches its rewrite of a plugin's modules only where bytecode may be written: without the
    # cache each pytest the suite starts compiles the plugin's modules again (0.5 CPU-s a run).
    assert not sys.dont_write_bytecode
    # The suite's hypothesis plugin imports all of hypothesis at the end of a run; users lack it.
    assert "_hypothesis_pytestplugin" not in sys.modules
"""


def test_child_pytest_runs_write_bytecode_and_skip_hypothesis(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CHILD_TEST)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_this_folders_conftest_imports_hypothesis_only_where_it_runs() -> None:
    # The demo and the examples run pytest in the checkout, which loads tests/conftest.py without the
    # hypothesis plugin: importing hypothesis there would cost each of those runs 0.4 s.
    shown = subprocess.run(
        [sys.executable, "-c", "import sys, conftest; print('hypothesis' in sys.modules)"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parent,
    ).stdout  # fmt: skip
    assert shown.strip() == "False"


def test_the_command_run_in_process_answers_as_its_process_does(
    tmp_path: Path, listen: ListenerFactory
) -> None:
    # conftest.portcheck runs the command's main function in the test's process (no Python start-up);
    # what it hands back must be what the process would have: status, standard output and error.
    port = listen().getsockname()[1]
    spec = f"{port},{unused_port()}"
    assert (
        portcheck_process("scan", "127.0.0.1", "-p", spec, "--json", "a.json", cwd=tmp_path).returncode == 0
    )
    listen(port=int(spec.split(",")[1]))
    assert portcheck("scan", "127.0.0.1", "-p", spec, "--json", "b.json", cwd=tmp_path).returncode == 0
    for arguments in (
        ["--version"],
        ["scan"],  # usage: argparse's own exit
        ["scan", "127.0.0.1", "-p", "70000"],  # the command's own usage error
        ["diff", "a.json", "b.json"],  # a difference: exit 1, and what changed
        ["diff", "--json", "b.json", "a.json"],
        ["diff", "a.json", "missing.json"],
    ):
        ran = portcheck(*arguments, cwd=tmp_path)
        started = portcheck_process(*arguments, cwd=tmp_path)
        assert (ran.returncode, ran.stdout, ran.stderr) == (
            started.returncode,
            started.stdout,
            started.stderr,
        )
    assert [
        portcheck(*arguments, cwd=tmp_path).returncode
        for arguments in (["scan"], ["diff", "a.json", "b.json"])
    ] == [2, 1]
