"""Where the test suite spends its CPU: a pytest plugin that records each test's CPU, and its summary.

    PORTCHECK_SUITE_CPU=/tmp/cpu PYTHONPATH="$PWD/benchmarks" ./run tests -p suite_cpu
    python benchmarks/suite_cpu.py /tmp/cpu [TOP]

The suite is CPU-bound (both Pythons' suites at once on CI's 2 cores), so its wall time follows its CPU
time, which unlike wall time hardly depends on what else the machine runs. Each pytest process (the
xdist controller and each worker) appends one line per test to a file of its own in the folder
PORTCHECK_SUITE_CPU names: the test's CPU in the process itself and in the child processes it reaped
(commands, servers, pytest runs it started), and its wall time; at the end of the session, the
process's totals. The summary gives, per Python, each test file's CPU, the suite's total (the workers'
and the controller's own) and the TOP most expensive tests (default 20). Not a benchmark of the
package: nothing here fails, nothing is compared with a budget.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import pytest

FOLDER_VARIABLE = "PORTCHECK_SUITE_CPU"
_log: TextIO | None = None


def _cpu() -> tuple[float, float]:
    """(this process's CPU, its reaped children's CPU), user and system, in seconds."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _write(record: dict[str, Any]) -> None:
    global _log
    if _log is None:
        folder = Path(os.environ[FOLDER_VARIABLE])
        folder.mkdir(parents=True, exist_ok=True)
        version = "{}.{}".format(*sys.version_info[:2])
        _log = (folder / f"{version}-{os.getpid()}.jsonl").open("a", encoding="utf-8")
    _log.write(json.dumps(record) + "\n")
    _log.flush()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    own, children = _cpu()
    started = time.monotonic()
    yield
    now_own, now_children = _cpu()
    _write({"test": item.nodeid, "own": now_own - own, "children": now_children - children,
            "wall": time.monotonic() - started})  # fmt: skip


def pytest_sessionfinish(session: pytest.Session) -> None:
    own, children = _cpu()
    # An xdist controller's children are its workers, which write their own lines.
    controller = session.config.pluginmanager.has_plugin("dsession")
    _write({"session": True, "own": own, "children": 0.0 if controller else children})


def summary(folder: Path, top: int) -> str:
    files: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0.0, 0.0]))
    tests: dict[str, list[tuple[float, str]]] = defaultdict(list)
    totals: dict[str, float] = defaultdict(float)
    for path in sorted(folder.glob("*.jsonl")):
        version = path.name.split("-")[0]
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("session"):
                totals[version] += record["own"] + record["children"]
                continue
            cpu = record["own"] + record["children"]
            entry = files[version][record["test"].split("::")[0]]
            entry[0] += cpu
            entry[1] += record["children"]
            entry[2] += record["wall"]
            tests[version].append((cpu, record["test"]))
    lines = []
    for version in sorted(files):
        lines.append(f"Python {version}: the suite's CPU {totals[version]:.0f} s; per test file, CPU-s")
        lines.append("  (of it in child processes) and the sum of its tests' wall times:")
        for name, (cpu, children, wall) in sorted(files[version].items(), key=lambda pair: -pair[1][0]):
            lines.append(f"  {cpu:6.1f} ({children:6.1f}) {wall:7.1f}  {name}")
        lines.append(f"  the {top} tests that cost the most CPU-s:")
        lines += [f"  {cpu:6.2f}  {test}" for cpu, test in sorted(tests[version], reverse=True)[:top]]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python benchmarks/suite_cpu.py FOLDER [TOP]")
    print(summary(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 20))
