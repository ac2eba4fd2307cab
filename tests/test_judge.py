"""The judge's pure functions: verdicts from results, without sockets; and, through the plugin, a
verdict the engine's evidence must reach whole (a stuck listener)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace

import pytest
from conftest import portcheck, unused_port

from pytest_portcheck.engine import PortState, ProbeResult, Reason, Resolution
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.inventory.model import (
    Expect,
    Expectation,
    HostSpec,
    RangeRule,
    ServiceRequirement,
    TlsRequirement,
)
from pytest_portcheck.judge.evidence import ScanEvidence
from pytest_portcheck.judge.expectation import judge, service_problems
from pytest_portcheck.judge.ranges import judge_range
from pytest_portcheck.judge.silence import silence_message, silent_addresses, silent_hosts, silent_of
from pytest_portcheck.judge.verdict import Verdict
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo, TlsInfo

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
    from pytest_portcheck.pipeline.probe import _one_answer
    from pytest_portcheck.probes.connection import ProbeRequest

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


# --- a socket listens, but the handshake does not complete (issue 18, part 9) ------------------


def stuck(address: str, port: int) -> ProbeResult:
    return ProbeResult(address, address, Protocol.TCP, port, PortState.FILTERED, Reason.LISTEN_NO_ACCEPT, 600.0, 2)


def test_a_listener_that_does_not_answer_is_exposure_for_closed_and_filtered() -> None:
    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    found = {("127.0.0.1", Protocol.TCP, 22): stuck("127.0.0.1", 22)}
    for expect in (Expect.CLOSED, Expect.FILTERED, Expect.OPEN):
        expectation = Expectation("box", Protocol.TCP, 22, expect, 4)
        host = HostSpec("box", "127.0.0.1", 1.0, 1, (expectation,), 2)
        judgement = judge(host, expectation, seen(resolution, found))
        assert judgement.verdict is Verdict.FAILED, expect
        assert "found FILTERED — listen-no-accept after 2 attempt(s)" in judgement.message
        if expect is not Expect.OPEN:
            assert "a socket listens there: the port is exposed even though it does not answer now" in (
                judgement.message
            )
    # Plain silence still satisfies closed: and filtered:, as before.
    silent = {("127.0.0.1", Protocol.TCP, 22): replace(stuck("127.0.0.1", 22), reason=Reason.NO_RESPONSE)}
    for expect in (Expect.CLOSED, Expect.FILTERED):
        expectation = Expectation("box", Protocol.TCP, 22, expect, 4)
        host = HostSpec("box", "127.0.0.1", 1.0, 1, (expectation,), 2)
        assert judge(host, expectation, seen(resolution, silent)).verdict is Verdict.PASSED


def test_only_open_range_fails_on_a_listener_that_does_not_answer() -> None:
    rule = RangeRule("box", Protocol.TCP, (20, 21, 23), "tcp/20-23", 3)
    host = HostSpec("box", "127.0.0.1", 1.0, 1, (), 2, rule)
    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    found = {(r.address or "", r.proto, r.port): r for r in [
        result("127.0.0.1", 20, PortState.CLOSED), stuck("127.0.0.1", 21), result("127.0.0.1", 23, PortState.FILTERED),
    ]}  # fmt: skip
    judgement = judge_range(host, rule, seen(resolution, found))
    assert judgement.verdict is Verdict.FAILED
    assert judgement.message == (
        "box: 1 port(s) in tcp/20-23 where a socket listens but did not complete the handshake "
        "(listen-no-accept): 21 — exposed even though they do not answer now"
    )
    assert judgement.found == (found[("127.0.0.1", Protocol.TCP, 21)],)


STUCK_INVENTORY = """\
defaults:
  timeout: 0.2
  retries: 0
hosts:
  stuck:
    address: 127.0.0.1
    closed: [{port}, {unused}]
  guarded:
    address: 127.0.0.1
    filtered: [{port}]
  rest:
    address: 127.0.0.1
    only_open: []
    range: "{unused},{port}"
"""


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("judging", [False, True], ids=["scan", "judge-reports"])
def test_a_stuck_listener_fails_closed_filtered_and_only_open_through_the_plugin(
    pytester: pytest.Pytester, silent_port: int, strict: bool, judging: bool
) -> None:
    # The false pass of the issue: a 0.0.0.0 listener whose queue is full met only silence, and
    # closed: passed, even with --portcheck-strict. The address answered elsewhere (a refused port),
    # so no "nothing answered" rule stands in for the verdict. Judged from a shard report, the same.
    unused = unused_port()
    pytester.makefile(".yml", inventory=STUCK_INVENTORY.format(port=silent_port, unused=unused))
    flags = ["--portcheck-strict"] if strict else []
    if judging:
        shard = portcheck("scan", "--inventory", "inventory.yml", "--shard", "1/1", "--json", "shard.json",
                          cwd=pytester.path)  # fmt: skip
        assert shard.returncode == 0, shard.stdout + shard.stderr
        flags += ["--portcheck-results", "shard.json", "-p", "no:cacheprovider"]
    run = pytester.runpytest
    result = run(
        "--portcheck", "inventory.yml", "--portcheck-markdown", "summary.md", "--portcheck-html", "page.html",
        "--portcheck-report", "report.json", *flags,
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            f"*stuck (127.0.0.1) tcp/{silent_port}: expected closed, found FILTERED — listen-no-accept after 1 "
            "attempt(s)* — a socket listens there: the port is exposed even though it does not answer now",
            f"*guarded (127.0.0.1) tcp/{silent_port}: expected filtered, found FILTERED — listen-no-accept*",
            "*rest: 1 port(s) in tcp/* where a socket listens but did not complete the "
            f"handshake (listen-no-accept): {silent_port} — exposed even though they do not answer now",
        ],
        consecutive=False,
    )
    markdown = (pytester.path / "summary.md").read_text()
    assert f"tcp/{silent_port}: expected closed, found FILTERED — listen-no-accept" in markdown
    page = (pytester.path / "page.html").read_text()
    data = json.loads(re.search(r'id="portcheck-data"[^>]*>(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert "listen-no-accept" in json.dumps(data)  # the verdicts' messages name it
    if judging:
        return  # the judge of reports writes no scan results of its own
    assert '"reason": "listen-no-accept"' in json.dumps(data)  # and the port's details
    report = json.loads((pytester.path / "report.json").read_text())
    assert {(r["port"], r["state"], r["reason"]) for r in report["results"]} >= {
        (silent_port, "filtered", "listen-no-accept")
    }


@pytest.mark.parametrize("judging", [False, True], ids=["scan", "judge-reports"])
def test_a_stuck_listener_alone_on_its_address_is_never_a_pass(
    pytester: pytest.Pytester, silent_port: int, judging: bool
) -> None:
    # Nothing else answered on the address: without --portcheck-strict the items fail on the listener
    # (and the summary warns); with it, they are the "nothing answered" errors. From a shard report,
    # where the listener's port is all the range holds on its address, the same.
    pytester.makefile(
        ".yml",
        inventory=f"defaults:\n  timeout: 0.2\n  retries: 0\nhosts:\n  quiet:\n    address: 127.0.0.1\n"
        f"    closed: [{silent_port}]\n  rest:\n    address: 127.0.0.1\n    only_open: []\n"
        f'    range: "{silent_port}"\n',  # a port declared closed: is not judged again by the range
    )
    flags: list[str] = []
    if judging:
        shard = portcheck("scan", "--inventory", "inventory.yml", "--shard", "1/1", "--json", "shard.json",
                          cwd=pytester.path)  # fmt: skip
        assert shard.returncode == 0, shard.stdout + shard.stderr
        flags += ["--portcheck-results", "shard.json", "-p", "no:cacheprovider"]
    run = pytester.runpytest
    relaxed = run("--portcheck", "inventory.yml", *flags)
    relaxed.assert_outcomes(failed=2)
    relaxed.stdout.fnmatch_lines(
        ["WARNING: inventory.yml::quiet: no port answered on 127.0.0.1 — is the address right?*"]
    )
    run("--portcheck", "inventory.yml", "--portcheck-strict", *flags).assert_outcomes(errors=2)


# --- the kind of finding, attached by the judge (issue 20) ----------------------------------------


def test_the_judge_attaches_the_kind_of_finding_to_each_failure() -> None:
    from pytest_portcheck.judge.findings import FindingKind

    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    host, _ = _box()

    def kind_of(expect: Expect, state: PortState, service: ServiceRequirement | None = None) -> object:
        expectation = Expectation("box", Protocol.TCP, 22, expect, 4, service)
        found = {("127.0.0.1", Protocol.TCP, 22): result("127.0.0.1", 22, state)}
        return judge(host, expectation, seen(resolution, found)).kind

    assert kind_of(Expect.OPEN, PortState.CLOSED) is FindingKind.DECLARED_UNREACHABLE
    assert kind_of(Expect.CLOSED, PortState.OPEN) is FindingKind.UNEXPECTED_OPEN
    assert kind_of(Expect.FILTERED, PortState.OPEN) is FindingKind.UNEXPECTED_OPEN
    assert kind_of(Expect.FILTERED, PortState.CLOSED) is FindingKind.PORT_NOT_FILTERED
    assert kind_of(Expect.OPEN, PortState.OPEN) is None  # a pass is no finding
    assert kind_of(Expect.CLOSED, PortState.ERROR) is FindingKind.CANNOT_CHECK
    # A service failure: the kind says which requirement failed, not the port's state.
    expectation = Expectation("box", Protocol.TCP, 22, Expect.OPEN, 4, ServiceRequirement("ssh"))
    key = ("127.0.0.1", Protocol.TCP, 22)
    evidence = ScanEvidence(
        {key: result("127.0.0.1", 22, PortState.OPEN)},
        {"127.0.0.1": resolution},
        {key: ServiceInfo("http", "HTTP/1.1 200 OK")},
    )
    judgement = judge(host, expectation, evidence)
    assert judgement.verdict is Verdict.FAILED and judgement.kind is FindingKind.WRONG_SERVICE
    rule = RangeRule("box", Protocol.TCP, (21,), "tcp/21", 3)
    ranged = HostSpec("box", "127.0.0.1", 1.0, 1, (), 2, rule)
    found = {("127.0.0.1", Protocol.TCP, 21): result("127.0.0.1", 21, PortState.OPEN)}
    assert judge_range(ranged, rule, seen(resolution, found)).kind is FindingKind.UNEXPECTED_OPEN


def test_a_source_declared_port_names_its_source_line_and_a_range_names_none() -> None:
    from pytest_portcheck.inventory.sources import Origin

    origin = Origin("deploy/compose.yml", 7, 'service web ports[0] "8080:80"', "web")
    expectation = Expectation("box", Protocol.TCP, 8080, Expect.OPEN, 4, declared_at=origin)
    host = HostSpec("box", "127.0.0.1", 1.0, 1, (expectation,), 2)
    resolution = Resolution("127.0.0.1", ("127.0.0.1",))
    found = {("127.0.0.1", Protocol.TCP, 8080): result("127.0.0.1", 8080, PortState.CLOSED)}
    judgement = judge(host, expectation, seen(resolution, found))
    assert judgement.verdict is Verdict.FAILED
    assert 'declared by deploy/compose.yml:7: service web ports[0] "8080:80"' in judgement.message.split("\n")[0]
    found[("127.0.0.1", Protocol.TCP, 8080)] = result("127.0.0.1", 8080, PortState.OPEN)
    assert "deploy/compose.yml:7" in judge(host, expectation, seen(resolution, found)).message
    rule = RangeRule("box", Protocol.TCP, (21,), "tcp/21", 3, declared_by=("deploy/compose.yml",))
    ranged = HostSpec("box", "127.0.0.1", 1.0, 1, (), 2, rule)
    found = {("127.0.0.1", Protocol.TCP, 21): result("127.0.0.1", 21, PortState.OPEN)}
    message = judge_range(ranged, rule, seen(resolution, found)).message
    assert "21 (ftp): open, declared by no source (deploy/compose.yml)" in message
