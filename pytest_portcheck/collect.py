"""Collection: an inventory file becomes ``inventory.yml::HOST::PROTO/PORT::EXPECTATION`` items.

``InventoryFile`` → ``HostNode`` → ``PortNode``/``RangeNode`` → ``PortItem``/``RangeItem`` (the shape of
pytest's YAML example). An item's setup reads the session's shared scan (``session``), judges it
(``judge``) and hands the controller one ``ItemRecord``; failures are plain messages pointing at the
YAML line, never tracebacks.

At import time only pytest and the standard library (the plugin imports this module in every run);
nothing here scans or prints a summary.
Must not import the engine, YAML or the report writers at import time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_portcheck.session import (
    PROPERTY_PREFIX,
    RECORD_PROPERTY,
    RUN_KEY,
    InventoryResults,
    ItemRecord,
    PortcheckError,
    PortcheckRun,
)

if TYPE_CHECKING:
    from pytest_portcheck.inventory import Expectation, HostSpec, RangeRule, Waiver
    from pytest_portcheck.judge import Judgement
    from pytest_portcheck.results import ResultKey
    from pytest_portcheck.services import ServiceInfo


class PortDrift(AssertionError):
    """What was found is not what the inventory declares."""


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
        from pytest_portcheck.inventory import InventoryError

        if isinstance(excinfo.value, InventoryError):
            return f"portcheck inventory error: {excinfo.value}"
        return super().repr_failure(excinfo)


class HostNode(pytest.Collector):
    def __init__(self, *, host: HostSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.host = host

    def collect(self) -> Iterator[PortNode | RangeNode]:
        for expectation in self.host.expectations:
            name = f"{expectation.proto.value}/{expectation.port}"
            yield PortNode.from_parent(self, name=name, host=self.host, expectation=expectation)
        if self.host.range_rule is not None:
            rule = self.host.range_rule
            yield RangeNode.from_parent(self, name=rule.label, host=self.host, rule=rule)


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
        self.judgement: Judgement | None = None
        self.silent: tuple[str, ...] = ()

    def judge(self, run: PortcheckRun, shared: InventoryResults) -> Judgement:
        raise NotImplementedError

    def describe(self) -> tuple[str, str]:
        """(target, expected) as the reports name them: ``("tcp/22", "open")``."""
        raise NotImplementedError

    def setup(self) -> None:
        from pytest_portcheck.judge import Verdict
        from pytest_portcheck.results import port_key

        run = self.config.stash[RUN_KEY]
        shared = run.results()
        services: Mapping[ResultKey, ServiceInfo]
        if run.judging is not None:
            union = run.judging.union(self.path)
            self.silent, services = union.silent_of(self.host), union.services
        else:
            self.silent, services = shared.silent_of(self.host), shared.report.services
        self.judgement = self.judge(run, shared)
        keyed = [(r.address, port_key(r.address, r.proto, r.port)) for r in self.judgement.found if r.address]
        probed = [(address, services[key]) for address, key in keyed if key in services]
        self._record(self.judgement, probed)
        if self.judgement.verdict is Verdict.ERROR:
            raise PortcheckError(self.judgement.message)

    def runtest(self) -> None:
        from pytest_portcheck.judge import Verdict, today

        assert self.judgement is not None
        if self.judgement.verdict is not Verdict.FAILED:
            return
        if self.waiver is not None and self.waiver.active(today()):
            pytest.xfail(f"waived until {self.waiver.until}: {self.waiver.reason} — {self.judgement.message}")
        raise PortDrift(self.judgement.message)

    def _record(self, judgement: Judgement, services: Sequence[tuple[str, ServiceInfo]]) -> None:
        target, expected = self.describe()
        record = ItemRecord(
            self.host.name,
            target,
            expected,
            judgement.verdict.value,
            [
                (r.address or "", r.state.value, r.reason, "" if r.latency_ms is None else str(r.latency_ms))
                for r in judgement.found
            ],
            # Peer-supplied text, already neutralised: no control characters reach the XML.
            [f"{address} {info.describe()}" for address, info in services],
            judgement.message,
            None if self.waiver is None else self.waiver.until.isoformat(),
            None if self.waiver is None else self.waiver.reason,
            list(self.silent),
        )
        self.user_properties.append((RECORD_PROPERTY, record.to_json()))
        self.user_properties.extend(_junit_properties(record, services))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, (PortDrift, PortcheckError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class PortItem(CheckItem):
    def __init__(self, *, expectation: Expectation, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.expectation = expectation
        self.waiver = expectation.waiver

    def judge(self, run: PortcheckRun, shared: InventoryResults) -> Judgement:
        from pytest_portcheck.judge import judge

        if run.judging is not None:
            return judge(self.host, self.expectation, run.judging.union(self.path), strict=run.strict)
        from pytest_portcheck.judgemode import scan_evidence, skip_overridden

        skip_overridden(self.host, self.expectation)
        return judge(self.host, self.expectation, scan_evidence(shared), strict=run.strict)

    def describe(self) -> tuple[str, str]:
        return f"{self.expectation.proto.value}/{self.expectation.port}", self.expectation.expect.value

    def reportinfo(self) -> tuple[Path, int, str]:
        e = self.expectation
        return self.path, e.line - 1, f"{self.host.name} {e.proto.value}/{e.port} {e.expect.value}"


class RangeItem(CheckItem):
    def __init__(self, *, rule: RangeRule, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule = rule

    def judge(self, run: PortcheckRun, shared: InventoryResults) -> Judgement:
        from pytest_portcheck.judge import judge_range

        if run.judging is not None:
            return judge_range(self.host, self.rule, run.judging.union(self.path), strict=run.strict)
        from pytest_portcheck.judgemode import scan_evidence

        return judge_range(self.host, self.rule, scan_evidence(shared), strict=run.strict)

    def describe(self) -> tuple[str, str]:
        return self.rule.label, "only_open"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.rule.line - 1, f"{self.host.name} {self.rule.label} only_open"


def _junit_properties(
    record: ItemRecord, services: Sequence[tuple[str, ServiceInfo]]
) -> list[tuple[str, object]]:
    """The record spelled out for the JUnit XML (output only: the controller reads ``RECORD_PROPERTY``)."""
    props: list[tuple[str, object]] = [
        (PROPERTY_PREFIX + "host", record.host),
        (PROPERTY_PREFIX + "target", record.target),
        (PROPERTY_PREFIX + "expected", record.expected),
        (PROPERTY_PREFIX + "verdict", record.verdict),
        (PROPERTY_PREFIX + "message", record.message),
    ]
    if record.silent:
        props.append((PROPERTY_PREFIX + "silent", " ".join(record.silent)))
    if record.waiver_until is not None:
        props += [
            (PROPERTY_PREFIX + "waiver_until", record.waiver_until),
            (PROPERTY_PREFIX + "waiver_reason", record.waiver_reason),
        ]
    for address, state, reason, latency in record.found:
        props += [
            (PROPERTY_PREFIX + "address", address),
            (PROPERTY_PREFIX + "state", state),
            (PROPERTY_PREFIX + "reason", reason),
            (PROPERTY_PREFIX + "latency_ms", float(latency) if latency else ""),
        ]
    for address, info in services:
        props += [
            (PROPERTY_PREFIX + "service", f"{address} {info.service}"),
            (PROPERTY_PREFIX + "product", " ".join(filter(None, (info.product, info.version)))),
            (PROPERTY_PREFIX + "banner", info.evidence),
            (PROPERTY_PREFIX + "found_service", f"{address} {info.describe()}"),
        ]
    return props
