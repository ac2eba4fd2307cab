"""``portcheck scan TARGET...``: what is scanned how, each result as it comes, the summary, the reports.

Presentation only: the scan is ``pipeline.scan``'s. What answers on the open ports (``--banner``) and
the report files (``--json``, ``-oX``) come in from the command's dispatch (``cli.__init__``), which
imports the probes, ``json`` and the XML writer only when they are asked for: a plain scan loads this
module and the engine, and nothing else of weight (tests/test_cli_imports.py).
Must not import pytest, yaml, the inventory, the probes or json.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from pytest_portcheck import __version__
from pytest_portcheck.atomicfile import WriteError
from pytest_portcheck.cli.output import check_output
from pytest_portcheck.cli.status import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from pytest_portcheck.engine import PortState, ProbeResult, Reason, ScanSettings, ScanStats
from pytest_portcheck.engine.model import SETTING_NAMES, ResultKey, port_key, settings_from_options
from pytest_portcheck.pipeline.scan import PreparedScan, prepare_scan
from pytest_portcheck.ports import Protocol, parse_port_spec
from pytest_portcheck.progress import ProgressBar
from pytest_portcheck.report.model import ScanReport, count_states, quality_notes
from pytest_portcheck.report.provenance import run_id_for

if TYPE_CHECKING:
    from pytest_portcheck.probes.model import ServiceInfo

Identify = Callable[[Sequence[ProbeResult]], dict[ResultKey, "ServiceInfo"]]
"""What answers on the open ports of a scan's results (``--banner``: the protocol probes)."""
ReportWriter = Callable[[ScanReport, str, str], None]
"""Writes a report to a destination (``-``: standard output), given the scan's run id."""


def _format_latency(result: ProbeResult) -> str:
    return "" if result.latency_ms is None else f"{result.latency_ms:.1f} ms"


def _result_line(result: ProbeResult) -> str:
    address = result.address if result.address is not None else result.host
    port = f"{result.proto.value}/{result.port}"
    return (
        f"  {address:<15} {port:<10} {result.state.value:<9} {result.service:<16} "
        f"{result.reason} {_format_latency(result)}".rstrip()
    )


def ports_of(args: argparse.Namespace) -> list[tuple[Protocol, int]]:
    ports = parse_port_spec(args.ports)
    if args.udp:
        ports = sorted({(Protocol.UDP, port) for _proto, port in ports})
    return ports


_SETTING_DESTS = {"window": "workers"}
"""Scan settings whose option is named otherwise on the command line (``-w/--workers``)."""


def settings_of(args: argparse.Namespace) -> ScanSettings:
    return settings_from_options(
        {name: getattr(args, _SETTING_DESTS.get(name, name)) for name in SETTING_NAMES}
    )


def run_scan(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    identify: Identify | None = None,
    writers: Sequence[tuple[str, ReportWriter]] = (),
) -> int:
    """``portcheck scan TARGET...``: the header, each result as it comes, the services ``identify``
    found (``--banner``), the summary, then each report file of ``writers`` (``--json``, ``-oX``)."""
    check_output(args.json)
    check_output(args.xml)
    run_id, run_source = run_id_for(args.run_id, os.environ)  # a bad --run-id is refused before scanning
    ports = ports_of(args)
    settings = settings_of(args)
    prepared = prepare_scan(args.targets, ports, allow_large=args.allow_large_targets)
    _write_header(prepared, settings, out)
    show_progress = args.progress == "always" or (args.progress == "auto" and err.isatty())
    progress = ProgressBar(err, len(prepared.targets), show_progress)

    def shown(result: ProbeResult) -> None:
        if result.state in args.show or result.reason == Reason.LISTEN_NO_ACCEPT:  # exposure: always listed
            progress.clear()
            out.write(_result_line(result) + "\n")
            out.flush()
        progress.advance()

    stats = ScanStats()
    try:
        results, interrupted = prepared.run(settings, stats, shown)
    finally:
        progress.clear()
    services: dict[ResultKey, ServiceInfo] = {}
    if identify is not None and not interrupted:
        try:
            services = identify(results)
        except KeyboardInterrupt:  # the scan is whole: keep it, without the services
            interrupted = True
    report = prepared.report(
        results,
        settings,
        stats,
        interrupted=interrupted,
        command=["portcheck", *args.argv],
        services=services,
    )
    _write_services(report, out)
    errors = _write_summary(prepared, report, out)
    if args.json:
        out.write(f"run {run_id} ({run_source})\n")
    if not _write_reports(report, writers, err, run_id):
        return EXIT_USAGE
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if errors else EXIT_OK


def _write_reports(
    report: ScanReport, writers: Sequence[tuple[str, ReportWriter]], err: TextIO, run_id: str
) -> bool:
    """Write each report file asked for; one that fails does not keep the next from being written.
    False (after saying why on ``err``) when any could not be written."""
    written = True
    for destination, write in writers:
        try:
            write(report, destination, run_id)
        except WriteError as exc:
            err.write(f"portcheck: error: {exc}\n")
            written = False
    return written


def _write_header(prepared: PreparedScan, settings: ScanSettings, out: TextIO) -> None:
    """The scan's header: what is scanned how, and what each target resolved to."""
    protocols = {proto for proto, _ in prepared.ports}
    kinds = " and ".join(sorted({"TCP connect" if proto is Protocol.TCP else "UDP" for proto in protocols}))
    out.write(
        f"portcheck {__version__}: {kinds} scan of {len(prepared.resolutions)} target(s), "
        f"{len(prepared.ports):,} port(s) each (timeout {settings.timeout:g} s, retries {settings.retries}, "
        f"window {settings.window}"
        + (f", max rate {settings.max_rate:g}/s" if settings.max_rate else "")
        + (f", min rate {settings.min_rate:g}/s" if settings.min_rate else "")
        + ")\n"
    )
    for resolution in prepared.resolutions:
        if resolution.error is not None:
            out.write(f"{resolution.host}: {resolution.error}\n")
        elif len(resolution.addresses) > 8:
            out.write(
                f"{resolution.host}: {len(resolution.addresses):,} addresses "
                f"({resolution.addresses[0]} - {resolution.addresses[-1]})\n"
            )
        else:
            out.write(f"{resolution.host}: {', '.join(resolution.addresses)}\n")
    out.flush()


def _write_services(report: ScanReport, out: TextIO) -> None:
    """What answers on each open port, and the services exposed without authentication."""
    services = report.services
    if not services:
        return
    for result in report.results:
        info = services.get(port_key(result.address or "", result.proto, result.port))
        if result.state is not PortState.OPEN or info is None:
            continue  # a UDP port: its reply was the answer, the probes speak TCP
        address = result.address or result.host
        out.write(f"  {address:<15} {result.proto.value}/{result.port:<6} {info.describe()}\n")
    exposed = [
        f"{key[0]} {key[1].value}/{key[2]} {info.summary()}" for key, info in services.items() if info.exposed
    ]
    if exposed:
        out.write(f"EXPOSED: {len(exposed)} service(s) answer without authentication: {'; '.join(exposed)}\n")


def _write_summary(prepared: PreparedScan, report: ScanReport, out: TextIO) -> list[ProbeResult]:
    """The closing lines (counts, pacing, quality, errors); returns the results that are errors."""
    results, stats, settings = report.results, report.stats, report.settings
    counts = count_states(results)
    probed = len(prepared.targets) + len(prepared.unresolved)
    addresses = sum(len(r.addresses) for r in prepared.resolutions)
    verb = "INTERRUPTED after" if report.interrupted else "done in"
    out.write(
        f"\nSummary: {len(prepared.resolutions)} target(s), {addresses:,} address(es), "
        f"{len(prepared.ports):,} port(s) each; {len(results):,}/{probed:,} results: "
        + ", ".join(
            f"{count:,} {state.value}"
            for state, count in counts.items()
            if state is not PortState.OPEN_FILTERED
            or any(proto is Protocol.UDP for proto, _ in prepared.ports)
        )
        + f"; {verb} {report.elapsed_s:.2f} s\n"
    )
    if stats.rate_limited:
        out.write(
            f"Note: {stats.rate_limited} address(es) rate-limit ICMP port-unreachable replies: "
            f"{stats.paced_probes} UDP retries were paced (from {settings.udp_rate:g}/s, faster while "
            f"answered), which is most of the {report.elapsed_s:.0f} s this scan took; "
            "--udp-rate sets the pace\n"
        )
    for line in quality_notes(stats):
        out.write(f"Note: {line}\n")
    if stats.self_connects or stats.resource_backoffs:
        out.write(
            f"Note: {stats.self_connects} self-connect(s) re-probed, {stats.resource_backoffs} "
            f"back-off(s) for local resources (narrowest window {stats.smallest_window})\n"
        )
    errors = [r for r in results if r.state is PortState.ERROR]
    if errors:
        reasons = sorted({r.reason for r in errors})
        out.write(f"ERROR: {len(errors):,} probe(s) could not be made: {'; '.join(reasons[:5])}\n")
    out.flush()
    return errors
