"""An inventory's scan: every port it declares, each (address, protocol, port) once, then its probes.

``scan_inventory`` (the plugin's session scan) resolves every host once and probes each port once, in
one engine run per distinct timing (``Timing``: the most patient one where hosts share a port);
ports that must be open but met only silence get paced confirmation probes (``confirm_silent_opens``);
then the protocol probes the inventory's service requirements need (``probe``). A shard scan
(``sharding.scan``) uses the same timing and confirmation.
Must not import pytest, yaml, the plugin or the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

from pytest_portcheck.engine import (
    PortState,
    ProbeResult,
    Reason,
    ScanSettings,
    ScanStats,
    Target,
    resolve_hosts,
    scan,
)
from pytest_portcheck.engine.model import ResultKey, index_results, port_key, settings_from_options
from pytest_portcheck.inventory.model import Expect, Expectation, HostSpec, RangeRule, range_pairs
from pytest_portcheck.pipeline.probe import identify_declared_services
from pytest_portcheck.pipeline.scan import now
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.asked import asked_of, probe_name
from pytest_portcheck.report.model import Asked, ScanReport


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
    started, clock = now(), time.monotonic()
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
        services = identify_declared_services(probe_pairs, addresses, by_key, all_banners, unexpected)
    asked = asked_for(pairs, addresses, services)
    elapsed = time.monotonic() - clock
    return ScanReport(resolutions, results, base, started, elapsed, stats, services=services, asked=asked)


def asked_for(
    pairs: Iterable[tuple[HostSpec, Expectation]],
    addresses: Mapping[str, tuple[str, ...]],
    services: Mapping[ResultKey, ServiceInfo],
) -> dict[ResultKey, list[Asked]]:
    """Per probed port, the requirements its probe was run for (recorded in both report versions, so
    that a judge of another inventory, or of a plain report, can tell a requirement the probe was not
    run for)."""
    asked: dict[ResultKey, list[Asked]] = {}
    for host, expectation in pairs:
        if expectation.service is None:
            continue
        needed = asked_of(expectation.service, probe_name(host.address))
        for address in addresses.get(host.address, ()):
            key = (address, expectation.proto, expectation.port)
            if key in services and needed not in asked.setdefault(key, []):
                asked[key].append(needed)
    return asked


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
