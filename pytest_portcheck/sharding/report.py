"""Shard reports: the JSON report version 2, written by ``portcheck scan --inventory``, and read back.

A version 2 report holds, per (host, address, protocol), the state most of its ports share (as nmap's
"Not shown: 65,530 closed ports") and lists only the other ports, so a full-range scan of a
firewalled host is one line, not 65,535. It names what it covers instead of listing it: the
inventory's plan (``plan``: address, timeout, retries and port spec per host, see plan.py), its
``digest``, and the share ``index``/``count`` with the ``vantage`` it was scanned from. A reader
recomputes which units the share holds; for those units on an address the report resolved, a port
not listed has the usual state. Each service entry records the requirements its probe was run for
(``asked``), so a judge of another inventory can tell "not probed for this". Every report carries
the ``run_id`` of its scan and, with a key, a signature (report/provenance.py). Version 1 reports
(every result listed) are read as well.

Imports the report package's model, schema and JSON pieces, the plan and the engine's model; no
pytest, no scanning. The shard report lives here, not in report/, because it holds the plan.
Must not import pytest, yaml or the probes' I/O.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pytest_portcheck import __version__
from pytest_portcheck.atomicfile import write_atomically
from pytest_portcheck.engine import PortState, ProbeResult, Reason, Resolution, ScanSettings, ScanStats
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.decode import report_from_dict, resolutions_from_hosts, service_from_dict
from pytest_portcheck.report.encode import service_to_dict, settings_to_report
from pytest_portcheck.report.model import SHARD_REPORT_VERSION, Asked, ReportError, count_states
from pytest_portcheck.report.provenance import report_key, signature_problem, signing_writer
from pytest_portcheck.report.schema import (
    ASKED,
    SHARD,
    ReportProblem,
    parse_report_json,
    validate_report,
    validate_shard_report,
)
from pytest_portcheck.sharding.plan import WorkPlan


@dataclass(frozen=True, slots=True)
class ShardInfo:
    digest: str
    index: int
    """1-based share K of ``count``."""
    count: int
    vantage: str | None = None

    @property
    def label(self) -> str:
        where = f" from {self.vantage}" if self.vantage else ""
        return f"shard {self.index}/{self.count}{where}"


@dataclass(frozen=True, slots=True)
class AddressSummary:
    """One address's ports of one protocol in one shard: the usual state, and the exceptions."""

    host: str
    address: str
    proto: Protocol
    state: PortState
    reason: str
    count: int | None
    """How many ports have the usual state (None when the writer did not count them)."""
    exceptions: tuple[ProbeResult, ...] = ()


def summarise(results: Iterable[ProbeResult]) -> list[AddressSummary]:
    """Group results by (host, address, protocol); the commonest (state, reason) becomes the usual one.

    Unresolved hosts' results (no address) are left out: the report's ``hosts`` says why.
    """
    groups: dict[tuple[str, str, Protocol], list[ProbeResult]] = {}
    for result in results:
        if result.address is not None:
            groups.setdefault((result.host, result.address, result.proto), []).append(result)
    summaries = []
    for (host, address, proto), members in groups.items():
        common = Counter((r.state, r.reason) for r in members)
        (state, reason), count = common.most_common(1)[0]
        # Open and error ports are never folded away: each is listed with its reason. The usual state
        # is then "error", so a port the list misses could only ever read as an error, never a pass.
        # Nor are silent ports with a socket listening behind them: exposure, like an open port.
        if state in (PortState.OPEN, PortState.ERROR) or reason == Reason.LISTEN_NO_ACCEPT:
            state, reason, count = PortState.ERROR, "every port is listed", 0
        exceptions = tuple(
            sorted((r for r in members if (r.state, r.reason) != (state, reason)), key=lambda r: r.port)
        )
        summaries.append(AddressSummary(host, address, proto, state, reason, count, exceptions))
    return summaries


@dataclass(frozen=True, slots=True)
class ShardScanReport:
    """What one shard found, ready to be written."""

    shard: ShardInfo
    plan: WorkPlan
    resolutions: Sequence[Resolution]
    summaries: Sequence[AddressSummary]
    settings: ScanSettings
    started: str
    elapsed_s: float
    interrupted: bool = False
    command: Sequence[str] = ()
    services: Mapping[ResultKey, ServiceInfo] = field(default_factory=dict)
    run_id: str | None = None
    asked: Mapping[ResultKey, Sequence[Asked]] = field(default_factory=dict)
    """Per probed port: the requirements its probe was run for."""


def _head(report: ShardScanReport) -> dict[str, Any]:
    counts = count_states(())
    for summary in report.summaries:
        counts[summary.state] += summary.count or 0
        for result in summary.exceptions:
            counts[result.state] += 1
    head: dict[str, Any] = {
        "version": SHARD_REPORT_VERSION,
        "tool": f"pytest-portcheck {__version__}",
        "command": list(report.command),
        "started": report.started,
        "elapsed_s": round(report.elapsed_s, 3),
        "interrupted": report.interrupted,
        "settings": settings_to_report(report.settings),
        "shard": {
            "digest": report.shard.digest,
            "index": report.shard.index,
            "count": report.shard.count,
            "vantage": report.shard.vantage,
        },
        "summary": {state.value: count for state, count in counts.items()},
    }
    if report.run_id is not None:  # written without one (a test, an older caller): a run of its own
        head["run_id"] = report.run_id
    return head


def dump_shard_report(report: ShardScanReport, stream: TextIO) -> None:
    """Write the report: a header, then one line per plan host, resolution and address summary."""
    head = json.dumps(_head(report), indent=1)
    stream.write(head[:-2] + ",\n")
    _write_lines(stream, "plan", (json.dumps(row) for row in report.plan.to_document()))
    _write_lines(
        stream,
        "hosts",
        (json.dumps(_resolution_document(r), separators=(",", ":")) for r in report.resolutions),
    )
    _write_lines(stream, "addresses", (_summary_json(summary) for summary in report.summaries))
    services = [
        json.dumps(
            {
                "address": a, "proto": p.value, "port": n, "probe": service_to_dict(info),
                "asked": [list(asked) for asked in report.asked.get((a, p, n), ())],
            }
        )
        for (a, p, n), info in report.services.items()
    ]  # fmt: skip
    _write_lines(stream, "services", services, last=True)
    stream.write("}\n")


def _resolution_document(resolution: Resolution) -> dict[str, Any]:
    document: dict[str, Any] = {"host": resolution.host, "addresses": list(resolution.addresses)}
    if resolution.error is not None:
        document["error"] = resolution.error
    return document


def _write_lines(stream: TextIO, key: str, lines: Iterable[str], last: bool = False) -> None:
    stream.write(f' "{key}": [')
    separator = "\n  "
    wrote = False
    for line in lines:
        stream.write(separator + line)
        separator = ",\n  "
        wrote = True
    stream.write(("\n ]" if wrote else "]") + ("\n" if last else ",\n"))


def _summary_json(summary: AddressSummary) -> str:
    """``[host, address, proto, usual state, reason, count, exceptions]``, each exception
    ``[port, state, reason, latency_ms, attempts]``: arrays, not objects, because a fleet's shard
    report holds one row per address (5,000 rows in each of 64 files)."""
    exceptions = [[r.port, r.state.value, r.reason, r.latency_ms, r.attempts] for r in summary.exceptions]
    row = [
        summary.host, summary.address, summary.proto.value, summary.state.value, summary.reason,
        summary.count, exceptions,
    ]  # fmt: skip
    return json.dumps(row, separators=(",", ":"))


def write_shard_report(report: ShardScanReport, destination: str | Path) -> None:
    """Write atomically (see atomicfile), signed when ``PORTCHECK_REPORT_KEY`` is set; WriteError
    names the file when it cannot be written."""
    write = signing_writer(lambda stream: dump_shard_report(report, stream), report_key())
    write_atomically(destination, write)


@dataclass(frozen=True, slots=True)
class LoadedReport:
    """A report read for judging: a shard report (v2), or a v1 report whose results are all listed."""

    path: str
    shard: ShardInfo | None
    """None for a version 1 report: it covers exactly the results it lists."""
    plan_rows: Sequence[Sequence[Any]]
    resolutions: Sequence[Resolution]
    usual: Mapping[tuple[str, str, Protocol], AddressSummary]
    """(plan host, address, protocol) -> summary."""
    listed: Mapping[ResultKey, ProbeResult]
    """Every result the file lists: a v2 report's exceptions, a v1 report's results."""
    services: Mapping[ResultKey, ServiceInfo]
    interrupted: bool
    run_id: str | None = None
    """The scan run it belongs to (None: written before reports carried one)."""
    started: str = ""
    asked: Mapping[ResultKey, frozenset[Asked]] | None = None
    """Per probed port, the requirements its probe was run for; None when the report does not say
    (version 1, or a shard report written before it did)."""
    signed: bool = False
    integrity: str | None = None
    """Why the report cannot be trusted with the key it was checked with (None: checked and intact, or
    not checked — see ``checked``)."""
    checked: bool = False
    """Whether its signature was checked (a key was given)."""
    quality: ScanStats = field(default_factory=ScanStats, compare=False)
    """Scan quality a version 1 report records (shard reports carry none)."""
    by_host: dict[str, Resolution] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for resolution in self.resolutions:
            self.by_host.setdefault(resolution.host, resolution)

    def resolution(self, host: str) -> Resolution | None:
        return self.by_host.get(host)

    @property
    def label(self) -> str:
        return f"{self.path} ({self.shard.label})" if self.shard is not None else self.path


def _provenance(document: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    run_id = document.get("run_id")
    return {
        "run_id": run_id if isinstance(run_id, str) else None,
        "started": str(document.get("started", "")),
        "signed": document.get("signature") is not None,
        "integrity": None if key is None else signature_problem(document, key),
        "checked": key is not None,
    }


def _from_v2(path: str, document: dict[str, Any], key: bytes | None) -> LoadedReport:
    info = ShardInfo(**SHARD.load(document["shard"]))
    usual: dict[tuple[str, str, Protocol], AddressSummary] = {}
    listed: dict[ResultKey, ProbeResult] = {}
    for host, address, proto_name, usual_state, usual_reason, count, listed_ports in document["addresses"]:
        proto = Protocol(proto_name)
        exceptions = tuple(
            ProbeResult(host, address, proto, port, PortState(state), reason, latency, attempts)
            for port, state, reason, latency, attempts in listed_ports
        )
        summary = AddressSummary(
            host, address, proto, PortState(usual_state), usual_reason, count, exceptions
        )
        usual[(host, address, proto)] = summary
        for result in exceptions:
            listed[(address, proto, result.port)] = result
    services: dict[ResultKey, ServiceInfo] = {}
    asked: dict[ResultKey, frozenset[Asked]] | None = {}
    for entry in document.get("services", []):
        key_of = (entry["address"], Protocol(entry["proto"]), int(entry["port"]))
        services[key_of] = service_from_dict(entry["probe"])
        if "asked" not in entry:
            asked = None  # written before reports said what a probe was run for
        elif asked is not None:
            asked[key_of] = frozenset(ASKED.load(row) for row in entry["asked"])
    resolutions = resolutions_from_hosts(document["hosts"])
    return LoadedReport(
        path, info, document["plan"], resolutions, usual, listed, services,
        bool(document.get("interrupted")), asked=asked, **_provenance(document, key),
    )  # fmt: skip


def _from_v1(path: str, document: dict[str, Any], key: bytes | None) -> LoadedReport:
    report = report_from_dict(document)
    listed = {(r.address, r.proto, r.port): r for r in report.results if r.address is not None}
    asked = None if report.asked is None else {k: frozenset(rows) for k, rows in report.asked.items()}
    return LoadedReport(
        path, None, [], list(report.resolutions), {}, listed, dict(report.services), report.interrupted,
        asked=asked, quality=report.stats, **_provenance(document, key),
    )  # fmt: skip


def load_report(path: str | Path, key: bytes | None = None) -> LoadedReport:
    """Read a version 1 or 2 report for judging, its signature checked when ``key`` is given (the
    outcome is in ``integrity``); ReportError names the file and the problem."""
    try:
        document = parse_report_json(Path(path).read_text(encoding="utf-8"))
        if isinstance(document, dict) and document.get("version") == SHARD_REPORT_VERSION:
            validate_shard_report(document)
            return _from_v2(str(path), document, key)
        validate_report(document)
        return _from_v1(str(path), document, key)
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a portcheck JSON report (not UTF-8 text)") from None
    except (ReportProblem, ReportError) as exc:
        raise ReportError(f"{path}: not a valid portcheck JSON report: {exc}") from None
