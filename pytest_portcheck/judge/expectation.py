"""Judging one expectation: a port's state on every address of its host, from every vantage it applies
to, then the service, TLS and authentication it declares.

``judge`` reads an ``Evidence`` (evidence.py): a session's scan and the reports of a run are judged
by this same function, so the two modes cannot disagree. What was found is worded by ``verdict``;
what silence proves is ``silence``'s.
Pure: must not import pytest, yaml, the scanner or the probes' I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_portcheck.engine import PortState, ProbeResult
from pytest_portcheck.inventory.model import Expect, Expectation, HostSpec, ServiceRequirement, TlsRequirement
from pytest_portcheck.judge.evidence import Evidence, Vantage
from pytest_portcheck.judge.findings import FindingKind, most_severe, service_finding_kind
from pytest_portcheck.judge.silence import (
    per_address,
    silence_error,
    silent_listener,
    strict_silence_message,
    unresolved_silence,
)
from pytest_portcheck.judge.verdict import Judgement, Verdict, applicable_vantages, combine, describe, label
from pytest_portcheck.probes.model import TLS_VERSIONS, ServiceInfo, TlsInfo, tls_rank

_SATISFIES = {
    Expect.OPEN: frozenset({PortState.OPEN}),
    Expect.CLOSED: frozenset({PortState.CLOSED, PortState.FILTERED}),
    Expect.FILTERED: frozenset({PortState.FILTERED, PortState.OPEN_FILTERED}),
}


def judge(host: HostSpec, expectation: Expectation, evidence: Evidence, *, strict: bool = False) -> Judgement:
    """The verdict of one expectation: from every vantage it applies to, every resolved address of the
    host must satisfy it. The same for a scan and for judged reports (see evidence.py)."""
    where = f"{host.name} {expectation.proto.value}/{expectation.port}"
    if expectation.vantage is not None and expectation.vantage not in evidence.vantages:
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {evidence.absent(expectation.vantage)}", ())
    vantages = applicable_vantages(host, expectation, evidence.vantages)
    if not vantages:
        return Judgement(Verdict.ERROR, f"{where}: cannot check — no report from a vantage it applies to", ())
    judgement = combine([(v, _judge_from(host, expectation, evidence, v, strict)) for v in vantages])
    if expectation.declared_at is None:
        return judgement
    # The source line that declares the port, on the message's first line (the one summaries show).
    first, newline, rest = judgement.message.partition("\n")
    message = f"{first} — declared by {expectation.declared_at}{newline}{rest}"
    return Judgement(judgement.verdict, message, judgement.found, judgement.kind)


def _judge_from(
    host: HostSpec, expectation: Expectation, evidence: Evidence, vantage: Vantage, strict: bool
) -> Judgement:
    resolution = evidence.resolution(vantage, host.address)
    where = f"{label(host, resolution)} {expectation.proto.value}/{expectation.port}"
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
        message = strict_silence_message(where, per_address(shaky), quality)
        return Judgement(Verdict.ERROR, message, tuple(found))
    if not wrong:
        return Judgement(Verdict.PASSED, f"{where}: {expectation.expect.value} as expected", tuple(found))
    lines = [_drift_line(host, expectation, where, result, len(found) > 1) for result in wrong]
    return Judgement(Verdict.FAILED, "\n".join(lines), tuple(found), _state_kind(expectation.expect, wrong))


def _state_kind(expect: Expect, wrong: Sequence[ProbeResult]) -> FindingKind:
    """What a port's wrong state is: exposure, a port that should answer and does not, or a filtered
    port that is refused (reachable through the firewall, nothing listening)."""
    if expect is Expect.OPEN:
        return FindingKind.DECLARED_UNREACHABLE
    refused_only = all(r.state is PortState.CLOSED and not silent_listener(r) for r in wrong)
    if expect is Expect.FILTERED and refused_only:
        return FindingKind.PORT_NOT_FILTERED
    return FindingKind.UNEXPECTED_OPEN


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
    kinds: list[FindingKind] = []
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
        failing = service_problems(wanted, info)
        if failing:
            kinds.append(service_finding_kind(wanted, info))
        for problem in failing:
            problems.append(f"{where}: {problem}{on}")
    if errors:
        return Judgement(Verdict.ERROR, "\n".join(errors), tuple(found))
    if problems:
        return Judgement(Verdict.FAILED, "\n".join(problems), tuple(found), most_severe(kinds))
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
