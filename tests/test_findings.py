"""The kinds of finding: what a failing or erroring item is, from the kind the judge attached or, without
one, from what its addresses showed; and the rule the judge uses to attach a service failure's kind."""

from __future__ import annotations

from dataclasses import replace

import pytest
from outcomes import Found, Item, port

from pytest_portcheck.inventory.model import ServiceRequirement, TlsRequirement
from pytest_portcheck.judge.expectation import service_problems
from pytest_portcheck.judge.findings import (
    FindingKind,
    classify,
    failing_ports,
    most_severe,
    service_finding_kind,
)
from pytest_portcheck.probes.model import ServiceInfo, TlsInfo

K = FindingKind


@pytest.mark.parametrize(
    ("expected", "states", "kind"),
    [
        ("open", ("closed",), K.DECLARED_UNREACHABLE),
        ("open", ("filtered",), K.DECLARED_UNREACHABLE),
        ("open", ("open", "open|filtered"), K.DECLARED_UNREACHABLE),  # one address of two is silent
        ("open", ("open",), K.DRIFT),  # all open, yet failed: a service problem the states cannot name
        ("closed", ("open",), K.UNEXPECTED_OPEN),
        ("closed", ("closed", "open|filtered"), K.UNEXPECTED_OPEN),  # UDP silence proves nothing
        ("only_open", ("open",), K.UNEXPECTED_OPEN),
        ("filtered", ("closed",), K.PORT_NOT_FILTERED),
        ("filtered", ("closed", "open"), K.UNEXPECTED_OPEN),
        ("something new", ("open",), K.DRIFT),
    ],
)
def test_a_failure_without_a_kind_is_told_from_its_states(expected: str, states: tuple[str, ...], kind: FindingKind) -> None:
    assert classify(port("web", 22, expected, "failed", *states)) is kind


def test_the_judges_kind_is_taken_and_an_error_is_always_cannot_check() -> None:
    item = port("web", 443, "open", "failed", "open", kind=FindingKind.TLS)
    assert classify(item) is FindingKind.TLS
    assert classify(replace(item, verdict="error")) is FindingKind.CANNOT_CHECK
    assert classify(port("ghost", 22, "closed", "error")) is FindingKind.CANNOT_CHECK


@pytest.mark.parametrize("verdict", ["passed", "waived"])
def test_passes_and_waived_failures_are_not_findings(verdict: str) -> None:
    assert classify(port("web", 22, "closed", verdict, "open", kind=FindingKind.UNEXPECTED_OPEN)) is None


def test_the_ports_that_break_a_declaration() -> None:
    item = port("web", 22, "closed", "failed", "open", "closed", "open|filtered", "filtered")
    assert [found.address for found in failing_ports(item)] == ["10.0.0.1", "10.0.0.3"]
    edge = Item("edge", "tcp/1-100", "only_open", "failed", found=(Found("10.0.0.9", 80, "open"),))
    assert failing_ports(edge) == [Found("10.0.0.9", 80, "open")]


def test_the_most_severe_kind_comes_first_in_the_declaration() -> None:
    assert most_severe([K.TLS, K.CANNOT_CHECK, K.NO_AUTHENTICATION]) is K.NO_AUTHENTICATION
    assert most_severe([]) is None
    assert [kind.rank for kind in FindingKind] == list(range(len(FindingKind)))


def tls(version: str = "TLSv1.3", days_left: int = 90, verified: bool = True) -> TlsInfo:
    return TlsInfo(version, "TLS_AES_128_GCM_SHA256", "CN=web", "CN=ca", "2027-01-01T00:00:00+00:00", days_left, verified)


STRICT_TLS = TlsRequirement(min_version="TLSv1.2", expires_in_days=14, verify=True)


@pytest.mark.parametrize(
    ("wanted", "info", "kind"),
    [
        (ServiceRequirement("ssh"), ServiceInfo("http", "HTTP/1.1 200 OK"), K.WRONG_SERVICE),
        (ServiceRequirement("https", STRICT_TLS), ServiceInfo("http", "HTTP/1.1 200 OK"), K.WRONG_SERVICE),
        (ServiceRequirement("redis", auth="required"), ServiceInfo("redis", "+PONG", auth="none"), K.NO_AUTHENTICATION),
        (ServiceRequirement("redis", auth="none"), ServiceInfo("redis", "-NOAUTH", auth="required"), K.NO_AUTHENTICATION),
        (ServiceRequirement("https", STRICT_TLS), ServiceInfo("https", "", tls=tls("TLSv1.1")), K.TLS),
        (ServiceRequirement("https", STRICT_TLS), ServiceInfo("https", "", tls=tls(days_left=3)), K.TLS),
        (ServiceRequirement("https", STRICT_TLS), ServiceInfo("https", "", tls=tls(verified=False)), K.TLS),
        (ServiceRequirement("tls", STRICT_TLS), ServiceInfo("tls", "", error="handshake failed"), K.TLS),
        # Two problems at once: the more severe names the finding.
        (ServiceRequirement("redis", STRICT_TLS, auth="required"), ServiceInfo("redis", "+PONG", tls=tls("TLSv1"), auth="none"), K.NO_AUTHENTICATION),
    ],
)
def test_a_service_failures_kind_follows_the_judges_own_checks(wanted: ServiceRequirement, info: ServiceInfo, kind: FindingKind) -> None:
    assert service_problems(wanted, info)  # the judge fails it: only then is a kind attached
    assert service_finding_kind(wanted, info) is kind
