"""``portcheck diff OLD NEW``: what changed between two reports (JSON or nmap XML), as text or JSON.

Presentation only: the comparison is ``report.diff``'s. Must not import pytest or the plugin.
"""

from __future__ import annotations

import argparse
import json
import sys

from pytest_portcheck.cli.status import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from pytest_portcheck.report.decode import read_any_report
from pytest_portcheck.report.diff import compare_reports
from pytest_portcheck.report.model import ReportError


def run_diff(args: argparse.Namespace) -> int:
    """``portcheck diff OLD NEW``: 0 when equal, 1 when different, 2 when a report cannot be read."""
    try:
        old, new = read_any_report(args.old), read_any_report(args.new)
    except ReportError as exc:
        sys.stderr.write(f"portcheck: error: {exc}\n")
        return EXIT_USAGE
    partial = [name for name, report in ((args.old, old), (args.new, new)) if report.interrupted]
    if partial and not args.allow_interrupted:
        sys.stderr.write(
            f"portcheck: error: {' and '.join(partial)}: an interrupted scan (partial report); its "
            "missing ports would show as differences. Scan again, or pass --allow-interrupted\n"
        )
        return EXIT_USAGE
    for name in partial:
        sys.stderr.write(f"portcheck: WARNING: {name} is an interrupted scan: it does not hold every port\n")
    difference = compare_reports(old, new)
    if args.json:
        document = {**difference.to_dict(), "interrupted_reports": partial}
        sys.stdout.write(json.dumps(document, indent=1) + "\n")
    else:
        text = difference.to_text(args.old, args.new)
        sys.stdout.write(text + "".join(f"WARNING: {name} is an interrupted scan\n" for name in partial))
    return EXIT_OK if difference.equal else EXIT_FAILURE
