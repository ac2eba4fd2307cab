"""Writing the JSON report (version 1): every result listed, one per line.

Both front ends write reports through here, so ``portcheck scan --json`` and ``pytest
--portcheck-report`` produce the same document; with ``PORTCHECK_REPORT_KEY`` set it is signed
(``provenance``). Reading is ``decode``'s.
Must not import pytest, yaml, the schema or the probes' I/O: ``portcheck scan --json`` loads it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from functools import lru_cache
from typing import TYPE_CHECKING

from pytest_portcheck import __version__
from pytest_portcheck.atomicfile import write_atomically
from pytest_portcheck.engine import AddressQuality, ProbeResult, ScanSettings
from pytest_portcheck.engine.model import ResultKey, result_key, settings_to_options
from pytest_portcheck.report.model import REPORT_VERSION, Asked, ScanReport, count_states
from pytest_portcheck.report.provenance import report_key, signing_writer

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, TextIO

    from pytest_portcheck.probes.model import ServiceInfo

REPORT_SETTINGS = (
    ("timeout_s", "timeout"),
    ("retries", "retries"),
    ("window", "window"),
    ("max_rate", "max_rate"),
    ("min_rate", "min_rate"),
)
"""(name in a JSON report, ``ScanSettings`` field): the settings a report records, both ways."""


def settings_to_report(settings: ScanSettings) -> dict[str, Any]:
    options = settings_to_options(settings)
    return {key: options[name] for key, name in REPORT_SETTINGS}


def service_to_dict(info: ServiceInfo) -> dict[str, Any]:
    document = asdict(info)
    if info.names:  # the per-name verifications where several names met on the port
        document["names"] = [asdict(answer) for answer in info.names]
    else:
        del document["names"]
    return document


def result_to_dict(
    result: ProbeResult,
    services: Mapping[ResultKey, ServiceInfo] | None = None,
    asked: Mapping[ResultKey, Sequence[Asked]] | None = None,
) -> dict[str, Any]:
    document = _result_fields(result)
    key = result_key(result)
    if services and key is not None and key in services:
        document["probe"] = service_to_dict(services[key])
        if asked is not None:
            document["asked"] = [list(row) for row in asked.get(key, ())]
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


def report_to_dict(
    report: ScanReport, extra: Mapping[str, Any] | None = None, *, results: bool = True
) -> dict[str, Any]:
    """The report as a JSON document (version 1); ``extra`` adds top-level keys (a plugin's
    ``expectations``, a run id); without ``results`` the list is left out (``dump_report`` streams it)."""
    document: dict[str, Any] = {
        "version": REPORT_VERSION,
        "tool": f"pytest-portcheck {__version__}",
        "command": list(report.command),
        "started": report.started,
        "elapsed_s": round(report.elapsed_s, 3),
        "interrupted": report.interrupted,
        "settings": settings_to_report(report.settings),
        "hosts": [
            {"host": r.host, "addresses": list(r.addresses), "error": r.error} for r in report.resolutions
        ],
        "summary": {state.value: count for state, count in count_states(report.results).items()},
        "scan_quality": [quality_to_dict(q) for q in report.stats.addresses.values()],
    }
    if extra:
        document.update(extra)
    if results:
        document["results"] = [
            result_to_dict(result, report.services, report.asked) for result in report.results
        ]
    return document


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


def dump_report(report: ScanReport, stream: TextIO, extra: Mapping[str, Any] | None = None) -> None:
    """Write the report as JSON: indented, with one result per line.

    Results are encoded one at a time without indentation: that keeps the C encoder (an indented
    dump of 65,535 results takes about 2 s in the pure-Python one), keeps memory flat, and keeps
    diffs of two reports line by line.
    """
    head = json.dumps(report_to_dict(report, extra, results=False), indent=1)
    stream.write(head[:-2] + ',\n "results": [')
    separator = "\n  "
    services = report.services
    for result in report.results:
        line = _result_json(result)
        key = result_key(result)
        if services and key is not None and key in services:
            line = json.dumps(result_to_dict(result, services, report.asked))
        stream.write(separator + line)
        separator = ",\n  "
    stream.write("\n ]\n}\n" if report.results else "]\n}\n")


def write_report(report: ScanReport, destination: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write the JSON report to a file (atomically, see atomicfile), or to standard output for ``-``.

    Raises WriteError naming the file when it cannot be written; the previous file is then intact.
    With ``PORTCHECK_REPORT_KEY`` set, the report is signed (see provenance).
    """
    write = signing_writer(lambda stream: dump_report(report, stream, extra), report_key())
    if str(destination) == "-":
        write(sys.stdout)
        sys.stdout.flush()
        return
    write_atomically(destination, write)
