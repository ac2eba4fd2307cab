"""The union of shard reports, from reports written by the real writer: UDP silence in only_open
ranges fails as in an unsharded run, and a share nobody reported is an error, never a pass."""

from __future__ import annotations

from pathlib import Path

from pytest_portcheck.engine import PortState, ProbeResult, Resolution, ScanSettings
from pytest_portcheck.inventory import parse_inventory
from pytest_portcheck.judge import Verdict
from pytest_portcheck.plan import ShardSplit, plan_inventory
from pytest_portcheck.shardreport import (
    ShardInfo,
    ShardScanReport,
    load_report,
    summarise,
    write_shard_report,
)
from pytest_portcheck.union import ReportUnion

INVENTORY = 'hosts:\n  dns:\n    address: 127.0.0.9\n    only_open: ["53/udp"]\n    range: "1-200/udp"\n'


def write_shares(folder: Path, text: str, states: dict[int, PortState], count: int = 3) -> list[Path]:
    inventory = parse_inventory(text, folder / "inv.yml")
    plan = plan_inventory(inventory)
    split = ShardSplit(plan.total, plan.digest, count)
    paths = []
    for index in range(1, count + 1):
        results = []
        for unit in split.units(index):
            host, proto, port = plan.unit(unit)
            state = states.get(port, PortState.OPEN_FILTERED)
            reason = {PortState.OPEN: "udp-response", PortState.CLOSED: "port-unreach"}.get(
                state, "no-response"
            )
            results.append(ProbeResult(host.address, host.address, proto, port, state, reason, None, 2))
        report = ShardScanReport(
            ShardInfo(plan.digest, index, count), plan, [Resolution("127.0.0.9", ("127.0.0.9",))],
            summarise(results), ScanSettings(), "", 0.0,
        )  # fmt: skip
        paths.append(folder / f"shard-{index}.json")
        write_shard_report(report, paths[-1])
    return paths


def judged(folder: Path, text: str, paths: list[Path]) -> tuple[Verdict, str]:
    inventory = parse_inventory(text, folder / "inv.yml")
    union = ReportUnion([load_report(p) for p in paths], plan_inventory(inventory))
    host = inventory.hosts[0]
    assert host.range_rule is not None
    judgement = union.judge_range(host, host.range_rule)
    return judgement.verdict, judgement.message


def test_silent_udp_ports_fail_a_range_unless_silence_counts(tmp_path: Path) -> None:
    states = {53: PortState.OPEN, **{port: PortState.CLOSED for port in range(1, 200) if port != 77}}
    paths = write_shares(tmp_path, INVENTORY, states)
    verdict, message = judged(tmp_path, INVENTORY, paths)
    # 77 and 200 were silent: listed or folded into their share's usual state, both are found.
    assert verdict is Verdict.FAILED and "2 port(s) in udp/1-200 gave no reply" in message
    assert "(open|filtered): 77,200 " in message
    quiet = INVENTORY.replace("    range:", "    silence_counts_as_closed: true\n    range:")
    assert judged(tmp_path, quiet, write_shares(tmp_path, quiet, states))[0] is Verdict.PASSED


def test_a_missing_share_is_an_error_naming_it(tmp_path: Path) -> None:
    states = {port: PortState.CLOSED for port in range(1, 201)}
    states[53] = PortState.OPEN
    paths = write_shares(tmp_path, INVENTORY, states)
    assert judged(tmp_path, INVENTORY, paths)[0] is Verdict.PASSED
    verdict, message = judged(tmp_path, INVENTORY, paths[:2])
    assert verdict is Verdict.ERROR and "shard 3/3 is missing" in message
