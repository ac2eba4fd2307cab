"""The ``portcheck`` command: argument parsing and output only; the engine does the scanning.

Exit status (``exitstatus``): 0 the scan completed and every port got an answer; 1 a runtime failure,
or some ports could not be probed (``error`` results, e.g. a name that does not resolve); 2 bad usage,
or an output (a report file, standard output) that could not be written; 130 Ctrl-C. A reader that
leaves early (``| head -1``) is not a failure: the command keeps working and keeps its status.
Never imports pytest. A plain scan imports only what it needs (no dataclasses, typing, pathlib, shutil,
json without ``--json``, asyncio or yaml: tests/test_cli_imports.py): on a few ports the command's
start-up is most of its time, and nmap starts in ~30 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence

from pytest_portcheck import __version__
from pytest_portcheck.atomicfile import WriteError, check_writable, write_text_atomically
from pytest_portcheck.engine import (
    DEFAULT_WINDOW,
    PortState,
    ProbeResult,
    Reason,
    ScanError,
    ScanSettings,
    ScanStats,
)
from pytest_portcheck.engine.model import MAX_TIMEOUT, MIN_TIMEOUT, ResultKey, port_key
from pytest_portcheck.exitstatus import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from pytest_portcheck.pipeline.scan import ScanPlan, plan_scan
from pytest_portcheck.ports import PortSpecError, Protocol, parse_port_spec
from pytest_portcheck.progress import ProgressBar
from pytest_portcheck.report.model import STATE_ORDER, ReportError, ScanReport, count_states, quality_notes
from pytest_portcheck.report.provenance import RunIdError, run_id_for

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; type checkers treat this name as true
if TYPE_CHECKING:
    from typing import Any, TextIO

    from pytest_portcheck.probes.model import ServiceInfo

COMMANDS = ("scan", "snapshot", "diff", "report")


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of probes per second") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of probes per second")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return value


def _timeout(text: str) -> float:
    value = _positive_float(text)
    if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a usable timeout: give {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g} seconds"
        )
    return value


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


def _states(text: str) -> frozenset[PortState]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return frozenset(PortState)
    try:
        return frozenset(PortState(name) for name in names)
    except ValueError:
        choices = ", ".join(state.value for state in STATE_ORDER)
        raise argparse.ArgumentTypeError(f"{text!r}: list states from {choices}, or 'all'") from None


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns`` without importing shutil (with bz2, lzma and fnmatch):
    ``COLUMNS`` when it is a positive number, else the terminal's width, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout; the width found as argparse finds it, but without shutil."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        width = _terminal_columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and its subcommands' parsers) that lays its help out with ``_Formatter``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not an option), if it is one of ours."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in COMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command's parser. With ``command``, only that subcommand gets its options: the others keep
    their name and help line, all the top-level help and errors show, and a scan is spared building
    some fifty options it does not use (argparse makes a formatter for every option it adds)."""

    def full(name: str) -> bool:
        return command is None or command == name

    parser = _Parser(
        prog="portcheck",
        description="Fast concurrent TCP connect and UDP scanner, and the command-line side of "
        "pytest-portcheck.",
    )
    parser.add_argument("--version", action="version", version=f"portcheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    scan_parser = commands.add_parser(
        "scan",
        help="scan TCP (or, with --udp, UDP) ports of hosts, addresses or CIDR blocks",
        description="Scan TCP ports with non-blocking connects (UDP ports with --udp) and report open, "
        "closed, filtered (open|filtered for UDP) and error states with the reason for each.",
    )
    if full("scan"):
        _add_scan_command_options(scan_parser)
    _add_snapshot_and_diff(commands, full)
    report_parser = commands.add_parser(
        "report",
        help="turn a JSON report or nmap XML into a self-contained HTML page",
        description="Write one self-contained HTML page (no external assets) from a JSON report or an "
        "nmap XML file.",
    )
    if full("report"):
        report_parser.add_argument("report", metavar="REPORT")
        report_parser.add_argument("-o", "--output", required=True, metavar="FILE.html")
    return parser


def _add_scan_command_options(scan_parser: argparse.ArgumentParser) -> None:
    _add_scan_options(scan_parser, targets="*")
    scan_parser.add_argument("--json", metavar="FILE", help="write the JSON report to FILE ('-': stdout)")
    scan_parser.add_argument(
        "--run-id", metavar="ID", default=None,
        help="the run the report belongs to: give every shard and vantage of one scan the same id "
        "(default $PORTCHECK_RUN_ID, else the GitHub Actions run and attempt, else a new one)",
    )  # fmt: skip
    _add_share_options(scan_parser)
    scan_parser.add_argument(
        "-oX", "--xml", metavar="FILE", dest="xml",
        help="write the report as nmap XML (for ndiff and nmap's tools) to FILE ('-': stdout)",
    )  # fmt: skip
    scan_parser.add_argument(
        "--show", type=_states, default=frozenset({PortState.OPEN}), metavar="STATES",
        help="states to list port by port, e.g. 'open,filtered' or 'all' (default open)",
    )  # fmt: skip
    scan_parser.add_argument(
        "--progress", choices=("auto", "always", "never"), default="auto",
        help="progress bar on stderr (default: only when stderr is a terminal)",
    )  # fmt: skip


def _add_snapshot_and_diff(
    commands: argparse._SubParsersAction[_Parser], full: Callable[[str], bool]
) -> None:
    snapshot_parser = commands.add_parser(
        "snapshot",
        help="scan, then write an inventory of what is open now",
        description="Scan and write a valid inventory: the open ports under only_open (with the "
        "services found when --banner probes them), the scanned range as its range.",
    )
    if full("snapshot"):
        _add_scan_options(snapshot_parser, targets="*")
        snapshot_parser.add_argument(
            "-o", "--output", default="-", metavar="FILE", help="inventory to write (default stdout)"
        )
        snapshot_parser.add_argument(
            "--from", dest="source", metavar="REPORT",
            help="no scan: the inventory of a portcheck JSON report or an nmap XML file (-oX)",
        )  # fmt: skip
        snapshot_parser.add_argument(
            "--allow-interrupted", action="store_true",
            help="with --from: take a report of an interrupted scan (its range is only the ports it holds)",
        )  # fmt: skip
    diff_parser = commands.add_parser(
        "diff",
        help="compare two reports (JSON or nmap XML)",
        description="Compare two reports: JSON (from 'portcheck scan --json' or --portcheck-report) or "
        "nmap XML (nmap -oX, portcheck scan -oX). Exit 0 when equal, 1 when different, 2 on error.",
    )
    if not full("diff"):
        return
    diff_parser.add_argument("old", metavar="OLD")
    diff_parser.add_argument("new", metavar="NEW")
    diff_parser.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff_parser.add_argument(
        "--allow-interrupted", action="store_true",
        help="compare even when a report is of an interrupted scan (its missing ports show as removed)",
    )  # fmt: skip


def _add_scan_options(parser: argparse.ArgumentParser, targets: str = "+") -> None:
    parser.add_argument("targets", nargs=targets, metavar="TARGET", help="hostname, IP address or CIDR block")
    parser.add_argument(
        "-p", "--ports", default="1-1024", metavar="SPEC",
        help="ports: '22,80,443', '1-1024', '-' or 'all' for 1-65535; '/tcp' suffix allowed (default 1-1024)",
    )  # fmt: skip
    parser.add_argument(
        "-t", "--timeout", type=_timeout, default=1.0, metavar="SECONDS",
        help="seconds each connect attempt may take (default 1.0)",
    )  # fmt: skip
    parser.add_argument(
        "-w", "--workers", type=_count(1), default=DEFAULT_WINDOW, metavar="N",
        help=f"connects in flight at once (default {DEFAULT_WINDOW})",
    )  # fmt: skip
    parser.add_argument(
        "--retries", type=_count(0), default=1, metavar="N",
        help="extra attempts for ports that did not answer (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--max-rate", type=_rate, default=None, metavar="PER_SECOND",
        help="send at most this many TCP probes per second over the whole scan (default: adaptive, no cap)",
    )  # fmt: skip
    parser.add_argument(
        "--min-rate", type=_rate, default=None, metavar="PER_SECOND",
        help="never slow a remote address below this many TCP probes per second, whatever it drops",
    )  # fmt: skip
    parser.add_argument(
        "--processes", type=_count(1), default=None, metavar="N",
        help="scanning processes (default: one per CPU for scans of 8,192 probes or more)",
    )  # fmt: skip
    parser.add_argument(
        "--udp", "-sU", action="store_true",
        help="scan UDP instead of TCP for the ports of -p ('53/udp' in -p mixes both)",
    )  # fmt: skip
    parser.add_argument(
        "--udp-rate", type=_positive_float, default=ScanSettings().udp_rate, metavar="PER_SECOND",
        help="UDP retries per second to a host that rate-limits ICMP errors (default %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--banner", "-sV", action="store_true",
        help="probe open ports: the service, product/version and the first line it sends",
    )  # fmt: skip
    parser.add_argument(
        "--probe-timeout", type=_timeout, default=3.0, metavar="SECONDS",
        help="time a protocol probe may take (default 3; servers get 1 s to speak first)",
    )  # fmt: skip
    parser.add_argument(
        "--tls-verify", action="store_true",
        help="verify TLS certificates against the system CAs and the host name (default: report only)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-large-targets", action="store_true",
        help="allow CIDR blocks of more than 65,536 addresses",
    )  # fmt: skip


def _add_share_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--inventory", metavar="INVENTORY",
        help="scan what this inventory needs (no TARGET, no -p); with --shard, only one share of it",
    )  # fmt: skip
    parser.add_argument(
        "--shard", metavar="K/N", default=None,
        help="with --inventory: scan share K of N (K from JOB_COMPLETION_INDEX + 1 when written /N)",
    )  # fmt: skip
    parser.add_argument(
        "--vantage", metavar="NAME", default=None,
        help="with --inventory: where this scan runs from, for from: entries (default $PORTCHECK_VANTAGE)",
    )  # fmt: skip


def _format_latency(result: ProbeResult) -> str:
    return "" if result.latency_ms is None else f"{result.latency_ms:.1f} ms"


def _result_line(result: ProbeResult) -> str:
    address = result.address if result.address is not None else result.host
    port = f"{result.proto.value}/{result.port}"
    return (
        f"  {address:<15} {port:<10} {result.state.value:<9} {result.service:<16} "
        f"{result.reason} {_format_latency(result)}".rstrip()
    )


def _ports(args: argparse.Namespace) -> list[tuple[Protocol, int]]:
    ports = parse_port_spec(args.ports)
    if args.udp:
        ports = sorted({(Protocol.UDP, port) for _proto, port in ports})
    return ports


_SETTING_DESTS = {"window": "workers"}
"""Scan settings whose option is named otherwise on the command line (``-w/--workers``)."""


def _settings(args: argparse.Namespace) -> ScanSettings:
    from pytest_portcheck.engine.model import SETTING_NAMES, settings_from_options

    return settings_from_options(
        {name: getattr(args, _SETTING_DESTS.get(name, name)) for name in SETTING_NAMES}
    )


class OutputPathError(Exception):
    """An output file that cannot be written, found before scanning: a usage error."""


def _check_output(path: str | None) -> None:
    if path and path != "-":
        try:
            check_writable(path)
        except WriteError as exc:
            raise OutputPathError(str(exc)) from None


def _run_scan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    _check_output(args.json)
    _check_output(args.xml)
    run_id, run_source = run_id_for(args.run_id, os.environ)  # a bad --run-id is refused before scanning
    ports = _ports(args)
    settings = _settings(args)
    plan = plan_scan(args.targets, ports, allow_large=args.allow_large_targets)
    _write_plan(plan, settings, out)
    show_progress = args.progress == "always" or (args.progress == "auto" and err.isatty())
    progress = ProgressBar(err, len(plan.targets), show_progress)

    def shown(result: ProbeResult) -> None:
        if result.state in args.show or result.reason == Reason.LISTEN_NO_ACCEPT:  # exposure: always listed
            progress.clear()
            out.write(_result_line(result) + "\n")
            out.flush()
        progress.advance()

    stats = ScanStats()
    try:
        results, interrupted = plan.run(settings, stats, shown)
    finally:
        progress.clear()
    services: dict[ResultKey, ServiceInfo] = {}
    if args.banner and not interrupted:
        try:
            services = _probe_open(results, args)
        except KeyboardInterrupt:  # the scan is whole: keep it, without the services
            interrupted = True
    report = plan.report(
        results,
        settings,
        stats,
        interrupted=interrupted,
        command=["portcheck", *args.argv],
        services=services,
    )
    _write_services(report, out)
    errors = _write_summary(plan, report, out)
    if args.json:
        out.write(f"run {run_id} ({run_source})\n")
    if not _write_reports(report, args, err, run_id):
        return EXIT_USAGE
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILURE if errors else EXIT_OK


def _write_reports(report: ScanReport, args: argparse.Namespace, err: TextIO, run_id: str) -> bool:
    """Write each report file asked for; one that fails does not keep the next from being written.
    False (after saying why on ``err``) when any could not be written."""
    writers: list[tuple[str, Callable[[ScanReport, str], None]]] = []
    if args.json:
        from pytest_portcheck.report.encode import write_report  # json: only for --json

        writers.append((args.json, lambda report, path: write_report(report, path, {"run_id": run_id})))
    if args.xml:
        from pytest_portcheck.report.nmapxml import write_nmap_xml

        writers.append((args.xml, write_nmap_xml))
    written = True
    for destination, write in writers:
        try:
            write(report, destination)
        except WriteError as exc:
            err.write(f"portcheck: error: {exc}\n")
            written = False
    return written


def _write_plan(plan: ScanPlan, settings: ScanSettings, out: TextIO) -> None:
    """The scan's header: what is scanned how, and what each target resolved to."""
    protocols = {proto for proto, _ in plan.ports}
    kinds = " and ".join(sorted({"TCP connect" if proto is Protocol.TCP else "UDP" for proto in protocols}))
    out.write(
        f"portcheck {__version__}: {kinds} scan of {len(plan.resolutions)} target(s), "
        f"{len(plan.ports):,} port(s) each (timeout {settings.timeout:g} s, retries {settings.retries}, "
        f"window {settings.window}"
        + (f", max rate {settings.max_rate:g}/s" if settings.max_rate else "")
        + (f", min rate {settings.min_rate:g}/s" if settings.min_rate else "")
        + ")\n"
    )
    for resolution in plan.resolutions:
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


def _write_summary(plan: ScanPlan, report: ScanReport, out: TextIO) -> list[ProbeResult]:
    """The closing lines (counts, pacing, quality, errors); returns the results that are errors."""
    results, stats, settings = report.results, report.stats, report.settings
    counts = count_states(results)
    probed = len(plan.targets) + len(plan.unresolved)
    addresses = sum(len(r.addresses) for r in plan.resolutions)
    verb = "INTERRUPTED after" if report.interrupted else "done in"
    out.write(
        f"\nSummary: {len(plan.resolutions)} target(s), {addresses:,} address(es), "
        f"{len(plan.ports):,} port(s) each; {len(results):,}/{probed:,} results: "
        + ", ".join(
            f"{count:,} {state.value}"
            for state, count in counts.items()
            if state is not PortState.OPEN_FILTERED or any(proto is Protocol.UDP for proto, _ in plan.ports)
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


def _probe_open(results: Sequence[ProbeResult], args: argparse.Namespace) -> dict[ResultKey, ServiceInfo]:
    from pytest_portcheck.pipeline.probe import probe_open  # asyncio and ssl: only for --banner

    return probe_open(results, tls_verify=args.tls_verify, timeout=args.probe_timeout)


def _run_snapshot(args: argparse.Namespace) -> int:
    from pytest_portcheck.inventory.snapshot import snapshot_inventory  # PyYAML: only for this command

    _check_output(args.output)
    if args.source is not None:
        if args.targets:
            raise ReportError("snapshot --from takes no targets: the report says what was scanned")
        from pytest_portcheck.report.decode import read_any_report

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
        ports = _ports(args)
        settings = _settings(args)
        plan = plan_scan(args.targets, ports, allow_large=args.allow_large_targets)
        stats = ScanStats()
        results, interrupted = plan.run(settings, stats)
        if interrupted:  # a partial only_open list would be a wrong inventory: nothing is written
            sys.stderr.write("portcheck: interrupted: no inventory written\n")
            return EXIT_INTERRUPTED
        report = plan.report(results, settings, stats, command=["portcheck", *args.argv])
        services = _probe_open(report.results, args) if args.banner else {}
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


def _run_diff(args: argparse.Namespace) -> int:
    try:
        from pytest_portcheck.report.decode import read_any_report

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
    from pytest_portcheck.report.diff import compare_reports  # only for this command

    difference = compare_reports(old, new)
    if args.json:
        import json

        document = {**difference.to_dict(), "interrupted_reports": partial}
        sys.stdout.write(json.dumps(document, indent=1) + "\n")
    else:
        text = difference.to_text(args.old, args.new)
        sys.stdout.write(text + "".join(f"WARNING: {name} is an interrupted scan\n" for name in partial))
    return EXIT_OK if difference.equal else EXIT_FAILURE


def _usage_problem(exc: Exception) -> str:
    """The message of a usage error, with the fix this command offers where the engine names none."""
    from pytest_portcheck.engine.model import RatesCrossed
    from pytest_portcheck.engine.resolve import TargetTooLarge

    if isinstance(exc, TargetTooLarge):
        return f"{exc}, or pass --allow-large-targets if you mean it"
    if isinstance(exc, RatesCrossed):
        return f"{exc}: lower --min-rate or raise --max-rate"
    return str(exc)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


class _Output:
    """A standard stream whose reader may leave, or whose device may fail.

    ``portcheck scan … --json out.json | head -1`` closes the pipe after one line: the command keeps
    working (out.json is still written whole), prints nothing more and keeps its exit status. Any
    other failure (``> /dev/full``) is remembered as ``problem``: the command still finishes its work,
    then exits 2 naming it. Either way later output is dropped and the descriptor is pointed at
    /dev/null, so that the interpreter's own flush at exit cannot fail (and print a traceback) again.
    """

    def __init__(self, stream: TextIO | None, name: str) -> None:
        self.stream = stream
        self.name = name
        self.problem: str | None = None
        self.dropping = stream is None  # a descriptor closed before we started: nobody reads

    def write(self, text: str) -> int:
        if not self.dropping and self.stream is not None:
            try:
                self.stream.write(text)
            except OSError as exc:
                self._lost(exc)
        return len(text)

    def flush(self) -> None:
        if not self.dropping and self.stream is not None:
            try:
                self.stream.flush()
            except OSError as exc:
                self._lost(exc)

    def isatty(self) -> bool:
        return not self.dropping and self.stream is not None and self.stream.isatty()

    def __getattr__(self, name: str) -> Any:  # fileno, encoding...: the stream's own
        return getattr(self.stream, name)

    def _lost(self, exc: OSError) -> None:
        self.dropping = True
        if not isinstance(exc, BrokenPipeError):  # a reader that leaves has had what it wanted
            self.problem = f"{self.name}: cannot write: {exc.strerror or exc}"
        try:
            devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            os.dup2(devnull, self.stream.fileno())  # type: ignore[union-attr]
        except (OSError, ValueError, AttributeError):  # not a descriptor (a test's StringIO)
            pass
        finally:
            os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """The command; every output of every subcommand goes through ``_Output`` streams."""
    out, err = _Output(sys.stdout, "standard output"), _Output(sys.stderr, "standard error")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        try:
            status = _main(argv)
        except SystemExit:  # argparse: --help, --version, usage errors
            if not _flushed(out, err):
                raise SystemExit(EXIT_USAGE) from None
            raise
        return status if _flushed(out, err) else EXIT_USAGE
    finally:
        sys.stdout, sys.stderr = saved


def _flushed(out: _Output, err: _Output) -> bool:
    """Flush both streams; False (saying why on ``err``) when standard output lost something."""
    out.flush()
    if out.problem is not None:
        err.write(f"portcheck: error: {out.problem}\n")
    err.flush()
    return out.problem is None


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    args.argv = argv
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:  # SIGTERM stops a scan as Ctrl-C does: partial report, marked
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run_command(parser, args)
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


def _run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        if args.command == "scan" and args.inventory is not None:
            from pytest_portcheck.sharecommand import run_share

            return run_share(args, sys.stderr if args.json == "-" else sys.stdout, sys.stderr)
        if args.command == "scan":
            if not args.targets:
                parser.exit(EXIT_USAGE, "portcheck: error: scan needs TARGET(s), or --inventory INVENTORY\n")
            if args.shard is not None or args.vantage is not None:
                parser.exit(EXIT_USAGE, "portcheck: error: --shard and --vantage go with --inventory\n")
            # With the JSON report on stdout, the human-readable output moves to stderr.
            if args.json == "-" and args.xml == "-":
                parser.exit(EXIT_USAGE, "portcheck: error: --json - and -oX - cannot both use stdout\n")
            out = sys.stderr if "-" in (args.json, args.xml) else sys.stdout
            return _run_scan(args, out, sys.stderr)
        if args.command == "snapshot":
            return _run_snapshot(args)
        if args.command == "diff":
            return _run_diff(args)
        if args.command == "report":
            from pathlib import Path

            from pytest_portcheck.report.html import write_html
            from pytest_portcheck.report.judged import read_judged_report

            _check_output(args.output)
            write_html(read_judged_report(args.report), Path(args.output))
            return EXIT_OK
    except (PortSpecError, ScanError, ReportError, OutputPathError, RunIdError) as exc:
        parser.exit(EXIT_USAGE, f"portcheck: error: {_usage_problem(exc)}\n")
    except WriteError as exc:  # an output that cannot be written: 2, never "different" or "ports in error"
        sys.stderr.write(f"portcheck: error: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"portcheck: error: {exc}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write("portcheck: interrupted\n")
        return EXIT_INTERRUPTED
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first
