"""Comparing two scan reports: hosts that appeared or vanished, ports whose state changed, and what the
probes found on a port that stayed open: the service (with product and version), whether it asks for
authentication, the TLS version, the certificate (its SHA-256 fingerprint) and its expiry.

A fact only one report knows (the probes ran in one scan only, or could not tell, or an older report
predates the fact) is no change: it is counted, and the count is said, as closed ports scanned in one
report only are. ``portcheck diff`` presents a ``ReportDiff``. Reads the typed report only;
must not import pytest, yaml, the engine's scanner or the probes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pytest_portcheck.engine import PortState, ProbeResult
from pytest_portcheck.engine.model import result_key
from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.report.model import ScanReport


@dataclass(frozen=True, slots=True)
class Change:
    host: str
    address: str | None
    proto: str
    port: int
    kind: str
    """opened, closed, state, added (only in the new report), removed (only in the old); on a port open
    in both: service (name, product, version), auth, tls (version), certificate (fingerprint), expiry."""
    old: str | None
    new: str | None


@dataclass(frozen=True, slots=True)
class ReportDiff:
    hosts_appeared: list[str]
    hosts_vanished: list[str]
    changes: list[Change]
    coverage_only: int
    """Ports scanned in one report only whose state there is plain closed: not counted as change."""
    facts_one_side: int = 0
    """Probe facts (a port's probe results, a version, an auth answer, a fingerprint...) that only one
    report knows: not counted as change."""

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
            "probe_facts_in_one_report_only": self.facts_one_side,
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
        if self.facts_one_side:
            lines.append(
                f"({self.facts_one_side:,} probe fact(s) known in one report only (the probes ran in one "
                "scan only, could not tell, or an older report lacks the fact): not counted)"
            )
        count = len(self.hosts_appeared) + len(self.hosts_vanished) + len(self.changes)
        lines.append("no differences" if self.equal else f"{count} difference(s)")
        return "\n".join(lines) + "\n"


def compare_reports(old: ScanReport, new: ScanReport) -> ReportDiff:
    """What changed between two scans: hosts, states, and what the probes found where they ran."""
    old_hosts = {r.host for r in old.resolutions} | {r.host for r in old.results}
    new_hosts = {r.host for r in new.resolutions} | {r.host for r in new.results}
    appeared = sorted(new_hosts - old_hosts)
    vanished = sorted(old_hosts - new_hosts)

    def index(report: ScanReport) -> dict[tuple[str, str | None, str, int], ProbeResult]:
        return {(r.host, r.address, r.proto.value, r.port): r for r in report.results}

    def probed(report: ScanReport, result: ProbeResult) -> ServiceInfo | None:
        key = result_key(result)
        return report.services.get(key) if key is not None else None

    before, after = index(old), index(new)
    changes: list[Change] = []
    coverage_only = facts_one_side = 0
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
        old_info, new_info = probed(old, was), probed(new, now)
        if old_info is None or new_info is None:
            if old_info is not None or new_info is not None:  # the probes ran in one scan only
                facts_one_side += 1
            continue
        found, one_side = _probe_changes(old_info, new_info)
        changes += [
            Change(host, address, proto, port, kind, fact_was, fact_now) for kind, fact_was, fact_now in found
        ]
        facts_one_side += one_side
    return ReportDiff(appeared, vanished, changes, coverage_only, facts_one_side)


def _probe_changes(old: ServiceInfo, new: ServiceInfo) -> tuple[list[tuple[str, str, str]], int]:
    """(kind, old, new) for each fact both probes found and found different, and how many facts one of
    them found alone."""
    was, now = _facts(old), _facts(new)
    if "no TLS" in (was["tls"], now["tls"]):  # TLS came or went: that is the change, not its certificate
        for name in ("certificate", "expiry"):
            was[name] = now[name] = None
    differ = {name for name, fact in was.items() if fact is not None and now[name] not in (None, fact)}
    if "service" in differ:  # another service: its other facts say nothing about the old one's
        return [("service", _described(old), _described(new))], 0
    changes = [("service", _described(old), _described(new))] if differ & {"product", "version"} else []
    for name in ("auth", "tls", "certificate", "expiry"):
        fact_was, fact_now = was[name], now[name]
        if name in differ and fact_was is not None and fact_now is not None:
            changes.append((name, fact_was, fact_now))
    return changes, sum((fact is None) != (now[name] is None) for name, fact in was.items())


def _facts(info: ServiceInfo) -> dict[str, str | None]:
    """Each fact the probe found; None where it could not tell (a failed probe tells little)."""
    failed = info.error is not None or info.local_failure
    tls = info.tls
    return {
        "service": None if failed and info.service == "unknown" else info.service,
        "product": info.product,
        "version": info.version,
        "auth": info.auth,
        "tls": tls.version if tls is not None else (None if failed else "no TLS"),
        "certificate": None if tls is None else tls.fingerprint_sha256,
        "expiry": None if tls is None or not tls.not_after else tls.not_after,
    }


def _described(info: ServiceInfo) -> str:
    return f"{info.service} {info.product or ''} {info.version or ''}".strip()
