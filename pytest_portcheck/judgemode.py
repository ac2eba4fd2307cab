"""The plugin's judge mode (``--portcheck-results GLOB``), scan mode's evidence, and scan progress.

Judge mode scans nothing: each inventory is judged from one run of the reports the globs match (see
union.py), no older than ``--portcheck-max-age``, checked against ``PORTCHECK_REPORT_KEY`` when it is
set; the summary lists the run judged, its time span, every report ignored and why, and what the run
could not prove. A report that cannot be read is one error for every item, with the summary. In a
scanning run, ``scan_evidence`` is the session's scan from the vantage it runs from
(``PORTCHECK_VANTAGE``): items in both modes hand the same judge (judge.py) an ``Evidence``.
``skip_overridden`` skips an entry the current vantage overrides, and ``terminal_progress`` shows how
far the session's scan is, on a terminal only.

pytest loads the plugin in every run, so this module imports only pytest and the standard library
at import time; the union, the reports and the inventory come when a judge run needs them.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_portcheck.engine import ProbeResult, Resolution
    from pytest_portcheck.engine.model import ResultKey
    from pytest_portcheck.inventory.model import Expectation, HostSpec
    from pytest_portcheck.judge.evidence import ScanEvidence
    from pytest_portcheck.probes.model import ServiceInfo
    from pytest_portcheck.report.model import ScanReport
    from pytest_portcheck.session import InventoryResults
    from pytest_portcheck.sharding.report import LoadedReport
    from pytest_portcheck.sharding.union import ReportUnion


DEFAULT_MAX_AGE = "24h"
JUDGED_RESULTS_LIMIT = 1_048_576
"""Results a judge's --portcheck-report lists at most; beyond, ranges keep the ports that stand out."""
_DURATION = re.compile(r"([0-9]+)(s|m|h|d)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> datetime.timedelta:
    """``90m``, ``24h``, ``7d``: a positive whole number and a unit (s, m, h, d)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(text)
    return datetime.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class JudgeMode:
    """Reports loaded once per process; one union (one run of the reports) per inventory."""

    def __init__(self, run: Any) -> None:
        from pytest_portcheck.report.provenance import RunIdError, check_run_id, report_key

        self.run = run
        config = run.config
        self.globs: list[str] = list(run.result_globs)
        self.allow_other: bool = bool(config.getoption("portcheck_allow_other"))
        self.run_id: str | None = config.getoption("portcheck_run_id", None)
        if self.run_id is not None:
            try:
                check_run_id(self.run_id, "--portcheck-run-id")
            except RunIdError as exc:
                raise pytest.UsageError(f"portcheck: {exc}") from None
        self.max_age_text: str = config.getoption("portcheck_max_age", None) or DEFAULT_MAX_AGE
        try:
            self.max_age = parse_duration(self.max_age_text)
        except ValueError:
            raise pytest.UsageError(
                f"portcheck: --portcheck-max-age {self.max_age_text!r} is not a duration: write a whole "
                "number and a unit, e.g. 90m, 24h or 7d (reports older than that are errors)"
            ) from None
        self.key = report_key()
        self._reports: list[LoadedReport] | None = None
        self._failure: str | None = None
        self._unions: dict[Path, ReportUnion] = {}
        self._by_given: dict[Path, ReportUnion] = {}
        self._judged: tuple[int, ScanReport | None] | None = None
        self.interrupted = False
        """A signal stopped the judge while it built a union: the summary then builds nothing more."""

    def paths(self) -> list[str]:
        found: list[str] = []
        for pattern in self.globs:
            matches = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).exists() else [])
            if not matches:
                raise ValueError(f"--portcheck-results {pattern!r} matches no file")
            found += [match for match in matches if match not in found]
        return found

    def reports(self) -> list[LoadedReport]:
        """Every report the globs match; none (and ``failure`` says why) when one cannot be read: a
        report that cannot be read might be the newest run's, so nothing is judged without it."""
        from pytest_portcheck.report.model import ReportError
        from pytest_portcheck.sharding.report import load_report

        if self._reports is None and self._failure is None:
            try:
                self._reports = [load_report(path, self.key) for path in self.paths()]
            except (ValueError, ReportError) as exc:
                self._failure = f"cannot judge: {exc}"
        return self._reports or []

    def union(self, inventory_path: Path) -> ReportUnion:
        known = self._by_given.get(inventory_path)  # every item asks: no path resolution each time
        if known is not None:
            return known
        key = inventory_path.resolve()
        if key not in self._unions:
            try:
                self._unions[key] = self._build(inventory_path)
            except KeyboardInterrupt:
                self.interrupted = True
                raise
        self._by_given[inventory_path] = self._unions[key]
        return self._unions[key]

    def _build(self, inventory_path: Path) -> ReportUnion:
        import datetime as clock

        from pytest_portcheck.sharding.plan import plan_inventory
        from pytest_portcheck.sharding.union import Freshness, ReportUnion

        plan = plan_inventory(self.run.load(inventory_path))
        reports = self.reports()
        now = clock.datetime.now(clock.timezone.utc)
        freshness = Freshness(self.max_age, self.max_age_text, now)
        return ReportUnion(
            reports, plan, allow_other_inventory=self.allow_other, strict=self.run.strict,
            run_id=self.run_id, freshness=freshness, failure=self._failure,
        )  # fmt: skip

    def placeholder(self) -> Any:
        """The session's results object in judge mode: no scan, nothing in it."""
        from pytest_portcheck.engine.model import settings_from_options
        from pytest_portcheck.report.model import ScanReport
        from pytest_portcheck.session import InventoryResults

        return InventoryResults(ScanReport([], [], settings_from_options(), "", 0.0), [])

    def _unions_to_show(self) -> list[tuple[Path, ReportUnion]]:
        """Each inventory's union; after an interrupt, only those already built (nothing is started)."""
        shown = []
        for path in self.run.inventories:
            built = self._unions.get(path.resolve())
            if built is None and not self.interrupted:
                built = self.union(path)
            if built is not None:
                shown.append((path, built))
        return shown

    def summary_lines(self) -> list[str]:
        from pytest_portcheck.report.provenance import KEY_VARIABLE

        reports = self.reports() if not self.interrupted else (self._reports or [])
        if self._failure is not None:
            return [f"ERROR: portcheck: {self._failure}"]
        lines = [f"judged from {len(reports)} report(s), no scan"]
        if self.interrupted:
            lines.append("interrupted: the judge stopped before every report was weighed")
        for path, union in self._unions_to_show():
            lines += union.summary_lines(path)
        if self.key is not None:
            lines.append(
                f"reports checked with {KEY_VARIABLE} (HMAC-SHA256): unsigned or altered ones are errors"
            )
        else:
            lines.append(
                f"WARNING: the reports are unauthenticated ({KEY_VARIABLE} is not set): anyone who can write "
                "them can forge a pass; set the same key where they are written and here"
            )
        return lines

    def judged_scan(self, records: Mapping[str, Any]) -> ScanReport | None:
        """The evidence the judge weighed, as a plain report (for --portcheck-report and the HTML page):
        per inventory, each judged host's resolution and results, with its vantage where there is one."""
        from pytest_portcheck.engine.model import settings_from_options
        from pytest_portcheck.report.model import ScanReport

        if self._judged is not None and self._judged[0] == len(records):
            return self._judged[1]
        judged = {(nodeid.split("::", 1)[0], record.host) for nodeid, record in records.items()}
        root = Path(self.run.config.rootpath)
        resolutions: list[Resolution] = []
        results: list[ProbeResult] = []
        services: dict[ResultKey, ServiceInfo] = {}
        starts: list[str] = []
        for path, union in self._unions_to_show():
            prefix = _nodeid_prefix(path, root)
            hosts = [h for h in self.run.load(path).hosts if (prefix, h.name) in judged]
            found = union.judged_results(hosts, JUDGED_RESULTS_LIMIT)
            resolutions += found[0]
            results += found[1]
            for key, info in found[2].items():
                services.setdefault(key, info)
            starts += [span[0]] if (span := union.evidence_span()) else []
        command = ["pytest", *self.run.config.invocation_params.args]
        report = ScanReport(
            resolutions, results, settings_from_options(), min(starts, default=""), 0.0,
            command=command, services=services,
        )  # fmt: skip
        self._judged = (len(records), report if resolutions or results else None)
        return self._judged[1]


def _nodeid_prefix(path: Path, root: Path) -> str:
    """The node id part pytest gives an inventory file (its path relative to the root directory)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


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


def scan_evidence(shared: InventoryResults) -> ScanEvidence:
    """The session's scan as the judge reads it, from the vantage this run scans from."""
    from pytest_portcheck.judge.evidence import ScanEvidence

    report = shared.report
    return ScanEvidence(
        shared.by_key,
        shared.resolutions,
        report.services,
        shared.silent,
        report.stats.addresses,
        current_vantage(),
    )


def skip_overridden(host: HostSpec, expectation: Expectation) -> None:
    """In a scanning run: skip an entry that the current vantage overrides with one of its own (that
    one applies here; this one applies elsewhere, to runs there). A ``from:`` entry of another
    vantage is the judge's to refuse (``ScanEvidence.absent``)."""
    here = current_vantage()
    if expectation.vantage is not None or here is None:
        return
    for other in host.expectations:
        if other.vantage == here and (other.proto, other.port) == (expectation.proto, expectation.port):
            where = f"{host.name} {expectation.proto.value}/{expectation.port}"
            pytest.skip(f"{where}: from {here}, the from: {here} entry (line {other.line}) applies instead")
