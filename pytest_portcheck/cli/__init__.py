"""The ``portcheck`` command: its arguments, its exit statuses, and the dispatch to a subcommand.

Each subcommand is a module of its own (``scan``, ``snapshot``, ``diff``, ``report``, ``shard`` for
``scan --inventory``), presentation only: the pipeline does the work. This module builds the parser
and is the command's one seam: ``_dispatch`` imports the chosen subcommand's module, and what its
options ask for (the probes for ``--banner``, the JSON or XML writer for ``--json``/``-oX``), and
nothing else. A plain ``portcheck scan`` thus loads the engine and the scan pipeline only (no asyncio,
ssl, yaml, json, the probes or the inventory: tests/test_cli_imports.py; the start-up is measured by
benchmarks/bench_startup.py).

Exit status (``status``): 0 the scan completed and every port got an answer; 1 a runtime failure,
or some ports could not be probed (``error`` results, e.g. a name that does not resolve); 2 bad usage,
or an output (a report file, standard output) that could not be written; 130 Ctrl-C. A reader that
leaves early (``| head -1``) is not a failure: the command keeps working and keeps its status.
Must not import pytest or the plugin.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pytest_portcheck import __version__
from pytest_portcheck.atomicfile import WriteError
from pytest_portcheck.cli.output import Output, OutputPathError
from pytest_portcheck.cli.status import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE
from pytest_portcheck.engine import DEFAULT_WINDOW, PortState, ScanError, ScanSettings
from pytest_portcheck.engine.model import MAX_TIMEOUT, MIN_TIMEOUT, RatesCrossed
from pytest_portcheck.engine.resolve import TargetTooLarge
from pytest_portcheck.ports import PortSpecError
from pytest_portcheck.report.model import STATE_ORDER, ReportError
from pytest_portcheck.report.provenance import RunIdError

if TYPE_CHECKING:
    from pytest_portcheck.cli.scan import Identify, ReportWriter

COMMANDS = ("scan", "snapshot", "diff", "report", "declared")
"""The subcommands, in the order the help lists them (``_SUBCOMMANDS`` holds each one's parser)."""


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
    """The subcommand ``argv`` starts with, if it is one of ours; None when a top-level option
    (``-h``, ``--version``) or anything else comes first, for which the whole parser is built."""
    return argv[0] if argv and argv[0] in COMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command's parser. With ``command``, only that subcommand's parser is built: a scan is
    spared building four parsers and some fifty options it does not use (argparse makes a formatter
    for every option it adds); its help, usage and errors are the same either way."""
    parser = _Parser(
        prog="portcheck",
        description="Fast concurrent TCP connect and UDP scanner, and the command-line side of "
        "pytest-portcheck.",
    )
    parser.add_argument("--version", action="version", version=f"portcheck {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS if command is None else (command,):
        help_line, description, add_options = _SUBCOMMANDS[name]
        add_options(commands.add_parser(name, help=help_line, description=description))
    return parser


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="REPORT")
    parser.add_argument("-o", "--output", metavar="FILE.html", help="write the HTML page")
    parser.add_argument("--sarif", metavar="FILE", help="write a SARIF 2.1.0 log (code scanning)")
    parser.add_argument(
        "--source-root", metavar="DIR", default=".",
        help="with --sarif: the repository root SARIF paths are relative to (default: .)",
    )  # fmt: skip
    parser.add_argument("--metrics", metavar="FILE", help="write Prometheus metrics (text format)")


def _add_declared_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("compose", "kubernetes", "terraform"), help="what the files are")
    parser.add_argument("files", nargs="+", metavar="FILE", help="Compose files (merged in order), "
                        "manifests, or one Terraform JSON (terraform show -json)")  # fmt: skip
    parser.add_argument("--address", default="127.0.0.1",
                        help="the address of what binds every address (default 127.0.0.1)")  # fmt: skip
    parser.add_argument("--name", help="the host's name in the inventory (default: the kind)")
    parser.add_argument("--range", metavar="SPEC", dest="port_range",
                        help='write only_open: with this range ("1-65535/tcp") instead of open:')  # fmt: skip
    parser.add_argument("--profile", action="append", default=[], help="compose: enable a profile")
    parser.add_argument("--env-file", help="compose: the variables file (default: .env beside the first)")
    parser.add_argument("--node-address", action="append", default=[],
                        help="kubernetes: a node's address (repeatable)")  # fmt: skip
    parser.add_argument("--namespace", default="default", help="kubernetes: for objects without one")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the inventory to FILE (default stdout)")


def _add_scan_command_options(scan_parser: argparse.ArgumentParser) -> None:
    _add_scan_options(scan_parser, targets="*")
    scan_parser.add_argument("--json", metavar="FILE", help="write the JSON report to FILE ('-': stdout)")
    scan_parser.add_argument(
        "--run-id", metavar="ID", default=None,
        help="the run the report belongs to: give every shard and vantage of one scan the same id "
        "(default $PORTCHECK_RUN_ID, else the GitHub Actions run and attempt, else a new one)",
    )  # fmt: skip
    _add_shard_options(scan_parser)
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


def _add_snapshot_options(parser: argparse.ArgumentParser) -> None:
    _add_scan_options(parser, targets="*")
    parser.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="inventory to write (default stdout)"
    )
    parser.add_argument(
        "--from", dest="source", metavar="REPORT",
        help="no scan: the inventory of a portcheck JSON report or an nmap XML file (-oX)",
    )  # fmt: skip
    parser.add_argument(
        "--allow-interrupted", action="store_true",
        help="with --from: take a report of an interrupted scan (its range is only the ports it holds)",
    )  # fmt: skip


def _add_diff_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="OLD")
    parser.add_argument("new", metavar="NEW")
    parser.add_argument("--json", action="store_true", help="print the differences as JSON")
    parser.add_argument(
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


def _add_shard_options(parser: argparse.ArgumentParser) -> None:
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


_SUBCOMMANDS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {
    "scan": (
        "scan TCP (or, with --udp, UDP) ports of hosts, addresses or CIDR blocks",
        "Scan TCP ports with non-blocking connects (UDP ports with --udp) and report open, closed, "
        "filtered (open|filtered for UDP) and error states with the reason for each.",
        _add_scan_command_options,
    ),
    "snapshot": (
        "scan, then write an inventory of what is open now",
        "Scan and write a valid inventory: the open ports under only_open (with the services found "
        "when --banner probes them), the scanned range as its range.",
        _add_snapshot_options,
    ),
    "diff": (
        "compare two reports (JSON or nmap XML)",
        "Compare two reports: JSON (from 'portcheck scan --json' or --portcheck-report) or nmap XML "
        "(nmap -oX, portcheck scan -oX). Exit 0 when equal, 1 when different, 2 on error.",
        _add_diff_options,
    ),
    "report": (
        "turn a JSON report or nmap XML into an HTML page, a SARIF log or Prometheus metrics",
        "Write one self-contained HTML page (no external assets), a SARIF 2.1.0 log for code scanning "
        "or Prometheus metrics from a JSON report or an nmap XML file.",
        _add_report_options,
    ),
    "declared": (
        "print what a Compose file, Kubernetes manifests or a Terraform plan declare, as an inventory",
        "Print the ports a source declares as an inventory to review, each entry commented with the "
        "file and line that declares it.",
        _add_declared_options,
    ),
}
"""Per subcommand: its help line, its description, and what adds its options."""


def _usage_problem(exc: Exception) -> str:
    """The message of a usage error, with the fix this command offers where the engine names none."""
    if isinstance(exc, TargetTooLarge):
        return f"{exc}, or pass --allow-large-targets if you mean it"
    if isinstance(exc, RatesCrossed):
        return f"{exc}: lower --min-rate or raise --max-rate"
    return str(exc)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv: Sequence[str] | None = None) -> int:
    """The command; every output of every subcommand goes through ``Output`` streams."""
    out, err = Output(sys.stdout, "standard output"), Output(sys.stderr, "standard error")
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


def _flushed(out: Output, err: Output) -> bool:
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
        return _dispatch(parser, args)
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


# --- the command's one seam: each subcommand's module, and what its options ask for, imported here ---


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "scan" and args.inventory is not None:
        from pytest_portcheck.cli.shard import run_shard_scan  # YAML, the plan, the probes

        return run_shard_scan(args, sys.stderr if args.json == "-" else sys.stdout, sys.stderr)
    if args.command == "scan":
        if not args.targets:
            parser.exit(EXIT_USAGE, "portcheck: error: scan needs TARGET(s), or --inventory INVENTORY\n")
        if args.shard is not None or args.vantage is not None:
            parser.exit(EXIT_USAGE, "portcheck: error: --shard and --vantage go with --inventory\n")
        # With the JSON report on stdout, the human-readable output moves to stderr.
        if args.json == "-" and args.xml == "-":
            parser.exit(EXIT_USAGE, "portcheck: error: --json - and -oX - cannot both use stdout\n")
        from pytest_portcheck.cli.scan import run_scan  # the engine and the scan pipeline

        out = sys.stderr if "-" in (args.json, args.xml) else sys.stdout
        return run_scan(args, out, sys.stderr, _identify(args), _report_writers(args))
    if args.command == "snapshot":
        from pytest_portcheck.cli.snapshot import run_snapshot

        return run_snapshot(args, _identify(args))
    if args.command == "diff":
        from pytest_portcheck.cli.diff import run_diff

        return run_diff(args)
    if args.command == "report":
        from pytest_portcheck.cli.report import run_report

        return run_report(args)
    if args.command == "declared":
        from pytest_portcheck.cli.declared import run_declared  # YAML and the source readers

        return run_declared(args, sys.stdout, sys.stderr)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first


def _identify(args: argparse.Namespace) -> Identify | None:
    """``--banner``: the protocol probes (asyncio and ssl, ~25 ms to import), else nothing."""
    if not args.banner:
        return None
    from pytest_portcheck.pipeline.probe import identify_open_ports

    return lambda results: identify_open_ports(
        results, tls_verify=args.tls_verify, timeout=args.probe_timeout
    )


def _report_writers(args: argparse.Namespace) -> list[tuple[str, ReportWriter]]:
    """The report files a scan writes: ``--json`` (json, signatures) and ``-oX`` (nmap XML)."""
    writers: list[tuple[str, ReportWriter]] = []
    if args.json:
        from pytest_portcheck.report.encode import write_report

        writers.append(
            (args.json, lambda report, path, run_id: write_report(report, path, {"run_id": run_id}))
        )
    if args.xml:
        from pytest_portcheck.report.nmapxml import write_nmap_xml

        writers.append((args.xml, lambda report, path, _run_id: write_nmap_xml(report, path)))
    return writers
