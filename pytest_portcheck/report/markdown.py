"""The run as Markdown: the summary ``--portcheck-markdown`` writes (and GitHub's step summary shows).

From the items' outcomes and the session's typed report only: hosts, drift, errors, waivers, silent
hosts, services found and scan quality. Peer text is escaped: markup and HTML from a banner stay text.
Must not import pytest, yaml or the probes' I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pytest_portcheck.judge.verdict import Verdict, today
from pytest_portcheck.report.judged import WAIVER_WARNING_DAYS, ItemOutcome, host_rows, silent_host_lines
from pytest_portcheck.report.model import ScanReport, quality_notes

MARKDOWN_LIST_LIMIT = 200
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def _md(text: str) -> str:
    """Text for a Markdown table cell or list item: markup and HTML from peers stays text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def markdown_summary(
    records: Mapping[str, ItemOutcome], report: ScanReport | None, *, strict: bool = False
) -> str:
    """The run as Markdown, from the items' outcomes (by node id) and the session's typed report:
    hosts, drift, errors, waivers, silent hosts, services found and scan quality."""
    rows = host_rows(records)
    listed = list(records.items())
    drift = [(nodeid, r) for nodeid, r in listed if r.verdict == Verdict.FAILED.value]
    errors = [(nodeid, r) for nodeid, r in listed if r.verdict == Verdict.ERROR.value]
    waived = [(nodeid, r) for nodeid, r in listed if r.verdict == Verdict.WAIVED.value]
    lines = [
        f"## portcheck: {len(drift)} drift, {len(errors)} error(s), {len(waived)} waived "
        f"on {len(rows)} host(s)",
        "",
        "| host | addresses | expected | found (per address) | drift | errors |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(_md(str(cell)) for cell in row)} |" for row in rows]
    for title, items in (("Drift", drift), ("Errors", errors), ("Waived", waived)):
        if items:
            lines += ["", f"### {title}", ""]
            lines += _capped([f"- {_md(nodeid)}: {_md(record.message)}" for nodeid, record in items])
    day = today()
    notes = [(nodeid, note) for nodeid, record in listed if (note := record.waiver_note(day))]
    if notes:
        lines += ["", f"### Waivers expired or expiring within {WAIVER_WARNING_DAYS} days", ""]
        lines += _capped([f"- {_md(nodeid)}: {_md(note)}" for nodeid, note in notes])
    silent = silent_host_lines(records)
    if silent:
        how = (
            "made errors by --portcheck-strict"
            if strict
            else "warnings; --portcheck-strict makes them errors"
        )
        lines += ["", f"### Nothing answered ({how})", ""]
        lines += [f"- {_md(line)}" for line in silent]
    services = [
        (record.host, record.target, service.line) for _, record in listed for service in record.services
    ]
    if services:
        lines += ["", "### Services found", ""]
        lines += _capped([f"- {_md(host)} {_md(target)}: {_md(line)}" for host, target, line in services])
    quality = quality_notes(report.stats) if report is not None else []
    if quality:
        lines += ["", "### Scan quality", ""]
        lines += [f"- {_md(line)}" for line in quality]
    return "\n".join(lines) + "\n"


def _capped(lines: list[str]) -> list[str]:
    """At most MARKDOWN_LIST_LIMIT lines and a count of the rest: GitHub refuses step summaries over 1 MiB."""
    if len(lines) <= MARKDOWN_LIST_LIMIT:
        return lines
    rest = len(lines) - MARKDOWN_LIST_LIMIT
    more = f"- … and {rest:,} more: the JSON report (--portcheck-report) has them all"
    return [*lines[:MARKDOWN_LIST_LIMIT], more]
