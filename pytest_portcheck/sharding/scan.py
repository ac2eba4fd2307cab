"""Scanning one share of an inventory: ``portcheck scan --inventory inv.yml --shard K/N``.

Resolves every host of the plan (each host's resolution is recorded, whether or not the share holds
its units), probes exactly the units of share K on every resolved address, runs the protocol probes
the inventory asks for on the open ones, and returns a ``ShardScanReport`` (see report.py).
No pytest and no printing: the command line presents it.
Must not import pytest or the plugin modules; probes only when a service is declared.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pytest_portcheck.engine import (
    DEFAULT_WINDOW,
    ProbeResult,
    ScanStats,
    Target,
    resolve_hosts,
)
from pytest_portcheck.engine.model import ResultKey, index_results, settings_from_options
from pytest_portcheck.inventory.model import Expect, Expectation, HostSpec, Inventory
from pytest_portcheck.pipeline.inventory import (
    Timing,
    asked_for,
    confirm_silent_opens,
    most_patient,
    scan_by_timing,
    timing_settings,
)
from pytest_portcheck.pipeline.probe import identify_declared_services
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.sharding.plan import ShardSplit, WorkPlan, plan_inventory
from pytest_portcheck.sharding.report import ShardInfo, ShardScanReport, summarise


@dataclass(frozen=True, slots=True)
class ShardRequest:
    index: int
    count: int
    vantage: str | None = None
    window: int = DEFAULT_WINDOW
    processes: int | None = None
    run_id: str | None = None
    """The run this share belongs to (report/provenance.py): every share and vantage of one scan shares it."""


def shard_targets(
    plan: WorkPlan,
    split: ShardSplit,
    index: int,
    addresses: Mapping[str, tuple[str, ...]],
    timings: Mapping[str, Timing],
) -> dict[Timing, list[Target]]:
    """The share's targets, grouped by the timing of their address (``address_timings``)."""
    groups: dict[Timing, list[Target]] = {}
    for unit in split.units(index):
        host, proto, port = plan.unit(unit)
        group = groups.setdefault(timings[host.address], [])
        group.extend(Target(host.address, address, proto, port) for address in addresses[host.address])
    return groups


def address_timings(inventory: Inventory, plan: WorkPlan) -> dict[str, Timing]:
    """Per address: the plan's timeout and retries (in its digest) and the gentlest rates any host
    on that address asks for, as an unsharded scan applies them to a port hosts share."""
    timings: dict[str, Timing] = {}
    for host in inventory.hosts:
        work = plan.host(host.address)
        if work is None:
            continue
        mine = (work.timeout, work.retries, host.max_rate, host.min_rate)
        known = timings.get(host.address)
        timings[host.address] = mine if known is None else most_patient(known, mine)
    return timings


def shard_open_expectations(
    inventory: Inventory, plan: WorkPlan, split: ShardSplit, index: int
) -> list[tuple[HostSpec, Expectation]]:
    """The ``open`` entries whose unit is in share ``index``: the ones its confirmation probes serve."""
    mine = []
    for host, expectation in inventory.expectations():
        if expectation.expect is not Expect.OPEN:
            continue
        unit = plan.unit_index(host.address, expectation.proto, expectation.port)
        if unit is not None and split.shard_of(unit) == index:
            mine.append((host, expectation))
    return mine


def scan_shard(
    inventory: Inventory,
    request: ShardRequest,
    *,
    command: Sequence[str] = (),
    on_result: Callable[[ProbeResult], None] | None = None,
    interrupted: Callable[[], bool] | None = None,
) -> ShardScanReport:
    """Scan share ``request.index`` of ``request.count`` as an unsharded run scans an inventory (its
    hosts' timings and rates, confirmation of silent ``open`` ports); Ctrl-C ends it with a report
    marked interrupted."""
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    clock = time.monotonic()
    plan = plan_inventory(inventory)
    split = ShardSplit(plan.total, plan.digest, request.count)
    resolutions = resolve_hosts([host.address for host in plan.hosts])
    addresses = {r.host: r.addresses for r in resolutions}
    stats = ScanStats()
    results: list[ProbeResult] = []
    stopped = False
    base = settings_from_options({"window": request.window, "processes": request.processes})
    groups = shard_targets(plan, split, request.index, addresses, address_timings(inventory, plan))
    try:
        for result in scan_by_timing(groups, stats, base):
            results.append(result)
            if on_result is not None:
                on_result(result)
        pairs = shard_open_expectations(inventory, plan, split, request.index)
        results = confirm_silent_opens(pairs, addresses, results, stats)
    except KeyboardInterrupt:
        stopped = True
    # The report records the one timing the share used, or the base where hosts differ.
    recorded = timing_settings(next(iter(groups)), base) if len(groups) == 1 else base
    services = {} if stopped else identify_inventory_services(inventory, addresses, results)
    return ShardScanReport(
        ShardInfo(plan.digest, request.index, request.count, request.vantage),
        plan,
        resolutions,
        summarise(results),
        recorded,
        started,
        time.monotonic() - clock,
        stopped,
        command,
        services,
        request.run_id,
        asked_for(list(inventory.expectations()), addresses, services),
    )


def identify_inventory_services(
    inventory: Inventory, addresses: dict[str, tuple[str, ...]], results: Iterable[ProbeResult]
) -> dict[ResultKey, ServiceInfo]:
    """Protocol probes on this share's open ports whose inventory entry names a service.

    The merging of requirements that meet on one port (names, verification) is the scan pipeline's
    (``pipeline.probe``), shared with the unsharded scan rather than copied.
    """
    pairs = [(host, e) for host, e in inventory.expectations() if e.service is not None]
    if not pairs:
        return {}
    return identify_declared_services(pairs, addresses, index_results(results), all_banners=False)
