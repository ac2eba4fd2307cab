"""``portcheck snapshot``: scan (or read a report), then write an inventory of what is open now.

Presentation only: the inventory text is ``inventory.snapshot``'s, the scan ``pipeline.scan``'s.
Must not import pytest or the plugin.
"""

from __future__ import annotations

import argparse
import sys

from pytest_portcheck.atomicfile import write_text_atomically
from pytest_portcheck.cli.output import check_output
from pytest_portcheck.cli.scan import Identify, ports_of, settings_of
from pytest_portcheck.cli.status import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK
from pytest_portcheck.engine import PortState, ScanStats
from pytest_portcheck.inventory.snapshot import snapshot_inventory
from pytest_portcheck.pipeline.scan import prepare_scan
from pytest_portcheck.ports import Protocol
from pytest_portcheck.report.decode import read_any_report
from pytest_portcheck.report.model import ReportError


def run_snapshot(args: argparse.Namespace, identify: Identify | None = None) -> int:
    """``portcheck snapshot``: an inventory of what is open now, from a scan or from a report."""
    check_output(args.output)
    if args.source is not None:
        if args.targets:
            raise ReportError("snapshot --from takes no targets: the report says what was scanned")
        report = read_any_report(args.source)
        if report.interrupted and not args.allow_interrupted:
            raise ReportError(
                f"{args.source}: an interrupted scan (partial report): the ports it never reached would "
                "leave the baseline's range. Scan again, or pass --allow-interrupted"
            )
        if report.interrupted:
            sys.stderr.write(
                f"portcheck: WARNING: {args.source} is an interrupted scan: the inventory covers only "
                "the ports it holds\n"
            )
        services = dict(report.services)
        ports: list[tuple[Protocol, int]] = sorted(
            {(r.proto, r.port) for r in report.results if r.proto is Protocol.TCP}
        )
    else:
        if not args.targets:
            raise ReportError("snapshot needs targets to scan, or --from REPORT")
        if args.allow_interrupted:
            raise ReportError("--allow-interrupted goes with --from REPORT")
        ports = ports_of(args)
        settings = settings_of(args)
        prepared = prepare_scan(args.targets, ports, allow_large=args.allow_large_targets)
        stats = ScanStats()
        results, interrupted = prepared.run(settings, stats)
        if interrupted:  # a partial only_open list would be a wrong inventory: nothing is written
            sys.stderr.write("portcheck: interrupted: no inventory written\n")
            return EXIT_INTERRUPTED
        report = prepared.report(results, settings, stats, command=["portcheck", *args.argv])
        services = identify(report.results) if identify is not None else {}
    text = snapshot_inventory(report, services, ports, ["portcheck", *args.argv])
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_text_atomically(args.output, text)
        opened = sum(1 for r in report.results if r.state is PortState.OPEN)
        sys.stderr.write(
            f"portcheck: wrote {args.output}: {len(report.resolutions)} target(s), {opened} open port(s)\n"
        )
    unresolved = [r for r in report.resolutions if r.error is not None]
    for resolution in unresolved:
        sys.stderr.write(f"portcheck: {resolution.host}: {resolution.error} (left out of the inventory)\n")
    return EXIT_FAILURE if unresolved else EXIT_OK
