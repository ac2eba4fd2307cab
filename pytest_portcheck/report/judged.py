"""One outcome per inventory item, and the judged report that holds them: the typed verdicts every
writer takes.

An item's setup judges its expectation and describes the result ONCE, as an ``ItemOutcome``: what was
expected, the verdict and its message, what each address showed (``FoundState``), which services
answered (``FoundService``), the waiver, the silent addresses. The controller gets it from the item's
report (``to_dict(compact=True)``, the same through xdist's serialised reports) and everything is
derived from it: the terminal summary, Markdown, the JSON report's ``expectations`` (``to_dict``), the
HTML page and the one JUnit property. ``JudgedReport`` is a ``ScanReport`` plus those outcomes;
``read_judged_report`` reads a JSON report (with or without expectations) or an nmap XML file.
No JSON text or dictionary travels between the scan and the writers except at those two borders.
Must not import pytest, yaml, the scanning pipeline or the probes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_portcheck.judge.findings import FindingKind
from pytest_portcheck.judge.silence import silence_message, silent_hosts
from pytest_portcheck.judge.verdict import Verdict
from pytest_portcheck.report.decode import read_report_and_document
from pytest_portcheck.report.model import ReportError, ScanReport
from pytest_portcheck.report.nmapxml import is_xml_file, read_nmap_xml

WAIVER_WARNING_DAYS = 14


@dataclass(frozen=True, slots=True)
class FoundState:
    """What one address of the item's host showed."""

    address: str
    state: str
    """A ``PortState`` value: open, closed, filtered, open|filtered or error."""
    reason: str
    latency_ms: float | None = None
    port: int = 0
    """The port it showed this on, for a range's item (which holds several); 0 for a port's item,
    whose port its target names, and when a report does not say."""


@dataclass(frozen=True, slots=True)
class DeclaredAt:
    """The source file line that declares an item's port (Compose, Kubernetes, Terraform)."""

    path: str
    line: int
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "description": self.description}


@dataclass(frozen=True, slots=True)
class FoundService:
    """What a protocol probe found answering on one address (peer text already neutralised)."""

    address: str
    description: str
    """``ssh (OpenSSH 9.2p1) "SSH-2.0-OpenSSH_9.2p1"``: the service first, then product, auth, TLS, banner."""

    @property
    def service(self) -> str:
        return self.description.split(" ", 1)[0]

    @property
    def line(self) -> str:
        """``ADDRESS DESCRIPTION``, as the summaries and the JSON report list it."""
        return f"{self.address} {self.description}"

    @classmethod
    def from_line(cls, line: str) -> FoundService:
        address, _, description = line.partition(" ")  # no address holds a space
        return cls(address, description)


@dataclass(frozen=True, slots=True)
class ItemWaiver:
    until: datetime.date
    reason: str


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """One inventory item's outcome: the only description of it that the writers read."""

    host: str
    target: str
    """``tcp/22``, or a range's label."""
    expected: str
    verdict: str
    """A ``judge.Verdict`` value: passed, failed, error or waived (a failure an active waiver covers)."""
    nodeid: str = ""
    line: int = 0
    """The inventory line (1-based) of the entry the item comes from; 0 when unknown."""
    message: str = ""
    found: tuple[FoundState, ...] = ()
    services: tuple[FoundService, ...] = ()
    waiver: ItemWaiver | None = None
    silent: tuple[str, ...] = ()
    """Addresses of the item's host on which nothing answered (``judge.silent_addresses``)."""
    kind: FindingKind | None = None
    """The kind of finding the judge attached to a failure or an error (None for a pass)."""
    vantage: str | None = None
    """The vantage of an entry under ``from: {VANTAGE: ...}``."""
    declared_at: DeclaredAt | None = None
    """The source line that declares the port, when a source file does."""

    @property
    def inventory(self) -> str:
        """The inventory file the item comes from (its node id's first part)."""
        return self.nodeid.split("::", 1)[0]

    @property
    def notable(self) -> bool:
        """Whether it says more than a test case's name and status: not a plain pass, or a service
        identified, a waiver, silent addresses (what gets the JUnit property)."""
        return self.verdict != "passed" or bool(self.services or self.waiver or self.silent)

    def waiver_note(self, day: datetime.date) -> str | None:
        """How the waiver stands on ``day``, when it is expired or expires within 14 days."""
        if self.waiver is None:
            return None
        until, reason = self.waiver.until, self.waiver.reason
        left = (until - day).days
        if left < 0:
            return f"expired on {until} (no longer waiving): {reason}"
        if left <= WAIVER_WARNING_DAYS:
            return f"expires in {left} day(s), on {until}: {reason}"
        return None

    def to_dict(self, *, compact: bool = False) -> dict[str, Any]:
        """The JSON form: every field for a report's ``expectations``; ``compact`` (what an item hands
        the controller and writes to JUnit) leaves out the node id, which the test report already
        names, and the fields that are empty."""
        data: dict[str, Any] = {} if compact else {"nodeid": self.nodeid}
        data.update(host=self.host, target=self.target, expected=self.expected, verdict=self.verdict)
        optional: dict[str, Any] = {
            "line": self.line,
            "message": self.message,
            "found": [
                {"address": f.address, "state": f.state, "reason": f.reason, "latency_ms": f.latency_ms}
                | ({"port": f.port} if f.port else {})
                for f in self.found
            ],
            "services": [service.line for service in self.services],
            "waiver": None
            if self.waiver is None
            else {"until": self.waiver.until.isoformat(), "reason": self.waiver.reason},
            "silent": list(self.silent),
        }
        data.update((key, value) for key, value in optional.items() if value or not compact)
        # Since issue 20, for code scanning: written only when set, so that other outcomes read as before.
        if self.kind is not None:
            data["kind"] = self.kind.value
        if self.vantage is not None:
            data["vantage"] = self.vantage
        if self.declared_at is not None:
            data["declared_at"] = self.declared_at.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], nodeid: str | None = None) -> ItemOutcome:
        """An outcome from its JSON form (a report's entry, checked by ``reportschema`` before it gets
        here, or an item's compact form, with the ``nodeid`` of its test report). ValueError,
        TypeError or KeyError for anything else."""
        found = tuple(
            FoundState(
                str(f["address"]),
                str(f["state"]),
                str(f["reason"]),
                None if f.get("latency_ms") is None else float(f["latency_ms"]),
                _whole(f.get("port", 0), "port"),
            )
            for f in data.get("found") or ()
        )
        waiver = data.get("waiver")
        declared = data.get("declared_at")
        kind = data.get("kind")
        line = _whole(data.get("line", 0), "line")
        return cls(
            host=str(data["host"]),
            target=str(data["target"]),
            expected=str(data["expected"]),
            verdict=str(data["verdict"]),
            nodeid=str(data.get("nodeid", "")) if nodeid is None else nodeid,
            line=line,
            message=str(data.get("message", "")),
            found=found,
            services=tuple(FoundService.from_line(str(s)) for s in data.get("services") or ()),
            waiver=None
            if waiver is None
            else ItemWaiver(datetime.date.fromisoformat(str(waiver["until"])), str(waiver["reason"])),
            silent=tuple(str(address) for address in data.get("silent") or ()),
            kind=None if kind is None else FindingKind(kind),
            vantage=None if data.get("vantage") is None else str(data["vantage"]),
            declared_at=None if declared is None else _declared_at(declared),
        )


def _declared_at(data: Mapping[str, Any]) -> DeclaredAt:
    return DeclaredAt(str(data["path"]), _whole(data["line"], "line"), str(data["description"]))


def _whole(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be a whole number, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class JudgedReport:
    """A scan and, for a plugin run, each item's outcome (none for a plain scan)."""

    scan: ScanReport
    expectations: Sequence[ItemOutcome] = ()

    def expectations_document(self) -> dict[str, Any]:
        """The ``expectations`` part of the JSON report (``write_report``'s extra)."""
        return {"expectations": [outcome.to_dict() for outcome in self.expectations]}


def read_judged_report(path: str | Path) -> JudgedReport:
    """A portcheck JSON report (a plugin's holds expectations) or an nmap XML file, told apart by their
    first character; ReportError naming the file and the problem otherwise."""
    if is_xml_file(path):
        return JudgedReport(read_nmap_xml(path))
    scan, document = read_report_and_document(path)
    try:
        outcomes = tuple(ItemOutcome.from_dict(e) for e in document.get("expectations") or ())
    except (ValueError, TypeError, KeyError) as exc:  # a waiver's date can be no date, a kind unknown
        raise ReportError(f"{path}: not a valid portcheck JSON report: expectations: {exc}") from None
    return JudgedReport(scan, outcomes)


def host_rows(records: Mapping[str, ItemOutcome]) -> list[tuple[str, str, str, str, int, int]]:
    """One row per (inventory, host) of the outcomes (by node id): (host, addresses, expected, found,
    drift, errors), as the terminal summary and the Markdown table show them."""
    # One row per (inventory, host): two inventories' 'web' may be two machines.
    hosts: dict[tuple[str, str], dict[str, Any]] = {}
    for nodeid, record in records.items():
        row = hosts.setdefault(
            (nodeid.split("::", 1)[0], record.host),
            {"addresses": {}, "expected": {}, "found": {}, "drift": 0, "errors": 0},
        )
        row["expected"][record.expected] = row["expected"].get(record.expected, 0) + 1
        for seen in record.found:
            row["addresses"][seen.address] = None
            row["found"][seen.state] = row["found"].get(seen.state, 0) + 1
        row["drift"] += record.verdict == Verdict.FAILED.value
        row["errors"] += record.verdict == Verdict.ERROR.value
    names = [host for _, host in hosts]
    rows = []
    for (path, host), row in hosts.items():
        shown = host if names.count(host) == 1 else f"{path}::{host}"
        expected = ", ".join(f"{n} {k}" for k, n in sorted(row["expected"].items()))
        found = ", ".join(f"{n} {k}" for k, n in sorted(row["found"].items())) or "-"
        addresses = ", ".join(row["addresses"]) or "-"
        rows.append((shown, addresses, expected, found, row["drift"], row["errors"]))
    return rows


def silent_host_lines(records: Mapping[str, ItemOutcome]) -> list[str]:
    """``INVENTORY::HOST: no port answered on ...`` per host on which nothing answered, by the judge's
    rules (``judge.silent_hosts`` over what each item recorded): the terminal and Markdown say the same."""
    silent = silent_hosts(((nodeid.split("::", 1)[0], r.host), r.silent) for nodeid, r in records.items())
    return [silence_message(f"{path}::{host}", addresses) for (path, host), addresses in silent.items()]
