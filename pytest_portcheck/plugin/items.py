"""Collection: an inventory file becomes ``inventory.yml::HOST::PROTO/PORT::EXPECTATION`` items.

``InventoryFile`` → ``HostNode`` → ``PortNode``/``RangeNode`` → ``PortItem``/``RangeItem`` (the shape of
pytest's YAML example). An item's setup reads the session's shared scan (``session``), judges it
(``judge``) and describes the result once, as an ``ItemOutcome`` that its test report carries to the
controller; the item builds its own test reports (``make_report``), so an error or a failure is its
plain message pointing at the YAML line, never a traceback, and costs no more than a pass.
``InventoryHooks`` collects the files and hands the selected expectations to the session.
Nothing here scans or prints a summary. Must not import the summary or the plugin's hooks module.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import pytest

from pytest_portcheck.engine.model import ResultKey, port_key
from pytest_portcheck.inventory.model import (
    Allowance,
    Expectation,
    HostSpec,
    InventoryError,
    RangeRule,
    Waiver,
)
from pytest_portcheck.judge.expectation import judge
from pytest_portcheck.judge.ranges import judge_one_of, judge_range
from pytest_portcheck.judge.verdict import Judgement, Verdict, today
from pytest_portcheck.plugin.session import (
    JUNIT_PROPERTY,
    OUTCOME_ATTRIBUTE,
    RUN_KEY,
    InventoryResults,
    ItemMessage,
    PortcheckError,
    PortcheckRun,
    current_vantage,
    scan_evidence,
)
from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.report.judged import DeclaredAt, FoundService, FoundState, ItemOutcome, ItemWaiver


class InventoryFile(pytest.File):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker("portcheck")  # items inherit it: one mark, not one per item

    def collect(self) -> Iterator[HostNode]:
        run = self.config.stash[RUN_KEY]
        inventory = run.load(self.path)
        for host in inventory.hosts:
            yield HostNode.from_parent(self, name=host.name, host=host)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, InventoryError):
            return f"portcheck inventory error: {excinfo.value}"
        return super().repr_failure(excinfo)


class HostNode(pytest.Collector):
    def __init__(self, *, host: HostSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host

    def collect(self) -> Iterator[PortNode | RangeNode | AllowedNode]:
        for expectation in self.host.expectations:
            name = f"{expectation.proto.value}/{expectation.port}"
            yield PortNode.from_parent(self, name=name, host=self.host, expectation=expectation)
        if self.host.range_rule is not None:
            rule = self.host.range_rule
            yield RangeNode.from_parent(self, name=rule.label, host=self.host, rule=rule)
        for allowance in self.host.allowed:
            yield AllowedNode.from_parent(self, name=allowance.label, host=self.host, allowance=allowance)


class AllowedNode(pytest.Collector):
    def __init__(self, *, host: HostSpec, allowance: Allowance, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.allowance = allowance

    def collect(self) -> Iterator[AllowedItem | OneOfItem]:
        a = self.allowance
        vantage = f"-from-{a.vantage}" if a.vantage else ""
        if a.one_of:  # one port of the range is published: the item checks that no second one is open
            rule = a.rule(self.host.name)
            yield OneOfItem.from_parent(self, name=f"one_of{vantage}", host=self.host, rule=rule, allowance=a)
        else:
            yield AllowedItem.from_parent(self, name=f"allowed{vantage}", host=self.host, allowance=a)


class AllowedItem(pytest.Item):
    """A range a firewall rule admits (anything in it may listen): listed, so that the item list says
    so, and skipped with the reason, at its inventory line. ``only_open`` does not fail its ports."""

    def __init__(self, *, host: HostSpec, allowance: Allowance, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.allowance = allowance
        a = allowance
        why = f"{host.name} {a.label}: allowed, not required — {a.declared_at} {a.why}"
        self.add_marker(pytest.mark.skip(reason=why))

    def runtest(self) -> None:
        """Never runs: the item is skipped (see ``__init__``)."""

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.allowance.line - 1, f"{self.host.name} {self.allowance.label} allowed"


class PortNode(pytest.Collector):
    def __init__(self, *, host: HostSpec, expectation: Expectation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.expectation = expectation

    def collect(self) -> Iterator[PortItem]:
        vantage = self.expectation.vantage
        name = self.expectation.expect.value + (f"-from-{vantage}" if vantage else "")
        yield PortItem.from_parent(self, name=name, host=self.host, expectation=self.expectation)


class RangeNode(pytest.Collector):
    def __init__(self, *, host: HostSpec, rule: RangeRule, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.rule = rule

    def collect(self) -> Iterator[RangeItem]:
        yield RangeItem.from_parent(self, name="only_open", host=self.host, rule=self.rule)


class CheckItem(pytest.Item):
    """An item whose verdict comes from the session's shared scan."""

    host: HostSpec
    waiver: Waiver | None = None

    def __init__(self, *, host: HostSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.outcome: ItemOutcome | None = None
        self.handed_over: str | None = None
        """The outcome's compact JSON text, as the item's report carries it to the controller: text,
        not a dictionary, so that the 10,000 reports a run keeps are no 30,000 more objects for the
        garbage collector to walk (it took twice a plain suite's time)."""
        self.silent: tuple[str, ...] = ()

    def judge(self, run: PortcheckRun, shared: InventoryResults) -> Judgement:
        raise NotImplementedError

    def describe(self) -> tuple[str, str]:
        """(target, expected) as the reports name them: ``("tcp/22", "open")``."""
        raise NotImplementedError

    def declaration(self) -> tuple[str | None, DeclaredAt | None]:
        """(vantage, the source line declaring the port) of the entry the item checks."""
        return None, None

    def setup(self) -> None:
        run = self.config.stash[RUN_KEY]
        shared = run.results()
        services: Mapping[ResultKey, ServiceInfo]
        if run.judging is not None:
            union = run.judging.union(self.path)
            self.silent, services = union.silent_of(self.host), union.services
        else:
            self.silent, services = shared.silent_of(self.host), shared.report.services
        judgement = self.judge(run, shared)
        # What the probe made under this host's name found, where names met on the port
        probed = [
            (r.address, services[key].as_asked_by(self.host.address))
            for r in (judgement.found if services else ())  # most scans probe no service
            if r.address and (key := port_key(r.address, r.proto, r.port)) in services
        ]
        self.outcome = self._outcome(judgement, probed)
        if not run.is_worker:
            run.outcomes_here[self.nodeid] = self.outcome
        self.handed_over = json.dumps(
            self.outcome.to_dict(compact=True), ensure_ascii=False, separators=(",", ":")
        )
        if self.outcome.notable:
            # The same compact JSON, not the facts spelled out in a dozen properties: most items pass
            # and say nothing their test case's name does not (bench_plugin.py: JUnit file size).
            self.user_properties.append((JUNIT_PROPERTY, self.handed_over))
        # An error is reported by make_report, not raised: an exception drags its traceback, and the
        # frames it holds, through pytest and the garbage collector (a third more time a failure).

    def runtest(self) -> None:
        """Nothing left to do: setup judged, and make_report reports the verdict."""

    def _outcome(self, judgement: Judgement, services: Sequence[tuple[str, ServiceInfo]]) -> ItemOutcome:
        target, expected = self.describe()
        ranged = expected == "only_open"
        vantage, declared_at = self.declaration()
        verdict = judgement.verdict.value
        waiver = self.waiver
        if (
            judgement.verdict is Verdict.FAILED
            and waiver is not None
            and waiver.active(today())
            and not self.config.getoption("runxfail", False)  # --runxfail: waived items fail
        ):
            verdict = Verdict.WAIVED.value
        return ItemOutcome(
            host=self.host.name,
            target=target,
            expected=expected,
            verdict=verdict,
            nodeid=self.nodeid,
            line=(self.location[1] or 0) + 1,
            message=judgement.message,
            found=tuple(
                # A range's item names the port of each; a port's item has one, its target's.
                FoundState(r.address or "", r.state.value, r.reason, r.latency_ms, r.port if ranged else 0)
                for r in judgement.found
            ),
            # Peer-supplied text, already neutralised: no control characters reach the XML.
            services=tuple(FoundService(address, info.describe()) for address, info in services),
            waiver=None if waiver is None else ItemWaiver(waiver.until, waiver.reason),
            silent=self.silent,
            kind=judgement.kind,
            vantage=vantage,
            declared_at=declared_at,
        )

    def make_report(self, call: pytest.CallInfo[None]) -> pytest.TestReport | None:
        """The test report of this item's setup or call, built here from its outcome: an error is a
        failed setup, drift a failed call, a waived drift an xfail, each with its plain message
        (``ItemMessage``) and the outcome attached. None (pytest builds it) for a teardown, a setup
        that passed, and an exception that is not a scan's failure: a bug, a skip or an interruption
        keeps pytest's report, traceback and all."""
        when, outcome = call.when, self.outcome
        if call.excinfo is not None:  # the shared scan failed before a verdict: PortcheckError
            if not isinstance(call.excinfo.value, PortcheckError) or when not in ("setup", "call"):
                return None
            return self._report(call, "failed", str(call.excinfo.value))
        if outcome is None or when == "teardown" or (when == "setup" and outcome.verdict != "error"):
            return None
        if outcome.verdict == "passed":
            return self._report(call, "passed")
        if outcome.verdict == "waived":
            assert outcome.waiver is not None
            waiver = outcome.waiver
            why = f"waived until {waiver.until}: {waiver.reason} — {outcome.message}"
            return self._report(call, "skipped", outcome.message, wasxfail=why)
        return self._report(call, "failed", outcome.message)

    def _report(self, call: pytest.CallInfo[None], result: str, message: str = "", **extra: Any
                ) -> pytest.TestReport:  # fmt: skip
        when: Literal["setup", "call"] = "setup" if call.when == "setup" else "call"
        longrepr = ItemMessage.for_report(self.config, self.location, when, message) if message else None
        if self.handed_over is not None:
            extra[OUTCOME_ATTRIBUTE] = self.handed_over
        captured = self._report_sections
        return pytest.TestReport(
            getattr(self, "id", self.nodeid),  # pytest 9's parsed node id: not parsed once more
            self.location,
            dict.fromkeys(self.keywords, 1),
            cast(Any, result),
            cast(Any, longrepr),
            when,
            [(f"Captured {key} {rwhen}", content) for rwhen, key, content in captured] if captured else (),
            call.duration,
            call.start,
            call.stop,
            user_properties=self.user_properties,
            **extra,
        )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, PortcheckError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class PortItem(CheckItem):
    def __init__(self, *, expectation: Expectation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expectation = expectation
        self.waiver = expectation.waiver

    def judge(self, run: PortcheckRun, shared: InventoryResults) -> Judgement:
        if run.judging is not None:
            return judge(self.host, self.expectation, run.judging.union(self.path), strict=run.strict)
        skip_overridden(self.host, self.expectation)
        return judge(self.host, self.expectation, scan_evidence(shared), strict=run.strict)

    def describe(self) -> tuple[str, str]:
        return f"{self.expectation.proto.value}/{self.expectation.port}", self.expectation.expect.value

    def declaration(self) -> tuple[str | None, DeclaredAt | None]:
        origin = self.expectation.declared_at
        if origin is None:
            return self.expectation.vantage, None
        # Absolute: the writers make it relative to the source root they are given.
        return self.expectation.vantage, DeclaredAt(os.path.abspath(origin.path), origin.line, origin.entry)

    def reportinfo(self) -> tuple[Path, int, str]:
        e = self.expectation
        return self.path, e.line - 1, f"{self.host.name} {e.proto.value}/{e.port} {e.expect.value}"


class RangeItem(CheckItem):
    def __init__(self, *, rule: RangeRule, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule = rule

    def judge(self, run: PortcheckRun, shared: InventoryResults) -> Judgement:
        if run.judging is not None:
            return judge_range(self.host, self.rule, run.judging.union(self.path), strict=run.strict)
        return judge_range(self.host, self.rule, scan_evidence(shared), strict=run.strict)

    def describe(self) -> tuple[str, str]:
        return self.rule.label, "only_open"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.rule.line - 1, f"{self.host.name} {self.rule.label} only_open"


class OneOfItem(RangeItem):
    """A range of which a source publishes one port, chosen at start: at most one may be open."""

    def __init__(self, *, allowance: Allowance, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.allowance = allowance

    def judge(self, run: PortcheckRun, shared: InventoryResults) -> Judgement:
        evidence = run.judging.union(self.path) if run.judging is not None else scan_evidence(shared)
        return judge_one_of(self.host, self.allowance, evidence)

    def describe(self) -> tuple[str, str]:
        return self.rule.label, "one_of"

    def declaration(self) -> tuple[str | None, DeclaredAt | None]:
        origin = self.allowance.declared_at
        return self.allowance.vantage, DeclaredAt(os.path.abspath(origin.path), origin.line, origin.entry)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.rule.line - 1, f"{self.host.name} {self.rule.label} one_of"


def skip_overridden(host: HostSpec, expectation: Expectation) -> None:
    """In a scanning run: skip an entry that the current vantage overrides with one of its own (that
    one applies here; this one applies elsewhere, to runs there). A ``from:`` entry of another
    vantage is the judge's to refuse (``ScanEvidence.absent``)."""
    here = current_vantage()
    if expectation.vantage is not None or here is None:
        return
    for other in host.expectations:
        if other.vantage == here and (other.proto, other.port) == (expectation.proto, expectation.port):
            where = f"{host.name} {expectation.proto.value}/{expectation.port}"
            pytest.skip(f"{where}: from {here}, the from: {here} entry (line {other.line}) applies instead")


def check_today() -> None:
    """Refuse a ``PORTCHECK_TODAY`` that is no date before anything runs (waivers are checked against it)."""
    try:
        today()
    except ValueError:
        raise pytest.UsageError(
            f"portcheck: PORTCHECK_TODAY={os.environ.get('PORTCHECK_TODAY', '')!r} is not a date: "
            "write a real day as YYYY-MM-DD, or unset it"
        ) from None


class InventoryHooks:
    """Registered only when inventories are checked (``hooks.pytest_configure``): collection of the
    inventory files, the items' own test reports, the hand-over of the selected expectations to the
    session, and clean-up."""

    def __init__(self, run: PortcheckRun) -> None:
        self.run = run

    @pytest.hookimpl
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> InventoryFile | None:
        if file_path.resolve() not in self.run.paths:
            return None
        return InventoryFile.from_parent(parent, path=file_path)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> pytest.TestReport | None:
        # An inventory item builds its own reports: pytest would format a setup error's traceback
        # (0.1-0.2 s an item: it parses the source of every frame) only for the item to replace it.
        return item.make_report(call) if isinstance(item, CheckItem) else None

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # The session scans what was selected: handed over as data, not items.
        items = session.items
        self.run.pairs = [(item.host, item.expectation) for item in items if isinstance(item, PortItem)]
        self.run.ranges = [(item.host, item.rule) for item in items if isinstance(item, RangeItem)]

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.run.cleanup()
        if self.run.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.run.previous_sigterm)
