"""Scanning one share of an inventory: ``portcheck scan --inventory inv.yml --shard K/N``.

Resolves every host of the plan (each host's resolution is recorded, whether or not the share holds
its units), probes exactly the units of share K on every resolved address, runs the protocol probes
the inventory asks for on the open ones, and returns a ``ShardScanReport`` (see shardreport.py).
No pytest and no printing: the command line presents it.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pytest_portcheck.engine import (
    DEFAULT_WINDOW,
    PortState,
    ProbeResult,
    ScanSettings,
    ScanStats,
    Target,
    resolve_hosts,
    scan,
)
from pytest_portcheck.inventory import Inventory
from pytest_portcheck.plan import ShardSplit, WorkPlan, plan_inventory
from pytest_portcheck.results import ResultKey
from pytest_portcheck.services import ServiceInfo
from pytest_portcheck.shardreport import ShardInfo, ShardScanReport, summarise


@dataclass(frozen=True)
class ShareRequest:
    index: int
    count: int
    vantage: str | None = None
    window: int = DEFAULT_WINDOW
    processes: int | None = None


def share_targets(
    plan: WorkPlan, split: ShardSplit, index: int, addresses: dict[str, tuple[str, ...]]
) -> dict[tuple[float, int], list[Target]]:
    """The share's targets, grouped by the (timeout, retries) of their host."""
    groups: dict[tuple[float, int], list[Target]] = {}
    for unit in split.units(index):
        host, proto, port = plan.unit(unit)
        group = groups.setdefault((host.timeout, host.retries), [])
        group.extend(Target(host.address, address, proto, port) for address in addresses[host.address])
    return groups


def scan_share(
    inventory: Inventory,
    request: ShareRequest,
    *,
    command: Sequence[str] = (),
    on_result: Callable[[ProbeResult], None] | None = None,
    interrupted: Callable[[], bool] | None = None,
) -> ShardScanReport:
    """Scan share ``request.index`` of ``request.count``; Ctrl-C ends it with a report marked interrupted."""
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    clock = time.monotonic()
    plan = plan_inventory(inventory)
    split = ShardSplit(plan.total, plan.digest, request.count)
    resolutions = resolve_hosts([host.address for host in plan.hosts])
    addresses = {r.host: r.addresses for r in resolutions}
    stats = ScanStats()
    results: list[ProbeResult] = []
    stopped = False
    base = ScanSettings(window=request.window, processes=request.processes)
    try:
        for (timeout, retries), targets in share_targets(plan, split, request.index, addresses).items():
            settings = ScanSettings(timeout, retries, request.window, request.processes)
            base = settings
            for result in scan(targets, settings, stats):
                results.append(result)
                if on_result is not None:
                    on_result(result)
    except KeyboardInterrupt:
        stopped = True
    services = {} if stopped else probe_declared_services(inventory, results)
    return ShardScanReport(
        ShardInfo(plan.digest, request.index, request.count, request.vantage),
        plan,
        resolutions,
        summarise(results),
        base,
        started,
        time.monotonic() - clock,
        stopped,
        command,
        services,
    )


def probe_declared_services(
    inventory: Inventory, results: Iterable[ProbeResult]
) -> dict[ResultKey, ServiceInfo]:
    """Protocol probes on the open ports whose inventory entry names a service."""
    wanted = {
        (host.address, e.proto, e.port): (host, e.service)
        for host, e in inventory.expectations()
        if e.service is not None
    }
    if not wanted:
        return {}
    from pytest_portcheck.probes import ProbeRequest, probe_services  # asyncio and ssl: only when needed

    keys: list[ResultKey] = []
    requests = []
    for result in results:
        entry = wanted.get((result.host, result.proto, result.port))
        if entry is None or result.state is not PortState.OPEN or result.address is None:
            continue
        host, service = entry
        keys.append((result.address, result.proto, result.port))
        requests.append(
            ProbeRequest(
                result.address,
                result.port,
                expect=service.service,
                server_name=None if _is_address(host.address) else host.address,
                verify_tls=bool(service.tls and service.tls.verify),
            )
        )
    return dict(zip(keys, probe_services(requests), strict=True))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip("[]"), strict=False)
    except ValueError:
        return False
    return True
