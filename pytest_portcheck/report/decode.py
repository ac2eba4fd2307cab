"""Reading a JSON report (version 1), checked by ``schema`` first: a report file can come from anywhere.

``read_report`` for ``portcheck diff``/``report``/``snapshot --from`` and the xdist shared results,
``read_any_report`` for the commands that take nmap XML as well. Every problem is a ``ReportError``
naming the file and the field, never a traceback. Writing is ``encode``'s.
Must not import pytest, yaml or the probes' I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_portcheck.engine import (
    PortState,
    ProbeResult,
    Resolution,
    ScanError,
    ScanSettings,
    ScanStats,
)
from pytest_portcheck.engine.model import ResultKey, settings_from_options
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.encode import REPORT_SETTINGS
from pytest_portcheck.report.model import Asked, ReportError, ScanReport
from pytest_portcheck.report.nmapxml import is_xml_file, read_nmap_xml
from pytest_portcheck.report.schema import (
    ASKED,
    HOST,
    PROBE,
    QUALITY,
    ReportProblem,
    parse_report_json,
    validate_report,
)


def service_from_dict(data: Mapping[str, Any]) -> ServiceInfo:
    """A checked ``probe`` entry (both versions) as the probe's model, by the declaration."""
    info: ServiceInfo = PROBE.load(data)
    return info


def probes_from_results(
    results: Sequence[Mapping[str, Any]],
) -> tuple[dict[ResultKey, ServiceInfo], dict[ResultKey, list[Asked]] | None]:
    """What the protocol probes found, per port, and what each was run for (None when a probed result
    does not say: a report written before reports recorded it), in one pass over the results."""
    services: dict[ResultKey, ServiceInfo] = {}
    asked: dict[ResultKey, list[Asked]] | None = {}
    for data in results:
        if data.get("probe") is None or data.get("address") is None:
            continue
        key = (str(data["address"]), Protocol(data["proto"]), int(data["port"]))
        services[key] = service_from_dict(data["probe"])
        rows = data.get("asked")
        if rows is None:
            asked = None
        elif asked is not None:
            asked[key] = [ASKED.load(row) for row in rows]
    return services, asked


def result_from_dict(data: Mapping[str, Any]) -> ProbeResult:
    """A checked result: what ``RESULT.load`` reads, spelled out (a report may hold a million;
    tests/test_schema.py checks the two agree)."""
    return ProbeResult(
        host=str(data["host"]),
        address=None if data["address"] is None else str(data["address"]),
        proto=Protocol(data["proto"]),
        port=int(data["port"]),
        state=PortState(data["state"]),
        reason=str(data["reason"]),
        latency_ms=None if data.get("latency_ms") is None else float(data["latency_ms"]),
        attempts=int(data.get("attempts", 0)),
    )


def resolutions_from_hosts(hosts: Iterable[Mapping[str, Any]]) -> list[Resolution]:
    """A report's ``hosts`` (both versions): each name and what it resolved to, or why not."""
    return [HOST.load(host) for host in hosts]


def stats_from_quality(entries: Iterable[Mapping[str, Any]]) -> ScanStats:
    """The per-address part of a report's stats (older reports have none)."""
    stats = ScanStats()
    for entry in entries:
        stats.note(QUALITY.load(entry))
    return stats


def settings_from_report(document: Mapping[str, Any]) -> ScanSettings:
    """A report's settings (ScanError for a bad value); what it does not record keeps its default."""
    return settings_from_options({name: document[key] for key, name in REPORT_SETTINGS if key in document})


def report_from_dict(document: Any) -> ScanReport:
    """The report a JSON document holds; ReportError (naming the field) unless it is a valid one."""
    try:
        validate_report(document)
    except ReportProblem as exc:
        raise ReportError(str(exc)) from None
    return _report_of_valid(document)


def _report_of_valid(document: Mapping[str, Any]) -> ScanReport:
    """The report of a document ``validate_report`` accepted (ReportError for settings out of range)."""
    settings = document.get("settings", {})
    services, asked = probes_from_results(document["results"])
    try:
        return ScanReport(
            resolutions=resolutions_from_hosts(document.get("hosts", [])),
            results=[result_from_dict(r) for r in document["results"]],
            settings=settings_from_report(settings),
            stats=stats_from_quality(document.get("scan_quality", [])),
            started=str(document.get("started", "")),
            elapsed_s=float(document.get("elapsed_s", 0.0)),
            interrupted=bool(document.get("interrupted", False)),
            command=list(document.get("command", [])),
            services=services,
            asked=asked,
        )
    except ScanError as exc:
        raise ReportError(f"settings: {exc}") from None


def read_report_document(path: str | Path) -> dict[str, Any]:
    """The JSON document of a report file, checked to be a valid report (ReportError otherwise)."""
    try:
        document = parse_report_json(Path(path).read_text(encoding="utf-8"))
        validate_report(document)
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a portcheck JSON report (not UTF-8 text)") from None
    except ReportProblem as exc:
        raise ReportError(f"{path}: not a valid portcheck JSON report: {exc}") from None
    assert isinstance(document, dict)
    return document


def read_report(path: str | Path) -> ScanReport:
    """Read a JSON report written by ``portcheck scan --json`` or ``--portcheck-report``."""
    return read_report_and_document(path)[0]


def read_report_and_document(path: str | Path) -> tuple[ScanReport, dict[str, Any]]:
    """The report of a JSON file and its document, for the parts beyond the scan (a plugin report's
    ``expectations``); the document is checked once. ReportError naming the file otherwise."""
    document = read_report_document(path)
    try:
        return _report_of_valid(document), document
    except ReportError as exc:
        raise ReportError(f"{path}: not a valid portcheck JSON report: {exc}") from None


def read_any_report(path: str) -> ScanReport:
    """A portcheck JSON report or an nmap XML file, told apart by their first character."""
    return read_nmap_xml(path) if is_xml_file(path) else read_report(path)
