"""The judge's pure functions: verdicts from results, without sockets."""

from __future__ import annotations

from collections.abc import Mapping

from pytest_portcheck.engine import PortState, ProbeResult, Resolution
from pytest_portcheck.evidence import ScanEvidence
from pytest_portcheck.inventory import (
    Expect,
    Expectation,
    HostSpec,
    RangeRule,
    ServiceRequirement,
    TlsRequirement,
)
from pytest_portcheck.judge import (
    Verdict,
    judge,
    judge_range,
    service_problems,
    silence_message,
    silent_addresses,
    silent_hosts,
    silent_of,
)
from pytest_portcheck.ports import Protocol
from pytest_portcheck.record import replace
from pytest_portcheck.results import ResultKey
from pytest_portcheck.services import ServiceInfo, TlsInfo

CERTIFICATE = TlsInfo(
    "TLSv1.3", "TLS_AES_256_GCM_SHA384", "CN=web", "CN=web", "2027-11-27T00:00:00+00:00", 365, False
)


def result(address: str, port: int, state: PortState, proto: Protocol = Protocol.TCP) -> ProbeResult:
    return ProbeResult(address, address, proto, port, state, "x")


def seen(
    resolution: Resolution | None, found: Mapping[ResultKey, ProbeResult], silent: tuple[str, ...] = ()
) -> ScanEvidence:
    """A scan's evidence, without a vantage: what the judge reads."""
    resolutions = {} if resolution is None else {resolution.host: resolution}
    return ScanEvidence(found, resolutions, silent_addresses=frozenset(silent))


def test_verify_needs_a_verified_handshake() -> None:
    wanted = ServiceRequirement("https", TlsRequirement(verify=True))
    unverified = ServiceInfo("https", "HTTP/1.1 200 OK", tls=CERTIFICATE)
    assert service_problems(wanted, unverified) == [
        "TLS verification failed: the certificate was not verified"
    ]
    verified = ServiceInfo("https", "HTTP/1.1 200 OK", tls=replace(CERTIFICATE, verified=True))
    assert service_problems(wanted, verified) == []


def test_a_tls_requirement_without_a_certificate_fails() -> None:
    wanted = ServiceRequirement("tls", TlsRequirement(expires_in_days=14))
    problems = service_problems(
        wanted, ServiceInfo("tls", "", error="the answer depends on the name asked for")
    )
    assert problems and problems[0].startswith("no TLS certificate to check")


def test_silent_addresses_count_every_probed_port() -> None:
    results = [
        result("10.0.0.1", 22, PortState.FILTERED),
        result("10.0.0.1", 80, PortState.CLOSED),
        result("10.0.0.2", 22, PortState.FILTERED),
        result("10.0.0.2", 53, PortState.OPEN_FILTERED, Protocol.UDP),
        result("10.0.0.3", 22, PortState.ERROR),
    ]
    assert silent_addresses(results) == {"10.0.0.2"}


def test_silent_hosts_gather_what_each_item_was_judged_once_per_address() -> None:
    silent = silent_addresses([
        result("10.0.0.1", 22, PortState.FILTERED), result("10.0.0.1", 23, PortState.OPEN_FILTERED, Protocol.UDP),
        result("10.0.0.2", 22, PortState.CLOSED), result("10.0.0.3", 22, PortState.FILTERED),
    ])  # fmt: skip
    web = silent_of(Resolution("web", ("10.0.0.3", "10.0.0.2", "10.0.0.1")), silent)
    assert web == ("10.0.0.3", "10.0.0.1")  # resolver order; 10.0.0.2 refused, so it answered
    assert silent_of(Resolution("gone", (), "dns-error: x"), silent) == ()
    items = [(("a.yml", "web"), web), (("a.yml", "db"), ()), (("a.yml", "web"), ("10.0.0.1",)),
             (("b.yml", "web"), ("10.0.0.1",))]  # fmt: skip
    # Keyed as the caller names hosts: two inventories' "web" stay two; a host with no silence is absent.
    assert silent_hosts(items) == {
        ("a.yml", "web"): ("10.0.0.3", "10.0.0.1"),
        ("b.yml", "web"): ("10.0.0.1",),
    }
    assert silent_hosts([]) == {}
    assert silence_message("a.yml::web", ("10.0.0.3", "10.0.0.1")) == (
        "a.yml::web: no port answered on 10.0.0.3, 10.0.0.1 — is the address right?"
    )


def test_udp_range_fails_on_silence_unless_it_counts_as_closed() -> None:
    found = {(r.address or "", r.proto, r.port): r for r in [
        result("127.0.0.1", 7, PortState.CLOSED, Protocol.UDP),
        result("127.0.0.1", 8, PortState.OPEN_FILTERED, Protocol.UDP),
    ]}  # fmt: skip
    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    for relaxed, verdict in ((False, Verdict.FAILED), (True, Verdict.PASSED)):
        rule = RangeRule("box", Protocol.UDP, (7, 8), "udp/7-8", 3, relaxed)
        host = HostSpec("box", "127.0.0.1", 1.0, 1, (), 2, rule)
        assert judge_range(host, rule, seen(resolution, found)).verdict is verdict
    strict = judge_range(host, rule, seen(resolution, found, silent=("127.0.0.1",)), strict=True)
    assert strict.verdict is Verdict.ERROR and "no port answered on 127.0.0.1" in strict.message


def test_nothing_checked_is_never_a_pass() -> None:
    rule = RangeRule("box", Protocol.TCP, (1,), "tcp/1", 3)
    expectation = Expectation("box", Protocol.TCP, 5432, Expect.CLOSED, 3)
    host = HostSpec("box", "box.example", 1.0, 1, (expectation,), 2, rule)
    nowhere = Resolution("box.example", ())
    assert judge(host, expectation, seen(nowhere, {})).verdict is Verdict.ERROR
    assert judge_range(host, rule, seen(nowhere, {})).verdict is Verdict.ERROR


def test_names_on_one_port_merge_verification_per_name() -> None:
    from pytest_portcheck.probes import ProbeRequest
    from pytest_portcheck.scanning import _one_answer

    verified = ServiceInfo("tls", "", tls=replace(CERTIFICATE, verified=True))
    plain = ServiceInfo("tls", "", tls=CERTIFICATE)
    mismatch = ServiceInfo(
        "tls", "", tls=CERTIFICATE, error="certificate verification failed: hostname mismatch"
    )
    a = ProbeRequest("10.0.0.1", 443, "tls", "a.test", True)
    b_plain, b_verify = (
        ProbeRequest("10.0.0.1", 443, "tls", "b.test", False),
        replace(a, server_name="b.test"),
    )
    # b.test did not ask for verification: a.test's verified handshake stands
    merged = _one_answer([(a, verified), (b_plain, plain)])
    assert merged.tls is not None and merged.tls.verified and merged.error is None
    # b.test asked and failed: nobody's verify requirement may pass on a.test's success
    merged = _one_answer([(a, verified), (b_verify, mismatch)])
    assert merged.tls is not None and not merged.tls.verified
    assert merged.error == "as b.test: certificate verification failed: hostname mismatch"
    # different certificates under different names: no single answer
    other = ServiceInfo("tls", "", tls=replace(CERTIFICATE, subject="CN=other"))
    assert "depends on the name" in (_one_answer([(a, verified), (b_plain, other)]).error or "")


def _box(address: str = "127.0.0.1") -> tuple[HostSpec, Expectation]:
    expectation = Expectation("box", Protocol.TCP, 22, Expect.OPEN, 4)
    return HostSpec("box", address, 1.0, 1, (expectation,), 2), expectation


def test_judge_passes_only_when_every_address_satisfies_the_expectation() -> None:
    host, expectation = _box("box.example")
    both = Resolution("box.example", ("10.0.0.1", "10.0.0.2"))
    found = {(r.address or "", r.proto, r.port): r for r in [
        result("10.0.0.1", 22, PortState.OPEN),
        result("10.0.0.2", 22, PortState.CLOSED),
    ]}  # fmt: skip
    judgement = judge(host, expectation, seen(both, found))
    assert judgement.verdict is Verdict.FAILED
    assert "expected open, found CLOSED" in judgement.message and "on 10.0.0.2" in judgement.message
    found[("10.0.0.2", Protocol.TCP, 22)] = result("10.0.0.2", 22, PortState.OPEN)
    assert judge(host, expectation, seen(both, found)).verdict is Verdict.PASSED


def test_our_own_failure_is_an_error_never_a_pass() -> None:
    host, _ = _box()
    closed = Expectation("box", Protocol.TCP, 22, Expect.CLOSED, 4)
    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    failed = ProbeResult("127.0.0.1", "127.0.0.1", Protocol.TCP, 22, PortState.ERROR, "EMFILE")
    judgement = judge(host, closed, seen(resolution, {("127.0.0.1", Protocol.TCP, 22): failed}))
    assert judgement.verdict is Verdict.ERROR and "EMFILE" in judgement.message
    # An address the scan never reached is an error too, not a silent pass.
    assert judge(host, closed, seen(resolution, {})).verdict is Verdict.ERROR
    assert judge(host, closed, seen(None, {})).verdict is Verdict.ERROR


def test_strict_silence_is_an_error_and_filtered_satisfies_closed_otherwise() -> None:
    host, _ = _box()
    closed = Expectation("box", Protocol.TCP, 22, Expect.CLOSED, 4)
    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    found = {("127.0.0.1", Protocol.TCP, 22): result("127.0.0.1", 22, PortState.FILTERED)}
    assert judge(host, closed, seen(resolution, found)).verdict is Verdict.PASSED
    strict = judge(host, closed, seen(resolution, found, silent=("127.0.0.1",)), strict=True)
    assert strict.verdict is Verdict.ERROR and "--portcheck-strict" in strict.message


def test_a_filtered_expectation_names_a_reachable_port() -> None:
    host, _ = _box()
    filtered = Expectation("box", Protocol.TCP, 22, Expect.FILTERED, 4)
    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    found = {("127.0.0.1", Protocol.TCP, 22): result("127.0.0.1", 22, PortState.CLOSED)}
    judgement = judge(host, filtered, seen(resolution, found))
    assert judgement.verdict is Verdict.FAILED and "reachable through the firewall" in judgement.message


def test_only_open_range_fails_on_an_unexpected_open_port() -> None:
    rule = RangeRule("box", Protocol.TCP, (20, 21, 23), "tcp/20-23", 3)
    host = HostSpec("box", "127.0.0.1", 1.0, 1, (), 2, rule)
    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    found = {(r.address or "", r.proto, r.port): r for r in [
        result("127.0.0.1", 20, PortState.CLOSED),
        result("127.0.0.1", 21, PortState.OPEN),
        result("127.0.0.1", 23, PortState.CLOSED),
    ]}  # fmt: skip
    judgement = judge_range(host, rule, seen(resolution, found))
    assert judgement.verdict is Verdict.FAILED and "21" in judgement.message
    found[("127.0.0.1", Protocol.TCP, 21)] = result("127.0.0.1", 21, PortState.CLOSED)
    assert judge_range(host, rule, seen(resolution, found)).verdict is Verdict.PASSED
    # A port of the range the scan did not cover is not a pass.
    del found[("127.0.0.1", Protocol.TCP, 23)]
    assert judge_range(host, rule, seen(resolution, found)).verdict is not Verdict.PASSED


def test_a_service_requirement_fails_on_another_service() -> None:
    wanted = ServiceRequirement("ssh")
    assert service_problems(wanted, ServiceInfo("ssh", "SSH-2.0-OpenSSH_9.2p1")) == []
    assert service_problems(wanted, ServiceInfo("http", "HTTP/1.1 200 OK"))
