"""What the controller writes at the end: the terminal summary and the report files.

``ControllerHooks`` (registered on the controller or the single process only) gathers each item's
``ItemOutcome`` from its test report, prints the exposure table and writes ``--portcheck-report``
(JSON), ``--portcheck-html``, ``--portcheck-markdown``, ``--portcheck-sarif`` and
``--portcheck-metrics``: all from the typed report and the outcomes (the writers are the report
package's).
Must not import the items (outcomes are data) or the plugin's hooks module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pytest_portcheck.atomicfile import WriteError, check_writable, write_text_atomically
from pytest_portcheck.engine.model import settings_from_options
from pytest_portcheck.judge.verdict import today
from pytest_portcheck.plugin.session import OUTCOME_ATTRIBUTE, ItemMessage, PortcheckRun
from pytest_portcheck.report.encode import write_report
from pytest_portcheck.report.html import write_html
from pytest_portcheck.report.judged import (
    WAIVER_WARNING_DAYS,
    ItemOutcome,
    JudgedReport,
    host_rows,
    silent_host_lines,
)
from pytest_portcheck.report.markdown import markdown_summary
from pytest_portcheck.report.metrics import write_metrics
from pytest_portcheck.report.model import ScanReport, quality_notes
from pytest_portcheck.report.sarif import write_sarif

REPORT_OPTIONS = (
    ("portcheck_report", "--portcheck-report"),
    ("portcheck_html", "--portcheck-html"),
    ("portcheck_markdown", "--portcheck-markdown"),
    ("portcheck_sarif", "--portcheck-sarif"),
    ("portcheck_metrics", "--portcheck-metrics"),
)


def check_report_paths(config: pytest.Config) -> None:
    """Refuse report files that cannot be written before scanning, not after."""
    for dest, flag in REPORT_OPTIONS:
        path = config.getoption(dest, None)
        if path and path != "-":
            try:
                check_writable(path)
            except WriteError as exc:
                raise pytest.UsageError(f"portcheck: {flag}: {exc}") from None


class ControllerHooks:
    """Registered on the controller only (or the single process): gathers item reports, prints the
    exposure summary and writes the report file."""

    def __init__(self, run: PortcheckRun) -> None:
        self.run = run

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        text = report.__dict__.get(OUTCOME_ATTRIBUTE)
        if text is None:
            return  # another test's report, or the setup/teardown of an item (its call carries it)
        outcome = self.run.outcomes_here.pop(report.nodeid, None)
        if outcome is None:  # from an xdist worker
            try:
                outcome = ItemOutcome.from_dict(json.loads(text), report.nodeid)
            except (ValueError, TypeError, KeyError, AttributeError):
                return  # not an outcome of ours: some other plugin's attribute of that name
        self.run.records[report.nodeid] = outcome
        if report.failed and isinstance(report.longrepr, str):
            # From an xdist worker, which sends the message as text: its inventory line back.
            report.longrepr = ItemMessage.for_report(  # type: ignore[assignment]
                self.run.config, report.location, report.when, report.longrepr
            )

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.run.records:
            _write_summary(self.run, terminalreporter)
        for problem in self.run.write_errors:
            terminalreporter.write_line(f"ERROR: portcheck: {problem}", red=True, bold=True)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        writers: list[tuple[str, Callable[[str], None]]] = [
            ("portcheck_report", lambda path: _write_report_file(self.run, path, interrupted)),
            ("portcheck_html", lambda path: write_html(_judged_report(self.run, interrupted), Path(path))),
            ("portcheck_markdown", lambda path: _write_markdown(self.run, path)),
            ("portcheck_sarif", lambda path: _write_sarif(self.run, path, interrupted)),
            ("portcheck_metrics", lambda path: _write_metrics(self.run, path, interrupted)),
        ]
        for (dest, writer), (_, flag) in zip(writers, REPORT_OPTIONS, strict=True):
            path = session.config.getoption(dest, None)
            if not path:
                continue
            try:
                writer(path)
            except (WriteError, OSError) as exc:  # one report lost is no reason to lose the others
                self.run.write_errors.append(f"{flag}: {exc}")
        if self.run.write_errors and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = pytest.ExitCode.USAGE_ERROR


def _write_sarif(run: PortcheckRun, path: str, interrupted: bool) -> None:
    """One SARIF run for the session (a fleet judged from reports is one analysis), paths relative to
    the root directory, which holds the node ids' paths too."""
    root = run.config.rootpath
    scan = _judged_report(run, interrupted).scan
    command = ["pytest", *run.config.invocation_params.args]
    outcomes = list(run.records.values())
    started = scan.started or None
    write_sarif(path, outcomes, source_root=root, interrupted=interrupted, started=started, command=command)


def _write_metrics(run: PortcheckRun, path: str, interrupted: bool) -> None:
    write_metrics(path, list(run.records.values()), _judged_report(run, interrupted).scan)


def _write_markdown(run: PortcheckRun, path: str) -> None:
    text = markdown_summary(run.records, run.shared_report(), strict=run.strict)
    write_text_atomically(path, text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text)


def _write_summary(run: PortcheckRun, terminalreporter: Any) -> None:
    rows = host_rows(run.records)
    header = ("host", "addresses", "expected", "found (per address)", "drift", "errors")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    terminalreporter.section("portcheck exposure")
    terminalreporter.write_line("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        line = "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        drifted = row[4] or row[5]
        terminalreporter.write_line(line, red=bool(drifted), green=not drifted)
    total_drift = sum(row[4] for row in rows)
    drifted_hosts = sum(1 for row in rows if row[4])
    terminalreporter.write_line(
        f"drift: {total_drift} expectation(s) not met on {drifted_hosts} of {len(rows)} host(s)"
    )
    services = [
        (record.host, record.target, service.line)
        for record in run.records.values()
        for service in record.services
    ]
    if services:
        terminalreporter.write_line("services found:")
        for host, target, line in services:
            terminalreporter.write_line(f"  {host} {target} {line}")
    day = today()
    notes = [(record, note) for record in run.records.values() if (note := record.waiver_note(day))]
    if notes:
        terminalreporter.write_line(
            f"waivers to look at (expired, or expiring within {WAIVER_WARNING_DAYS} days):"
        )
        for record, note in notes:
            terminalreporter.write_line(
                f"  {record.host} {record.target} {record.expected}: {note}", yellow=True
            )
    for index, note in enumerate(run.source_notes()):
        if not index:
            terminalreporter.write_line("declared in sources, not checked as ports:")
        terminalreporter.write_line(f"  {note}", yellow=True)
    how = "made errors by --portcheck-strict" if run.strict else "pass --portcheck-strict to fail on this"
    for line in silent_host_lines(run.records):
        terminalreporter.write_line(f"WARNING: {line} ({how})", yellow=True)
    if run.judging is not None:
        for line in run.judging.summary_lines():
            terminalreporter.write_line(line, yellow=line.startswith("WARNING"), red=line.startswith("ERROR"))
        return
    report = run.shared_report()
    if report is not None:
        terminalreporter.write_line(
            f"scanned {len(report.results):,} (address, port) pair(s) once each in {report.elapsed_s:.2f} s"
        )
        for line in quality_notes(report.stats):
            terminalreporter.write_line(f"scan quality: {line}", yellow=True)


def _judged_report(run: PortcheckRun, interrupted: bool = False) -> JudgedReport:
    """The session's typed report: the shared scan and each item's outcome, for the JSON report and
    the HTML page alike."""

    # A judge run scanned nothing: its report holds the evidence it weighed (judgemode.judged_scan).
    shared = run.judging.judged_scan(run.records) if run.judging is not None else run.shared_report()
    report = shared or ScanReport([], [], settings_from_options(), "", 0.0)
    if interrupted:  # whatever was scanned or judged so far, and saying that it is not all
        report = replace(report, interrupted=True)
    return JudgedReport(report, list(run.records.values()))


def _write_report_file(run: PortcheckRun, destination: str, interrupted: bool = False) -> None:
    judged = _judged_report(run, interrupted)
    write_report(judged.scan, destination, judged.expectations_document())
