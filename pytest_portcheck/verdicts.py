"""From inventory to verdicts: one engine run for every declared port, then a verdict per expectation.

``scan_inventory`` resolves each host once and probes every (address, protocol, port) exactly once,
however many hosts or expectations share it. ``judge`` compares what was found with what was
declared and writes the one-paragraph message a person reads in CI. No pytest here: the plugin turns
verdicts into outcomes.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pytest_portcheck.engine import (
    PortState,
    ProbeResult,
    Resolution,
    ScanSettings,
    ScanStats,
    Target,
    resolve_hosts,
    scan,
)
from pytest_portcheck.inventory import Expect, Expectation, HostSpec, RangeRule, ServiceRequirement
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes import ProbeRequest, probe_services
from pytest_portcheck.results import ResultKey, ScanReport
from pytest_portcheck.services import TLS_VERSIONS, ServiceInfo

_SATISFIES = {
    Expect.OPEN: frozenset({PortState.OPEN}),
    Expect.CLOSED: frozenset({PortState.CLOSED, PortState.FILTERED}),
    Expect.FILTERED: frozenset({PortState.FILTERED, PortState.OPEN_FILTERED}),
}
_SILENT = frozenset({PortState.FILTERED, PortState.OPEN_FILTERED})


class Verdict(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    message: str
    found: tuple[ProbeResult, ...]


def scan_inventory(
    pairs: Iterable[tuple[HostSpec, Expectation]],
    *,
    ranges: Iterable[tuple[HostSpec, RangeRule]] = (),
    window: int | None = None,
    all_banners: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ScanReport:
    """Resolve every host once and probe each (address, protocol, port) once, in one engine run per
    distinct (timeout, retries) setting; then run protocol probes on the open ports that declare a
    service (every open port with ``all_banners``)."""
    pairs = list(pairs)
    ranges = list(ranges)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    clock = time.monotonic()
    names = list(dict.fromkeys([host.address for host, _ in pairs] + [host.address for host, _ in ranges]))
    resolutions = resolve_hosts(names)
    addresses = {r.host: r.addresses for r in resolutions}
    settings_of: dict[ResultKey, tuple[float, int]] = {}
    owner: dict[ResultKey, str] = {}

    def want(host: HostSpec, ports: Iterable[tuple[Protocol, int]]) -> None:
        setting = (host.timeout, host.retries)
        for address in addresses[host.address]:
            for proto, port in ports:
                key = (address, proto, port)
                known = settings_of.get(key)
                if known is None:
                    settings_of[key] = setting
                    owner[key] = host.address
                elif known != setting:  # the most patient setting wins for a shared port
                    settings_of[key] = (max(known[0], setting[0]), max(known[1], setting[1]))

    for host, expectation in pairs:
        want(host, [(expectation.proto, expectation.port)])
    for host, rule in ranges:
        want(host, [(rule.proto, port) for port in rule.ports])
    groups: dict[tuple[float, int], list[Target]] = {}
    for key, setting in settings_of.items():
        address, proto, port = key
        groups.setdefault(setting, []).append(Target(owner[key], address, proto, port))
    stats = ScanStats()
    results: list[ProbeResult] = []
    total = sum(len(targets) for targets in groups.values())
    for (timeout, retries), targets in groups.items():
        settings = ScanSettings(timeout=timeout, retries=retries)
        if window is not None:
            settings = ScanSettings(timeout=timeout, retries=retries, window=window)
        for result in scan(targets, settings, stats):
            results.append(result)
            if progress is not None:  # (done, total) after every result: the caller paces redraws
                progress(len(results), total)
    base = ScanSettings() if len(groups) != 1 else ScanSettings(*next(iter(groups)))
    probe_pairs = pairs + [pair for host, _ in ranges for pair in range_pairs(host)] if all_banners else pairs
    wanted = all_banners or any(expectation.service is not None for _, expectation in pairs)
    services = {}
    if wanted:
        services = _probe_open_ports(probe_pairs, addresses, index_results(results), all_banners)
    return ScanReport(resolutions, results, base, started, time.monotonic() - clock, stats, services=services)


def _probe_open_ports(
    pairs: Sequence[tuple[HostSpec, Expectation]],
    addresses: Mapping[str, tuple[str, ...]],
    by_key: Mapping[ResultKey, ProbeResult],
    all_banners: bool,
) -> dict[ResultKey, ServiceInfo]:
    requests: dict[ResultKey, ProbeRequest] = {}
    for host, expectation in pairs:
        wanted = expectation.service
        if wanted is None and not all_banners:
            continue
        for address in addresses[host.address]:
            key = (address, expectation.proto, expectation.port)
            result = by_key.get(key)
            if result is None or result.state is not PortState.OPEN:
                continue
            if key in requests and wanted is None:
                continue  # an expectation that names a service decides how the port is probed
            requests[key] = ProbeRequest(
                address,
                expectation.port,
                expect=wanted.service if wanted else None,
                server_name=None if _is_address(host.address) else host.address,
                verify_tls=bool(wanted and wanted.tls and wanted.tls.verify),
            )
    keys = list(requests)
    return dict(zip(keys, probe_services(requests[key] for key in keys), strict=True))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        return False
    return True


def index_results(results: Iterable[ProbeResult]) -> dict[ResultKey, ProbeResult]:
    return {(r.address, r.proto, r.port): r for r in results if r.address is not None}


def silent_hosts(
    hosts: Iterable[HostSpec], resolutions: Mapping[str, Resolution], by_key: Mapping[ResultKey, ProbeResult]
) -> set[str]:
    """Names of hosts that resolved, were probed, and on which no port answered at all."""
    silent: set[str] = set()
    for host in hosts:
        resolution = resolutions.get(host.address)
        if resolution is None or resolution.error is not None:
            continue
        found = [
            by_key.get((address, e.proto, e.port))
            for address in resolution.addresses
            for e in host.expectations
        ]
        states = {result.state for result in found if result is not None}
        if states and states <= _SILENT:
            silent.add(host.name)
    return silent


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
    if result.reason == "no-response":
        wait = f" ({timeout:g} s timeout)" if timeout else ""
        how = f"no-response after {result.attempts} attempt(s){wait}"
    elif result.latency_ms is not None:
        how = f"{result.reason} in {result.latency_ms:.1f} ms"
    else:
        how = result.reason
    service = f" ({result.service})" if result.service != "unknown" else ""
    return f"{result.state.value.upper()} — {how}{service}"


def judge(
    host: HostSpec,
    expectation: Expectation,
    resolution: Resolution | None,
    by_key: Mapping[ResultKey, ProbeResult],
    *,
    silent: bool = False,
    strict: bool = False,
    services: Mapping[ResultKey, ServiceInfo] | None = None,
) -> Judgement:
    """The verdict of one expectation: every resolved address of the host must satisfy it."""
    where = f"{_label(host, resolution)} {expectation.proto.value}/{expectation.port}"
    if resolution is None:
        return Judgement(Verdict.ERROR, f"{where}: cannot check — the host was not scanned", ())
    if resolution.error is not None:
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {resolution.error}", ())
    found: list[ProbeResult] = []
    for address in resolution.addresses:
        result = by_key.get((address, expectation.proto, expectation.port))
        if result is None:
            return Judgement(Verdict.ERROR, f"{where}: cannot check — {address} was not scanned", ())
        found.append(result)
    errors = [r for r in found if r.state is PortState.ERROR]
    if errors:
        lines = [f"{where}: cannot check {r.address} — {r.reason}" for r in errors]
        return Judgement(Verdict.ERROR, "\n".join(lines), tuple(found))
    if silent and strict:
        message = f"{where}: no port of this host answered — is the address right? (--portcheck-strict)"
        return Judgement(Verdict.ERROR, message, tuple(found))
    wanted = _SATISFIES[expectation.expect]
    if expectation.silence_counts_as_closed:
        wanted = wanted | {PortState.OPEN_FILTERED}
    wrong = [r for r in found if r.state not in wanted]
    if not wrong and expectation.service is not None:
        return _judge_service(where, expectation.service, found, services or {})
    if not wrong:
        return Judgement(Verdict.PASSED, f"{where}: {expectation.expect.value} as expected", tuple(found))
    lines = []
    for result in wrong:
        on = f" on {result.address}" if len(found) > 1 else ""
        line = f"{where}: expected {expectation.expect.value}, found {describe(result, host.timeout)}{on}"
        if expectation.expect is Expect.FILTERED and result.state is PortState.CLOSED:
            line += " — the port is reachable through the firewall"
        if result.state is PortState.OPEN_FILTERED and expectation.expect is Expect.CLOSED:
            line += (
                " — no reply and no ICMP error: a silent service or a drop, silence proves nothing; "
                "declare it filtered:, or set silence_counts_as_closed: true to accept it"
            )
        if result.state is PortState.OPEN_FILTERED and expectation.expect is Expect.OPEN:
            line += " — a UDP port proves open only by replying"
        lines.append(line)
    return Judgement(Verdict.FAILED, "\n".join(lines), tuple(found))


def _judge_service(
    where: str,
    wanted: ServiceRequirement,
    found: Sequence[ProbeResult],
    services: Mapping[ResultKey, ServiceInfo],
) -> Judgement:
    problems: list[str] = []
    errors: list[str] = []
    for result in found:
        on = f" on {result.address}" if len(found) > 1 else ""
        info = services.get((result.address or "", result.proto, result.port))
        if info is None:
            errors.append(f"{where}: cannot check the service{on} — the port was not probed")
            continue
        for problem in service_problems(wanted, info):
            problems.append(f"{where}: {problem}{on}")
    if errors:
        return Judgement(Verdict.ERROR, "\n".join(errors), tuple(found))
    if problems:
        return Judgement(Verdict.FAILED, "\n".join(problems), tuple(found))
    return Judgement(Verdict.PASSED, f"{where}: open, {wanted.service} as expected", tuple(found))


def service_problems(wanted: ServiceRequirement, info: ServiceInfo) -> list[str]:
    """Why what answered does not meet the requirement (empty when it does)."""
    accepted = {"tls": ("tls", "https")}.get(wanted.service, (wanted.service,))
    if info.service not in accepted:
        return [f"expected {wanted.service}, found {info.describe()}"]
    problems = []
    if wanted.tls is not None and info.tls is not None:
        tls = info.tls
        if wanted.tls.min_version and TLS_VERSIONS.index(wanted.tls.min_version) > _tls_rank(tls.version):
            problems.append(f"TLS version {tls.version} is below the minimum {wanted.tls.min_version}")
        if wanted.tls.expires_in_days is not None and tls.days_left < wanted.tls.expires_in_days:
            problems.append(
                f"certificate ({tls.subject}) expires in {tls.days_left} days ({tls.not_after}), "
                f"sooner than the {wanted.tls.expires_in_days} days required"
            )
    if wanted.tls is not None and wanted.tls.verify and info.tls is None:
        problems.append(f"TLS verification failed: {info.error or info.describe()}")
    if wanted.auth == "required" and info.auth == "none":
        problems.append("Redis answered PING without authentication (auth: required)")
    if wanted.auth == "none" and info.auth == "required":
        problems.append("Redis requires authentication (auth: none was declared)")
    return problems


def _tls_rank(version: str) -> int:
    return TLS_VERSIONS.index(version) if version in TLS_VERSIONS else -1


def range_pairs(host: HostSpec) -> list[tuple[HostSpec, Expectation]]:
    """What a host's ``only_open`` range asks the scanner for: every other port of the range."""
    rule = host.range_rule
    if rule is None:
        return []
    return [(host, Expectation(host.name, rule.proto, port, Expect.CLOSED, rule.line)) for port in rule.ports]


def judge_range(
    host: HostSpec,
    rule: RangeRule,
    resolution: Resolution | None,
    by_key: Mapping[ResultKey, ProbeResult],
    services: Mapping[ResultKey, ServiceInfo] | None = None,
) -> Judgement:
    """``only_open``: no port of the range but the listed ones may be open, on any address."""
    where = f"{_label(host, resolution)} {rule.label}"
    if resolution is None or resolution.error is not None:
        why = resolution.error if resolution is not None else "the host was not scanned"
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {why}", ())
    services = services or {}
    lines: list[str] = []
    errors: list[str] = []
    unexpected: list[ProbeResult] = []
    for address in resolution.addresses:
        opened: list[str] = []
        failed: dict[str, int] = {}
        for port in rule.ports:
            result = by_key.get((address, rule.proto, port))
            if result is None:
                failed["not scanned"] = failed.get("not scanned", 0) + 1
            elif result.state is PortState.ERROR:
                failed[result.reason] = failed.get(result.reason, 0) + 1
            elif result.state is PortState.OPEN:
                unexpected.append(result)
                info = services.get((address, rule.proto, port))
                opened.append(f"{port} ({info.describe() if info else result.service})")
        errors += [
            f"{where}: cannot check {count} port(s) of {address} — {why}" for why, count in failed.items()
        ]
        if opened:
            on = f" on {address}" if len(resolution.addresses) > 1 else ""
            lines.append(
                f"{host.name}: {len(opened)} unexpected open port(s) in {rule.label}{on}: {', '.join(opened)}"
            )
    if errors:
        return Judgement(Verdict.ERROR, "\n".join(errors), tuple(unexpected))
    if lines:
        return Judgement(Verdict.FAILED, "\n".join(lines), tuple(unexpected))
    return Judgement(Verdict.PASSED, f"{where}: nothing else open", ())


def today() -> datetime.date:
    """Today, or the date in PORTCHECK_TODAY (ISO), so waivers can be checked against any day."""
    injected = os.environ.get("PORTCHECK_TODAY")
    if injected:
        return datetime.date.fromisoformat(injected)
    return datetime.date.today()
