"""Judging an inventory from reports instead of a scan: the union of shard reports, proven complete.

``ReportUnion`` takes the reports (version 2 shard reports and version 1 reports) and the inventory's
plan. It refuses reports of another plan digest (unless ``allow_other_inventory``: they then count
only for the units their own plan holds), groups shard reports by (vantage, digest, N), and notes
every share that is missing, given twice or interrupted. Looking up a unit finds its share in O(1)
(plan.py) and answers with the listed result, the address's usual state in that share, or an
``error`` result naming the share that is missing: a unit nobody proved scanned is never a pass.

Vantages: an expectation under ``from: {V: ...}`` is judged only against reports from V; any other
expectation against the reports of every vantage that does not override the same port, and each
must satisfy it. No pytest here: the plugin presents the verdicts.
Must not import pytest or the plugin modules.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pytest_portcheck.engine import PortState, ProbeResult, Resolution
from pytest_portcheck.inventory import Expect, Expectation, HostSpec, RangeRule
from pytest_portcheck.judge import (
    Judgement,
    Verdict,
    judge,
    listening_message,
    silence_error,
    silent_among,
    silent_listener,
    silent_of,
)
from pytest_portcheck.plan import ShardSplit, WorkPlan
from pytest_portcheck.ports import Protocol, format_ports
from pytest_portcheck.results import ResultKey
from pytest_portcheck.services import ServiceInfo
from pytest_portcheck.shardreport import LoadedReport


@dataclass
class ShardGroup:
    """The shares of one (vantage, digest, N) that were given."""

    vantage: str | None
    digest: str
    count: int
    plan: WorkPlan
    split: ShardSplit
    reports: dict[int, LoadedReport] = field(default_factory=dict)
    broken: dict[int, str] = field(default_factory=dict)
    """Share -> why it cannot be used (missing, given twice, interrupted)."""

    def name(self, index: int) -> str:
        where = f" from vantage {self.vantage}" if self.vantage else ""
        return f"shard {index}/{self.count}{where}"


def _error(host: str, address: str | None, proto: Protocol, port: int, why: str) -> ProbeResult:
    return ProbeResult(host, address, proto, port, PortState.ERROR, why)


class ReportUnion:
    """Reports judged together against one inventory plan."""

    def __init__(
        self,
        reports: Sequence[LoadedReport],
        plan: WorkPlan,
        *,
        allow_other_inventory: bool = False,
        strict: bool = False,
    ) -> None:
        self.plan = plan
        self.strict = strict
        """``--portcheck-strict``: a host on which nothing answered is an error, as in a scan."""
        self._silent: dict[str | None, frozenset[str]] = {}
        self._resolutions: dict[tuple[str | None, str], Resolution | None] = {}
        self.problems: list[str] = []
        self.refused: list[str] = []
        self.groups: list[ShardGroup] = []
        self.listed_only: dict[str | None, list[LoadedReport]] = {}
        self.services: dict[ResultKey, ServiceInfo] = {}
        self.vantages: list[str | None] = []
        self._port_sets: dict[int, tuple[tuple[int, ...], frozenset[int]]] = {}
        for report in reports:
            self._add(report, allow_other_inventory)
        for group in self.groups:
            self._check_complete(group)

    def _add(self, report: LoadedReport, allow_other: bool) -> None:
        shard = report.shard
        vantage = shard.vantage if shard is not None else None
        if shard is not None and shard.digest != self.plan.digest and not allow_other:
            self.refused.append(report.path)
            self.problems.append(
                f"{report.path}: refused: it is of another inventory (plan digest {shard.digest}, this "
                f"inventory's is {self.plan.digest}); scan again, or pass --portcheck-allow-other-inventory "
                "to judge what it holds (units it does not cover are errors)"
            )
            return
        if vantage not in self.vantages:
            self.vantages.append(vantage)
        self.services.update(report.services)
        if shard is None:
            self.listed_only.setdefault(vantage, []).append(report)
            return
        group = self._group(vantage, shard.digest, shard.count, report)
        if shard.index in group.reports or shard.index in group.broken:
            first = group.reports.pop(shard.index, None)
            earlier = first.path if first is not None else "another report"
            group.broken[shard.index] = f"was given twice ({earlier}, {report.path}): keep one"
            self.problems.append(f"{group.name(shard.index)} {group.broken[shard.index]}")
        elif report.interrupted:
            group.broken[shard.index] = f"was interrupted ({report.path}): scan it again"
            self.problems.append(f"{group.name(shard.index)} {group.broken[shard.index]}")
        else:
            group.reports[shard.index] = report

    def _group(self, vantage: str | None, digest: str, count: int, report: LoadedReport) -> ShardGroup:
        for group in self.groups:
            if (group.vantage, group.digest, group.count) == (vantage, digest, count):
                return group
        plan = self.plan if digest == self.plan.digest else WorkPlan.from_document(report.plan_rows)
        group = ShardGroup(vantage, digest, count, plan, ShardSplit(plan.total, digest, count))
        self.groups.append(group)
        return group

    def _check_complete(self, group: ShardGroup) -> None:
        for index in range(1, group.count + 1):
            if index not in group.reports and index not in group.broken:
                group.broken[index] = "is missing: no report given for it"
                self.problems.append(f"{group.name(index)} {group.broken[index]}")

    # --- what the reports say ------------------------------------------------------------------

    def reports_of(self, vantage: str | None) -> Iterator[LoadedReport]:
        for group in self.groups:
            if group.vantage == vantage:
                yield from group.reports.values()
        yield from self.listed_only.get(vantage, [])

    def resolution(self, vantage: str | None, host: str) -> Resolution | None:
        """The union of the addresses every report of ``vantage`` resolved ``host`` to (once per pair:
        each item of the host asks for it, for its verdict and its silence)."""
        key = (vantage, host)
        if key not in self._resolutions:
            self._resolutions[key] = self._resolve(vantage, host)
        return self._resolutions[key]

    def _resolve(self, vantage: str | None, host: str) -> Resolution | None:
        addresses: dict[str, None] = {}
        error = None
        seen = False
        for report in self.reports_of(vantage):
            resolution = report.resolution(host)
            if resolution is None:
                continue
            seen = True
            addresses.update(dict.fromkeys(resolution.addresses))
            error = error or resolution.error
        if not seen:
            return None
        return Resolution(host, tuple(addresses), None if addresses else error)

    def silent_addresses(self, vantage: str | None) -> frozenset[str]:
        """Addresses on which nothing answered in the reports of ``vantage`` (``judge.silent_among``:
        the rule a scanning run applies), each shard's usual state standing for its ports."""
        if vantage not in self._silent:
            self._silent[vantage] = silent_among(self._states(vantage))
        return self._silent[vantage]

    def _states(self, vantage: str | None) -> Iterator[tuple[str | None, PortState]]:
        for report in self.reports_of(vantage):
            for summary in report.usual.values():
                if summary.count != 0:
                    yield summary.address, summary.state
            for result in report.listed.values():
                yield result.address, result.state

    def silent_of(self, host: HostSpec) -> tuple[str, ...]:
        """The host's addresses on which nothing answered, from any vantage: the summary warns of them."""
        found: dict[str, None] = {}
        for vantage in self.vantages:
            resolution = self.resolution(vantage, host.address)
            found.update(dict.fromkeys(silent_of(resolution, self.silent_addresses(vantage))))
        return tuple(found)

    def resolution_differences(self) -> list[str]:
        """Hosts that resolved differently in different reports of one vantage."""
        notes = []
        for vantage in self.vantages:
            seen: dict[str, dict[tuple[str, ...], list[str]]] = {}
            for report in self.reports_of(vantage):
                label = report.shard.label if report.shard is not None else report.path
                for resolution in report.resolutions:
                    key = tuple(sorted(resolution.addresses)) or (f"error: {resolution.error}",)
                    seen.setdefault(resolution.host, {}).setdefault(key, []).append(label)
            for host, variants in seen.items():
                if len(variants) > 1:
                    shown = "; ".join(f"{', '.join(k)} in {', '.join(v)}" for k, v in variants.items())
                    notes.append(f"{host} resolved differently in different shards: {shown}")
        return notes

    def lookup(self, vantage: str | None, host: str, address: str, proto: Protocol, port: int) -> ProbeResult:
        """What the reports of ``vantage`` say of one unit on one address; an error unless proven."""
        broken = None
        for group in self.groups:
            if group.vantage != vantage:
                continue
            unit = group.plan.unit_index(host, proto, port)
            if unit is None:
                continue
            index = group.split.shard_of(unit)
            report = group.reports.get(index)
            if report is None:
                broken = broken or f"{group.name(index)} {group.broken[index]}"
                continue
            return self._from_share(group, index, report, host, address, proto, port)
        for report in self.listed_only.get(vantage, []):
            result = report.listed.get((address, proto, port))
            if result is not None:
                return result
        if broken is not None:
            return _error(host, address, proto, port, f"not covered: {broken}")
        refused = f" ({len(self.refused)} report(s) of another inventory refused)" if self.refused else ""
        where = f"from vantage {vantage}" if vantage else "without a vantage"
        return _error(host, address, proto, port, f"not scanned: no report {where} covers it{refused}")

    def _from_share(
        self,
        group: ShardGroup,
        index: int,
        report: LoadedReport,
        host: str,
        address: str,
        proto: Protocol,
        port: int,
    ) -> ProbeResult:
        listed = report.listed.get((address, proto, port))
        if listed is not None:
            return listed
        summary = report.usual.get((host, address, proto))
        if summary is not None:
            return ProbeResult(host, address, proto, port, summary.state, summary.reason)
        resolution = report.resolution(host)
        if resolution is not None and resolution.error is not None:
            why = f"{group.name(index)} could not resolve {host}: {resolution.error}"
        elif resolution is not None and address not in resolution.addresses:
            shown = ", ".join(resolution.addresses) or "nothing"
            why = f"{group.name(index)} resolved {host} to {shown}, not {address}: not scanned there"
        else:
            why = f"{group.name(index)} ({report.path}) does not hold it"
        return _error(host, address, proto, port, why)

    # --- verdicts ------------------------------------------------------------------------------

    def applicable_vantages(self, host: HostSpec, expectation: Expectation) -> list[str | None]:
        if expectation.vantage is not None:
            return [expectation.vantage]
        overriding = {
            e.vantage
            for e in host.expectations
            if e.vantage is not None and (e.proto, e.port) == (expectation.proto, expectation.port)
        }
        return [vantage for vantage in self.vantages if vantage not in overriding]

    def judge_port(self, host: HostSpec, expectation: Expectation) -> Judgement:
        vantages = self.applicable_vantages(host, expectation)
        where = f"{host.name} {expectation.proto.value}/{expectation.port}"
        if expectation.vantage is not None and expectation.vantage not in self.vantages:
            message = (
                f"{where}: cannot check — no report from vantage {expectation.vantage} "
                f"(scan there with --vantage {expectation.vantage})"
            )
            return Judgement(Verdict.ERROR, message, ())
        if not vantages:
            message = f"{where}: cannot check — no report from a vantage it applies to"
            return Judgement(Verdict.ERROR, message, ())
        judgements = []
        for vantage in vantages:
            view = UnitView(self, vantage, host.address)
            resolution = self.resolution(vantage, host.address)
            found = judge(
                host,
                expectation,
                resolution,
                view,
                services=self.services,
                silent=silent_of(resolution, self.silent_addresses(vantage)),
                strict=self.strict,
            )
            judgements.append((vantage, found))
        return combine(judgements)

    def judge_range(self, host: HostSpec, rule: RangeRule) -> Judgement:
        allowed_by: dict[str | None, set[int]] = {}
        for e in host.expectations:
            if e.vantage is not None and e.expect is Expect.OPEN and e.proto is rule.proto:
                allowed_by.setdefault(e.vantage, set()).add(e.port)
        if not self.vantages:
            return Judgement(Verdict.ERROR, f"{host.name} {rule.label}: cannot check — no report", ())
        judgements = [
            (vantage, self._judge_range_from(host, rule, vantage, allowed_by.get(vantage, set())))
            for vantage in self.vantages
        ]
        return combine(judgements)

    def _judge_range_from(
        self, host: HostSpec, rule: RangeRule, vantage: str | None, allowed: set[int]
    ) -> Judgement:
        """As ``judge.judge_range``, on the union: open ports fail it, and so do UDP ports that
        gave no reply (open|filtered) unless silence counts as closed; unproven ports are errors."""
        where = f"{host.name} {rule.label}"
        resolution = self.resolution(vantage, host.address)
        if resolution is None or resolution.error is not None:
            why = resolution.error if resolution is not None else "no report names the host"
            return Judgement(Verdict.ERROR, f"{where}: cannot check — {why}", ())
        nothing_answered = silent_of(resolution, self.silent_addresses(vantage))
        if nothing_answered and self.strict:
            return silence_error(where, nothing_answered)
        ports = self._port_set(rule)
        groups = [g for g in self.groups if g.vantage == vantage and g.plan.host(host.address) is not None]
        errors: list[str] = []
        results: list[ProbeResult] = []
        quiet: list[int] = []
        for address in resolution.addresses:
            if not groups:
                errors += self._range_from_listed(vantage, host, address, rule, results)
                continue
            for group in groups:
                errors += self._range_share_problems(group, host.address, address, rule)
                results += [
                    r for r in self._range_listed(group, host.address, address, rule) if r.port in ports
                ]
                if not rule.silence_counts_as_closed:
                    quiet += self._usually_silent(group, host.address, address, rule)
        unexpected = [r for r in results if r.state is PortState.OPEN and r.port not in allowed]
        unexpected += [r for r in results if silent_listener(r) and r.port not in allowed]
        errors += [
            f"{where}: cannot check {r.address}:{r.port} — {r.reason}"
            for r in results
            if r.state is PortState.ERROR
        ]
        if not rule.silence_counts_as_closed:
            silent = [r for r in results if r.state is PortState.OPEN_FILTERED]
            unexpected += silent
            quiet += [r.port for r in silent]
        if errors:
            return Judgement(Verdict.ERROR, "\n".join(errors[:20]), tuple(unexpected))
        lines = []
        opened = [r for r in unexpected if r.state is PortState.OPEN]
        if opened:
            shown = ", ".join(f"{r.port} ({r.service}) on {r.address}" for r in opened[:50])
            more = f" and {len(opened) - 50} more" if len(opened) > 50 else ""
            lines.append(f"{host.name}: {len(opened)} unexpected open port(s) in {rule.label}: {shown}{more}")
        if quiet:
            lines.append(
                f"{host.name}: {len(quiet)} port(s) in {rule.label} gave no reply and no ICMP error "
                f"(open|filtered): {format_ports(quiet)} — silence proves nothing; declare them filtered:, "
                "or set silence_counts_as_closed: true on the host"
            )
        listening = [r.port for r in unexpected if silent_listener(r)]
        if listening:
            lines.append(listening_message(host.name, rule.label, listening))
        if lines:
            return Judgement(Verdict.FAILED, "\n".join(lines), tuple(unexpected))
        return Judgement(Verdict.PASSED, f"{where}: nothing else open", ())

    @staticmethod
    def _usually_silent(group: ShardGroup, host: str, address: str, rule: RangeRule) -> list[int]:
        """Range ports whose share says "usually open|filtered" and does not list them otherwise."""
        shares = {
            index
            for index, report in group.reports.items()
            if (summary := report.usual.get((host, address, rule.proto))) is not None
            and summary.state is PortState.OPEN_FILTERED
        }
        if not shares:
            return []
        found = []
        for port in rule.ports:
            unit = group.plan.unit_index(host, rule.proto, port)
            if unit is None:
                continue
            index = group.split.shard_of(unit)
            if index in shares and (address, rule.proto, port) not in group.reports[index].listed:
                found.append(port)
        return found

    def _port_set(self, rule: RangeRule) -> frozenset[int]:
        # Hosts of a fleet share one range tuple: one set for all of them.
        cached = self._port_sets.get(id(rule.ports))
        if cached is None or cached[0] is not rule.ports:
            cached = (rule.ports, frozenset(rule.ports))
            self._port_sets[id(rule.ports)] = cached
        return cached[1]

    def _range_share_problems(self, group: ShardGroup, host: str, address: str, rule: RangeRule) -> list[str]:
        """Shares that hold some port of the range on ``address`` but cannot vouch for it."""
        suspect: dict[int, str] = dict(group.broken)
        for index, report in group.reports.items():
            summary = report.usual.get((host, address, rule.proto))
            if summary is None:
                resolution = report.resolution(host)
                if resolution is None or address not in resolution.addresses:
                    suspect[index] = "did not scan this address (it resolved the host differently)"
            elif summary.state in (PortState.OPEN, PortState.ERROR) and summary.count:
                suspect[index] = f"says {summary.count} port(s) are {summary.state.value} ({summary.reason})"
        hit: dict[int, str] = {}
        for port in rule.ports:  # stops as soon as every suspect share is found to hold a port
            if not suspect:
                break
            unit = group.plan.unit_index(host, rule.proto, port)
            if unit is None:
                continue
            index = group.split.shard_of(unit)
            if index in suspect:
                hit[index] = suspect.pop(index)
        return [f"{host} {rule.label} on {address}: {group.name(i)} {why}" for i, why in sorted(hit.items())]

    @staticmethod
    def _range_listed(group: ShardGroup, host: str, address: str, rule: RangeRule) -> list[ProbeResult]:
        found: list[ProbeResult] = []
        for report in group.reports.values():
            summary = report.usual.get((host, address, rule.proto))
            if summary is not None:
                found += summary.exceptions
        return found

    def _range_from_listed(
        self, vantage: str | None, host: HostSpec, address: str, rule: RangeRule, results: list[ProbeResult]
    ) -> list[str]:
        """A range judged from version 1 reports: every port must be listed in one of them."""
        missing = 0
        problems = []
        for port in rule.ports:
            result = self.lookup(vantage, host.address, address, rule.proto, port)
            if (
                result.state is PortState.ERROR
                and result.address == address
                and result.reason.startswith("not ")
            ):
                missing += 1
                if missing == 1:
                    problems.append(
                        f"{host.name} {rule.label}: cannot check {address}:{port} — {result.reason}"
                    )
            else:
                results.append(result)
        if missing > 1:
            problems.append(f"{host.name} {rule.label}: {missing} port(s) of {address} cannot be checked")
        return problems


def combine(judgements: Sequence[tuple[str | None, Judgement]]) -> Judgement:
    """One verdict from several vantages: any error, else any failure, else a pass."""
    if len(judgements) == 1 and judgements[0][0] is None:
        return judgements[0][1]
    found = tuple(result for _, j in judgements for result in j.found)
    for verdict in (Verdict.ERROR, Verdict.FAILED):
        bad = [(v, j) for v, j in judgements if j.verdict is verdict]
        if bad:
            message = "\n".join(f"from {v or '(no vantage)'}: {j.message}" for v, j in bad)
            return Judgement(verdict, message, found)
    message = "\n".join(f"from {v or '(no vantage)'}: {j.message}" for v, j in judgements)
    return Judgement(Verdict.PASSED, message, found)


class UnitView(Mapping[ResultKey, ProbeResult]):
    """The union as ``judge.judge`` reads results: ``view.get((address, proto, port))``."""

    def __init__(self, union: ReportUnion, vantage: str | None, host: str) -> None:
        self._union = union
        self._vantage = vantage
        self._host = host

    def __getitem__(self, key: ResultKey) -> ProbeResult:
        address, proto, port = key
        return self._union.lookup(self._vantage, self._host, address, proto, port)

    def __iter__(self) -> Iterator[ResultKey]:
        return iter(())  # units are looked up, never listed: a full range would be millions

    def __len__(self) -> int:
        return 0
