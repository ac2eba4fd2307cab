"""Judging from reports: the reports of ONE run of an inventory, proven complete, as the judge's evidence.

``ReportUnion`` takes the loaded reports (version 2 shard reports and version 1 reports) and the
inventory's plan, and keeps exactly one run (provenance.py): the one ``run_id`` names, else the newest
by its reports' start time. Every other report is ignored and listed with the reason (another run,
another inventory). A report written without a run id is a run of its own. Within the run, each
vantage's evidence is one shard set (one digest and count; shares missing, given twice,
interrupted, too old, unsigned or altered are errors for their units) or the version 1 reports of
the run — never both, never two sets, and never filled from another run. Service facts are kept per
vantage and per share, never merged.

``ReportUnion`` is an ``evidence.Evidence``: the judge (judge.py) reads it as it reads a scan. A unit's
share is found in O(1) (plan.py); a range on an address costs one look at each share's summary of
that address, and walks the range's ports only where a share cannot vouch for them.
Must not import pytest or the plugin modules.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pytest_portcheck.engine import AddressQuality, PortState, ProbeResult, Resolution, ScanStats
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.inventory.model import Expectation, HostSpec, RangeRule, ServiceRequirement
from pytest_portcheck.judge.evidence import PortGroup, RangeResults, Vantage
from pytest_portcheck.judge.expectation import judge
from pytest_portcheck.judge.ranges import judge_range
from pytest_portcheck.judge.silence import silent_among, silent_of
from pytest_portcheck.judge.verdict import Judgement
from pytest_portcheck.plan import HostWork, ShardSplit, WorkPlan, shard_count_problem
from pytest_portcheck.ports import PortRun, Protocol, runs_of_ports
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.shardreport import Asked, LoadedReport, asked_of, probe_name

FUTURE_TOLERANCE = datetime.timedelta(minutes=5)
"""A report may start this much after the judge's clock (clocks differ) before it is refused."""
_LISTED_SHARES = 10
_SHARES_ENUMERATED = 4096
"""Missing shares are listed one by one up to this many; beyond it they are counted."""
_ANSWERED_NO = frozenset({PortState.CLOSED, PortState.FILTERED})


def _error(host: str, address: str | None, proto: Protocol, port: int, why: str) -> ProbeResult:
    return ProbeResult(host, address, proto, port, PortState.ERROR, why)


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


def _describe_asked(asked: Asked) -> str:
    service, min_version, verify, expires, auth, name = asked
    parts = [service]
    parts += [f"min_version {min_version}"] if min_version else []
    parts += ["verify"] if verify else []
    parts += [f"expires_in_days {expires}"] if expires is not None else []
    parts += [f"auth {auth}"] if auth else []
    parts += [f"as {name}"] if name else []
    return " ".join(parts)


@dataclass(frozen=True)
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


class Source:
    """One vantage's evidence within the run. The base answers nothing: every unit is an error."""

    def __init__(self, vantage: Vantage, why: str) -> None:
        self.vantage = vantage
        self.why = why
        self.reports: list[LoadedReport] = []
        self._silent: frozenset[str] | None = None
        self._resolutions: dict[str, Resolution | None] = {}

    def where(self) -> str:
        return f"from vantage {self.vantage}" if self.vantage else "without a vantage"

    def problems(self) -> list[str]:
        return [self.why] if self.why else []

    def describe(self) -> str:
        return f"unusable{f' from {self.vantage}' if self.vantage else ''}"

    def result(self, host: str, address: str, proto: Protocol, port: int) -> ProbeResult:
        return _error(host, address, proto, port, self.why)

    def resolution(self, host: str) -> Resolution | None:
        if host not in self._resolutions:
            self._resolutions[host] = self._resolve(host)
        return self._resolutions[host]

    def _resolve(self, host: str) -> Resolution | None:
        if not self.reports:  # nothing usable: say why instead of "resolved to no address"
            return Resolution(host, (), self.why or "; ".join(self.problems()[:3]) or "no report")
        addresses: dict[str, None] = {}
        error = None
        seen = False
        for report in self.reports:
            resolution = report.resolution(host)
            if resolution is None:
                continue
            seen = True
            addresses.update(dict.fromkeys(resolution.addresses))
            error = error or resolution.error
        if not seen:
            return None
        return Resolution(host, tuple(addresses), None if addresses else error)

    def service(self, host: str, address: str, proto: Protocol, port: int) -> ServiceInfo | None:
        return None

    def unprobed(
        self, host: str, address: str, proto: Protocol, port: int, wanted: ServiceRequirement
    ) -> str | None:
        return self.why

    def range_results(self, host: str, address: str, rule: RangeRule) -> RangeResults:
        return RangeResults(unproven=[(self.why, None)])

    def states(self) -> Iterator[tuple[str | None, PortState]]:
        return iter(())

    def silent_addresses(self) -> frozenset[str]:
        if self._silent is None:
            self._silent = silent_among(self.states())
        return self._silent

    def quality(self) -> Mapping[str, AddressQuality]:
        return {}

    def differences(self) -> list[str]:
        """Hosts that resolved differently in different reports of this vantage."""
        seen: dict[str, dict[tuple[str, ...], list[str]]] = {}
        for report in self.reports:
            label = report.shard.label if report.shard is not None else report.path
            for resolution in report.resolutions:
                key = tuple(sorted(resolution.addresses)) or (f"error: {resolution.error}",)
                seen.setdefault(resolution.host, {}).setdefault(key, []).append(label)
        notes = []
        for host, variants in seen.items():
            if len(variants) > 1:
                shown = "; ".join(f"{', '.join(k)} in {', '.join(v)}" for k, v in variants.items())
                notes.append(f"{host} resolved differently in different shards: {shown}")
        return notes


class ShardSet(Source):
    """The shares of one (vantage, digest, N) in the run: each unit is in exactly one of them."""

    def __init__(self, vantage: Vantage, digest: str, count: int, plan: WorkPlan, other: bool) -> None:
        super().__init__(vantage, "")
        self.digest = digest
        self.count = count
        self.plan = plan
        self.other = other
        """The reports are of another inventory (--portcheck-allow-other-inventory): their own plan
        says what they cover, and service facts answer only the requirements they were probed for."""
        self.split = ShardSplit(plan.total, digest, count)
        self.shares: dict[int, LoadedReport] = {}
        self.broken: dict[int, str] = {}
        """Share -> why it cannot be used (given twice, interrupted, too old, not trusted)."""
        self.note = ""
        """Appended to "not scanned" errors (reports of another inventory that were refused)."""

    def add(self, report: LoadedReport, unusable: str | None) -> None:
        assert report.shard is not None
        index = report.shard.index
        if index in self.shares or index in self.broken:
            first = self.shares.pop(index, None)
            earlier = first.path if first is not None else "another report"
            self.broken[index] = f"was given twice ({earlier}, {report.path}): keep one"
        elif report.interrupted:
            self.broken[index] = f"was interrupted ({report.path}): scan it again"
        elif unusable is not None:
            self.broken[index] = f"({report.path}) {unusable}"
        else:
            self.shares[index] = report
        self.reports = list(self.shares.values())

    def name(self, index: int) -> str:
        where = f" from vantage {self.vantage}" if self.vantage else ""
        return f"shard {index}/{self.count}{where}"

    def describe(self) -> str:
        return f"{len(self.shares)}/{self.count} shard(s){f' from {self.vantage}' if self.vantage else ''}"

    def broken_of(self, index: int) -> str:
        return self.broken.get(index) or "is missing: no report given for it"

    def missing_count(self) -> int:
        """Shares nobody gave that hold a unit (a plan split into more shares than units has empty
        ones, which prove nothing and need no report)."""
        empty = max(0, self.count - self.plan.total)
        given_empty = sum(1 for i in [*self.shares, *self.broken] if self.split.size(i) == 0)
        return self.count - len(self.shares) - len(self.broken) - (empty - given_empty)

    def missing(self, limit: int) -> list[int]:
        """The first ``limit`` shares nobody gave (counted from 1: ``count`` may be large)."""
        found: list[int] = []
        index = 1
        while len(found) < min(limit, self.missing_count()) and index <= self.count:
            if index not in self.shares and index not in self.broken and self.split.size(index):
                found.append(index)
            index += 1
        return found

    def problems(self) -> list[str]:
        lines = [f"{self.name(index)} {why}" for index, why in sorted(self.broken.items())]
        lines += [f"{self.name(index)} {self.broken_of(index)}" for index in self.missing(_LISTED_SHARES)]
        if self.missing_count() > _LISTED_SHARES:
            lines.append(
                f"... and {self.missing_count() - _LISTED_SHARES:,} more share(s) of {self.count:,} missing"
            )
        return lines

    def _share(self, host: str, proto: Protocol, port: int) -> int | None:
        unit = self.plan.unit_index(host, proto, port)
        return None if unit is None else self.split.shard_of(unit)

    def result(self, host: str, address: str, proto: Protocol, port: int) -> ProbeResult:
        index = self._share(host, proto, port)
        if index is None:
            return _error(
                host, address, proto, port, f"not scanned: no report {self.where()} covers it{self.note}"
            )
        report = self.shares.get(index)
        if report is None:
            return _error(
                host, address, proto, port, f"not covered: {self.name(index)} {self.broken_of(index)}"
            )
        listed = report.listed.get((address, proto, port))
        if listed is not None:
            return listed
        summary = report.usual.get((host, address, proto))
        if summary is not None and summary.count != 0:
            return ProbeResult(host, address, proto, port, summary.state, summary.reason)
        resolution = report.resolution(host)
        if resolution is not None and resolution.error is not None:
            why = f"{self.name(index)} could not resolve {host}: {resolution.error}"
        elif resolution is not None and address not in resolution.addresses:
            shown = ", ".join(resolution.addresses) or "nothing"
            why = f"{self.name(index)} resolved {host} to {shown}, not {address}: not scanned there"
        else:
            why = f"{self.name(index)} ({report.path}) does not hold it"
        return _error(host, address, proto, port, why)

    def service(self, host: str, address: str, proto: Protocol, port: int) -> ServiceInfo | None:
        index = self._share(host, proto, port)
        report = self.shares.get(index) if index is not None else None
        return report.services.get((address, proto, port)) if report is not None else None

    def unprobed(
        self, host: str, address: str, proto: Protocol, port: int, wanted: ServiceRequirement
    ) -> str | None:
        if not self.other:
            return None  # the same plan digest: the probes were run for these very requirements
        index = self._share(host, proto, port)
        report = self.shares.get(index) if index is not None else None
        if report is None:
            return "not probed: no share of the run holds the port"
        if report.asked is None:
            return (
                f"{report.path} does not say what its probes were run for (written by an older portcheck), "
                "and it is of another inventory: scan again"
            )
        asked = report.asked.get((address, proto, port), frozenset())
        needed = asked_of(wanted, probe_name(host))
        if needed in asked:
            return None
        was = "; ".join(sorted(_describe_asked(a) for a in asked)) or "no requirement (not declared then)"
        return (
            f"not probed for {_describe_asked(needed)}: {report.path} probed it for {was} — the inventory "
            "changed since the scan; scan again"
        )

    def states(self) -> Iterator[tuple[str | None, PortState]]:
        for report in self.reports:
            for summary in report.usual.values():
                if summary.count != 0:
                    yield summary.address, summary.state
            for result in report.listed.values():
                yield result.address, result.state

    def range_results(self, host: str, address: str, rule: RangeRule) -> RangeResults:
        """The range on ``address`` from each share's summary of it: its exceptions one by one and its
        usual state as a group. The range's ports are walked only to learn which of the shares that
        cannot vouch for them (broken, missing, silent on the address, usually failing) hold one."""
        work = self.plan.host(host)
        if work is None:
            return RangeResults(
                unproven=[(f"not scanned: no report {self.where()} covers {host}{self.note}", None)]
            )
        unproven: list[tuple[str, int | None]] = []
        if self.other:
            uncovered = _uncovered(rule, work)
            if uncovered:
                why = f"not scanned: they were added after the run's reports were scanned{self.note}"
                unproven.append((why, uncovered))
        ports = _port_set(rule)
        failing = {PortState.ERROR, PortState.OPEN} | (
            set() if rule.silence_counts_as_closed else {PortState.OPEN_FILTERED}
        )
        listed: list[ProbeResult] = []
        usual: dict[tuple[PortState, str], list[int]] = {}
        suspects: dict[int, str] = {i: f"{self.name(i)} {why}" for i, why in self.broken.items()}
        for index, report in self.shares.items():
            summary = report.usual.get((host, address, rule.proto))
            if summary is None:
                suspects[index] = (
                    f"{self.name(index)} did not scan {address} (it resolved {host} differently)"
                )
                continue
            listed += [
                r
                for r in summary.exceptions
                if r.port in ports and self._share(host, r.proto, r.port) == index
            ]
            if summary.count != 0:
                usual.setdefault((summary.state, summary.reason), []).append(index)
                if summary.state in failing:
                    suspects[index] = ""
        hits = self._holding(host, rule, suspects)
        reasons = [why for _index, why in sorted(hits.items()) if why]
        unproven += [(why, None) for why in reasons[:_LISTED_SHARES]]
        if len(reasons) > _LISTED_SHARES:
            unproven.append(
                (f"{len(reasons) - _LISTED_SHARES} more share(s) of {self.count:,} as above", None)
            )
        grouped = [
            PortGroup(state, reason, None, self._ports_in(host, address, rule, shown))
            for (state, reason), indices in usual.items()
            if (shown := [i for i in indices if state not in failing or i in hits])
        ]
        return RangeResults(listed, grouped, unproven)

    def _holding(self, host: str, rule: RangeRule, suspects: Mapping[int, str]) -> dict[int, str]:
        """The suspect shares (and missing ones) that hold a port of the range: index -> why it cannot
        vouch for it. Stops once every suspect is found (missing shares are counted from 1 when
        there are a few, met while walking when there are many)."""
        many = self.missing_count() > _SHARES_ENUMERATED
        pending = dict(suspects)
        if not many:
            pending.update(
                {i: f"{self.name(i)} {self.broken_of(i)}" for i in self.missing(_SHARES_ENUMERATED)}
            )
        found: dict[int, str] = {}
        if not pending and not many:
            return found
        work = self.plan.host(host)
        start = self.plan.host_start(host)
        assert work is not None and start is not None
        for port in rule.ports:
            within = work.index_of(rule.proto, port)
            if within is None:
                continue
            index = self.split.shard_of(start + within)
            if index in pending:
                found[index] = pending.pop(index)
            elif many and index not in self.shares and index not in found and len(found) < _LISTED_SHARES:
                found[index] = f"{self.name(index)} {self.broken_of(index)}"
            if not pending and (not many or len(found) >= _LISTED_SHARES):
                break
        return found

    def _ports_in(
        self, host: str, address: str, rule: RangeRule, indices: Sequence[int]
    ) -> Callable[[], list[int]]:
        """The range's ports that shares ``indices`` hold and do not list (their usual state)."""
        wanted = set(indices)

        def ports() -> list[int]:
            found = []
            for port in rule.ports:
                index = self._share(host, rule.proto, port)
                if index in wanted and (address, rule.proto, port) not in self.shares[index].listed:
                    found.append(port)
            return found

        return ports


_PORT_SETS: dict[int, tuple[tuple[int, ...], frozenset[int]]] = {}
_RUNS: dict[int, tuple[tuple[int, ...], list[PortRun]]] = {}


def _port_set(rule: RangeRule) -> frozenset[int]:
    # Hosts of a fleet share one range tuple: one set for all of them.
    cached = _PORT_SETS.get(id(rule.ports))
    if cached is None or cached[0] is not rule.ports:
        cached = (rule.ports, frozenset(rule.ports))
        _PORT_SETS[id(rule.ports)] = cached
    return cached[1]


def _uncovered(rule: RangeRule, work: HostWork) -> int:
    """How many ports of the range the host's plan does not hold, counted run against run."""
    cached = _RUNS.get(id(rule.ports))
    if cached is None or cached[0] is not rule.ports:
        cached = (rule.ports, runs_of_ports(rule.proto, rule.ports))
        _RUNS[id(rule.ports)] = cached
    missing = 0
    for proto, first, last in cached[1]:
        covered = sum(
            max(0, min(last, top) - max(first, bottom) + 1)
            for run_proto, bottom, top in work.runs
            if run_proto is proto and bottom <= last and top >= first
        )
        missing += last - first + 1 - covered
    return missing


class ListedSet(Source):
    """The version 1 reports of the run from one vantage: they cover exactly the results they list."""

    def __init__(self, vantage: Vantage, reports: Sequence[tuple[LoadedReport, str | None]]) -> None:
        super().__init__(vantage, "")
        self.reports = [report for report, unusable in reports if unusable is None]
        self.unusable = [(report, why) for report, why in reports if why is not None]
        self.listed: dict[ResultKey, ProbeResult] = {}
        self.disagree: dict[ResultKey, str] = {}
        self.services: dict[ResultKey, ServiceInfo] = {}
        seen_in: dict[ResultKey, str] = {}
        for report in self.reports:
            for key, result in report.listed.items():
                known = self.listed.get(key)
                if known is None:
                    self.listed[key], seen_in[key] = result, report.path
                elif (known.state, known.reason) != (result.state, result.reason):
                    self.disagree[key] = (
                        f"the run's reports disagree: {seen_in[key]} says {known.state.value} "
                        f"({known.reason}), "
                        f"{report.path} says {result.state.value} ({result.reason})"
                    )
            for key, info in report.services.items():
                self.services.setdefault(key, info)
        self.stats = ScanStats()
        for report in self.reports:
            for quality in report.quality.addresses.values():
                self.stats.note(quality)

    def describe(self) -> str:
        where = f" from {self.vantage}" if self.vantage else ""
        return f"{len(self.reports)} plain report(s){where}"

    def problems(self) -> list[str]:
        return [f"{report.path} {why}" for report, why in self.unusable]

    def _missing(self) -> str:
        stale = "; ".join(f"{report.path} {why}" for report, why in self.unusable[:3])
        return f"not scanned: no report {self.where()} covers it" + (f" ({stale})" if stale else "")

    def result(self, host: str, address: str, proto: Protocol, port: int) -> ProbeResult:
        key = (address, proto, port)
        if key in self.disagree:
            return _error(host, address, proto, port, self.disagree[key])
        return self.listed.get(key) or _error(host, address, proto, port, self._missing())

    def service(self, host: str, address: str, proto: Protocol, port: int) -> ServiceInfo | None:
        return self.services.get((address, proto, port))

    def unprobed(
        self, host: str, address: str, proto: Protocol, port: int, wanted: ServiceRequirement
    ) -> str:
        return (
            "a plain report (version 1) does not say what its probes were run for: judge service "
            "requirements from the reports of 'portcheck scan --inventory'"
        )

    def range_results(self, host: str, address: str, rule: RangeRule) -> RangeResults:
        listed: list[ProbeResult] = []
        counted: dict[tuple[PortState, str], list[int]] = {}
        missing = 0
        for port in rule.ports:
            key = (address, rule.proto, port)
            result = self.listed.get(key)
            if key in self.disagree:
                listed.append(_error(host, address, rule.proto, port, self.disagree[key]))
            elif result is None:
                missing += 1
            elif result.state in _ANSWERED_NO:
                counted.setdefault((result.state, result.reason), []).append(port)
            else:
                listed.append(result)
        grouped = [
            PortGroup(state, reason, len(ports), _returning(ports))
            for (state, reason), ports in counted.items()
        ]
        return RangeResults(listed, grouped, [(self._missing(), missing)] if missing else [])

    def states(self) -> Iterator[tuple[str | None, PortState]]:
        for result in self.listed.values():
            yield result.address, result.state

    def quality(self) -> Mapping[str, AddressQuality]:
        return self.stats.addresses


def _returning(ports: Sequence[int]) -> Callable[[], Sequence[int]]:
    return lambda: ports


@dataclass(frozen=True)
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


@dataclass
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
