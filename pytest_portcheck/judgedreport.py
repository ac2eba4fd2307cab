"""A judged report: the scan report with each expectation's verdict, typed, as the writers take it.

``pytest --portcheck-report`` writes a ``ScanReport`` plus an ``expectations`` list (one entry per
item: its node id, what was expected, the verdict, the message and what each address showed);
``JudgedReport`` holds both as types, ``ExpectationVerdict.to_dict``/``from_dict`` are that list's JSON
form, and ``read_judged_report`` reads a JSON report (with or without expectations) or an nmap XML
file. The HTML page (``htmlreport``) and ``portcheck report`` take a ``JudgedReport``: no JSON text or
dictionary between the scan and the page.
Must not import pytest, yaml, the scanning pipeline or the probes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_portcheck.results import ScanReport, read_report_and_document


@dataclass(frozen=True, slots=True)
class FoundState:
    """What one address of the expectation's host showed (the item's view of the scan)."""

    address: str
    state: str
    reason: str
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class ExpectationVerdict:
    """One inventory item's outcome, as a report holds it."""

    host: str
    target: str
    """``tcp/22``, or a range's label."""
    expected: str
    verdict: str
    """A ``judge.Verdict`` value: passed, failed, error or waived."""
    nodeid: str = ""
    message: str = ""
    found: tuple[FoundState, ...] = ()
    services: tuple[str, ...] = ()
    """``ADDRESS SERVICE-DESCRIPTION`` per address a protocol probe ran on (already neutralised)."""

    @property
    def inventory(self) -> str:
        """The inventory file the expectation comes from (its node id's first part)."""
        return self.nodeid.split("::", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "host": self.host,
            "target": self.target,
            "expected": self.expected,
            "verdict": self.verdict,
            "message": self.message,
            "found": [
                {"address": f.address, "state": f.state, "reason": f.reason, "latency_ms": f.latency_ms}
                for f in self.found
            ],
            "services": list(self.services),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExpectationVerdict:
        """An entry of a report's ``expectations`` (checked by ``reportschema`` before it gets here)."""
        found = tuple(
            FoundState(
                str(f["address"]),
                str(f["state"]),
                str(f["reason"]),
                None if f.get("latency_ms") is None else float(f["latency_ms"]),
            )
            for f in data.get("found") or ()
        )
        return cls(
            host=str(data["host"]),
            target=str(data["target"]),
            expected=str(data["expected"]),
            verdict=str(data["verdict"]),
            nodeid=str(data.get("nodeid", "")),
            message=str(data.get("message", "")),
            found=found,
            services=tuple(str(line) for line in data.get("services") or ()),
        )


@dataclass(frozen=True, slots=True)
class JudgedReport:
    """A scan and, for a plugin run, each expectation's verdict (none for a plain scan)."""

    scan: ScanReport
    expectations: Sequence[ExpectationVerdict] = ()

    def expectations_document(self) -> dict[str, Any]:
        """The ``expectations`` part of the JSON report (``write_report``'s extra)."""
        return {"expectations": [expectation.to_dict() for expectation in self.expectations]}


def read_judged_report(path: str | Path) -> JudgedReport:
    """A portcheck JSON report (a plugin's holds expectations) or an nmap XML file, told apart by their
    first character; ReportError naming the file and the problem otherwise."""
    from pytest_portcheck.nmapxml import is_xml_file, read_nmap_xml

    if is_xml_file(path):
        return JudgedReport(read_nmap_xml(path))
    scan, document = read_report_and_document(path)
    return JudgedReport(
        scan, tuple(ExpectationVerdict.from_dict(e) for e in document.get("expectations") or ())
    )
