"""What the pytest runs the suite starts inherit: a user's environment, not the suite's own extras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
