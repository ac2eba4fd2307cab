"""The plugin in a run that does not use it: nothing heavy imported, outcomes as without the plugin.

pytest loads the plugin through its entry point in every project where the package is installed, so
these tests run pytest in a subprocess on a small unrelated suite, once as installed and once with
``-p no:portcheck``, and compare what each imported and printed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "asyncio",
    "ssl",
    "yaml",
    "filelock",
    "cryptography",
    "pytest_portcheck.engine",
    "pytest_portcheck.probes",
    "pytest_portcheck.inventory",
    "pytest_portcheck.judge",
    "pytest_portcheck.pipeline",
    "pytest_portcheck.sharding",
    "pytest_portcheck.report.diff",
    "pytest_portcheck.report.model",
    "pytest_portcheck.report.html",
    "pytest_portcheck.report.nmapxml",
)

UNRELATED_SUITE = """
import json, os, sys
import pytest

def test_passes():
    assert 1 + 1 == 2

def test_fails():
    assert "expected" == "found"

@pytest.mark.skip(reason="not today")
def test_skipped():
    pass

def test_zz_records_modules():  # runs last: what the whole session imported
    with open(os.environ["MODULES_OUT"], "w") as out:
        json.dump(sorted(sys.modules), out)
"""


def run_unrelated(folder: Path, *extra: str) -> tuple[set[str], str]:
    modules = folder / f"modules{len(extra)}.json"
    env = {**os.environ, "MODULES_OUT": str(modules)}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", *extra],
        capture_output=True, text=True, cwd=folder, env=env, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stdout + completed.stderr  # one test fails on purpose
    output = re.sub(r"in \d+\.\d+s", "in Ns", completed.stdout)
    return set(json.loads(modules.read_text())), output


def test_loading_the_plugin_without_an_inventory_imports_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "test_unrelated.py").write_text(UNRELATED_SUITE)
    with_plugin, output = run_unrelated(tmp_path)
    without_plugin, plain_output = run_unrelated(tmp_path, "-p", "no:portcheck")
    assert "pytest_portcheck.plugin.hooks" in with_plugin  # the entry point did load it
    assert "pytest_portcheck.plugin" not in without_plugin
    assert sorted(m for m in with_plugin if m.split(".")[0] in HEAVY or m.startswith(HEAVY)) == []
    assert with_plugin - without_plugin == {"pytest_portcheck", "pytest_portcheck.plugin", "pytest_portcheck.plugin.hooks"}
    assert output == plain_output  # the same outcomes and the same report, line for line


def test_heavy_modules_do_come_with_an_inventory(tmp_path: Path) -> None:
    # The check above must be able to fail: with an inventory configured, the run imports them.
    (tmp_path / "test_unrelated.py").write_text(UNRELATED_SUITE)
    (tmp_path / "inventory.yml").write_text("hosts:\n  box:\n    address: 127.0.0.1\n    closed: [1]\n")
    modules, _ = run_unrelated(tmp_path, "-o", "portcheck_inventory=inventory.yml")
    assert {"yaml", "pytest_portcheck.inventory", "pytest_portcheck.engine"} <= modules
