"""Judging an ``only_open`` range: no port of it but the listed ones may be open, on any address, from
any vantage. The range is read from the evidence as listed results and counted groups
(``evidence.RangeResults``): only the groups whose state fails it are walked port by port.
``judge_one_of`` judges a range of which a source publishes one port: at most one may be open.
Pure: must not import pytest, yaml, the scanner or the probes' I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from pytest_portcheck.engine import AddressQuality, PortState, ProbeResult, Reason, Resolution
from pytest_portcheck.inventory.model import Allowance, Expect, HostSpec, RangeRule
from pytest_portcheck.judge.evidence import Evidence, RangeResults, Vantage
from pytest_portcheck.judge.findings import FindingKind
from pytest_portcheck.judge.silence import (
    SILENT,
    listening_message,
    silence_error,
    silent_listener,
    strict_silence_message,
)
from pytest_portcheck.judge.verdict import Judgement, Verdict, combine, label
from pytest_portcheck.ports import Protocol, format_ports
from pytest_portcheck.probes.model import ServiceInfo


def judge_range(host: HostSpec, rule: RangeRule, evidence: Evidence, *, strict: bool = False) -> Judgement:
    """``only_open``: no port of the range but the listed ones may be open, on any address, from any
    vantage (a port declared ``open`` under ``from: V`` is allowed from V). A UDP port that neither
    replied nor was refused (open|filtered) fails it as it fails ``closed:``, unless silence counts as
    closed. Where the evidence holds every vantage that looked, a port allowed from each of them is
    checked from nowhere: an error, never a pass."""
    if not evidence.vantages:
        return Judgement(Verdict.ERROR, f"{host.name} {rule.label}: cannot check — no report", ())
    allowed: dict[Vantage, set[int]] = {}
    for e in host.expectations:
        if e.vantage is not None and e.expect is Expect.OPEN and e.proto is rule.proto:
            allowed.setdefault(e.vantage, set()).add(e.port)
    for allowance in host.allowed:  # a source's "one of these ports", from one vantage
        if allowance.vantage is not None and allowance.proto is rule.proto:
            allowed.setdefault(allowance.vantage, set()).update(range(allowance.first, allowance.last + 1))
    judgements = [
        (vantage, _range_from(host, rule, evidence, vantage, allowed.get(vantage, set()), strict))
        for vantage in evidence.vantages
    ]
    combined = combine(judgements)
    # Allowed from every vantage that looked (and inside the range): nothing checked it from elsewhere.
    everywhere = set.intersection(*(allowed.get(v, set()) for v in evidence.vantages))
    nowhere = {port for port in everywhere if port in rule.ports} if evidence.complete else set()
    if not nowhere:
        return combined
    froms = ", ".join(str(v) for v in evidence.vantages)
    line = (
        f"{host.name} {rule.label}: cannot check {format_ports(nowhere)} — allowed from {froms} only, and no "
        "report from another vantage checks that nothing else reaches them: scan from another vantage too"
    )
    message = f"{combined.message}\n{line}" if combined.verdict is Verdict.ERROR else line
    return Judgement(Verdict.ERROR, message, combined.found)


def _range_from(
    host: HostSpec,
    rule: RangeRule,
    evidence: Evidence,
    vantage: Vantage,
    allowed: Collection[int],
    strict: bool,
) -> Judgement:
    seen = _addresses_seen(host, rule, evidence, vantage)
    if isinstance(seen, Judgement):
        return seen
    where, resolution = seen
    lines: list[str] = []
    errors: list[str] = []
    unexpected: list[ProbeResult] = []
    shaky: dict[str, int] = {}
    quality = evidence.quality(vantage) if strict else {}
    for address in resolution.addresses:
        on = f" on {address}" if len(resolution.addresses) > 1 else ""
        found = evidence.range_results(vantage, host.address, address, rule)
        address_lines, address_errors, failing = _range_on_address(
            host, rule, address, found, _ServiceLookup(evidence, vantage, host.address), allowed, where, on
        )
        lines += address_lines
        errors += address_errors
        unexpected += failing
        if quality:
            shaky.update(_shaky_in_range(address, found, quality))
    if errors:
        return Judgement(Verdict.ERROR, "\n".join(errors), tuple(unexpected))
    silent = evidence.silent(vantage, host.address)
    if silent and strict:
        return silence_error(where, silent)
    if lines:
        return Judgement(Verdict.FAILED, "\n".join(lines), tuple(unexpected), FindingKind.UNEXPECTED_OPEN)
    if shaky:
        return Judgement(Verdict.ERROR, strict_silence_message(where, shaky, quality), ())
    here = [port for port in sorted(allowed) if port in rule.ports]
    note = f" ({format_ports(here)} allowed from {vantage})" if here else ""
    return Judgement(Verdict.PASSED, f"{where}: nothing else open{note}", ())


def judge_one_of(host: HostSpec, allowance: Allowance, evidence: Evidence) -> Judgement:
    """A range of which a source publishes one port, chosen at start (Compose's ``"8000-8010:80"``):
    at most one of its ports may be open on each address, from each vantage."""
    vantages = [v for v in evidence.vantages if allowance.vantage is None or v == allowance.vantage]
    if not vantages:
        where = f"{host.name} {allowance.label}"
        if allowance.vantage is not None and evidence.vantages:
            why = evidence.absent(allowance.vantage)
            return Judgement(Verdict.ERROR, f"{where}: cannot check — {why}", ())
        return Judgement(Verdict.ERROR, f"{where}: cannot check — no report", ())
    rule = allowance.rule(host.name)
    return combine([(v, _one_of_from(host, allowance, rule, evidence, v)) for v in vantages])


def _one_of_from(
    host: HostSpec, allowance: Allowance, rule: RangeRule, evidence: Evidence, vantage: Vantage
) -> Judgement:
    seen = _addresses_seen(host, rule, evidence, vantage)
    if isinstance(seen, Judgement):
        return seen
    where, resolution = seen
    lines: list[str] = []
    errors: list[str] = []
    opened: list[ProbeResult] = []
    for address in resolution.addresses:
        on = f" on {address}" if len(resolution.addresses) > 1 else ""
        found = evidence.range_results(vantage, host.address, address, rule)
        lookup = _ServiceLookup(evidence, vantage, host.address)
        _, address_errors, exposing = _range_on_address(host, rule, address, found, lookup, (), where, on)
        errors += address_errors
        opened += exposing
        if len(exposing) > 1:
            ports = ", ".join(str(r.port) for r in exposing)
            lines.append(
                f"{host.name}: {len(exposing)} ports open in {rule.label}{on}, of which "
                f"{allowance.declared_at} publishes one: {ports}"
            )
    if errors:
        return Judgement(Verdict.ERROR, "\n".join(errors), tuple(opened))
    if lines:
        return Judgement(Verdict.FAILED, "\n".join(lines), tuple(opened), FindingKind.UNEXPECTED_OPEN)
    shown = ", ".join(str(r.port) for r in opened) or "none"
    message = f"{where}: at most one open ({shown}), as {allowance.declared_at} publishes"
    return Judgement(Verdict.PASSED, message, ())


@dataclass(frozen=True, slots=True)
class _ServiceLookup:
    evidence: Evidence
    vantage: Vantage
    host: str

    def __call__(self, address: str, proto: Protocol, port: int) -> ServiceInfo | None:
        return self.evidence.service(self.vantage, self.host, address, proto, port)


_MAX_LISTED = 100
"""Unexpected open ports named in one range's message; the rest are counted."""


def _addresses_seen(
    host: HostSpec, rule: RangeRule, evidence: Evidence, vantage: Vantage
) -> tuple[str, Resolution] | Judgement:
    """The range's label and the host's resolution as the evidence holds it, or the error when it
    holds nothing to judge (not scanned, or no address): a pass needs something checked."""
    resolution = evidence.resolution(vantage, host.address)
    where = f"{label(host, resolution)} {rule.label}"
    if resolution is None or resolution.error is not None or not resolution.addresses:
        why = "the host was not scanned" if resolution is None else resolution.error or "no address"
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {why}", ())
    return where, resolution


def _range_on_address(
    host: HostSpec,
    rule: RangeRule,
    address: str,
    found: RangeResults,
    service: _ServiceLookup,
    allowed: Collection[int],
    where: str,
    on: str,
) -> tuple[list[str], list[str], list[ProbeResult]]:
    """One address of an ``only_open`` range: (failure lines, error lines, the results that fail it)."""
    failed: dict[str, int | None] = {}
    for why, count in found.unproven:
        failed[why] = _add(failed.get(why, 0), count)
    exposing = _exposing(rule)
    unexpected: list[ProbeResult] = []
    for result in [*found.listed, *_expanded(host.address, address, rule, found, allowed)]:
        if result.port in allowed:
            continue
        if result.state is PortState.ERROR:
            failed[result.reason] = _add(failed.get(result.reason, 0), 1)
        elif result.state in exposing or silent_listener(result):
            unexpected.append(result)
    for group in found.grouped:
        if group.state is PortState.ERROR:
            failed[group.reason] = _add(failed.get(group.reason, 0), group.count)
    errors = [
        f"{where}: cannot check {'' if count is None else f'{count} '}port(s) of {address} — {why}"
        for why, count in sorted(failed.items())
    ]
    unexpected.sort(key=lambda r: r.port)
    return _range_lines(host, rule, address, unexpected, service, on), errors, unexpected


def _range_lines(
    host: HostSpec,
    rule: RangeRule,
    address: str,
    unexpected: Sequence[ProbeResult],
    service: _ServiceLookup,
    on: str,
) -> list[str]:
    opened = [r for r in unexpected if r.state is PortState.OPEN]
    quiet = [r.port for r in unexpected if r.state is PortState.OPEN_FILTERED]
    lines = []
    if opened:
        shown = []
        # With sources, each port says that none of them declares it (nor the inventory).
        sources = ", ".join(rule.declared_by)
        undeclared = f": open, declared by no source ({sources})" if sources else ""
        for result in opened[:_MAX_LISTED]:
            info = service(address, rule.proto, result.port)
            shown.append(f"{result.port} ({info.summary() if info else result.service}){undeclared}")
        more = f" and {len(opened) - _MAX_LISTED:,} more" if len(opened) > _MAX_LISTED else ""
        head = f"{host.name}: {len(opened)} unexpected open port(s) in {rule.label}{on}"
        lines.append(f"{head}: {', '.join(shown)}{more}")
    if quiet:
        lines.append(
            f"{host.name}: {len(quiet)} port(s) in {rule.label}{on} gave no reply and no ICMP error "
            f"(open|filtered): {format_ports(quiet)} — a silent service or a drop, silence proves "
            "nothing; declare them filtered:, or set silence_counts_as_closed: true on the host"
        )
    listening = [r.port for r in unexpected if silent_listener(r)]
    if listening:
        lines.append(listening_message(host.name, f"{rule.label}{on}", listening))
    return lines


def _exposing(rule: RangeRule) -> frozenset[PortState]:
    """States that fail a range: open, and (unless silence counts as closed) open|filtered."""
    return _OPEN_ONLY if rule.silence_counts_as_closed else _OPEN_ORSILENT


_OPEN_ONLY = frozenset({PortState.OPEN})
_OPEN_ORSILENT = frozenset({PortState.OPEN, PortState.OPEN_FILTERED})


def _expanded(
    host: str, address: str, rule: RangeRule, found: RangeResults, allowed: Collection[int]
) -> list[ProbeResult]:
    """The ports of groups whose state fails the range, one by one (only those walk the range)."""
    failing = _exposing(rule)
    return [
        ProbeResult(host, address, rule.proto, port, group.state, group.reason)
        for group in found.grouped
        if group.state in failing or group.reason == Reason.LISTEN_NO_ACCEPT
        for port in group.ports()
        if port not in allowed
    ]


def _add(total: int | None, count: int | None) -> int | None:
    return None if total is None or count is None else total + count


def _shaky_in_range(
    address: str, found: RangeResults, quality: Mapping[str, AddressQuality]
) -> dict[str, int]:
    """How many of the range's silent ports on ``address`` rest on silence it left unresolved."""
    q = quality.get(address)
    if q is None or not q.limited or not q.unresolved:
        return {}
    count = sum(1 for r in found.listed if r.state in SILENT and r.reason == Reason.NO_RESPONSE)
    for group in found.grouped:
        if group.state in SILENT and group.reason == Reason.NO_RESPONSE:
            count += group.count if group.count is not None else len(group.ports())
    return {address: count} if count else {}
