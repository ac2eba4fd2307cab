"""The work an inventory needs, and its deterministic split into shards.

A *work unit* is (host, protocol, port): one declared port or one port of an ``only_open`` range of a
host as the inventory names it (its ``address:``), whatever it resolves to. ``WorkPlan`` numbers the
units 0..W-1 without listing them (each host holds its ports as runs, so 5,000 hosts x 65,535 ports
cost a few kilobytes), and carries a digest of the plan in a canonical form: the hosts sorted by
address, each with its timeout, retries, merged port runs and *requirements* — every entry that names a
service (with its TLS and auth requirements), is scoped to a vantage or is declared by a source file
(Compose, Kubernetes, Terraform: read live, outside the inventory), since what a report can prove
depends on them: a probe run without a TLS floor cannot answer ``min_version``. Comments, whitespace,
host order and which list a port sits in do not change the digest; a port, a host, a timeout, a retry
count or a requirement does.

``ShardSplit`` cuts [0, W) into N shares through a keyed affine permutation
``p = (a*u + b) mod W`` (``a`` coprime to W, so it is a bijection; ``a`` and ``b`` come from the
digest, ``a`` near W times the golden ratio so a host's consecutive ports land far apart, in every
shard). Share K holds the units whose position p falls in [(K-1)W/N, KW/N): shares cannot overlap,
leave no gap, and differ by at most one unit. A shard enumerates only its own units (O(1) each, by the
inverse map), and the judge finds the share of any unit in O(1). The permutation spreads work fairly;
it is not a secret and not cryptographic.

Imports the inventory model and ports (port runs) only; nothing here resolves, scans or imports pytest.
Must not import pytest, yaml (the inventory is handed in) or the engine's scanner.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_portcheck.ports import PortRun, Protocol, format_runs, merge_runs, runs_of_ports, runs_of_spec

if TYPE_CHECKING:
    from pytest_portcheck.inventory.model import Expectation, Inventory

Requirement = tuple[str, int, str | None, str | None, str | None, bool, int | None, str | None]
"""(protocol, port, vantage, service, TLS min_version, TLS verify, TLS expires_in_days, auth): what an
entry asks of a port beyond its state, as the plan (and its digest) records it."""

_GOLDEN = (math.sqrt(5) - 1) / 2


class ShardSpecError(ValueError):
    """A ``--shard`` value that is not K/N with 1 <= K <= N; the message names the fix."""


@dataclass(frozen=True, slots=True)
class HostWork:
    """The ports one inventory host needs, as sorted runs (tcp before udp, then by port)."""

    address: str
    """What is resolved, as the inventory writes it (``address:``, or the host's name)."""
    timeout: float
    retries: int
    runs: tuple[PortRun, ...]
    offsets: tuple[int, ...]
    """Index of the first unit of each run within the host."""
    count: int
    requirements: tuple[Requirement, ...] = ()
    """Sorted, each once (see ``Requirement``)."""

    def port_at(self, index: int) -> tuple[Protocol, int]:
        run = bisect.bisect_right(self.offsets, index) - 1
        proto, first, _last = self.runs[run]
        return proto, first + index - self.offsets[run]

    def index_of(self, proto: Protocol, port: int) -> int | None:
        """The unit index of (proto, port) within the host, or None when the host does not need it."""
        run = bisect.bisect_right(self.runs, (proto, port, 65536)) - 1
        if run < 0:
            return None
        run_proto, first, last = self.runs[run]
        if run_proto is not proto or not first <= port <= last:
            return None
        return self.offsets[run] + port - first

    def spec(self) -> str:
        """The runs as a port spec: ``1-1024/tcp,53/udp``."""
        return format_runs(self.runs)


def host_work(
    address: str,
    timeout: float,
    retries: int,
    runs: Iterable[PortRun],
    requirements: Iterable[Requirement] = (),
) -> HostWork:
    merged = merge_runs(runs)
    offsets, total = [], 0
    for _proto, first, last in merged:
        offsets.append(total)
        total += last - first + 1
    # json.dumps as the sort key: None and text may meet in one position.
    ordered = tuple(sorted(set(requirements), key=json.dumps))
    return HostWork(address, timeout, retries, merged, tuple(offsets), total, ordered)


@dataclass(frozen=True, slots=True)
class WorkPlan:
    """Every unit of an inventory, numbered host by host in canonical (address) order."""

    hosts: tuple[HostWork, ...]
    starts: tuple[int, ...]
    total: int
    digest: str

    @classmethod
    def of_hosts(cls, hosts: Iterable[HostWork]) -> WorkPlan:
        ordered = tuple(sorted(hosts, key=lambda host: host.address))
        starts, total = [], 0
        for host in ordered:
            starts.append(total)
            total += host.count
        canonical = json.dumps([_canonical(host) for host in ordered], separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        return cls(ordered, tuple(starts), total, digest)

    def host(self, address: str) -> HostWork | None:
        index = bisect.bisect_left(self.hosts, address, key=lambda host: host.address)
        if index < len(self.hosts) and self.hosts[index].address == address:
            return self.hosts[index]
        return None

    def host_start(self, address: str) -> int | None:
        index = bisect.bisect_left(self.hosts, address, key=lambda host: host.address)
        if index < len(self.hosts) and self.hosts[index].address == address:
            return self.starts[index]
        return None

    def unit(self, index: int) -> tuple[HostWork, Protocol, int]:
        host_index = bisect.bisect_right(self.starts, index) - 1
        host = self.hosts[host_index]
        proto, port = host.port_at(index - self.starts[host_index])
        return host, proto, port

    def unit_index(self, address: str, proto: Protocol, port: int) -> int | None:
        start = self.host_start(address)
        host = self.host(address)
        if start is None or host is None:
            return None
        within = host.index_of(proto, port)
        return None if within is None else start + within

    def to_document(self) -> list[list[Any]]:
        """The plan as reports store it: ``[address, timeout, retries, spec]`` per host, and the
        host's requirements as a fifth element when it has any (``Requirement`` as a list)."""
        return [
            [h.address, h.timeout, h.retries, h.spec()]
            + ([[list(r) for r in h.requirements]] if h.requirements else [])
            for h in self.hosts
        ]

    @classmethod
    def from_document(cls, rows: Sequence[Sequence[Any]]) -> WorkPlan:
        """The plan a report stores (checked by ``report.schema`` first: a bad spec is a ValueError)."""
        hosts = []
        for address, timeout, retries, spec, *rest in rows:
            runs = runs_of_spec(str(spec))
            requirements = [_requirement(row) for row in rest[0]] if rest else []
            hosts.append(host_work(str(address), float(timeout), int(retries), runs, requirements))
        return cls.of_hosts(hosts)


def _requirement(row: Sequence[Any]) -> Requirement:
    proto, port, vantage, service, min_version, verify, expires, auth = row
    return (str(proto), int(port), vantage, service, min_version, bool(verify), expires, auth)


def requirement_of(expectation: Expectation) -> Requirement | None:
    """What an entry asks beyond a port's state (None when it asks nothing more: no service, no vantage,
    no source). A port a source file declares is recorded too: the file lives outside the inventory,
    and under ``only_open`` today's Compose file could otherwise share yesterday's plan and judge its
    reports although it declares other ports."""
    wanted = expectation.service
    if wanted is None and expectation.vantage is None and expectation.declared_at is None:
        return None
    tls = wanted.tls if wanted is not None else None
    return (
        expectation.proto.value,
        expectation.port,
        expectation.vantage,
        wanted.service if wanted is not None else None,
        tls.min_version if tls is not None else None,
        bool(tls is not None and tls.verify),
        tls.expires_in_days if tls is not None else None,
        wanted.auth if wanted is not None else None,
    )


def _canonical(host: HostWork) -> list[Any]:
    runs = [[proto.value, first, last] for proto, first, last in host.runs]
    canonical: list[Any] = [host.address, repr(float(host.timeout)), host.retries, runs]
    if host.requirements:  # absent when there are none: plans without any keep their digest
        canonical.append([list(requirement) for requirement in host.requirements])
    return canonical


def plan_inventory(inventory: Inventory) -> WorkPlan:
    """Every unit the inventory needs: declared ports (of every vantage) and ``only_open`` ranges.

    Hosts that share an address are one host here, with the most patient timeout and retries.
    """
    runs: dict[str, list[PortRun]] = {}
    requirements: dict[str, list[Requirement]] = {}
    timing: dict[str, tuple[float, int]] = {}
    range_runs: dict[int, tuple[tuple[int, ...], list[PortRun]]] = {}
    for host in inventory.hosts:
        known = timing.get(host.address, (host.timeout, host.retries))
        timing[host.address] = (max(known[0], host.timeout), max(known[1], host.retries))
        wanted = runs.setdefault(host.address, [])
        wanted.extend((e.proto, e.port, e.port) for e in host.expectations)
        # A source's "one port of this range": its item checks that no more than one is open.
        wanted.extend((a.proto, a.first, a.last) for a in host.allowed if a.one_of)
        asked = requirements.setdefault(host.address, [])
        asked.extend(r for e in host.expectations if (r := requirement_of(e)) is not None)
        rule = host.range_rule
        if rule is not None:
            # Hosts of a fleet often share one range: convert each distinct tuple once.
            cached = range_runs.get(id(rule.ports))
            if cached is None or cached[0] is not rule.ports:
                cached = (rule.ports, runs_of_ports(rule.proto, rule.ports))
                range_runs[id(rule.ports)] = cached
            wanted.extend(cached[1])
    return WorkPlan.of_hosts(
        host_work(address, *timing[address], wanted, requirements[address])
        for address, wanted in runs.items()
    )


def parse_shard(text: str, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """``K/N`` (1-based) as (K, N). ``K`` may be left out (``/N``) or be ``-``; it is then read from
    ``JOB_COMPLETION_INDEX`` (Kubernetes Indexed Jobs, 0-based) plus one."""
    head, slash, tail = text.partition("/")
    if not slash:
        raise ShardSpecError(f"--shard {text!r}: write K/N, e.g. --shard 2/4 (share 2 of 4)")
    try:
        count = int(tail)
    except ValueError:
        raise ShardSpecError(f"--shard {text!r}: N must be a whole number, e.g. --shard 2/4") from None
    if head in ("", "-"):
        index_text = (environ or {}).get("JOB_COMPLETION_INDEX")
        if index_text is None:
            raise ShardSpecError(
                f"--shard {text!r} takes K from JOB_COMPLETION_INDEX, which is not set: write K/N"
            )
        try:
            index = int(index_text) + 1
        except ValueError:
            raise ShardSpecError(f"JOB_COMPLETION_INDEX={index_text!r} is not a whole number") from None
    else:
        try:
            index = int(head)
        except ValueError:
            raise ShardSpecError(f"--shard {text!r}: K must be a whole number, e.g. --shard 2/4") from None
    if count < 1 or not 1 <= index <= count:
        if head in ("", "-"):
            raise ShardSpecError(
                f"JOB_COMPLETION_INDEX={index - 1} is share {index}, but --shard says there are {count}: "
                "give the Job as many completions as N"
            )
        raise ShardSpecError(f"--shard {index}/{count}: K must be 1 to N and N at least 1")
    return index, count


SHARDS_ALWAYS_ALLOWED = 64
"""A share count this small is accepted whatever the plan (a fixed CI matrix may outnumber a small
inventory's units: the extra shares are empty); beyond it, at most one share per unit."""


def shard_count_problem(count: int, total: int) -> str | None:
    """Why ``count`` shares of a plan of ``total`` units is refused (a report claiming 10^12 shares
    would have the judge account for each), or None."""
    if count <= max(total, SHARDS_ALWAYS_ALLOWED):
        return None
    return (
        f"{count:,} shares of a plan of {total:,} unit(s): a share count is at most the number of units "
        f"(or {SHARDS_ALWAYS_ALLOWED})"
    )


class ShardSplit:
    """N shares of the unit indices [0, total), cut by the permutation keyed by ``digest``."""

    def __init__(self, total: int, digest: str, count: int) -> None:
        if count < 1:
            raise ShardSpecError(f"the number of shards must be at least 1, not {count}")
        self.total = total
        self.count = count
        key = int(hashlib.sha256(f"portcheck-shard:{digest}".encode()).hexdigest(), 16)
        if total <= 1:
            self._a = self._a_inverse = 1
            self._b = 0
            return
        spread = max(1, total // 64)
        a = int(total * _GOLDEN) + key % spread
        while math.gcd(a, total) != 1:
            a += 1
        self._a = a % total
        self._a_inverse = pow(self._a, -1, total)
        self._b = (key >> 64) % total

    def start(self, index: int) -> int:
        """First position of share ``index`` (1-based); ``start(N + 1)`` is the total."""
        return (index - 1) * self.total // self.count

    def position(self, unit: int) -> int:
        return (self._a * unit + self._b) % self.total

    def shard_of(self, unit: int) -> int:
        """The share (1-based) that holds ``unit``, in O(1)."""
        position = self.position(unit)
        index = position * self.count // self.total + 1
        while position < self.start(index):
            index -= 1
        while position >= self.start(index + 1):
            index += 1
        return index

    def units(self, index: int) -> Iterator[int]:
        """The units of share ``index``, in permuted order (hosts interleaved)."""
        first, stop = self.start(index), self.start(index + 1)
        if first >= stop:
            return
        step, total = self._a_inverse, self.total
        unit = (step * (first - self._b)) % total
        for _ in range(stop - first):
            yield unit
            unit += step
            if unit >= total:
                unit -= total

    def size(self, index: int) -> int:
        return self.start(index + 1) - self.start(index)
