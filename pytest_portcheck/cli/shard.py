"""``portcheck scan --inventory INV [--shard K/N] [--vantage NAME] [--run-id ID] [--json FILE]``.

Presentation only: reads the arguments, prints what share of which run is scanned and a summary,
writes the shard report (version 2), signed when ``PORTCHECK_REPORT_KEY`` is set.
The work is ``sharding.scan``'s. Imported by the command's dispatch only when ``--inventory`` is given
(it loads YAML).
Must not import pytest or the plugin modules.
"""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from pytest_portcheck import __version__
from pytest_portcheck.atomicfile import WriteError, check_writable
from pytest_portcheck.cli.status import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from pytest_portcheck.engine import PortState, ProbeResult
from pytest_portcheck.inventory.load import load_inventory
from pytest_portcheck.inventory.model import InventoryError
from pytest_portcheck.progress import ProgressBar
from pytest_portcheck.report.provenance import run_id_for
from pytest_portcheck.sharding.plan import ShardSplit, parse_shard, plan_inventory, shard_count_problem
from pytest_portcheck.sharding.report import write_shard_report
from pytest_portcheck.sharding.scan import ShardRequest, scan_shard


def _usage(err: TextIO, message: str) -> int:
    err.write(f"portcheck: error: {message}\n")
    return EXIT_USAGE


def _request(args: argparse.Namespace) -> tuple[ShardRequest, str]:
    """The share the arguments ask for, and where its run id came from; ValueError (ShardSpecError,
    RunIdError) with the usage message otherwise."""
    if args.targets:
        raise ValueError("--inventory scans the inventory's hosts: give no TARGET")
    if args.xml:
        raise ValueError("-oX does not go with --inventory: write the shard report with --json")
    index, count = parse_shard(args.shard or "1/1", dict(os.environ))
    vantage = args.vantage or os.environ.get("PORTCHECK_VANTAGE") or None
    run_id, source = run_id_for(args.run_id, os.environ)
    return ShardRequest(index, count, vantage, args.workers, args.processes, run_id), source


def run_shard_scan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``portcheck scan --inventory INV [--shard K/N]``: one share of the inventory, its shard report."""
    try:
        request, source = _request(args)
    except ValueError as exc:
        return _usage(err, str(exc))
    index, count, vantage = request.index, request.count, request.vantage
    if args.json and args.json != "-":
        try:
            check_writable(args.json)
        except WriteError as exc:
            return _usage(err, str(exc))
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        return _usage(err, str(exc))
    plan = plan_inventory(inventory)
    too_many = shard_count_problem(count, plan.total)
    if too_many is not None:
        return _usage(err, f"--shard {index}/{count}: {too_many}")
    split = ShardSplit(plan.total, plan.digest, count)
    where = f" from vantage {vantage}" if vantage else ""
    out.write(
        f"portcheck {__version__}: shard {index}/{count}{where} of {args.inventory} (plan {plan.digest}): "
        f"{split.size(index):,} of {plan.total:,} unit(s) on {len(plan.hosts):,} host(s)\n"
        f"run {request.run_id} ({source})\n"
    )
    out.flush()
    show = args.progress == "always" or (args.progress == "auto" and err.isatty())
    progress = ProgressBar(err, split.size(index), show)
    counts = dict.fromkeys(PortState, 0)

    def seen(result: ProbeResult) -> None:
        counts[result.state] += 1
        progress.advance()

    report = scan_shard(inventory, request, command=["portcheck", *args.argv], on_result=seen)
    progress.clear()
    unresolved = [r for r in report.resolutions if r.error is not None]
    for resolution in unresolved:
        out.write(f"{resolution.host}: {resolution.error}\n")
    verb = "INTERRUPTED after" if report.interrupted else "done in"
    out.write(
        f"Summary: shard {index}/{count}: {sum(counts.values()):,} probe result(s): "
        + ", ".join(f"{n:,} {state.value}" for state, n in counts.items() if n)
        + f"; {verb} {report.elapsed_s:.2f} s\n"
    )
    if args.json:
        write_shard_report(report, args.json)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if unresolved or counts[PortState.ERROR] else EXIT_OK
