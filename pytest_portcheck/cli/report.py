"""``portcheck report REPORT -o FILE.html``: one self-contained HTML page from a JSON report or nmap XML.

Presentation only: the page is ``report.html``'s. Must not import pytest or the plugin.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pytest_portcheck.cli.output import check_output
from pytest_portcheck.cli.status import EXIT_OK
from pytest_portcheck.report.html import write_html
from pytest_portcheck.report.judged import read_judged_report


def run_report(args: argparse.Namespace) -> int:
    check_output(args.output)
    write_html(read_judged_report(args.report), Path(args.output))
    return EXIT_OK
