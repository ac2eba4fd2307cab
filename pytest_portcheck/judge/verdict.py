"""What a judgement is: a verdict and its message, how vantages combine, and how a result reads.

``Verdict`` and ``Judgement`` are what every judging function returns; ``combine`` makes one from
several vantages; ``describe`` and ``label`` word a result and a host the same way in every message;
``today`` is the day waivers are checked against (``PORTCHECK_TODAY`` fixes it). A failure carries
the ``FindingKind`` the writers for code scanning name it by, decided here from the verdict's cause,
never parsed back out of its message.
Pure: must not import pytest, yaml, the scanner or the probes' I/O.
"""

from __future__ import annotations

import datetime
import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_portcheck.engine import ProbeResult, Reason, Resolution
from pytest_portcheck.inventory.model import Expectation, HostSpec
from pytest_portcheck.judge.evidence import Vantage
from pytest_portcheck.judge.findings import FindingKind, most_severe


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
    kind: FindingKind | None = None
    """What kind of finding a failure is (an error is always CANNOT_CHECK; a pass none)."""

    def __post_init__(self) -> None:
        if self.verdict is Verdict.ERROR:
            object.__setattr__(self, "kind", FindingKind.CANNOT_CHECK)
        elif self.verdict is Verdict.PASSED:
            object.__setattr__(self, "kind", None)


def label(host: HostSpec, resolution: Resolution | None) -> str:
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
            kind = most_severe(j.kind for _, j in bad if j.kind is not None)
            return Judgement(verdict, message, found, kind)
    message = "\n".join(f"from {v or '(no vantage)'}: {j.message}" for v, j in judgements)
    return Judgement(Verdict.PASSED, message, found)


def today() -> datetime.date:
    """Today, or the date in PORTCHECK_TODAY (ISO), so waivers can be checked against any day."""
    injected = os.environ.get("PORTCHECK_TODAY")
    if injected:
        return datetime.date.fromisoformat(injected)
    return datetime.date.today()
