"""The plugin's judge mode (``--portcheck-results GLOB``), vantage rules, and scan progress.

Judge mode scans nothing: each inventory is judged from the reports the globs match (see union.py),
and the summary lists what the union could not prove (missing, duplicated, refused or interrupted
shards; hosts that resolved differently). In a scanning run, ``vantage_problem`` decides what a
``from:`` entry means for the vantage this run scans from (``PORTCHECK_VANTAGE``), and
``terminal_progress`` shows how far the session's scan is, on a terminal only.

pytest loads the plugin in every run, so this module imports only pytest and the standard library
at import time; the union, the reports and the inventory come when a judge run needs them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_portcheck.inventory import Expectation, HostSpec
    from pytest_portcheck.judge import Judgement
    from pytest_portcheck.shardreport import LoadedReport
    from pytest_portcheck.union import ReportUnion


class JudgeMode:
    """Reports loaded once per process; one union per inventory."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.globs: list[str] = list(run.result_globs)
        self.allow_other: bool = bool(run.config.getoption("portcheck_allow_other"))
        self._reports: list[LoadedReport] | None = None
        self._failure: str | None = None
        self._unions: dict[Path, ReportUnion] = {}
        self._by_given: dict[Path, ReportUnion] = {}

    def paths(self) -> list[str]:
        found: list[str] = []
        for pattern in self.globs:
            matches = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).exists() else [])
            if not matches:
                raise ValueError(f"--portcheck-results {pattern!r} matches no file")
            found += [match for match in matches if match not in found]
        return found

    def reports(self) -> list[LoadedReport]:
        from pytest_portcheck.results import ReportError
        from pytest_portcheck.shardreport import load_report

        if self._failure is not None:
            raise self.run_error(self._failure)
        if self._reports is None:
            try:
                self._reports = [load_report(path) for path in self.paths()]
            except (ValueError, ReportError) as exc:
                self._failure = f"cannot judge: {exc}"
                raise self.run_error(self._failure) from None
        return self._reports

    @staticmethod
    def run_error(message: str) -> Exception:
        from pytest_portcheck.session import PortcheckError

        return PortcheckError(message)

    def union(self, inventory_path: Path) -> ReportUnion:
        known = self._by_given.get(inventory_path)  # every item asks: no path resolution each time
        if known is not None:
            return known
        from pytest_portcheck.plan import plan_inventory
        from pytest_portcheck.union import ReportUnion

        key = inventory_path.resolve()
        if key not in self._unions:
            plan = plan_inventory(self.run.load(inventory_path))
            self._unions[key] = ReportUnion(
                self.reports(), plan, allow_other_inventory=self.allow_other, strict=self.run.strict
            )
        self._by_given[inventory_path] = self._unions[key]
        return self._unions[key]

    def placeholder(self) -> Any:
        """The session's results object in judge mode: no scan, nothing in it."""
        from pytest_portcheck.engine.model import settings_from_options
        from pytest_portcheck.results import ScanReport
        from pytest_portcheck.session import InventoryResults

        return InventoryResults(ScanReport([], [], settings_from_options(), "", 0.0), [])

    def summary_lines(self) -> list[str]:
        try:
            reports = self.reports()
        except Exception as exc:  # the items already failed with this message
            return [f"ERROR: portcheck: {exc}"]
        lines = [f"judged from {len(reports)} report(s), no scan"]
        for path in self.run.inventories:
            union = self.union(path)
            shown = ", ".join(
                f"{len(g.reports)}/{g.count} shard(s){f' from {g.vantage}' if g.vantage else ''}"
                for g in union.groups
            )
            lines.append(
                f"{path}: plan {union.plan.digest}, {union.plan.total:,} unit(s); {shown or 'no shards'}"
            )
            lines += [f"ERROR: {problem}" for problem in union.problems]
            lines += [f"WARNING: {note}" for note in union.resolution_differences()]
        return lines


@contextlib.contextmanager
def terminal_progress(config: pytest.Config) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback that redraws one line on the terminal while the session's scan runs, or
    None when standard error is not a terminal (CI logs get nothing). pytest captures output during
    an item's setup, so each redraw suspends the capture."""
    from pytest_portcheck.progress import ProgressLine

    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None or config.getoption("verbose", 0) < -1:
        yield None
        return
    with capture.global_and_fixture_disabled():
        on_terminal = sys.stderr.isatty()
    if not on_terminal:
        yield None
        return

    def draw(text: str) -> None:
        with capture.global_and_fixture_disabled():
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()

    line = ProgressLine(draw)
    try:
        yield line.update
    finally:
        line.finish()


def current_vantage() -> str | None:
    return os.environ.get("PORTCHECK_VANTAGE") or None


def vantage_problem(host: HostSpec, expectation: Expectation) -> Judgement | None:
    """In a scanning run: an error for a ``from:`` entry of another vantage; a skip for an entry
    that the current vantage overrides; None when the scan judges it as usual."""
    from pytest_portcheck.judge import Judgement, Verdict

    here = current_vantage()
    where = f"{host.name} {expectation.proto.value}/{expectation.port}"
    if expectation.vantage is not None and expectation.vantage != here:
        now = f"from vantage {here}" if here else "without a vantage (PORTCHECK_VANTAGE is not set)"
        return Judgement(
            Verdict.ERROR,
            f"{where}: cannot check — declared for vantage {expectation.vantage}, and this run scans {now}; "
            f"run it there, or judge its reports with --portcheck-results",
            (),
        )
    if expectation.vantage is None and here is not None:
        for other in host.expectations:
            if other.vantage == here and (other.proto, other.port) == (expectation.proto, expectation.port):
                pytest.skip(
                    f"{where}: from {here}, the from: {here} entry (line {other.line}) applies instead"
                )
    return None
