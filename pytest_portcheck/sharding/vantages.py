"""One vantage's evidence within a judged run: a shard set, the plain reports, or why there is none.

``ShardSet`` holds the shares of one (vantage, digest, N): each unit of the plan is in exactly one
share, a share missing, given twice, interrupted, too old, unsigned or altered is an error for its
units, and a range is read from each share's summary of an address. ``ListedSet`` holds the version 1
reports of the run, which cover exactly what they list. ``Source`` is the base: every unit an error
saying why. ``union.ReportUnion`` picks the run and asks one of these per vantage.
Must not import pytest or the plugin modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from pytest_portcheck.engine import AddressQuality, PortState, ProbeResult, Resolution, ScanStats
from pytest_portcheck.engine.model import ResultKey
from pytest_portcheck.inventory.model import RangeRule, ServiceRequirement
from pytest_portcheck.judge.evidence import PortGroup, RangeResults, Vantage
from pytest_portcheck.judge.silence import silent_among
from pytest_portcheck.ports import PortRun, Protocol, runs_of_ports
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.asked import asked_of, probe_name
from pytest_portcheck.report.model import Asked
from pytest_portcheck.sharding.plan import HostWork, ShardSplit, WorkPlan
from pytest_portcheck.sharding.report import LoadedReport

_LISTED_SHARES = 10
_SHARES_ENUMERATED = 4096
"""Missing shares are listed one by one up to this many; beyond it they are counted."""
_ANSWERED_NO = frozenset({PortState.CLOSED, PortState.FILTERED})


def _error(host: str, address: str | None, proto: Protocol, port: int, why: str) -> ProbeResult:
    return ProbeResult(host, address, proto, port, PortState.ERROR, why)


def _describe_asked(asked: Asked) -> str:
    service, min_version, verify, expires, auth, name = asked
    parts = [service]
    parts += [f"min_version {min_version}"] if min_version else []
    parts += ["verify"] if verify else []
    parts += [f"expires_in_days {expires}"] if expires is not None else []
    parts += [f"auth {auth}"] if auth else []
    parts += [f"as {name}"] if name else []
    return " ".join(parts)


def _not_asked(report: LoadedReport, host: str, key: ResultKey, wanted: ServiceRequirement) -> str | None:
    """Why the probe on ``key`` of ``report`` (which says what it was run for) cannot answer ``wanted``."""
    asked = (report.asked or {}).get(key, frozenset())
    needed = asked_of(wanted, probe_name(host))
    if needed in asked:
        return None
    was = "; ".join(sorted(_describe_asked(a) for a in asked)) or "no requirement (not declared then)"
    return (
        f"not probed for {_describe_asked(needed)}: {report.path} probed it for {was} — the inventory "
        "changed since the scan; scan again"
    )


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

    def _shard_of(self, host: str, proto: Protocol, port: int) -> int | None:
        unit = self.plan.unit_index(host, proto, port)
        return None if unit is None else self.split.shard_of(unit)

    def result(self, host: str, address: str, proto: Protocol, port: int) -> ProbeResult:
        index = self._shard_of(host, proto, port)
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
        index = self._shard_of(host, proto, port)
        report = self.shares.get(index) if index is not None else None
        return report.services.get((address, proto, port)) if report is not None else None

    def unprobed(
        self, host: str, address: str, proto: Protocol, port: int, wanted: ServiceRequirement
    ) -> str | None:
        if not self.other:
            return None  # the same plan digest: the probes were run for these very requirements
        index = self._shard_of(host, proto, port)
        report = self.shares.get(index) if index is not None else None
        if report is None:
            return "not probed: no share of the run holds the port"
        if report.asked is None:
            return (
                f"{report.path} does not say what its probes were run for (written by an older portcheck), "
                "and it is of another inventory: scan again"
            )
        return _not_asked(report, host, (address, proto, port), wanted)

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
                if r.port in ports and self._shard_of(host, r.proto, r.port) == index
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
                index = self._shard_of(host, rule.proto, port)
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
        self.probed_by: dict[ResultKey, LoadedReport] = {}
        """The report whose probe answers for a port: what it was run for is that report's."""
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
                if key not in self.services:
                    self.services[key], self.probed_by[key] = info, report
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
    ) -> str | None:
        report = self.probed_by.get((address, proto, port))
        if report is None:
            return None  # nothing answered the probe: the judge says what the scan found
        if report.asked is None:
            return (
                f"{report.path} does not say what its probes were run for (a plain report written by an "
                "older portcheck): scan again"
            )
        return _not_asked(report, host, (address, proto, port), wanted)

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
