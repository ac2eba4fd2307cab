"""Findings: what the report writers for code scanning (``sarif``) and monitoring (``metrics``) read of
each judged item, and the kind of finding a failing or erroring item is.

``Outcome`` is structural (a ``typing.Protocol``): the plugin's per-item record and a judged report's
``ExpectationVerdict`` are adapted to it, so the writers depend on no pytest object and no file format.
``FindingKind`` names each kind of finding once; ``classify`` tells it from what an outcome holds,
preferring the kind the judge attached (``Outcome.kind``) and falling back on the found states, which
can tell exposure from unreachability but not one service problem from another.
``service_finding_kind`` is the rule the judge applies when it attaches a kind to a service failure.
It lives in the judge because the judge attaches the kind; the report writers read it from here.
Imports only the standard library (enum, typing); must not import pytest, yaml, the engine, the
report writers or the probes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pytest_portcheck.inventory.model import ServiceRequirement
    from pytest_portcheck.probes.model import ServiceInfo

__all__ = [
    "DeclaringLocation",
    "FindingKind",
    "FoundPort",
    "Outcome",
    "classify",
    "most_severe",
    "service_finding_kind",
]


class FindingKind(str, enum.Enum):
    """One kind of finding, most severe first; its value is the stable part of a SARIF ``ruleId``."""

    UNEXPECTED_OPEN = "unexpected-open-port"
    """A port declared closed, filtered or outside an ``only_open`` list answers (or may: open|filtered)."""
    NO_AUTHENTICATION = "authentication"
    """The service's authentication is not the one declared (``auth: required`` answered without any)."""
    WRONG_SERVICE = "wrong-service"
    """Something else answers on a port declared for a service."""
    TLS = "tls"
    """TLS below the declared minimum version, a certificate that does not verify or expires too soon."""
    PORT_NOT_FILTERED = "port-not-filtered"
    """A port declared filtered is refused: reachable through the firewall, with nothing listening."""
    DECLARED_UNREACHABLE = "declared-port-unreachable"
    """A port declared open is refused or silent."""
    DRIFT = "drift"
    """A failure this version cannot classify: a service failure from a record without a kind (a report
    written before kinds existed), or an expectation it does not know."""
    CANNOT_CHECK = "cannot-check"
    """The item is an error: the evidence could not prove the declaration either way."""

    @property
    def rank(self) -> int:
        """0 for the most severe kind: the order of the declaration."""
        return _RANK[self]


_RANK = {kind: index for index, kind in enumerate(FindingKind)}


class FoundPort(Protocol):
    """What one address showed on one port the item judged (the judgement's ``found`` results)."""

    @property
    def address(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def state(self) -> str:
        """A ``PortState`` value: open, closed, filtered, open|filtered or error."""
        ...


class DeclaringLocation(Protocol):
    """Where a port is declared outside the inventory: a Compose, Kubernetes or Terraform file's line."""

    @property
    def path(self) -> str:
        """Absolute, or relative to the directory the writer is told relative paths start from."""
        ...

    @property
    def line(self) -> int:
        """1-based."""
        ...

    @property
    def description(self) -> str:
        """What declares the port there, for a person (``service web, ports: "8080:80"``)."""
        ...


class Outcome(Protocol):
    """One inventory item's outcome, as the finding writers read it."""

    @property
    def inventory(self) -> str:
        """The inventory file's path, as in the node id (relative to the run's root directory)."""
        ...

    @property
    def nodeid(self) -> str: ...

    @property
    def host(self) -> str:
        """The host's name in the inventory."""
        ...

    @property
    def target(self) -> str:
        """``tcp/22``, or a range's label ``tcp/1-65535``."""
        ...

    @property
    def expected(self) -> str:
        """``open``, ``closed``, ``filtered`` or ``only_open``."""
        ...

    @property
    def vantage(self) -> str | None:
        """The vantage of an entry under ``from: {VANTAGE: ...}``; None for the others."""
        ...

    @property
    def verdict(self) -> str:
        """A ``judge.Verdict`` value: passed, failed, error or waived."""
        ...

    @property
    def message(self) -> str: ...

    @property
    def line(self) -> int:
        """1-based line of the entry in the inventory (0: unknown)."""
        ...

    @property
    def declared_at(self) -> DeclaringLocation | None:
        """Where the port is declared outside the inventory, when a source file declares it."""
        ...

    @property
    def found(self) -> Sequence[FoundPort]:
        """Per address (and, for a range, per port that failed it) what the judgement rests on."""
        ...

    @property
    def kind(self) -> FindingKind | None:
        """The kind the judge attached to a failure (None: not attached; ``classify`` falls back)."""
        ...


_FAILS = {
    # expectation -> the found states that break it (the others are either fine or not the cause)
    "closed": frozenset({"open", "open|filtered"}),
    "only_open": frozenset({"open", "open|filtered"}),
    "filtered": frozenset({"open", "closed"}),
    "open": frozenset({"closed", "filtered", "open|filtered"}),
}


def classify(outcome: Outcome) -> FindingKind | None:
    """The kind of finding an outcome is; None for a pass or a waived failure (not findings).

    An error is CANNOT_CHECK whatever kind was attached. A failure takes the judge's kind when it
    attached one; otherwise: ``open`` with a port that did not answer is DECLARED_UNREACHABLE,
    ``closed``/``only_open`` failing is UNEXPECTED_OPEN, ``filtered`` failing is UNEXPECTED_OPEN when
    an address answered open and PORT_NOT_FILTERED when it only refused. An ``open`` failure whose
    ports all answered is a service problem that the states cannot tell apart: DRIFT.
    """
    if outcome.verdict == "error":
        return FindingKind.CANNOT_CHECK
    if outcome.verdict != "failed":
        return None
    if outcome.kind is not None:
        return outcome.kind
    states = {found.state for found in outcome.found}
    expected = outcome.expected
    if expected == "open":
        return FindingKind.DECLARED_UNREACHABLE if states - {"open"} else FindingKind.DRIFT
    if expected in ("closed", "only_open"):
        return FindingKind.UNEXPECTED_OPEN
    if expected == "filtered":
        return FindingKind.UNEXPECTED_OPEN if "open" in states else FindingKind.PORT_NOT_FILTERED
    return FindingKind.DRIFT


def failing_ports(outcome: Outcome) -> list[FoundPort]:
    """The found entries that break the outcome's expectation (all of them for an unknown one)."""
    breaking = _FAILS.get(outcome.expected)
    if breaking is None:
        return list(outcome.found)
    return [found for found in outcome.found if found.state in breaking]


def most_severe(kinds: Iterable[FindingKind]) -> FindingKind | None:
    """The most severe of several kinds (several addresses may fail one item differently)."""
    return min(kinds, key=_RANK.__getitem__, default=None)


def service_finding_kind(wanted: ServiceRequirement, info: ServiceInfo) -> FindingKind:
    """The kind of a service failure on one address, for the judge to attach: called where
    ``judge.service_problems(wanted, info)`` found problems. Its problems come from three checks in
    this order, and the first that applies names the finding: the service answers as another one
    (WRONG_SERVICE), its authentication is not the declared one (NO_AUTHENTICATION), else a TLS
    requirement failed (TLS) — the only other source of a service problem."""
    if not info.answers_as(wanted.service):
        return FindingKind.WRONG_SERVICE
    if (wanted.auth == "required" and info.auth == "none") or (
        wanted.auth == "none" and info.auth == "required"
    ):
        return FindingKind.NO_AUTHENTICATION
    return FindingKind.TLS
