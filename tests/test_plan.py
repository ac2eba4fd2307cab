"""The work plan and its split into shards: a bijection, balanced, disjoint, keyed by the plan digest."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_portcheck.inventory.load import parse_inventory
from pytest_portcheck.ports import Protocol, merge_runs, runs_of_ports
from pytest_portcheck.sharding.plan import (
    ShardSpecError,
    ShardSplit,
    WorkPlan,
    host_work,
    parse_shard,
    plan_inventory,
)

digests = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 5000), count=st.integers(1, 70), digest=digests)
def test_shares_are_a_partition_balanced_to_one_unit(total: int, count: int, digest: str) -> None:
    split = ShardSplit(total, digest, count)
    seen: list[int] = []
    sizes = []
    for index in range(1, count + 1):
        units = list(split.units(index))
        sizes.append(len(units))
        assert len(units) == split.size(index)
        assert all(split.shard_of(unit) == index for unit in units)
        seen += units
    assert sorted(seen) == list(range(total))  # every unit once: no overlap, no gap
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=100, deadline=None)
@given(total=st.integers(1, 10**12), digest=digests, count=st.integers(1, 1000), unit=st.integers(0, 10**12))
def test_the_permutation_is_a_bijection_at_fleet_scale(
    total: int, digest: str, count: int, unit: int
) -> None:
    split = ShardSplit(total, digest, count)
    unit %= total
    position = split.position(unit)
    assert 0 <= position < total
    index = split.shard_of(unit)
    assert split.start(index) <= position < split.start(index + 1)
    # The inverse map used to enumerate a share lands back on the unit.
    assert (split._a_inverse * (position - split._b)) % total == unit


def test_a_hosts_ports_spread_over_every_shard() -> None:
    plan = WorkPlan.of_hosts(host_work(f"10.0.0.{i}", 1.0, 1, [(Protocol.TCP, 1, 65535)]) for i in range(3))
    split = ShardSplit(plan.total, plan.digest, 64)
    start = plan.host_start("10.0.0.1")
    assert start is not None
    counts = [0] * 65
    for port_index in range(65535):
        counts[split.shard_of(start + port_index)] += 1
    mean = 65535 / 64
    assert all(abs(count - mean) / mean < 0.01 for count in counts[1:]), counts


def test_another_digest_gives_another_split() -> None:
    one, other = ShardSplit(10_000, "a" * 32, 4), ShardSplit(10_000, "b" * 32, 4)
    assert [one.shard_of(u) for u in range(100)] != [other.shard_of(u) for u in range(100)]


@given(ports=st.lists(st.integers(1, 65535), max_size=300))
def test_runs_round_trip(ports: list[int]) -> None:
    work = host_work("h", 1.0, 1, runs_of_ports(Protocol.TCP, ports))
    wanted = sorted(set(ports))
    assert [work.port_at(i)[1] for i in range(work.count)] == wanted
    for index, port in enumerate(wanted):
        assert work.index_of(Protocol.TCP, port) == index
    assert work.index_of(Protocol.UDP, wanted[0] if wanted else 1) is None


def test_merge_runs_joins_touching_runs_of_one_protocol() -> None:
    runs = [(Protocol.TCP, 5, 9), (Protocol.TCP, 1, 4), (Protocol.UDP, 5, 6), (Protocol.TCP, 20, 20)]
    assert merge_runs(runs) == ((Protocol.TCP, 1, 9), (Protocol.TCP, 20, 20), (Protocol.UDP, 5, 6))


INVENTORY = """\
hosts:
  web:
    address: 127.0.0.1
    open: [22, 443]
    closed: ["8000-8010", "53/udp"]
  db:
    address: 127.0.0.2
    only_open: [5432]
    range: "1-1024"
"""


def test_the_digest_ignores_comments_order_and_lists() -> None:
    plan = plan_inventory(parse_inventory(INVENTORY, Path("a.yml")))
    reordered = """\
# the same work, written differently
hosts:
  db:
    address: 127.0.0.2
    only_open: [5432]       # the database
    range: "1-1024"
  web:
    address: 127.0.0.1
    closed: [443, "8000-8010", "53/udp"]
    open: [22]
"""
    assert plan_inventory(parse_inventory(reordered, Path("b.yml"))).digest == plan.digest
    more = INVENTORY.replace("open: [22, 443]", "open: [22, 443, 444]")
    assert plan_inventory(parse_inventory(more, Path("c.yml"))).digest != plan.digest
    slower = INVENTORY.replace("hosts:", "defaults: {timeout: 2}\nhosts:")
    assert plan_inventory(parse_inventory(slower, Path("d.yml"))).digest != plan.digest


def test_the_plan_holds_every_declared_port_and_range() -> None:
    plan = plan_inventory(parse_inventory(INVENTORY, Path("a.yml")))
    assert plan.total == 2 + 11 + 1 + 1025  # 5432 is outside the range, declared open
    assert plan.unit_index("127.0.0.1", Protocol.UDP, 53) is not None
    assert plan.unit_index("127.0.0.1", Protocol.TCP, 23) is None
    assert WorkPlan.from_document(plan.to_document()).digest == plan.digest
    for unit in range(plan.total):
        host, proto, port = plan.unit(unit)
        assert plan.unit_index(host.address, proto, port) == unit


def test_shard_specs() -> None:
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard("/4", {"JOB_COMPLETION_INDEX": "3"}) == (4, 4)
    for bad in ("0/4", "5/4", "2", "a/4", "/4"):
        with pytest.raises(ShardSpecError):
            parse_shard(bad, {})
    with pytest.raises(ShardSpecError, match="JOB_COMPLETION_INDEX"):
        parse_shard("/4", {"JOB_COMPLETION_INDEX": "4"})
