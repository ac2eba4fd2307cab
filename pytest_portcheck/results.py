"""The scan report: results in a stable order, counts by state, and the JSON file format (version 1).

Both front ends write reports through here, so ``portcheck scan --json`` and ``pytest
--portcheck-report`` produce the same document.
Holds no scanning (``scanning``) and no diffing (``diff``). Must not import pytest, yaml or the probes;
json, ``atomicfile`` and ``reportschema`` only where a report is written or read (``portcheck scan``
without ``--json`` needs none of them).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from pytest_portcheck import __version__
from pytest_portcheck.engine import (
    AddressQuality,
    PortState,
    ProbeResult,
    Resolution,
    ScanError,
    ScanSettings,
    ScanStats,
)
from pytest_portcheck.engine.model import settings_from_options, settings_to_options
from pytest_portcheck.ports import Protocol
from pytest_portcheck.record import as_dict, field, record, record_fields

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; type checkers treat this name as true
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TextIO

    from pytest_portcheck.probes.model import NameAnswer, ServiceInfo, TlsInfo

REPORT_VERSION = 1
"""The version of the JSON report this module writes (``reportschema`` checks documents against it)."""

STATE_ORDER = (PortState.OPEN, PortState.CLOSED, PortState.FILTERED, PortState.OPEN_FILTERED, PortState.ERROR)


def sort_results(results: Iterable[ProbeResult], host_order: Sequence[str]) -> list[ProbeResult]:
    """Hosts in the order given, then addresses in resolver order, then protocol and port."""
    rank = {host: index for index, host in enumerate(dict.fromkeys(host_order))}
    address_rank: dict[str | None, int] = {}
    for result in results:
        address_rank.setdefault(result.address, len(address_rank))
    return sorted(
        results,
        key=lambda r: (rank.get(r.host, len(rank)), address_rank[r.address], r.proto.value, r.port),
    )


def count_states(results: Iterable[ProbeResult]) -> dict[PortState, int]:
    counts = Counter(result.state for result in results)
    return {state: counts.get(state, 0) for state in STATE_ORDER}


ResultKey = tuple[str, Protocol, int]
"""(address, protocol, port): what is probed once per run."""


def port_key(address: str, proto: Protocol, port: int) -> ResultKey:
    """The one way to build the key a port's result and service are filed under."""
    return (address, proto, port)


def result_key(result: ProbeResult) -> ResultKey | None:
    return None if result.address is None else port_key(result.address, result.proto, result.port)


def index_results(results: Iterable[ProbeResult]) -> dict[ResultKey, ProbeResult]:
    """Each resolved result under its (address, protocol, port) key."""
    return {port_key(r.address, r.proto, r.port): r for r in results if r.address is not None}


def service_to_dict(info: ServiceInfo) -> dict[str, Any]:
    document = as_dict(info)
    if info.names:  # the per-name verifications where several names met on the port
        document["names"] = [as_dict(answer) for answer in info.names]
    else:
        del document["names"]
    return document


def service_from_dict(data: Mapping[str, Any]) -> ServiceInfo:
    from pytest_portcheck.probes.model import ServiceInfo  # only reports with probe results need it

    tls = data.get("tls")
    return ServiceInfo(
        service=str(data["service"]),
        evidence=str(data.get("evidence", "")),
        product=data.get("product"),
        version=data.get("version"),
        tls=None if tls is None else _tls_from_dict(tls),
        auth=data.get("auth"),
        error=data.get("error"),
        local_failure=bool(data.get("local_failure", False)),
        auth_note=data.get("auth_note"),
        names=tuple(_name_from_dict(answer) for answer in data.get("names") or ()),
    )


def _name_from_dict(data: Mapping[str, Any]) -> NameAnswer:
    from pytest_portcheck.probes.model import NameAnswer

    return NameAnswer(data.get("name"), bool(data["verified"]), data.get("error"))


def _tls_from_dict(data: Mapping[str, Any]) -> TlsInfo:
    from pytest_portcheck.probes.model import TlsInfo

    # Known fields only: a report from a newer (or hostile) writer may carry more.
    return TlsInfo(**{name: data[name] for name in record_fields(TlsInfo) if name in data})


def result_to_dict(
    result: ProbeResult, services: Mapping[ResultKey, ServiceInfo] | None = None
) -> dict[str, Any]:
    document = _result_fields(result)
    key = result_key(result)
    if services and key is not None and key in services:
        document["probe"] = service_to_dict(services[key])
    return document


def _result_fields(result: ProbeResult) -> dict[str, Any]:
    return {
        "host": result.host,
        "address": result.address,
        "proto": result.proto.value,
        "port": result.port,
        "state": result.state.value,
        "reason": result.reason,
        "service": result.service,
        "latency_ms": result.latency_ms,
        "attempts": result.attempts,
    }


@lru_cache(maxsize=4096)
def _quote(text: str) -> str:
    import json  # only reports pay for it

    return json.dumps(text)


def _result_json(result: ProbeResult) -> str:
    """``json.dumps(result_to_dict(result))``, about five times faster: the strings of a scan repeat."""
    address = "null" if result.address is None else _quote(result.address)
    latency = "null" if result.latency_ms is None else repr(result.latency_ms)
    return (
        f'{{"host": {_quote(result.host)}, "address": {address}, "proto": {_quote(result.proto.value)}, '
        f'"port": {result.port}, "state": {_quote(result.state.value)}, "reason": {_quote(result.reason)}, '
        f'"service": {_quote(result.service)}, "latency_ms": {latency}, "attempts": {result.attempts}}}'
    )


@record
class ScanReport:
    resolutions: Sequence[Resolution]
    results: Sequence[ProbeResult]
    settings: ScanSettings
    started: str
    """When the scan started, ISO 8601 in UTC."""
    elapsed_s: float
    stats: ScanStats = field(default_factory=ScanStats)
    interrupted: bool = False
    command: Sequence[str] = ()
    services: Mapping[ResultKey, ServiceInfo] = field(default_factory=dict)
    """What the protocol probes found on open ports, where they ran."""

    def to_dict(self, extra: Mapping[str, Any] | None = None, *, results: bool = True) -> dict[str, Any]:
        document: dict[str, Any] = {
            "version": REPORT_VERSION,
            "tool": f"pytest-portcheck {__version__}",
            "command": list(self.command),
            "started": self.started,
            "elapsed_s": round(self.elapsed_s, 3),
            "interrupted": self.interrupted,
            "settings": settings_to_report(self.settings),
            "hosts": [
                {"host": r.host, "addresses": list(r.addresses), "error": r.error} for r in self.resolutions
            ],
            "summary": {state.value: count for state, count in count_states(self.results).items()},
            "scan_quality": [quality_to_dict(q) for q in self.stats.addresses.values()],
        }
        if extra:
            document.update(extra)
        if results:
            document["results"] = [result_to_dict(result, self.services) for result in self.results]
        return document

    def open_ports(self, address: str | None = None) -> set[int]:
        """Open port numbers, of every address or of one."""
        return {
            r.port
            for r in self.results
            if r.state is PortState.OPEN and (address is None or r.address == address)
        }


def dump_report(report: ScanReport, stream: TextIO, extra: Mapping[str, Any] | None = None) -> None:
    """Write the report as JSON: indented, with one result per line.

    Results are encoded one at a time without indentation: that keeps the C encoder (an indented
    dump of 65,535 results takes about 2 s in the pure-Python one), keeps memory flat, and keeps
    diffs of two reports line by line.
    """
    import json

    head = json.dumps(report.to_dict(extra, results=False), indent=1)
    stream.write(head[:-2] + ',\n "results": [')
    separator = "\n  "
    services = report.services
    for result in report.results:
        line = _result_json(result)
        key = result_key(result)
        if services and key is not None and key in services:
            line = line[:-1] + f', "probe": {json.dumps(service_to_dict(services[key]))}}}'
        stream.write(separator + line)
        separator = ",\n  "
    stream.write("\n ]\n}\n" if report.results else "]\n}\n")


def write_report(report: ScanReport, destination: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write the JSON report to a file (atomically, see atomicfile), or to standard output for ``-``.

    Raises WriteError naming the file when it cannot be written; the previous file is then intact.
    With ``PORTCHECK_REPORT_KEY`` set, the report is signed (see provenance).
    """
    from pytest_portcheck.provenance import report_key, signing_writer

    write = signing_writer(lambda stream: dump_report(report, stream, extra), report_key())
    if str(destination) == "-":
        write(sys.stdout)
        sys.stdout.flush()
        return
    from pytest_portcheck.atomicfile import write_atomically  # only when writing a file

    write_atomically(destination, write)


class ReportError(Exception):
    """A report file that cannot be read; the message names the file and the problem."""


def services_from_results(results: Sequence[Mapping[str, Any]]) -> dict[ResultKey, ServiceInfo]:
    services = {}
    for data in results:
        if data.get("probe") is not None and data.get("address") is not None:
            key = (str(data["address"]), Protocol(data["proto"]), int(data["port"]))
            services[key] = service_from_dict(data["probe"])
    return services


def result_from_dict(data: Mapping[str, Any]) -> ProbeResult:
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


def quality_to_dict(quality: AddressQuality) -> dict[str, Any]:
    return {
        "address": quality.address,
        "rate_pps": quality.rate,
        "drops": quality.drops,
        "retries": quality.retries,
        "reexaminations": quality.reexaminations,
        "unresolved": quality.unresolved,
        "slowdowns": quality.slowdowns,
        "limited": quality.limited,
    }


def stats_from_quality(entries: Iterable[Mapping[str, Any]]) -> ScanStats:
    """The per-address part of a report's stats (older reports have none)."""
    stats = ScanStats()
    for entry in entries:
        stats.note(
            AddressQuality(
                str(entry["address"]),
                float(entry.get("rate_pps", 0.0)),
                int(entry.get("drops", 0)),
                int(entry.get("retries", 0)),
                int(entry.get("reexaminations", 0)),
                int(entry.get("unresolved", 0)),
                int(entry.get("slowdowns", 0)),
            )
        )
    return stats


def quality_notes(stats: ScanStats, limit: int = 10) -> list[str]:
    """One line per address that dropped probes or left silence unresolved: what was done about it."""
    notable = [q for q in stats.addresses.values() if q.limited or q.unresolved]
    notable.sort(key=lambda q: (-q.unresolved, -q.drops, q.address))
    lines = []
    for q in notable[:limit]:
        line = (
            f"{q.address} dropped {q.drops:,} probe(s) it answered on retry (rate limiting or loss): "
            f"rate cut {q.slowdowns} time(s), reached {q.rate:,.0f}/s; {q.retries:,} retries, "
            f"{q.reexaminations:,} paced re-examination(s)"
        )
        if q.unresolved:
            line += f"; silence UNRESOLVED on {q.unresolved:,} port(s) (filtered may hide closed or open)"
        lines.append(line)
    if len(notable) > limit:
        lines.append(f"... and {len(notable) - limit:,} more address(es); the JSON report lists them all")
    return lines


_REPORT_SETTINGS = (
    ("timeout_s", "timeout"),
    ("retries", "retries"),
    ("window", "window"),
    ("max_rate", "max_rate"),
    ("min_rate", "min_rate"),
)
"""(name in a JSON report, ``ScanSettings`` field): the settings a report records, both ways."""


def settings_to_report(settings: ScanSettings) -> dict[str, Any]:
    options = settings_to_options(settings)
    return {key: options[name] for key, name in _REPORT_SETTINGS}


def settings_from_report(document: Mapping[str, Any]) -> ScanSettings:
    """A report's settings (ScanError for a bad value); what it does not record keeps its default."""
    return settings_from_options({name: document[key] for key, name in _REPORT_SETTINGS if key in document})


def report_from_dict(document: Any) -> ScanReport:
    """The report a JSON document holds; ReportError (naming the field) unless it is a valid one."""
    from pytest_portcheck.reportschema import ReportProblem, validate_report  # only to read reports

    try:
        validate_report(document)
    except ReportProblem as exc:
        raise ReportError(str(exc)) from None
    return _report_of_valid(document)


def _report_of_valid(document: Mapping[str, Any]) -> ScanReport:
    """The report of a document ``validate_report`` accepted (ReportError for settings out of range)."""
    settings = document.get("settings", {})
    try:
        hosts = document.get("hosts", [])
        return ScanReport(
            resolutions=[Resolution(h["host"], tuple(h["addresses"]), h.get("error")) for h in hosts],
            results=[result_from_dict(r) for r in document["results"]],
            settings=settings_from_report(settings),
            stats=stats_from_quality(document.get("scan_quality", [])),
            started=str(document.get("started", "")),
            elapsed_s=float(document.get("elapsed_s", 0.0)),
            interrupted=bool(document.get("interrupted", False)),
            command=list(document.get("command", [])),
            services=services_from_results(document["results"]),
        )
    except ScanError as exc:
        raise ReportError(f"settings: {exc}") from None


def read_report_document(path: str | Path) -> dict[str, Any]:
    """The JSON document of a report file, checked to be a valid report (ReportError otherwise)."""
    from pathlib import Path

    from pytest_portcheck.reportschema import ReportProblem, parse_report_json, validate_report

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
