"""The plugin's judge mode (``--portcheck-results GLOB``): items judged from reports, no scan.

Each inventory is judged from one run of the reports the globs match (see sharding/union.py), no
older than ``--portcheck-max-age``, checked against ``PORTCHECK_REPORT_KEY`` when it is set; the
summary lists the run judged, its time span, every report ignored and why, and what the run could not
prove. A report that cannot be read is one error for every item, with the summary. The session
(``session.PortcheckRun``) holds one ``JudgeMode`` when reports are given; items ask it for the union
of their inventory, which is a ``judge.evidence.Evidence`` as a scan is.
Must not import the session (it holds this), the items or the summary.
"""

from __future__ import annotations

import datetime
import glob
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_portcheck.engine import ProbeResult, Resolution
from pytest_portcheck.engine.model import ResultKey, settings_from_options
from pytest_portcheck.inventory.model import Inventory
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.model import ReportError, ScanReport
from pytest_portcheck.report.provenance import KEY_VARIABLE, RunIdError, check_run_id, report_key
from pytest_portcheck.sharding.plan import plan_inventory
from pytest_portcheck.sharding.report import LoadedReport, load_report
from pytest_portcheck.sharding.union import Freshness, ReportUnion

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

    def __init__(
        self,
        config: pytest.Config,
        inventories: Sequence[Path],
        load: Callable[[Path], Inventory],
        *,
        strict: bool,
    ) -> None:
        self.config = config
        self.inventories = list(inventories)
        self.load = load
        """The session's reader of an inventory file (each is read once a session)."""
        self.strict = strict
        self.globs: list[str] = list(config.getoption("portcheck_results") or [])
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
        plan = plan_inventory(self.load(inventory_path))
        reports = self.reports()
        now = datetime.datetime.now(datetime.timezone.utc)
        freshness = Freshness(self.max_age, self.max_age_text, now)
        return ReportUnion(
            reports, plan, allow_other_inventory=self.allow_other, strict=self.strict,
            run_id=self.run_id, freshness=freshness, failure=self._failure,
        )  # fmt: skip

    def _unions_to_show(self) -> list[tuple[Path, ReportUnion]]:
        """Each inventory's union; after an interrupt, only those already built (nothing is started)."""
        shown = []
        for path in self.inventories:
            built = self._unions.get(path.resolve())
            if built is None and not self.interrupted:
                built = self.union(path)
            if built is not None:
                shown.append((path, built))
        return shown

    def summary_lines(self) -> list[str]:
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
        if self._judged is not None and self._judged[0] == len(records):
            return self._judged[1]
        judged = {(nodeid.split("::", 1)[0], record.host) for nodeid, record in records.items()}
        root = Path(self.config.rootpath)
        resolutions: list[Resolution] = []
        results: list[ProbeResult] = []
        services: dict[ResultKey, ServiceInfo] = {}
        starts: list[str] = []
        for path, union in self._unions_to_show():
            prefix = _nodeid_prefix(path, root)
            hosts = [h for h in self.load(path).hosts if (prefix, h.name) in judged]
            found = union.judged_results(hosts, JUDGED_RESULTS_LIMIT)
            resolutions += found[0]
            results += found[1]
            for key, info in found[2].items():
                services.setdefault(key, info)
            starts += [span[0]] if (span := union.evidence_span()) else []
        command = ["pytest", *self.config.invocation_params.args]
        # asked=None: what the judged reports' probes were run for is theirs, not this report's to vouch for
        report = ScanReport(
            resolutions, results, settings_from_options(), min(starts, default=""), 0.0,
            command=command, services=services, asked=None,
        )  # fmt: skip
        self._judged = (len(records), report if resolutions or results else None)
        return self._judged[1]


def _nodeid_prefix(path: Path, root: Path) -> str:
    """The node id part pytest gives an inventory file (its path relative to the root directory)."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
