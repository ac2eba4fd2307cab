"""Comparing two scan reports: hosts that appeared or vanished, ports whose state or service changed.

``portcheck diff`` presents a ``ReportDiff``. Reads the typed report only; must not import pytest,
yaml, the engine's scanner or the probes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pytest_portcheck.engine import PortState, ProbeResult
from pytest_portcheck.results import ScanReport, result_key
from pytest_portcheck.services import neutralise


@dataclass(frozen=True, slots=True)
class Change:
    host: str
    address: str | None
    proto: str
    port: int
    kind: str
    """opened, closed, state, service, added (only in the new report), removed (only in the old)."""
    old: str | None
    new: str | None


@dataclass(frozen=True)
class ReportDiff:
    hosts_appeared: list[str]
    hosts_vanished: list[str]
    changes: list[Change]
    coverage_only: int
    """Ports scanned in one report only whose state there is plain closed: not counted as change."""

    @property
    def equal(self) -> bool:
        return not (self.hosts_appeared or self.hosts_vanished or self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "hosts_appeared": self.hosts_appeared,
            "hosts_vanished": self.hosts_vanished,
            "changes": [asdict(change) for change in self.changes],
            "closed_ports_in_one_report_only": self.coverage_only,
        }

    def to_text(self, old_name: str, new_name: str) -> str:
        # Report files come from anywhere: what they name reaches the terminal neutralised.
        lines = [f"--- {old_name}", f"+++ {new_name}"]
        lines += [f"host appeared: {neutralise(host)}" for host in self.hosts_appeared]
        lines += [f"host vanished: {neutralise(host)}" for host in self.hosts_vanished]
        marks = {"opened": "+", "closed": "-", "added": "+", "removed": "-"}
        for change in self.changes:
            where = neutralise(f"{change.host} {change.address or '-'} {change.proto}/{change.port}")
            old = neutralise(change.old) if change.old is not None else "(not scanned)"
            new = neutralise(change.new) if change.new is not None else "(not scanned)"
            lines.append(f"{marks.get(change.kind, '~')} {change.kind:<8} {where}: {old} -> {new}")
        if self.coverage_only:
            lines.append(f"({self.coverage_only:,} closed port(s) scanned in one report only: not counted)")
        count = len(self.hosts_appeared) + len(self.hosts_vanished) + len(self.changes)
        lines.append("no differences" if self.equal else f"{count} difference(s)")
        return "\n".join(lines) + "\n"


def compare_reports(old: ScanReport, new: ScanReport) -> ReportDiff:
    """What changed between two scans: hosts, states, and services where probes ran."""
    old_hosts = {r.host for r in old.resolutions} | {r.host for r in old.results}
    new_hosts = {r.host for r in new.resolutions} | {r.host for r in new.results}
    appeared = sorted(new_hosts - old_hosts)
    vanished = sorted(old_hosts - new_hosts)

    def index(report: ScanReport) -> dict[tuple[str, str | None, str, int], ProbeResult]:
        return {(r.host, r.address, r.proto.value, r.port): r for r in report.results}

    def described(report: ScanReport, result: ProbeResult) -> str | None:
        key = result_key(result)
        info = report.services.get(key) if key is not None else None
        return None if info is None else f"{info.service} {info.product or ''} {info.version or ''}".strip()

    before, after = index(old), index(new)
    changes: list[Change] = []
    coverage_only = 0
    for key in sorted(before.keys() | after.keys(), key=lambda k: (k[0], k[1] or "", k[2], k[3])):
        host, address, proto, port = key
        if host in appeared or host in vanished:
            continue
        was, now = before.get(key), after.get(key)
        if was is None or now is None:
            only = now if was is None else was
            assert only is not None
            if only.state is PortState.CLOSED:
                coverage_only += 1
                continue
            kind = "added" if was is None else "removed"
            old_state = None if was is None else was.state.value
            new_state = None if now is None else now.state.value
            changes.append(Change(host, address, proto, port, kind, old_state, new_state))
            continue
        if was.state is not now.state:
            if now.state is PortState.OPEN:
                kind = "opened"
            elif was.state is PortState.OPEN:
                kind = "closed"
            else:
                kind = "state"
            changes.append(Change(host, address, proto, port, kind, was.state.value, now.state.value))
            continue
        old_service, new_service = described(old, was), described(new, now)
        if old_service is not None and new_service is not None and old_service != new_service:
            changes.append(Change(host, address, proto, port, "service", old_service, new_service))
    return ReportDiff(appeared, vanished, changes, coverage_only)
