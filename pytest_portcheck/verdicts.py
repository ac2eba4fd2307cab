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
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from pytest_portcheck.engine import (
    AddressQuality,
    PortState,
    ProbeResult,
    Reason,
    Resolution,
    ScanSettings,
    ScanStats,
    Target,
    resolve_hosts,
    scan,
)
from pytest_portcheck.inventory import (
    Expect,
    Expectation,
    HostSpec,
    RangeRule,
    ServiceRequirement,
    TlsRequirement,
)
from pytest_portcheck.ports import Protocol, format_ports
from pytest_portcheck.probes import ProbeRequest, probe_services
from pytest_portcheck.results import ResultKey, ScanReport
from pytest_portcheck.services import TLS_VERSIONS, ServiceInfo, TlsInfo

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
    settings_of: dict[ResultKey, _Timing] = {}
    owner: dict[ResultKey, str] = {}

    def want(host: HostSpec, ports: Iterable[tuple[Protocol, int]]) -> None:
        setting = (host.timeout, host.retries, host.max_rate, host.min_rate)
        for address in addresses[host.address]:
            for proto, port in ports:
                key = (address, proto, port)
                known = settings_of.get(key)
                if known is None:
                    settings_of[key] = setting
                    owner[key] = host.address
                elif known != setting:  # the most patient setting wins for a shared port
                    settings_of[key] = _most_patient(known, setting)

    for host, expectation in pairs:
        want(host, [(expectation.proto, expectation.port)])
    for host, rule in ranges:
        want(host, [(rule.proto, port) for port in rule.ports])
    groups: dict[_Timing, list[Target]] = {}
    for key, setting in settings_of.items():
        address, proto, port = key
        groups.setdefault(setting, []).append(Target(owner[key], address, proto, port))
    stats = ScanStats()
    results: list[ProbeResult] = []
    total = sum(len(targets) for targets in groups.values())
    for (timeout, retries, max_rate, min_rate), targets in groups.items():
        settings = ScanSettings(timeout=timeout, retries=retries, max_rate=max_rate, min_rate=min_rate)
        if window is not None:
            settings = replace(settings, window=window)
        for result in scan(targets, settings, stats):
            results.append(result)
            if progress is not None:  # (done, total) after every result: the caller paces redraws
                progress(len(results), total)
    results = _confirm_silent_opens(pairs, addresses, results, stats)
    base = ScanSettings()
    if len(groups) == 1:
        timeout, retries, max_rate, min_rate = next(iter(groups))
        base = ScanSettings(timeout=timeout, retries=retries, max_rate=max_rate, min_rate=min_rate)
    by_key = index_results(results)
    probe_pairs = pairs + [pair for host, _ in ranges for pair in range_pairs(host)] if all_banners else pairs
    unexpected = [] if all_banners else _open_in_ranges(ranges, addresses, by_key)
    wanted = all_banners or unexpected or any(expectation.service is not None for _, expectation in pairs)
    services = {}
    if wanted:
        services = _probe_open_ports(probe_pairs, addresses, by_key, all_banners, unexpected)
    return ScanReport(resolutions, results, base, started, time.monotonic() - clock, stats, services=services)


_MAX_UNEXPECTED_PROBES = 256
"""Open ports of ``only_open`` ranges, probed without ``--portcheck-banners`` so that the failure names
what answers (``45000 (redis 7.0.15, no auth)``); beyond this many, the port table's name."""


def _open_in_ranges(
    ranges: Sequence[tuple[HostSpec, RangeRule]],
    addresses: Mapping[str, tuple[str, ...]],
    by_key: Mapping[ResultKey, ProbeResult],
) -> list[tuple[HostSpec, Expectation]]:
    """The open ports of ``only_open`` TCP ranges (every one is unexpected), at most a few hundred."""
    found = []
    for host, rule in ranges:
        if rule.proto is not Protocol.TCP:
            continue
        for address in addresses.get(host.address, ()):
            for port in rule.ports:
                result = by_key.get((address, rule.proto, port))
                if result is not None and result.state is PortState.OPEN:
                    found.append((host, Expectation(host.name, rule.proto, port, Expect.CLOSED, rule.line)))
    return found[:_MAX_UNEXPECTED_PROBES]
_Timing = tuple[float, int, float | None, float | None]
"""timeout, retries, max_rate, min_rate"""


def _most_patient(one: _Timing, other: _Timing) -> _Timing:
    """For a port two hosts share: the longer wait, more retries, and the gentler rates."""

    def lower(a: float | None, b: float | None) -> float | None:
        return b if a is None else a if b is None else min(a, b)

    return (max(one[0], other[0]), max(one[1], other[1]), lower(one[2], other[2]), lower(one[3], other[3]))


_CONFIRM_RETRIES = 3


def _confirm_silent_opens(
    pairs: Sequence[tuple[HostSpec, Expectation]],
    addresses: Mapping[str, tuple[str, ...]],
    results: list[ProbeResult],
    stats: ScanStats,
) -> list[ProbeResult]:
    """Ports that must be open but met only silence get paced confirmation probes before they fail.

    Only silence is looked at again, and only an answer replaces it: an open port is never downgraded.
    """
    by_key = index_results(results)
    wanted: dict[ResultKey, tuple[HostSpec, Target]] = {}
    for host, expectation in pairs:
        if expectation.expect is not Expect.OPEN or expectation.proto is not Protocol.TCP:
            continue
        for address in addresses.get(host.address, ()):
            key = (address, expectation.proto, expectation.port)
            found = by_key.get(key)
            if found is not None and found.state is PortState.FILTERED and found.reason == Reason.NO_RESPONSE:
                wanted.setdefault(
                    key, (host, Target(found.host, address, expectation.proto, expectation.port))
                )
    if not wanted:
        return results
    timeout = max(host.timeout for host, _ in wanted.values())
    retries = max(_CONFIRM_RETRIES, *(host.retries for host, _ in wanted.values()))
    max_rate = min((host.max_rate for host, _ in wanted.values() if host.max_rate is not None), default=None)
    settings = ScanSettings(timeout=timeout, retries=retries, max_rate=max_rate)
    answered = {
        (r.address or "", r.proto, r.port): r
        for r in scan([target for _, target in wanted.values()], settings, stats)
        if r.state is not PortState.FILTERED and r.state is not PortState.ERROR
    }
    confirmed = []
    for result in results:
        answer = answered.get((result.address or "", result.proto, result.port))
        # The attempts of the scan and of the confirmation together: what it took to hear the port.
        confirmed.append(
            result if answer is None else replace(answer, attempts=answer.attempts + result.attempts)
        )
    return confirmed


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
    where: str, shaky: Sequence[ProbeResult], quality: Mapping[str, AddressQuality]
) -> str:
    lines = []
    for address in dict.fromkeys(r.address or "" for r in shaky):
        q = quality[address]
        count = sum(1 for r in shaky if r.address == address)
        lines.append(
            f"{where}: {count} silent port(s) on {address}, which dropped {q.drops:,} probe(s) it later "
            f"answered (rate limiting or loss) and left silence unresolved on {q.unresolved:,} port(s): "
            "the pass would rest on silence we could not explain (--portcheck-strict); "
            "set a lower max_rate for this host, or more retries"
        )
    return "\n".join(lines)


def _probe_open_ports(
    pairs: Sequence[tuple[HostSpec, Expectation]],
    addresses: Mapping[str, tuple[str, ...]],
    by_key: Mapping[ResultKey, ProbeResult],
    all_banners: bool,
    unexpected: Sequence[tuple[HostSpec, Expectation]] = (),
) -> dict[ResultKey, ServiceInfo]:
    """One answer per open (address, port) that every requirement on it can be judged against.

    Requirements from different hosts or inventories may meet on one port: they are merged, never
    overwritten, so the outcome does not depend on their order. Verification runs when any of them
    asks for it; where it fails, an unverified handshake still reads the certificate for the others.
    """
    asks: dict[ResultKey, _Asks] = {}
    flagged = [(True, pair) for pair in unexpected] + [(all_banners, pair) for pair in pairs]
    for always, (host, expectation) in flagged:
        wanted = expectation.service
        if (wanted is None and not always) or expectation.proto is not Protocol.TCP:
            continue  # the probes speak TCP: a UDP port's answer is the scan's
        name = None if _is_address(host.address) else host.address
        for address in addresses[host.address]:
            key: ResultKey = (address, expectation.proto, expectation.port)
            result = by_key.get(key)
            if result is None or result.state is not PortState.OPEN:
                continue
            asks.setdefault(key, _Asks()).add(wanted, name)
    planned = [(key, request) for key, ask in asks.items() for request in ask.request(key)]
    found = probe_services(request for _, request in planned)
    found = _with_unverified_details([request for _, request in planned], found)
    answers: dict[ResultKey, list[tuple[ProbeRequest, ServiceInfo]]] = {}
    for (key, request), info in zip(planned, found, strict=True):
        answers.setdefault(key, []).append((request, info))
    return {key: _one_answer(named) for key, named in answers.items()}


class _Asks:
    """What the requirements met on one port ask of its probe."""

    def __init__(self) -> None:
        self.services: set[str] = set()
        self.verify: dict[str | None, bool] = {}
        """Per name asked for: whether any requirement under that name asks for verification."""
        self.banner_names: set[str | None] = set()
        self.tls_floor: str | None = None
        """The strictest TLS ``min_version`` asked for: the probe tries a handshake capped below it."""

    def add(self, wanted: ServiceRequirement | None, name: str | None) -> None:
        if wanted is None:
            self.banner_names.add(name)
            return
        self.services.add(wanted.service)
        floor = wanted.tls.min_version if wanted.tls else None
        if floor and (self.tls_floor is None or _tls_rank(floor) > _tls_rank(self.tls_floor)):
            self.tls_floor = floor
        self.verify[name] = self.verify.get(name, False) or bool(wanted.tls and wanted.tls.verify)

    def request(self, key: ResultKey) -> list[ProbeRequest]:
        """One probe per name asked for (SNI and verification depend on it), all with one first move."""
        expect = min(self.services, key=_first_move_rank) if self.services else None
        verify = self.verify or {min(self.banner_names, key=_name_order): False}
        return [
            ProbeRequest(key[0], key[2], expect, name, verify[name], self.tls_floor)
            for name in sorted(verify, key=_name_order)
        ]


def _name_order(name: str | None) -> tuple[bool, str]:
    return (name is not None, name or "")


def _first_move_rank(service: str) -> tuple[int, str]:
    # An https probe answers a tls requirement too; a client-first probe still reads a server that
    # speaks first, while a banner grab gets nothing from a server that waits.
    order = {"https": 0, "tls": 1}
    return (order.get(service, 2 if service in _CLIENT_FIRST else 3), service)


_CLIENT_FIRST = frozenset({"http", "postgresql", "redis", "memcached"})
_VERIFY_FAILED = "certificate verification failed"


def _with_unverified_details(
    requests: Sequence[ProbeRequest], found: Sequence[ServiceInfo]
) -> list[ServiceInfo]:
    """Where verification failed, read the certificate without it: the expiry, version and service
    requirements on the same port are judged on that, and the verification failure stays recorded."""
    failed = [
        index
        for index, (request, info) in enumerate(zip(requests, found, strict=True))
        if request.verify_tls and info.tls is None and (info.error or "").startswith(_VERIFY_FAILED)
    ]
    merged = list(found)
    retry = [replace(requests[index], verify_tls=False) for index in failed]
    for index, plain in zip(failed, probe_services(retry), strict=True):
        if plain.tls is not None:
            merged[index] = replace(plain, tls=replace(plain.tls, verified=False), error=found[index].error)
    return merged


def _one_answer(named: Sequence[tuple[ProbeRequest, ServiceInfo]]) -> ServiceInfo:
    """The answer for a port probed under one or more names. If the names got different answers
    (name-based virtual hosts), no single answer is true for all: say so rather than pick one. The
    answer counts as verified only if every name that asked for verification got it verified."""
    first = named[0][1]
    if len(named) == 1:
        return first
    if any(_essence(info) != _essence(first) for _, info in named[1:]):
        services = {info.service for _, info in named}
        shown = "; ".join(f"{request.server_name or 'no name'}: {info.describe()}" for request, info in named)
        return ServiceInfo(
            services.pop() if len(services) == 1 else "unknown",
            "",
            error=f"the answer depends on the name asked for ({shown}): give each name its own address",
        )
    checked = [(request, info) for request, info in named if request.verify_tls]
    if first.tls is None or not checked:
        return first
    failed = [(request, info) for request, info in checked if info.tls is None or not info.tls.verified]
    if not failed:
        return replace(first, tls=replace(first.tls, verified=True), error=None)
    request, info = failed[0]
    why = f"as {request.server_name}: {info.error}" if request.server_name else info.error
    return replace(first, tls=replace(first.tls, verified=False), error=why)


def _essence(info: ServiceInfo) -> tuple[object, ...]:
    # What a name changes (SNI): the service and the certificate. Whether it verified is per name.
    tls = None if info.tls is None else replace(info.tls, verified=False)
    return (info.service, info.product, info.version, info.auth, tls)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        return False
    return True


def index_results(results: Iterable[ProbeResult]) -> dict[ResultKey, ProbeResult]:
    return {(r.address, r.proto, r.port): r for r in results if r.address is not None}


def silent_addresses(results: Iterable[ProbeResult]) -> frozenset[str]:
    """The one definition of "nothing answered": addresses on which every port probed (by any host,
    expectation or range) stayed silent (filtered or open|filtered). Such an address may be wrong or
    down, and its silence would satisfy closed: and only_open: — so it is warned about, or an error."""
    states: dict[str, set[PortState]] = {}
    for result in results:
        if result.address is not None:
            states.setdefault(result.address, set()).add(result.state)
    return frozenset(address for address, seen in states.items() if seen <= _SILENT)


def silent_of(resolution: Resolution | None, silent: Collection[str]) -> tuple[str, ...]:
    """The addresses of one host on which nothing answered."""
    if resolution is None or resolution.error is not None:
        return ()
    return tuple(address for address in resolution.addresses if address in silent)


def _silence_error(where: str, silent: Sequence[str]) -> Judgement:
    message = f"{where}: no port answered on {', '.join(silent)} — is the address right? (--portcheck-strict)"
    return Judgement(Verdict.ERROR, message, ())


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
    silent: Sequence[str] = (),
    strict: bool = False,
    services: Mapping[ResultKey, ServiceInfo] | None = None,
    quality: Mapping[str, AddressQuality] | None = None,
) -> Judgement:
    """The verdict of one expectation: every resolved address of the host must satisfy it."""
    where = f"{_label(host, resolution)} {expectation.proto.value}/{expectation.port}"
    if resolution is None:
        return Judgement(Verdict.ERROR, f"{where}: cannot check — the host was not scanned", ())
    if resolution.error is not None or not resolution.addresses:
        why = resolution.error or "the host resolved to no address"  # a pass needs something checked
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {why}", ())
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
        return _silence_error(where, silent)
    wanted = _SATISFIES[expectation.expect]
    if expectation.silence_counts_as_closed:
        wanted = wanted | {PortState.OPEN_FILTERED}
    wrong = [r for r in found if r.state not in wanted]
    if not wrong and expectation.service is not None:
        return _judge_service(where, expectation.service, found, services or {})
    shaky = unresolved_silence(found, quality or {}) if strict and expectation.expect is Expect.CLOSED else []
    if not wrong and shaky:
        return Judgement(Verdict.ERROR, _strict_silence_message(where, shaky, quality or {}), tuple(found))
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
        if info is None or info.local_failure:
            why = info.error if info is not None else "the port was not probed"
            errors.append(f"{where}: cannot check the service{on} — {why}")
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
        problems.append(f"{name} answers without authentication (auth: required)")
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
    return unknowns


def _tls_problems(wanted: TlsRequirement, tls: TlsInfo) -> list[str]:
    problems = []
    if wanted.min_version and TLS_VERSIONS.index(wanted.min_version) > _tls_rank(tls.version):
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
    *,
    silent: Sequence[str] = (),
    strict: bool = False,
    quality: Mapping[str, AddressQuality] | None = None,
) -> Judgement:
    """``only_open``: no port of the range but the listed ones may be open, on any address. A UDP port
    that neither replied nor was refused (open|filtered) fails it as it fails ``closed:``, unless
    silence counts as closed."""
    where = f"{_label(host, resolution)} {rule.label}"
    if resolution is None or resolution.error is not None or not resolution.addresses:
        why = "the host was not scanned" if resolution is None else resolution.error or "no address"
        return Judgement(Verdict.ERROR, f"{where}: cannot check — {why}", ())
    services = services or {}
    lines: list[str] = []
    errors: list[str] = []
    unexpected: list[ProbeResult] = []
    for address in resolution.addresses:
        opened: list[str] = []
        quiet: list[int] = []
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
                opened.append(f"{port} ({info.summary() if info else result.service})")
            elif result.state is PortState.OPEN_FILTERED and not rule.silence_counts_as_closed:
                unexpected.append(result)
                quiet.append(port)
        errors += [
            f"{where}: cannot check {count} port(s) of {address} — {why}" for why, count in failed.items()
        ]
        on = f" on {address}" if len(resolution.addresses) > 1 else ""
        if opened:
            lines.append(
                f"{host.name}: {len(opened)} unexpected open port(s) in {rule.label}{on}: {', '.join(opened)}"
            )
        if quiet:
            lines.append(
                f"{host.name}: {len(quiet)} port(s) in {rule.label}{on} gave no reply and no ICMP error "
                f"(open|filtered): {format_ports(quiet)} — a silent service or a drop, silence proves "
                "nothing; declare them filtered:, or set silence_counts_as_closed: true on the host"
            )
    if errors:
        return Judgement(Verdict.ERROR, "\n".join(errors), tuple(unexpected))
    if silent and strict:
        return _silence_error(where, silent)
    if lines:
        return Judgement(Verdict.FAILED, "\n".join(lines), tuple(unexpected))
    if strict and quality:
        found = [
            by_key.get((address, rule.proto, port)) for address in resolution.addresses for port in rule.ports
        ]
        shaky = unresolved_silence([r for r in found if r is not None], quality)
        if shaky:
            return Judgement(Verdict.ERROR, _strict_silence_message(where, shaky, quality), ())
    return Judgement(Verdict.PASSED, f"{where}: nothing else open", ())


def today() -> datetime.date:
    """Today, or the date in PORTCHECK_TODAY (ISO), so waivers can be checked against any day."""
    injected = os.environ.get("PORTCHECK_TODAY")
    if injected:
        return datetime.date.fromisoformat(injected)
    return datetime.date.today()
