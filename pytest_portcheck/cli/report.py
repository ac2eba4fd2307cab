"""``portcheck report REPORT -o FILE.html --sarif FILE --metrics FILE``: a self-contained HTML page,
a SARIF 2.1.0 log for code scanning and Prometheus metrics from a JSON report (a plugin's holds each
expectation's verdict, kind and declaring line) or nmap XML.

Presentation only: the page, the log and the metrics are the report package's writers.
Must not import pytest or the plugin.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pytest_portcheck.cli.output import OutputPathError, check_output
from pytest_portcheck.cli.status import EXIT_OK
from pytest_portcheck.report.html import write_html
from pytest_portcheck.report.judged import read_judged_report
from pytest_portcheck.report.metrics import write_metrics
from pytest_portcheck.report.sarif import write_sarif


def run_report(args: argparse.Namespace) -> int:
    outputs = [args.output, args.sarif, args.metrics]
    if not any(outputs):
        raise OutputPathError("report needs an output: -o FILE.html, --sarif FILE or --metrics FILE")
    for path in outputs:
        check_output(path)
    judged = read_judged_report(args.report)
    if args.output:
        write_html(judged, Path(args.output))
    if args.sarif:
        started = judged.scan.started or None
        command = ["portcheck", *getattr(args, "argv", [])]
        write_sarif(
            args.sarif, judged.expectations, source_root=args.source_root, started=started, command=command,
            interrupted=judged.scan.interrupted,
        )  # fmt: skip
    if args.metrics:
        write_metrics(args.metrics, judged.expectations, judged.scan)
    return EXIT_OK
