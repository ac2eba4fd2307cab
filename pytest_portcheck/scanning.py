"""The one scan pipeline: resolve → plan → scan → probe → a typed ``ScanReport``, without pytest.

Every front end calls it and only presents what it returns: ``portcheck scan`` and ``snapshot`` through
``plan_scan``/``ScanPlan.run``/``probe_open``/``ScanPlan.report`` (they print while it runs),
the ``portcheck_scan`` fixture through ``collect_scan``, and the plugin through ``scan_inventory``
(one engine run for every port an inventory declares, then the protocol probes its service
requirements need). Judging is not here (see ``judge``).

Must not import pytest, yaml, the plugin or the CLI; ``probes`` (asyncio, ssl) only when a probe runs;
nor dataclasses, typing, datetime or ipaddress, which a command-line scan does not need.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from pytest_portcheck.engine import (
    PortState,
    ProbeResult,
    Reason,
    Resolution,
    ScanSettings,
    ScanStats,
    Target,
    plan_targets,
    resolve_hosts,
    scan,
)
from pytest_portcheck.engine.model import ResultKey, index_results, port_key
from pytest_portcheck.ports import Protocol
from pytest_portcheck.record import field, record, replace
from pytest_portcheck.report.model import ScanReport, sort_results

TYPE_CHECKING = False  # typing costs ~3 ms at start-up; type checkers treat this name as true
if TYPE_CHECKING:  # inventory needs yaml, probes need asyncio and ssl: imported where a run needs them
    from pytest_portcheck.inventory.model import Expectation, HostSpec, RangeRule, ServiceRequirement
    from pytest_portcheck.probes.connection import ProbeRequest
    from pytest_portcheck.probes.model import ServiceInfo


def _now() -> str:
    # What datetime.now(timezone.utc).isoformat(timespec="seconds") writes, without datetime (~2 ms).
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


@record(frozen=False)
class ScanPlan:
    """The work of a command-line scan: hosts resolved, (address, protocol, port) targets planned."""

    hosts: list[str]
    ports: list[tuple[Protocol, int]]
    resolutions: list[Resolution]
    targets: list[Target]
    unresolved: list[ProbeResult]
    started: str = field(default_factory=_now)
    clock: float = field(default_factory=time.monotonic)

    def run(
        self,
        settings: ScanSettings,
        stats: ScanStats,
        on_result: Callable[[ProbeResult], None] | None = None,
    ) -> tuple[list[ProbeResult], bool]:
        """Every result (unresolved names first), and whether Ctrl-C cut the scan short."""
        results: list[ProbeResult] = list(self.unresolved)
        stream: Iterator[ProbeResult] = scan(self.targets, settings, stats)
        try:
            for result in stream:
                results.append(result)
                if on_result is not None:
                    on_result(result)
        except KeyboardInterrupt:
            return results, True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # closes every socket still in flight
        return results, False

    def report(
        self,
        results: Sequence[ProbeResult],
        settings: ScanSettings,
        stats: ScanStats,
        *,
        interrupted: bool = False,
        command: Sequence[str] = (),
        services: Mapping[ResultKey, ServiceInfo] | None = None,
    ) -> ScanReport:
        return ScanReport(
            self.resolutions,
            sort_results(results, self.hosts),
            settings,
            self.started,
            time.monotonic() - self.clock,
            stats,
            interrupted,
            list(command),
            dict(services or {}),
        )


def plan_scan(
    hosts: Sequence[str], ports: Sequence[tuple[Protocol, int]], *, allow_large: bool = False
) -> ScanPlan:
    """Resolve the hosts (ScanError for a bad target) and plan one target per (address, port)."""
    started, clock = _now(), time.monotonic()
    resolutions = resolve_hosts(hosts, allow_large=allow_large)
    targets, unresolved = plan_targets(resolutions, ports)
    return ScanPlan(list(hosts), list(ports), resolutions, targets, unresolved, started, clock)


def collect_scan(
    hosts: Sequence[str], ports: Sequence[tuple[Protocol, int]], settings: ScanSettings
) -> ScanReport:
    """Resolve, scan and wait for every result: the whole scan as one report."""
    plan = plan_scan(hosts, ports)
    stats = ScanStats()
    results, _ = plan.run(settings, stats)
    return plan.report(results, settings, stats)


def probe_open(
    results: Sequence[ProbeResult], *, tls_verify: bool, timeout: float
) -> dict[ResultKey, ServiceInfo]:
    """Protocol probes on every open TCP port: what answers, with evidence."""
    from pytest_portcheck.probes.connection import ProbeRequest
    from pytest_portcheck.probes.driver import probe_services  # asyncio and ssl: only when asked

    keys: list[ResultKey] = []
    requests = []
    for result in results:
        # Probes speak TCP: a TCP answer on a UDP port's number would be another service's.
        if result.state is PortState.OPEN and result.address is not None and result.proto is Protocol.TCP:
            keys.append(port_key(result.address, result.proto, result.port))
            name = None if result.host == result.address else result.host
            requests.append(ProbeRequest(result.address, result.port, None, name, tls_verify))
    found = probe_services(requests, timeout=timeout, banner_wait=min(1.0, timeout))
    return dict(zip(keys, found, strict=True))


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
    from pytest_portcheck.engine.model import settings_from_options
    from pytest_portcheck.inventory.model import range_pairs  # yaml: only for an inventory run

    pairs = list(pairs)
    ranges = list(ranges)
    started, clock = _now(), time.monotonic()
    names = list(dict.fromkeys([host.address for host, _ in pairs] + [host.address for host, _ in ranges]))
    resolutions = resolve_hosts(names)
    addresses = {r.host: r.addresses for r in resolutions}
    groups = _targets_by_timing(pairs, ranges, addresses)
    stats = ScanStats()
    results: list[ProbeResult] = []
    total = sum(len(targets) for targets in groups.values())
    scan_base = None if window is None else settings_from_options({"window": window})
    for result in scan_by_timing(groups, stats, scan_base):
        results.append(result)
        if progress is not None:  # (done, total) after every result: the caller paces redraws
            progress(len(results), total)
    results = confirm_silent_opens(pairs, addresses, results, stats)
    base = timing_settings(next(iter(groups))) if len(groups) == 1 else settings_from_options()
    by_key = index_results(results)
    probe_pairs = pairs + [pair for host, _ in ranges for pair in range_pairs(host)] if all_banners else pairs
    unexpected = [] if all_banners else _open_in_ranges(ranges, addresses, by_key)
    wanted = all_banners or unexpected or any(expectation.service is not None for _, expectation in pairs)
    services = {}
    if wanted:
        services = probe_declared_ports(probe_pairs, addresses, by_key, all_banners, unexpected)
    return ScanReport(resolutions, results, base, started, time.monotonic() - clock, stats, services=services)


def _targets_by_timing(
    pairs: Sequence[tuple[HostSpec, Expectation]],
    ranges: Sequence[tuple[HostSpec, RangeRule]],
    addresses: Mapping[str, tuple[str, ...]],
) -> dict[Timing, list[Target]]:
    """Each (address, protocol, port) once, under the timing of the host that asked for it (the most
    patient one where hosts share it): one engine run per distinct timing."""
    settings_of: dict[ResultKey, Timing] = {}
    owner: dict[ResultKey, str] = {}

    def want(host: HostSpec, ports: Iterable[tuple[Protocol, int]]) -> None:
        setting = host_timing(host)
        for address in addresses[host.address]:
            for proto, port in ports:
                key = port_key(address, proto, port)
                known = settings_of.get(key)
                if known is None:
                    settings_of[key] = setting
                    owner[key] = host.address
                elif known != setting:  # the most patient setting wins for a shared port
                    settings_of[key] = most_patient(known, setting)

    for host, expectation in pairs:
        want(host, [(expectation.proto, expectation.port)])
    for host, rule in ranges:
        want(host, [(rule.proto, port) for port in rule.ports])
    groups: dict[Timing, list[Target]] = {}
    for key, setting in settings_of.items():
        address, proto, port = key
        groups.setdefault(setting, []).append(Target(owner[key], address, proto, port))
    return groups


_MAX_UNEXPECTED_PROBES = 256
"""Open ports of ``only_open`` ranges, probed without ``--portcheck-banners`` so that the failure names
what answers (``45000 (redis 7.0.15, no auth)``); beyond this many, the port table's name."""


def _open_in_ranges(
    ranges: Sequence[tuple[HostSpec, RangeRule]],
    addresses: Mapping[str, tuple[str, ...]],
    by_key: Mapping[ResultKey, ProbeResult],
) -> list[tuple[HostSpec, Expectation]]:
    """The open ports of ``only_open`` TCP ranges (every one is unexpected), at most a few hundred."""
    from pytest_portcheck.inventory.model import Expect, Expectation

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


Timing = tuple[float, int, float | None, float | None]
"""An inventory host's timing: timeout, retries, max_rate, min_rate."""


def host_timing(host: HostSpec) -> Timing:
    return (host.timeout, host.retries, host.max_rate, host.min_rate)


def timing_settings(timing: Timing, base: ScanSettings | None = None) -> ScanSettings:
    """The engine settings for one inventory timing, over ``base`` (window, processes): built here only."""
    from pytest_portcheck.engine.model import settings_from_options

    timeout, retries, max_rate, min_rate = timing
    options = {"timeout": timeout, "retries": retries, "max_rate": max_rate, "min_rate": min_rate}
    return settings_from_options(options, base=base)


def scan_by_timing(
    groups: Mapping[Timing, Sequence[Target]], stats: ScanStats, base: ScanSettings | None = None
) -> Iterator[ProbeResult]:
    """One engine run per distinct timing (an unsharded inventory scan and a shard scan alike),
    each result as it comes: a caller cut short by Ctrl-C keeps what it already has."""
    for timing, targets in groups.items():
        yield from scan(targets, timing_settings(timing, base), stats)


def most_patient(one: Timing, other: Timing) -> Timing:
    """For a port two hosts share: the longer wait, more retries, and the gentler rates — the lower
    cap (no cap is the harshest), and the lower floor (no floor is the gentlest), never above the cap."""
    caps = [rate for rate in (one[2], other[2]) if rate is not None]
    cap = min(caps) if caps else None
    floor = None if one[3] is None or other[3] is None else min(one[3], other[3])
    if floor is not None and cap is not None:
        floor = min(floor, cap)
    return (max(one[0], other[0]), max(one[1], other[1]), cap, floor)


_CONFIRM_RETRIES = 3


def confirm_silent_opens(
    pairs: Sequence[tuple[HostSpec, Expectation]],
    addresses: Mapping[str, tuple[str, ...]],
    results: list[ProbeResult],
    stats: ScanStats,
) -> list[ProbeResult]:
    """Ports that must be open but met only silence get paced confirmation probes before they fail.

    Only silence is looked at again, and only an answer replaces it: an open port is never downgraded.
    """
    from pytest_portcheck.inventory.model import Expect

    by_key = index_results(results)
    wanted: dict[ResultKey, tuple[HostSpec, Target]] = {}
    for host, expectation in pairs:
        if expectation.expect is not Expect.OPEN or expectation.proto is not Protocol.TCP:
            continue
        for address in addresses.get(host.address, ()):
            key = port_key(address, expectation.proto, expectation.port)
            found = by_key.get(key)
            if (
                found is not None
                and found.state is PortState.FILTERED
                and found.reason in (Reason.NO_RESPONSE, Reason.LISTEN_NO_ACCEPT)  # silence, either way
            ):
                wanted.setdefault(
                    key, (host, Target(found.host, address, expectation.proto, expectation.port))
                )
    if not wanted:
        return results
    timeout = max(host.timeout for host, _ in wanted.values())
    retries = max(_CONFIRM_RETRIES, *(host.retries for host, _ in wanted.values()))
    max_rate = min((host.max_rate for host, _ in wanted.values() if host.max_rate is not None), default=None)
    settings = timing_settings((timeout, retries, max_rate, None))
    answered = {
        port_key(r.address or "", r.proto, r.port): r
        for r in scan([target for _, target in wanted.values()], settings, stats)
        if r.state is not PortState.FILTERED and r.state is not PortState.ERROR
    }
    confirmed = []
    for result in results:
        answer = answered.get(port_key(result.address or "", result.proto, result.port))
        # The attempts of the scan and of the confirmation together: what it took to hear the port.
        confirmed.append(
            result if answer is None else replace(answer, attempts=answer.attempts + result.attempts)
        )
    return confirmed


def probe_declared_ports(
    pairs: Sequence[tuple[HostSpec, Expectation]],
    addresses: Mapping[str, tuple[str, ...]],
    by_key: Mapping[ResultKey, ProbeResult],
    all_banners: bool,
    unexpected: Sequence[tuple[HostSpec, Expectation]] = (),
) -> dict[ResultKey, ServiceInfo]:
    """One answer per open (address, port) that every requirement on it can be judged against.

    Requirements from different hosts or inventories may meet on one port: they are merged, never
    overwritten, so the outcome does not depend on their order. Each name gets its own probe, verified
    when any requirement under that name asks; where it fails, an unverified handshake still reads
    the certificate for the others. Each requirement is judged on its own name's verification.
    """
    from pytest_portcheck.probes.driver import probe_services  # asyncio and ssl: only when a probe runs
    from pytest_portcheck.probes.model import probe_name

    asks: dict[ResultKey, _Asks] = {}
    flagged = [(True, pair) for pair in unexpected] + [(all_banners, pair) for pair in pairs]
    for always, (host, expectation) in flagged:
        wanted = expectation.service
        if (wanted is None and not always) or expectation.proto is not Protocol.TCP:
            continue  # the probes speak TCP: a UDP port's answer is the scan's
        name = probe_name(host.address)
        for address in addresses[host.address]:
            key = port_key(address, expectation.proto, expectation.port)
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
        from pytest_portcheck.probes.model import tls_rank

        if wanted is None:
            self.banner_names.add(name)
            return
        self.services.add(wanted.service)
        floor = wanted.tls.min_version if wanted.tls else None
        if floor and (self.tls_floor is None or tls_rank(floor) > tls_rank(self.tls_floor)):
            self.tls_floor = floor
        self.verify[name] = self.verify.get(name, False) or bool(wanted.tls and wanted.tls.verify)

    def request(self, key: ResultKey) -> list[ProbeRequest]:
        """One probe per name asked for (SNI and verification depend on it), all with one first move."""
        from pytest_portcheck.probes.connection import ProbeRequest

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
    from pytest_portcheck.probes.driver import probe_services

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
    (name-based virtual hosts), no single answer is true for all: say so rather than pick one.
    Otherwise each name's own verification is kept (``names``: a requirement is judged on the probe
    made for it, never on another name's), and the answer as a whole counts as verified only if
    every name that asked for verification got it verified."""
    from pytest_portcheck.probes.model import NameAnswer, ServiceInfo

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
    names = tuple(
        NameAnswer(request.server_name, info.tls is not None and info.tls.verified, info.error)
        for request, info in named
    )
    failed = [(request, info) for request, info in checked if info.tls is None or not info.tls.verified]
    if not failed:
        return replace(first, tls=replace(first.tls, verified=True), error=None, names=names)
    request, info = failed[0]
    why = f"as {request.server_name}: {info.error}" if request.server_name else info.error
    return replace(first, tls=replace(first.tls, verified=False), error=why, names=names)


def _essence(info: ServiceInfo) -> tuple[object, ...]:
    # What a name changes (SNI): the service and the certificate. Whether it verified is per name.
    tls = None if info.tls is None else replace(info.tls, verified=False)
    return (info.service, info.product, info.version, info.auth, tls)
