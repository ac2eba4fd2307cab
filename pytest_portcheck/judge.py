"""Judging: what was found against what was declared → a verdict and the message a person reads in CI.

``judge`` (one expectation), ``judge_range`` (an ``only_open`` range), service and TLS requirements,
silence rules, and how vantages combine. Both read an ``Evidence`` (evidence.py): a session's scan
and the reports of a run are judged by these same functions, so the two modes cannot disagree. The
scanning that feeds them lives in ``scanning``. Must not import pytest.
"""

from __future__ import annotations

import datetime
import enum
import os
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from pytest_portcheck.engine import (
    AddressQuality,
    PortState,
    ProbeResult,
    Reason,
    Resolution,
)
from pytest_portcheck.evidence import Evidence, RangeResults, Vantage
from pytest_portcheck.inventory.model import (
    Expect,
    Expectation,
    HostSpec,
    RangeRule,
    ServiceRequirement,
    TlsRequirement,
)
from pytest_portcheck.ports import Protocol, format_ports
from pytest_portcheck.probes.model import TLS_VERSIONS, ServiceInfo, TlsInfo, tls_rank

_SATISFIES = {
    Expect.OPEN: frozenset({PortState.OPEN}),
    Expect.CLOSED: frozenset({PortState.CLOSED, PortState.FILTERED}),
    Expect.FILTERED: frozenset({PortState.FILTERED, PortState.OPEN_FILTERED}),
}
_SILENT = frozenset({PortState.FILTERED, PortState.OPEN_FILTERED})
HostKey = TypeVar("HostKey", bound=Hashable)


class Verdict(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    WAIVED = "waived"
    """A failure an active waiver covers: the plugin reports it (xfail), ``judge`` never returns it."""


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    message: str
    found: tuple[ProbeResult, ...]


def unresolved_silence(
    found: Sequence[ProbeResult], quality: Mapping[str, AddressQuality]
) -> list[ProbeResult]:
    """Silent results from addresses that dropped probes and left some silence unresolved: a pass
    resting on them may hide an open port the address was too busy limiting us to show."""
    return [
        r
        for r in found
        if r.state in _SILENT
        and r.reason == Reason.NO_RESPONSE
        and (q := quality.get(r.address or "")) is not None
        and q.limited
        and q.unresolved
    ]


def _strict_silence_message(
    where: str, shaky: Mapping[str, int], quality: Mapping[str, AddressQuality]
) -> str:
    """``shaky``: per address, how many silent ports a pass would rest on."""
    lines = []
    for address, count in shaky.items():
        q = quality[address]
        lines.append(
            f"{where}: {count} silent port(s) on {address}, which dropped {q.drops:,} probe(s) it later "
            f"answered (rate limiting or loss) and left silence unresolved on {q.unresolved:,} port(s): "
            "the pass would rest on silence we could not explain (--portcheck-strict); "
            "set a lower max_rate for this host, or more retries"
        )
    return "\n".join(lines)


def silent_listener(result: ProbeResult) -> bool:
    """Silence with a socket of the scanned host listening behind it (the engine's listen-no-accept,
    on local addresses): the port is exposed although it does not answer now, so neither ``closed:``
    nor ``filtered:`` nor an ``only_open`` range accepts it."""
    return result.reason == Reason.LISTEN_NO_ACCEPT


def listening_message(host: str, where: str, ports: Sequence[int]) -> str:
    """What an ``only_open`` range says of its ``silent_listener`` ports (``where``: its label)."""
    return (
        f"{host}: {len(ports)} port(s) in {where} where a socket listens but did not complete the "
        f"handshake (listen-no-accept): {format_ports(ports)} — exposed even though they do not answer now"
    )


def silent_addresses(results: Iterable[ProbeResult]) -> frozenset[str]:
    """The one definition of "nothing answered": addresses on which every port probed (by any host,
    expectation or range) stayed silent (filtered or open|filtered). Such an address may be wrong or
    down, and its silence would satisfy closed: and only_open: — so it is warned about, or an error."""
    return silent_among((result.address, result.state) for result in results)


def silent_among(states: Iterable[tuple[str | None, PortState]]) -> frozenset[str]:
    """``silent_addresses`` over (address, state) pairs, for readers that hold states without
    results (a shard report's usual state of an address stands for many ports)."""
    seen: dict[str, set[PortState]] = {}
    for address, state in states:
        if address is not None:
            seen.setdefault(address, set()).add(state)
    return frozenset(address for address, found in seen.items() if found <= _SILENT)


def silent_of(resolution: Resolution | None, silent: Collection[str]) -> tuple[str, ...]:
    """The addresses of one host on which nothing answered."""
    if resolution is None or resolution.error is not None:
        return ()
    return tuple(address for address in resolution.addresses if address in silent)


def silent_hosts(items: Iterable[tuple[HostKey, Sequence[str]]]) -> dict[HostKey, tuple[str, ...]]:
    """Hosts on which nothing answered, from their items as judged (each item's ``silent_of``): per
    host key (the summaries use (inventory, host name), so two inventories' ``web`` stay apart), its
    silent addresses, each once, in the order met. The one list every summary warns about."""
    silent: dict[HostKey, dict[str, None]] = {}
    for key, addresses in items:
        if addresses:
            silent.setdefault(key, {}).update(dict.fromkeys(addresses))
    return {key: tuple(addresses) for key, addresses in silent.items()}


def silence_message(where: str, silent: Sequence[str]) -> str:
    """What every front end says of a host on which nothing answered (a warning, or the error of
    ``--portcheck-strict``)."""
    return f"{where}: no port answered on {', '.join(silent)} — is the address right?"


def silence_error(where: str, silent: Sequence[str]) -> Judgement:
    return Judgement(Verdict.ERROR, f"{silence_message(where, silent)} (--portcheck-strict)", ())


def _label(host: HostSpec, resolution: Resolution | None) -> str:
    if resolution is None or resolution.error is not None or not resolution.addresses:
        shown = host.address
    elif len(resolution.addresses) <= 3:
        shown = ", ".join(resolution.addresses)
    else:
        shown = f"{', '.join(resolution.addresses[:3])}, … {len(resolution.addresses)} addresses"
    if shown == host.name:
        return host.name
    return f"{host.name} ({shown})"


def describe(result: ProbeResult, timeout: float | None = None) -> str:
    """``OPEN — syn-ack in 0.2 ms (postgresql)``: what was found, for a person."""
    if result.reason in (Reason.NO_RESPONSE, Reason.LISTEN_NO_ACCEPT):
        wait = f" ({timeout:g} s timeout)" if timeout else ""
        how = f"{result.reason} after {result.attempts} attempt(s){wait}"
    elif result.latency_ms is not None:
        how = f"{result.reason} in {result.latency_ms:.1f} ms"
    else:
        how = result.reason
    service = f" ({result.service})" if result.service != "unknown" else ""
    return f"{result.state.value.upper()} — {how}{service}"


def applicable_vantages(
    host: HostSpec, expectation: Expectation, vantages: Sequence[Vantage]
) -> list[Vantage]:
    """The vantages an expectation is judged from: its own (``from:``), or every vantage the evidence
    holds that does not declare the same port itself."""
    if expectation.vantage is not None:
        return [expectation.vantage] if expectation.vantage in vantages else []
    overriding = {
        e.vantage
        for e in host.expectations
        if e.vantage is not None and (e.proto, e.port) == (expectation.proto, expectation.port)
    }
    return [vantage for vantage in vantages if vantage not in overriding]


def combine(judgements: Sequence[tuple[Vantage, Judgement]]) -> Judgement:
    """One verdict from several vantages: any error, else any failure, else a pass; each message
    says from where, unless the only one is from no vantage at all."""
    if len(judgements) == 1 and judgements[0][0] is None:
        return judgements[0][1]
    found = tuple(result for _, j in judgements for result in j.found)
    for verdict in (Verdict.ERROR, Verdict.FAILED):
        bad = [(v, j) for v, j in judgements if j.verdict is verdict]
        if bad:
            message = "\n".join(f"from {v or '(no vantage)'}: {j.message}" for v, j in bad)
            return Judgement(verdict, message, found)
    message = "\n".join(f"from {v or '(no vantage)'}: {j.message}" for v, j in judgements)
    return Judgement(Verdict.PASSED, message, found)


def judge(host: HostSpec, expectation: Expectation, evidence: Evidence, *, strict: bool = False) -> Judgement:
    """The verdict of one expectation: from every vantage it applies to, every resolved address of the
    host must satisfy it. The same for a scan and for judged reports (see evidence.py)."""
    where = f"{host.name} {expectation.proto.value}/{expectation.port}"
    if expectation.vantage is not None and expectation.vantage not in evidence.vantages:
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {evidence.absent(expectation.vantage)}", ())
    vantages = applicable_vantages(host, expectation, evidence.vantages)
    if not vantages:
        return Judgement(Verdict.ERROR, f"{where}: cannot check — no report from a vantage it applies to", ())
    return combine([(v, _judge_from(host, expectation, evidence, v, strict)) for v in vantages])


def _judge_from(
    host: HostSpec, expectation: Expectation, evidence: Evidence, vantage: Vantage, strict: bool
) -> Judgement:
    resolution = evidence.resolution(vantage, host.address)
    where = f"{_label(host, resolution)} {expectation.proto.value}/{expectation.port}"
    if resolution is None:
        return Judgement(Verdict.ERROR, f"{where}: cannot check — the host was not scanned", ())
    if resolution.error is not None or not resolution.addresses:
        why = resolution.error or "the host resolved to no address"  # a pass needs something checked
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {why}", ())
    found: list[ProbeResult] = []
    for address in resolution.addresses:
        result = evidence.result(vantage, host.address, address, expectation.proto, expectation.port)
        if result is None:
            return Judgement(Verdict.ERROR, f"{where}: cannot check — {address} was not scanned", ())
        found.append(result)
    errors = [r for r in found if r.state is PortState.ERROR]
    if errors:
        lines = [f"{where}: cannot check {r.address} — {r.reason}" for r in errors]
        return Judgement(Verdict.ERROR, "\n".join(lines), tuple(found))
    silent = evidence.silent(vantage, host.address)
    if silent and strict:
        return silence_error(where, silent)
    wanted = _SATISFIES[expectation.expect]
    if expectation.silence_counts_as_closed:
        wanted = wanted | {PortState.OPEN_FILTERED}
    wrong = [r for r in found if r.state not in wanted or silent_listener(r)]
    if not wrong and expectation.service is not None:
        return _judge_service(where, expectation.service, found, evidence, vantage, host.address)
    quality = evidence.quality(vantage)
    shaky = unresolved_silence(found, quality) if strict and expectation.expect is Expect.CLOSED else []
    if not wrong and shaky:
        message = _strict_silence_message(where, _per_address(shaky), quality)
        return Judgement(Verdict.ERROR, message, tuple(found))
    if not wrong:
        return Judgement(Verdict.PASSED, f"{where}: {expectation.expect.value} as expected", tuple(found))
    lines = [_drift_line(host, expectation, where, result, len(found) > 1) for result in wrong]
    return Judgement(Verdict.FAILED, "\n".join(lines), tuple(found))


def _drift_line(
    host: HostSpec, expectation: Expectation, where: str, result: ProbeResult, several: bool
) -> str:
    on = f" on {result.address}" if several else ""
    line = f"{where}: expected {expectation.expect.value}, found {describe(result, host.timeout)}{on}"
    if expectation.expect is Expect.FILTERED and result.state is PortState.CLOSED:
        line += " — the port is reachable through the firewall"
    if silent_listener(result) and expectation.expect is not Expect.OPEN:
        line += " — a socket listens there: the port is exposed even though it does not answer now"
    if result.state is PortState.OPEN_FILTERED and expectation.expect is Expect.CLOSED:
        line += (
            " — no reply and no ICMP error: a silent service or a drop, silence proves nothing; "
            "declare it filtered:, or set silence_counts_as_closed: true to accept it"
        )
    if result.state is PortState.OPEN_FILTERED and expectation.expect is Expect.OPEN:
        line += " — a UDP port proves open only by replying"
    return line


def _judge_service(
    where: str,
    wanted: ServiceRequirement,
    found: Sequence[ProbeResult],
    evidence: Evidence,
    vantage: Vantage,
    host: str,
) -> Judgement:
    problems: list[str] = []
    errors: list[str] = []
    for result in found:
        on = f" on {result.address}" if len(found) > 1 else ""
        address = result.address or ""
        info = evidence.service(vantage, host, address, result.proto, result.port)
        if info is not None:  # the probe made under this host's name, where names met on the port
            info = info.as_asked_by(host)
        if info is None or info.local_failure:
            why = info.error if info is not None else "the port was not probed"
            errors.append(f"{where}: cannot check the service{on} — {why}")
            continue
        unprobed = evidence.unprobed(vantage, host, address, result.proto, result.port, wanted)
        if unprobed is not None:
            errors.append(f"{where}: cannot check the service{on} — {unprobed}")
            continue
        errors += [f"{where}: {error}{on}" for error in service_unknowns(wanted, info)]
        for problem in service_problems(wanted, info):
            problems.append(f"{where}: {problem}{on}")
    if errors:
        return Judgement(Verdict.ERROR, "\n".join(errors), tuple(found))
    if problems:
        return Judgement(Verdict.FAILED, "\n".join(problems), tuple(found))
    return Judgement(Verdict.PASSED, f"{where}: open, {wanted.service} as expected", tuple(found))


def service_problems(wanted: ServiceRequirement, info: ServiceInfo) -> list[str]:
    """Why what answered does not meet the requirement (empty when it does)."""
    if not info.answers_as(wanted.service):
        return [f"expected {wanted.service}, found {info.describe()}"]
    problems = []
    if wanted.tls is not None and wanted.tls.verify and (info.tls is None or not info.tls.verified):
        # Only a handshake that verified the chain and the name answers verify: true.
        problems.append(f"TLS verification failed: {info.error or 'the certificate was not verified'}")
    elif wanted.tls is not None and info.tls is None:
        problems.append(f"no TLS certificate to check: {info.error or info.describe()}")
    if wanted.tls is not None and info.tls is not None:
        problems += _tls_problems(wanted.tls, info.tls)
    name = info.product or info.service
    if wanted.auth == "required" and info.auth == "none":
        how = f": {info.auth_note}" if info.auth_note else ""  # e.g. the anonymous user it acts as
        problems.append(f"{name} answers without authentication{how} (auth: required)")
    if wanted.auth == "none" and info.auth == "required":
        problems.append(f"{name} requires authentication (auth: none was declared)")
    return problems


def service_unknowns(wanted: ServiceRequirement, info: ServiceInfo) -> list[str]:
    """What the probe could not tell although the requirement asks it: errors, not passes."""
    if not info.answers_as(wanted.service):
        return []
    unknowns = []
    if wanted.auth is not None and info.auth is None:
        unknowns.append(f"cannot tell whether {info.service} requires authentication: {info.describe()}")
    below = info.tls.below_minimum if info.tls is not None else None
    if wanted.tls is not None and wanted.tls.min_version and below and below.startswith("untested"):
        unknowns.append(f"cannot check min_version {wanted.tls.min_version}: {below}")
    elif wanted.tls is not None and wanted.tls.min_version and info.tls is not None and below is None:
        # Only a handshake offering versions below the minimum shows that they are refused.
        unknowns.append(
            f"cannot check min_version {wanted.tls.min_version}: the probe tried no handshake below it"
        )
    return unknowns


def _tls_problems(wanted: TlsRequirement, tls: TlsInfo) -> list[str]:
    problems = []
    if wanted.min_version and TLS_VERSIONS.index(wanted.min_version) > tls_rank(tls.version):
        problems.append(f"TLS version {tls.version} is below the minimum {wanted.min_version}")
    elif wanted.min_version and tls.below_minimum and tls.below_minimum.startswith("TLSv"):
        problems.append(
            f"also accepts {tls.below_minimum.split()[0]}, below the minimum {wanted.min_version} "
            "(a handshake offering only older versions succeeded)"
        )
    if wanted.expires_in_days is not None and tls.certificate_error:
        problems.append(tls.certificate_error)
    elif wanted.expires_in_days is not None and tls.days_left < wanted.expires_in_days:
        problems.append(
            f"certificate ({tls.subject}) expires in {tls.days_left} days ({tls.not_after}), "
            f"sooner than the {wanted.expires_in_days} days required"
        )
    return problems


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
    resolution = evidence.resolution(vantage, host.address)
    where = f"{_label(host, resolution)} {rule.label}"
    if resolution is None or resolution.error is not None or not resolution.addresses:
        why = "the host was not scanned" if resolution is None else resolution.error or "no address"
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {why}", ())
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
        return Judgement(Verdict.FAILED, "\n".join(lines), tuple(unexpected))
    if shaky:
        return Judgement(Verdict.ERROR, _strict_silence_message(where, shaky, quality), ())
    here = [port for port in sorted(allowed) if port in rule.ports]
    note = f" ({format_ports(here)} allowed from {vantage})" if here else ""
    return Judgement(Verdict.PASSED, f"{where}: nothing else open{note}", ())


@dataclass(frozen=True, slots=True)
class _ServiceLookup:
    evidence: Evidence
    vantage: Vantage
    host: str

    def __call__(self, address: str, proto: Protocol, port: int) -> ServiceInfo | None:
        return self.evidence.service(self.vantage, self.host, address, proto, port)


_MAX_LISTED = 100
"""Unexpected open ports named in one range's message; the rest are counted."""


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
        for result in opened[:_MAX_LISTED]:
            info = service(address, rule.proto, result.port)
            shown.append(f"{result.port} ({info.summary() if info else result.service})")
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
    return _OPEN_ONLY if rule.silence_counts_as_closed else _OPEN_OR_SILENT


_OPEN_ONLY = frozenset({PortState.OPEN})
_OPEN_OR_SILENT = frozenset({PortState.OPEN, PortState.OPEN_FILTERED})


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
    count = sum(1 for r in found.listed if r.state in _SILENT and r.reason == Reason.NO_RESPONSE)
    for group in found.grouped:
        if group.state in _SILENT and group.reason == Reason.NO_RESPONSE:
            count += group.count if group.count is not None else len(group.ports())
    return {address: count} if count else {}


def _per_address(results: Sequence[ProbeResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.address or ""] = counts.get(result.address or "", 0) + 1
    return counts


def today() -> datetime.date:
    """Today, or the date in PORTCHECK_TODAY (ISO), so waivers can be checked against any day."""
    injected = os.environ.get("PORTCHECK_TODAY")
    if injected:
        return datetime.date.fromisoformat(injected)
    return datetime.date.today()
