"""Judging from reports: the reports of ONE run of an inventory, proven complete, as the judge's evidence.

``ReportUnion`` takes the loaded reports (version 2 shard reports and version 1 reports) and the
inventory's plan, and keeps exactly one run (report/provenance.py): the one ``run_id`` names, else the newest
by its reports' start time. Every other report is ignored and listed with the reason (another run,
another inventory). A report written without a run id is a run of its own. Within the run, each
vantage's evidence is one shard set (one digest and count; shares missing, given twice,
interrupted, too old, unsigned or altered are errors for their units) or the version 1 reports of
the run — never both, never two sets, and never filled from another run. Service facts are kept per
vantage and per share, never merged.

``ReportUnion`` is a ``judge.evidence.Evidence``: the judge reads it as it reads a scan. Each vantage's
evidence is a ``vantages.Source`` (a shard set, plain reports, or why there is none): a unit's share
is found in O(1) (plan.py); a range on an address costs one look at each share's summary of that
address, and walks the range's ports only where a share cannot vouch for them.
Must not import pytest or the plugin modules.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pytest_portcheck.engine import AddressQuality, ProbeResult, Resolution
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.inventory.model import Expectation, HostSpec, RangeRule, ServiceRequirement
from pytest_portcheck.judge.evidence import RangeResults, Vantage
from pytest_portcheck.judge.expectation import judge
from pytest_portcheck.judge.ranges import judge_range
from pytest_portcheck.judge.silence import silent_of
from pytest_portcheck.judge.verdict import Judgement
from pytest_portcheck.ports import Protocol
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.sharding.plan import WorkPlan, shard_count_problem
from pytest_portcheck.sharding.report import LoadedReport
from pytest_portcheck.sharding.vantages import ListedSet, ShardSet, Source

FUTURE_TOLERANCE = datetime.timedelta(minutes=5)
"""A report may start this much after the judge's clock (clocks differ) before it is refused."""


def parse_started(text: str) -> datetime.datetime | None:
    """A report's start time (ISO 8601 with a zone), or None when it has none a clock can compare."""
    try:
        started = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return started if started.tzinfo is not None else None


def format_age(age: datetime.timedelta) -> str:
    seconds = int(age.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"


@dataclass(frozen=True, slots=True)
class Freshness:
    """What makes a report of the chosen run unusable besides its shape: a signature that does not hold
    (checked on load, with PORTCHECK_REPORT_KEY), and an age limit against a clock."""

    max_age: datetime.timedelta | None = None
    max_age_text: str = ""
    now: datetime.datetime | None = None

    def problem(self, report: LoadedReport) -> str | None:
        if report.integrity is not None:
            return f"cannot be trusted: {report.integrity}"
        if self.max_age is None:
            return None
        started = parse_started(report.started)
        if started is None:
            return "has no start time a clock can read: its age cannot be checked (scan again)"
        now = self.now or datetime.datetime.now(datetime.timezone.utc)
        if started - now > FUTURE_TOLERANCE:
            return f"starts in the future ({report.started}): a clock is wrong, or the report is forged"
        if now - started > self.max_age:
            return (
                f"is too old: started {report.started}, {format_age(now - started)} ago "
                f"(--portcheck-max-age {self.max_age_text}): scan again, or raise --portcheck-max-age"
            )
        return None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A report the judge left out, and why (another run, another inventory)."""

    path: str
    why: str


_NEVER = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def _run_key(report: LoadedReport) -> str:
    # A run id holds no space: a file of its own can never collide with one.
    return report.run_id or f"{report.path} (written without a run id: a run of its own)"


def _latest(reports: Iterable[LoadedReport]) -> datetime.datetime:
    return max((parse_started(r.started) or _NEVER for r in reports), default=_NEVER)


class ReportUnion:
    """The reports of one run judged against one inventory plan: an ``evidence.Evidence``."""

    def __init__(
        self,
        reports: Sequence[LoadedReport],
        plan: WorkPlan,
        *,
        allow_other_inventory: bool = False,
        strict: bool = False,
        run_id: str | None = None,
        freshness: Freshness | None = None,
        failure: str | None = None,
    ) -> None:
        self.plan = plan
        self.strict = strict
        """``--portcheck-strict``: a host on which nothing answered is an error, as in a scan."""
        self.allow_other = allow_other_inventory
        self.freshness = freshness or Freshness()
        self.ignored: list[Ignored] = []
        self.refused = 0
        """Shard reports of another inventory that were refused."""
        self.run: str | None = None
        self.run_reports: list[LoadedReport] = []
        self.sources: dict[Vantage, Source] = {}
        self.failure = failure
        self._shown: _ServicesShown | None = None
        if failure is None:
            self._build(self._choose(self._candidates(reports), run_id))
        if self.failure is not None:
            self.sources = {None: Source(None, self.failure)}
        self.problems = [problem for source in self.sources.values() for problem in source.problems()]

    # --- which reports: one inventory, one run ---------------------------------------------------

    def _candidates(self, reports: Sequence[LoadedReport]) -> list[LoadedReport]:
        hosts = {host.address for host in self.plan.hosts}
        candidates = []
        for report in reports:
            if report.shard is not None and report.shard.digest == self.plan.digest:
                candidates.append(report)
                continue
            if report.shard is not None and not self.allow_other:
                self.refused += 1
                self.ignored.append(Ignored(report.path, (
                    f"refused: it is of another inventory (plan digest {report.shard.digest}, this "
                    f"inventory's is {self.plan.digest}); scan again, or pass "
                    "--portcheck-allow-other-inventory "
                    "to judge what it holds (units it does not cover are errors)"
                )))  # fmt: skip
                continue
            names = (
                {str(row[0]) for row in report.plan_rows}
                if report.shard
                else {r.host for r in report.resolutions}
            )
            if names & hosts:
                candidates.append(report)
            else:
                self.ignored.append(
                    Ignored(report.path, "another inventory: it names none of this inventory's hosts")
                )
        return candidates

    def _choose(self, candidates: Sequence[LoadedReport], run_id: str | None) -> list[LoadedReport]:
        """The newest run's reports, or those of ``run_id``; every other report is ignored, saying why."""
        runs: dict[str, list[LoadedReport]] = {}
        for report in candidates:
            runs.setdefault(_run_key(report), []).append(report)
        if run_id is not None and run_id not in runs:
            known = ", ".join(sorted(key for key in runs if " " not in key)[:10]) or "none with a run id"
            self.failure = f"no report of run {run_id} (--portcheck-run-id): runs found: {known}"
            chosen = None
        elif run_id is not None:
            chosen = run_id
        elif runs:
            chosen = max(runs, key=lambda key: (_latest(runs[key]), key))
        else:
            chosen = None
            why = f": {len(self.ignored)} report(s) ignored, see the summary" if self.ignored else ""
            self.failure = f"no report of this inventory{why}"
        for key, members in runs.items():
            if key == chosen:
                continue
            started = _latest(members)
            when = f"started {started.isoformat()}" if started != _NEVER else "no start time"
            why = f"another run ({key}, {when}); judged: {chosen or 'none'}"
            self.ignored += [Ignored(report.path, why) for report in members]
        self.run = chosen
        self.run_reports = runs.get(chosen, []) if chosen is not None else []
        return self.run_reports

    def _build(self, reports: Sequence[LoadedReport]) -> None:
        by_vantage: dict[Vantage, list[LoadedReport]] = {}
        for report in reports:
            by_vantage.setdefault(report.shard.vantage if report.shard else None, []).append(report)
        for vantage, members in by_vantage.items():
            self.sources[vantage] = self._source(vantage, members)

    def _source(self, vantage: Vantage, members: Sequence[LoadedReport]) -> Source:
        """One vantage's evidence: one shard set, or plain reports; anything else cannot be judged."""
        where = f" from vantage {vantage}" if vantage else ""
        plain = [report for report in members if report.shard is None]
        sets: dict[tuple[str, int], list[LoadedReport]] = {}
        for report in members:
            if report.shard is not None:
                sets.setdefault((report.shard.digest, report.shard.count), []).append(report)
        if len({digest for digest, _ in sets}) > 1 and any(digest == self.plan.digest for digest, _ in sets):
            for (digest, count), shares in list(sets.items()):  # this inventory's set, not an older one's
                if digest != self.plan.digest:
                    self.ignored += [Ignored(r.path, "another inventory, in the same run") for r in shares]
                    del sets[(digest, count)]
        if len(sets) > 1 or (sets and plain):
            held = [
                f"a shard set of {count} share(s) ({shares[0].path}, ...)"
                for (_, count), shares in sets.items()
            ]
            held += [f"a plain report ({report.path})" for report in plain[:3]]
            return Source(vantage, (
                f"run {self.run}{where} holds {' and '.join(held)}: a run scans an inventory once, as one "
                "shard set (or plain reports); give each scan its own --run-id, or name one with "
                "--portcheck-run-id"
            ))  # fmt: skip
        if not sets:
            return ListedSet(vantage, [(report, self.freshness.problem(report)) for report in plain])
        ((digest, count), shares), *_ = sets.items()
        return self._shard_set(vantage, digest, count, shares)

    def _shard_set(self, vantage: Vantage, digest: str, count: int, shares: Sequence[LoadedReport]) -> Source:
        plan = self.plan
        if digest != self.plan.digest:
            plan = WorkPlan.from_document(shares[0].plan_rows)
            if plan.digest != digest:
                return Source(vantage, (
                    f"{shares[0].path}: its plan does not hash to its digest {digest}: it was altered, or "
                    "written by another version of portcheck; scan again"
                ))  # fmt: skip
        too_many = shard_count_problem(count, plan.total)
        if too_many is not None:
            return Source(vantage, f"{shares[0].path}: refused: shard.count says {too_many}")
        group = ShardSet(vantage, digest, count, plan, other=digest != self.plan.digest)
        if self.refused:
            group.note = f" ({self.refused} report(s) of another inventory refused)"
        for report in shares:
            group.add(report, self.freshness.problem(report))
        return group

    # --- the evidence (evidence.Evidence) --------------------------------------------------------

    @property
    def vantages(self) -> Sequence[Vantage]:
        return list(self.sources)

    @property
    def complete(self) -> bool:
        return True

    def absent(self, vantage: Vantage) -> str:
        if self.failure is not None:
            return self.failure
        return f"no report from vantage {vantage} (scan there with --vantage {vantage})"

    def _of(self, vantage: Vantage) -> Source:
        return self.sources.get(vantage) or Source(vantage, self.absent(vantage))

    def resolution(self, vantage: Vantage, host: str) -> Resolution | None:
        return self._of(vantage).resolution(host)

    def result(
        self, vantage: Vantage, host: str, address: str, proto: Protocol, port: int
    ) -> ProbeResult | None:
        return self._of(vantage).result(host, address, proto, port)

    def service(
        self, vantage: Vantage, host: str, address: str, proto: Protocol, port: int
    ) -> ServiceInfo | None:
        return self._of(vantage).service(host, address, proto, port)

    def unprobed(
        self,
        vantage: Vantage,
        host: str,
        address: str,
        proto: Protocol,
        port: int,
        wanted: ServiceRequirement,
    ) -> str | None:
        return self._of(vantage).unprobed(host, address, proto, port, wanted)

    def silent(self, vantage: Vantage, host: str) -> tuple[str, ...]:
        source = self._of(vantage)
        return silent_of(source.resolution(host), source.silent_addresses())

    def quality(self, vantage: Vantage) -> Mapping[str, AddressQuality]:
        return self._of(vantage).quality()

    def range_results(self, vantage: Vantage, host: str, address: str, rule: RangeRule) -> RangeResults:
        return self._of(vantage).range_results(host, address, rule)

    # --- for the plugin: verdicts, the summary, what was judged ----------------------------------

    def judge_port(self, host: HostSpec, expectation: Expectation) -> Judgement:
        return judge(host, expectation, self, strict=self.strict)

    def judge_range(self, host: HostSpec, rule: RangeRule) -> Judgement:
        return judge_range(host, rule, self, strict=self.strict)

    def silent_of(self, host: HostSpec) -> tuple[str, ...]:
        """The host's addresses on which nothing answered, from any vantage: the summary warns of them."""
        found: dict[str, None] = {}
        for vantage in self.sources:
            found.update(dict.fromkeys(self.silent(vantage, host.address)))
        return tuple(found)

    @property
    def services(self) -> Mapping[ResultKey, ServiceInfo]:
        """What probes found, for showing beside an item (never for judging, which asks per vantage
        and share): the first vantage that probed the port."""
        if self._shown is None:
            self._shown = _ServicesShown(self)  # built once: every item asks
        return self._shown

    def resolution_differences(self) -> list[str]:
        return [note for source in self.sources.values() for note in source.differences()]

    def evidence_span(self) -> tuple[str, str] | None:
        """(oldest, newest) start of the judged run's reports."""
        times = sorted(t for r in self.run_reports if (t := parse_started(r.started)) is not None)
        return (times[0].isoformat(), times[-1].isoformat()) if times else None

    def summary_lines(self, path: object) -> list[str]:
        shown = ", ".join(source.describe() for source in self.sources.values())
        lines = [f"{path}: plan {self.plan.digest}, {self.plan.total:,} unit(s); {shown or 'no shards'}"]
        if self.run is not None:
            span = self.evidence_span()
            when = f"started {span[0]} to {span[1]}" if span else "no start time"
            lines.append(f"{path}: judged run {self.run}: {len(self.run_reports)} report(s), {when}")
        lines += [f"ERROR: {problem}" for problem in self.problems]
        lines += [f"ignored: {ignored.path}: {ignored.why}" for ignored in self.ignored[:20]]
        if len(self.ignored) > 20:
            lines.append(f"ignored: ... and {len(self.ignored) - 20} more report(s)")
        incomplete = any(isinstance(s, ShardSet) and s.missing_count() for s in self.sources.values())
        if incomplete and any(ignored.why.startswith("another run") for ignored in self.ignored):
            lines.append(
                "hint: shares of other runs were ignored: give every shard (and vantage) of one scan the "
                "same --run-id (or PORTCHECK_RUN_ID), or name the run to judge with --portcheck-run-id"
            )
        lines += [f"WARNING: {note}" for note in self.resolution_differences()]
        return lines

    def judged_results(
        self, hosts: Iterable[HostSpec], limit: int
    ) -> tuple[list[Resolution], list[ProbeResult], dict[ResultKey, ServiceInfo], bool]:
        """What the judge looked up for ``hosts``, as a plain report holds it: per vantage (the host
        named ``ADDRESS@VANTAGE`` where there is one), the host's resolution and every unit of its plan
        on each address. Beyond ``limit`` results, ranges keep only the ports that stand out (the
        last value is then True)."""
        unique = list({host.address: host for host in hosts}.values())
        size = sum(
            (work.count if (work := self.plan.host(h.address)) else 0) * len(res.addresses)
            for h in unique
            for v in self.sources
            if (res := self.resolution(v, h.address)) is not None
        )
        whole = size <= limit
        resolutions: list[Resolution] = []
        results: list[ProbeResult] = []
        services: dict[ResultKey, ServiceInfo] = {}
        for host in unique:
            for vantage in self.sources:
                label = host.address if vantage is None else f"{host.address}@{vantage}"
                resolution = self.resolution(vantage, host.address)
                if resolution is None:
                    continue
                resolutions.append(Resolution(label, resolution.addresses, resolution.error))
                for address in resolution.addresses:
                    found = self._units(host, vantage, address, whole)
                    results += [_relabel(result, label) for result in found]
                    for result in found:
                        info = self.service(vantage, host.address, address, result.proto, result.port)
                        if info is not None:
                            services.setdefault((address, result.proto, result.port), info)
        return resolutions, results, services, not whole

    def _units(self, host: HostSpec, vantage: Vantage, address: str, whole: bool) -> list[ProbeResult]:
        work = self.plan.host(host.address)
        if work is None:
            return []
        if whole:
            ports = [(proto, port) for proto, first, last in work.runs for port in range(first, last + 1)]
        else:
            declared = {(e.proto, e.port) for e in host.expectations}
            if host.range_rule is not None:
                found = self.range_results(vantage, host.address, address, host.range_rule)
                declared |= {(r.proto, r.port) for r in found.listed}
            ports = sorted(declared, key=lambda key: (key[0].value, key[1]))
        found_results = (self.result(vantage, host.address, address, proto, port) for proto, port in ports)
        return [result for result in found_results if result is not None]


def _relabel(result: ProbeResult, host: str) -> ProbeResult:
    if result.host == host:
        return result
    return ProbeResult(
        host,
        result.address,
        result.proto,
        result.port,
        result.state,
        result.reason,
        result.latency_ms,
        result.attempts,
    )


@dataclass(slots=True)
class _ServicesShown(Mapping[ResultKey, ServiceInfo]):
    union: ReportUnion
    _index: dict[ResultKey, ServiceInfo] | None = field(default=None, init=False)

    def _all(self) -> dict[ResultKey, ServiceInfo]:
        if self._index is None:
            self._index = {}
            for source in self.union.sources.values():
                for report in source.reports:
                    for key, info in report.services.items():
                        self._index.setdefault(key, info)
        return self._index

    def __getitem__(self, key: ResultKey) -> ServiceInfo:
        return self._all()[key]

    def __iter__(self) -> Iterator[ResultKey]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())
