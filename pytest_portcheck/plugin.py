"""pytest hooks: options, collection of inventory files into items, fixtures, the summary, xdist wiring.

An inventory becomes ``inventory.yml::HOST::PROTO/PORT::EXPECTATION`` items. The scan runs once per
session, at the first item's setup: every selected expectation in one engine run, published as a
results file under a lock so that xdist workers share one scan (the pytest-mypy pattern). Items read
their verdict from it. Without ``--portcheck`` or ``portcheck_inventory`` the plugin does nothing.

pytest loads this module in every run of every project where the package is installed, so at import
it needs pytest and the standard library only: the engine, YAML, asyncio/ssl (probes), filelock and the
report writers are imported where an inventory run first needs them (``tests/test_plugin_imports.py``
checks it; ``benchmarks/bench_plugin_import.py`` measures the cost).
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # at run time, imported where an inventory run needs them (see the docstring)
    from pytest_portcheck.engine import PortState, ProbeResult, ScanSettings
    from pytest_portcheck.inventory import Expectation, HostSpec, Inventory, RangeRule, Waiver
    from pytest_portcheck.judgemode import JudgeMode
    from pytest_portcheck.results import ScanReport
    from pytest_portcheck.services import ServiceInfo
    from pytest_portcheck.verdicts import Judgement

PROPERTY_PREFIX = "portcheck."
WAIVER_WARNING_DAYS = 14
MARKDOWN_LIST_LIMIT = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("portcheck", "pytest-portcheck: declared network exposure as tests")
    group.addoption(
        "--portcheck", action="append", default=[], metavar="INVENTORY", dest="portcheck_inventories",
        help="inventory YAML to check (repeatable); alone, only its items are collected",
    )  # fmt: skip
    group.addoption(
        "--portcheck-strict", action="store_true", dest="portcheck_strict",
        help="make every item of a host on which no port answered an error, not a warning; also a closed or "
        "only_open pass resting on silence left unresolved on an address that dropped probes",
    )  # fmt: skip
    group.addoption(
        "--portcheck-banners", action="store_true", dest="portcheck_banners",
        help="run protocol probes on every open port found, not only on entries that name a service",
    )  # fmt: skip
    group.addoption(
        "--portcheck-html", metavar="FILE", dest="portcheck_html",
        help="write a self-contained HTML page: hosts x ports, coloured by verdict",
    )  # fmt: skip
    group.addoption(
        "--portcheck-markdown", metavar="FILE", dest="portcheck_markdown",
        help="write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY when that is set)",
    )  # fmt: skip
    group.addoption(
        "--portcheck-report", metavar="FILE", dest="portcheck_report",
        help="write the JSON report (as 'portcheck scan --json') with each expectation's verdict",
    )  # fmt: skip
    group.addoption(
        "--portcheck-results", action="append", default=[], metavar="GLOB", dest="portcheck_results",
        help="judge from these reports (shard reports of 'portcheck scan --inventory', or JSON reports) "
        "instead of scanning; quote the glob",
    )  # fmt: skip
    group.addoption(
        "--portcheck-allow-other-inventory", action="store_true", dest="portcheck_allow_other",
        help="with --portcheck-results: judge reports of another inventory version too",
    )  # fmt: skip
    parser.addini("portcheck_inventory", type="paths", help="inventory YAML files checked on every run")


@dataclass
class ItemRecord:
    """What the controller learns of one item from its report (works the same under xdist)."""

    host: str
    target: str
    expected: str
    verdict: str
    found: list[tuple[str, str, str, str]] = field(default_factory=list)
    """(address, state, reason, latency_ms) per resolved address."""
    services: list[str] = field(default_factory=list)
    """``ADDRESS SERVICE-DESCRIPTION`` per address a protocol probe ran on (already neutralised)."""
    message: str = ""
    waiver_until: str | None = None
    waiver_reason: str | None = None
    silent: list[str] = field(default_factory=list)
    """Addresses of the item's host on which nothing answered (``verdicts.silent_addresses``)."""

    def waiver_note(self, day: datetime.date) -> str | None:
        """How the waiver stands on ``day``, when it is expired or expires within 14 days."""
        if self.waiver_until is None:
            return None
        left = (datetime.date.fromisoformat(self.waiver_until) - day).days
        if left < 0:
            return f"expired on {self.waiver_until} (no longer waiving): {self.waiver_reason}"
        if left <= WAIVER_WARNING_DAYS:
            return f"expires in {left} day(s), on {self.waiver_until}: {self.waiver_reason}"
        return None


class InventoryResults:
    """The session's scan of the inventories, as ordinary tests see it through ``portcheck_results``."""

    def __init__(self, report: ScanReport, hosts: Sequence[HostSpec]) -> None:
        from pytest_portcheck.verdicts import index_results, silent_addresses

        self.report = report
        self.by_key = index_results(report.results)
        self.resolutions = {r.host: r for r in report.resolutions}
        self.silent = silent_addresses(report.results)
        self._hosts = {host.name: host for host in hosts}
        self._ambiguous = {host.name for host in hosts if self._hosts[host.name].address != host.address}

    def silent_of(self, host: HostSpec) -> tuple[str, ...]:
        """The addresses of ``host`` on which no port answered."""
        from pytest_portcheck.verdicts import silent_of

        return silent_of(self.resolutions.get(host.address), self.silent)

    def addresses(self, host: str) -> tuple[str, ...]:
        if host in self._ambiguous:
            raise KeyError(
                f"{host!r} names hosts at different addresses in several inventories: pass the address"
            )
        spec = self._hosts.get(host)
        resolution = self.resolutions.get(spec.address if spec is not None else host)
        if resolution is None:
            raise KeyError(f"{host!r} is not a host of the scanned inventories")
        return resolution.addresses

    def results(self, host: str, port: int, proto: str = "tcp") -> list[ProbeResult]:
        """One result per resolved address of ``host`` (an inventory name or the address it names)."""
        from pytest_portcheck.ports import Protocol

        key_proto = Protocol(proto)
        found = [self.by_key.get((address, key_proto, port)) for address in self.addresses(host)]
        if not found or any(result is None for result in found):
            raise KeyError(f"{proto}/{port} of {host!r} was not scanned: declare it in the inventory")
        return [result for result in found if result is not None]

    def state(self, host: str, port: int, proto: str = "tcp") -> PortState:
        """The state of a port when every address agrees; ``error`` otherwise."""
        from pytest_portcheck.engine import PortState

        states = {result.state for result in self.results(host, port, proto)}
        return states.pop() if len(states) == 1 else PortState.ERROR


class PortcheckRun:
    """Per-process state of a session that checks inventories."""

    def __init__(self, config: pytest.Config, inventories: list[Path]) -> None:
        self.config = config
        self.inventories = inventories
        self.paths = {path.resolve() for path in inventories}
        self._loaded: dict[Path, Inventory] = {}
        self.items: list[PortItem | RangeItem] = []
        self._results: InventoryResults | None = None
        self._failure: str | None = None
        self.records: dict[str, ItemRecord] = {}
        self.write_errors: list[str] = []
        self.previous_sigterm: Any = None
        self.strict: bool = bool(config.getoption("portcheck_strict"))
        self.banners: bool = bool(config.getoption("portcheck_banners"))
        self.result_globs: list[str] = list(config.getoption("portcheck_results") or [])
        self.judging: JudgeMode | None = None
        if self.result_globs:
            from pytest_portcheck.judgemode import JudgeMode

            self.judging = JudgeMode(self)
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        if workerinput is not None:
            self.shared_dir = Path(workerinput["portcheck_dir"])
            self._owns_dir = False
        else:
            self.shared_dir = Path(tempfile.mkdtemp(prefix="portcheck-"))
            self._owns_dir = True

    @property
    def results_path(self) -> Path:
        return self.shared_dir / "results.json"

    def load(self, path: Path) -> Inventory:
        key = path.resolve()
        if key not in self._loaded:
            from pytest_portcheck.inventory import load_inventory

            self._loaded[key] = load_inventory(path)
        return self._loaded[key]

    def results(self) -> InventoryResults:
        """Scan once for the whole session (under a lock across xdist workers) and share the outcome."""
        if self._results is None:
            from filelock import FileLock

            from pytest_portcheck.atomicfile import WriteError
            from pytest_portcheck.results import ReportError, read_report, write_report
            from pytest_portcheck.verdicts import scan_inventory

            if self._failure is not None:
                raise PortcheckError(self._failure)
            if self.judging is not None:  # no scan: items are judged from the reports
                self._results = self.judging.placeholder()
                return self._results
            pairs = [(item.host, item.expectation) for item in self.items if isinstance(item, PortItem)]
            ranges = [(item.host, item.rule) for item in self.items if isinstance(item, RangeItem)]
            try:
                if not self.is_worker:  # one process: nobody to share the scan with
                    from pytest_portcheck.judgemode import terminal_progress

                    with terminal_progress(self.config) as progress:
                        report = scan_inventory(
                            pairs, ranges=ranges, all_banners=self.banners, progress=progress
                        )
                else:
                    with FileLock(str(self.shared_dir / "results.lock")):
                        if self.results_path.exists():
                            report = read_report(self.results_path)
                        else:
                            report = scan_inventory(pairs, ranges=ranges, all_banners=self.banners)
                            write_report(report, self.results_path)
            except (OSError, ValueError, KeyError, ReportError, WriteError) as exc:
                self._failure = f"the inventory scan failed: {exc}"
                raise PortcheckError(self._failure) from None
            hosts = list(dict.fromkeys(host for host, _ in [*pairs, *ranges]))
            self._results = InventoryResults(report, hosts)
        return self._results

    def shared_report(self) -> ScanReport | None:
        """The session's scan as the controller sees it: in memory, or the file xdist workers wrote."""
        if self._results is not None:
            return self._results.report
        if self.results_path.exists():
            from pytest_portcheck.results import ReportError, read_report

            try:
                return read_report(self.results_path)
            except ReportError:
                return None  # the items that needed it already failed saying why
        return None

    def cleanup(self) -> None:
        if self._owns_dir:
            shutil.rmtree(self.shared_dir, ignore_errors=True)


RUN_KEY = pytest.StashKey[PortcheckRun]()


def _inventories(config: pytest.Config) -> tuple[list[Path], list[Path]]:
    from_option = [Path(p) for p in config.getoption("portcheck_inventories") or []]
    from_ini = [Path(p) for p in config.getini("portcheck_inventory") or []]
    return from_option, from_ini


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "portcheck: an item generated from a pytest-portcheck inventory")
    from_option, from_ini = _inventories(config)
    if not from_option and not from_ini:
        return
    inventories = list(dict.fromkeys(from_option + from_ini))
    for path in inventories:
        problem = _not_a_file(path)
        if problem is not None:
            where = "--portcheck" if path in from_option else "the portcheck_inventory ini option"
            raise pytest.UsageError(f"portcheck: inventory {path} given by {where} {problem}")
    _check_today()
    if not hasattr(config, "workerinput"):
        _check_report_paths(config)
    run = PortcheckRun(config, inventories)
    config.stash[RUN_KEY] = run
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    wanted = [str(path) for path in inventories]
    if from_option and not explicit:
        # `pytest --portcheck inventory.yml` checks the inventory, not the whole test suite as well.
        config.args = [str(path) for path in from_option] + [str(p) for p in from_ini]
    else:
        known = {Path(arg.split("::", 1)[0]).resolve() for arg in config.args}
        config.args = list(config.args) + [arg for arg in wanted if Path(arg).resolve() not in known]
    if not run.is_worker:
        config.pluginmanager.register(ControllerHooks(run), "portcheck-controller")
        run.previous_sigterm = _interrupt_on_sigterm()
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(run), "portcheck-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.cleanup()
        if run.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, run.previous_sigterm)


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be an inventory (it is missing, a directory, a FIFO...), or None."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory: give the inventory YAML file in it"
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
    return f"is {kind}, not a regular file: give the inventory YAML file"


def _check_today() -> None:
    from pytest_portcheck.verdicts import today

    try:
        today()
    except ValueError:
        raise pytest.UsageError(
            f"portcheck: PORTCHECK_TODAY={os.environ.get('PORTCHECK_TODAY', '')!r} is not a date: "
            "write a real day as YYYY-MM-DD, or unset it"
        ) from None


_REPORT_OPTIONS = (
    ("portcheck_report", "--portcheck-report"),
    ("portcheck_html", "--portcheck-html"),
    ("portcheck_markdown", "--portcheck-markdown"),
)


def _check_report_paths(config: pytest.Config) -> None:
    """Refuse report files that cannot be written before scanning, not after."""
    from pytest_portcheck.atomicfile import WriteError, check_writable

    for dest, flag in _REPORT_OPTIONS:
        path = config.getoption(dest, None)
        if path and path != "-":
            try:
                check_writable(path)
            except WriteError as exc:
                raise pytest.UsageError(f"portcheck: {flag}: {exc}") from None


def _interrupt_on_sigterm() -> Any:
    """Make SIGTERM end the session as Ctrl-C does: reports marked interrupted, temp dirs removed."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None  # someone (a runner, another plugin) already handles it

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    return signal.signal(signal.SIGTERM, interrupt)


class XdistHooks:
    """Registered only when xdist is loaded: hands the shared results folder to every worker."""

    def __init__(self, run: PortcheckRun) -> None:
        self.run = run

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["portcheck_dir"] = str(self.run.shared_dir)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> InventoryFile | None:
    run = parent.config.stash.get(RUN_KEY, None)
    if run is None or file_path.resolve() not in run.paths:
        return None
    return InventoryFile.from_parent(parent, path=file_path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # pytest renders setup errors with a traceback, bypassing repr_failure: an inventory item's
    # error is a plain message like its failures.
    failure = call.excinfo.value if call.excinfo is not None else None
    if isinstance(item, CheckItem) and isinstance(failure, PortcheckError):
        report.longrepr = str(failure)
    return report


def pytest_collection_finish(session: pytest.Session) -> None:
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None:
        run.items = [item for item in session.items if isinstance(item, (PortItem, RangeItem))]


class PortcheckError(Exception):
    """The expectation could not be checked (DNS failure, local error): an error, never a pass."""


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
        from pytest_portcheck.verdicts import Verdict

        run = self.config.stash[RUN_KEY]
        shared = run.results()
        self.silent = shared.silent_of(self.host)
        self.judgement = self.judge(run, shared)
        services = shared.report.services
        probed = [
            (result.address, services[key])
            for result in self.judgement.found
            if result.address is not None and (key := (result.address, result.proto, result.port)) in services
        ]
        self._record(self.judgement, probed)
        if self.judgement.verdict is Verdict.ERROR:
            raise PortcheckError(self.judgement.message)

    def runtest(self) -> None:
        from pytest_portcheck.verdicts import Verdict, today

        assert self.judgement is not None
        if self.judgement.verdict is not Verdict.FAILED:
            return
        if self.waiver is not None and self.waiver.active(today()):
            pytest.xfail(f"waived until {self.waiver.until}: {self.waiver.reason} — {self.judgement.message}")
        raise PortDrift(self.judgement.message)

    def _record(self, judgement: Judgement, services: Sequence[tuple[str, ServiceInfo]]) -> None:
        target, expected = self.describe()
        props: list[tuple[str, object]] = [
            (PROPERTY_PREFIX + "host", self.host.name),
            (PROPERTY_PREFIX + "target", target),
            (PROPERTY_PREFIX + "expected", expected),
            (PROPERTY_PREFIX + "verdict", judgement.verdict.value),
            (PROPERTY_PREFIX + "message", judgement.message),
        ]
        if self.silent:
            props.append((PROPERTY_PREFIX + "silent", " ".join(self.silent)))
        if self.waiver is not None:
            props += [
                (PROPERTY_PREFIX + "waiver_until", self.waiver.until.isoformat()),
                (PROPERTY_PREFIX + "waiver_reason", self.waiver.reason),
            ]
        for result in judgement.found:
            props += [
                (PROPERTY_PREFIX + "address", result.address or ""),
                (PROPERTY_PREFIX + "state", result.state.value),
                (PROPERTY_PREFIX + "reason", result.reason),
                (PROPERTY_PREFIX + "latency_ms", "" if result.latency_ms is None else result.latency_ms),
            ]
        for address, info in services:
            # Peer-supplied text, already neutralised: no control characters reach the XML.
            props += [
                (PROPERTY_PREFIX + "service", f"{address} {info.service}"),
                (PROPERTY_PREFIX + "product", " ".join(filter(None, (info.product, info.version)))),
                (PROPERTY_PREFIX + "banner", info.evidence),
                (PROPERTY_PREFIX + "found_service", f"{address} {info.describe()}"),
            ]
        self.user_properties.extend(props)

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
        from pytest_portcheck.verdicts import judge

        if run.judging is not None:
            return run.judging.union(self.path).judge_port(self.host, self.expectation)
        from pytest_portcheck.judgemode import vantage_problem

        scoped = vantage_problem(self.host, self.expectation)
        if scoped is not None:
            return scoped
        return judge(
            self.host,
            self.expectation,
            shared.resolutions.get(self.host.address),
            shared.by_key,
            silent=self.silent,
            strict=run.strict,
            services=shared.report.services,
            quality=shared.report.stats.addresses,
        )

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
        from pytest_portcheck.verdicts import judge_range

        if run.judging is not None:
            return run.judging.union(self.path).judge_range(self.host, self.rule)
        resolution = shared.resolutions.get(self.host.address)
        return judge_range(
            self.host,
            self.rule,
            resolution,
            shared.by_key,
            shared.report.services,
            silent=self.silent,
            strict=run.strict,
            quality=shared.report.stats.addresses,
        )

    def describe(self) -> tuple[str, str]:
        return self.rule.label, "only_open"

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.rule.line - 1, f"{self.host.name} {self.rule.label} only_open"


# --- reports, summary and the report file (controller side) --------------------------------------


def _parse_record(properties: Sequence[tuple[str, object]]) -> ItemRecord | None:
    values: dict[str, str] = {}
    found: list[tuple[str, str, str, str]] = []
    services: list[str] = []
    current: list[str] = []
    for name, value in properties:
        if not name.startswith(PROPERTY_PREFIX):
            continue
        key = name[len(PROPERTY_PREFIX) :]
        if key == "found_service":
            services.append(str(value))
        elif key in ("service", "product", "banner"):
            continue
        elif key in ("address", "state", "reason", "latency_ms"):
            current.append(str(value))
            if len(current) == 4:
                found.append((current[0], current[1], current[2], current[3]))
                current = []
        else:
            values[key] = str(value)
    if not {"host", "target", "expected", "verdict"} <= set(values):
        return None
    return ItemRecord(
        values["host"],
        values["target"],
        values["expected"],
        values["verdict"],
        found,
        services,
        values.get("message", ""),
        values.get("waiver_until"),
        values.get("waiver_reason"),
        values.get("silent", "").split(),
    )


def _summary_rows(run: PortcheckRun) -> list[tuple[str, str, str, str, int, int]]:
    from pytest_portcheck.verdicts import Verdict

    # One row per (inventory, host): two inventories' 'web' may be two machines.
    hosts: dict[tuple[str, str], dict[str, Any]] = {}
    for nodeid, record in run.records.items():
        row = hosts.setdefault(
            (nodeid.split("::", 1)[0], record.host),
            {"addresses": {}, "expected": {}, "found": {}, "drift": 0, "errors": 0},
        )
        row["expected"][record.expected] = row["expected"].get(record.expected, 0) + 1
        for address, state, _reason, _latency in record.found:
            row["addresses"][address] = None
            row["found"][state] = row["found"].get(state, 0) + 1
        row["drift"] += record.verdict == Verdict.FAILED.value
        row["waived"] = row.get("waived", 0) + (record.verdict == "waived")
        row["errors"] += record.verdict == Verdict.ERROR.value
    names = [host for _, host in hosts]
    rows = []
    for (path, host), row in hosts.items():
        shown = host if names.count(host) == 1 else f"{path}::{host}"
        expected = ", ".join(f"{n} {k}" for k, n in sorted(row["expected"].items()))
        found = ", ".join(f"{n} {k}" for k, n in sorted(row["found"].items())) or "-"
        addresses = ", ".join(row["addresses"]) or "-"
        rows.append((shown, addresses, expected, found, row["drift"], row["errors"]))
    return rows


def _silent_hosts(run: PortcheckRun) -> dict[tuple[str, str], list[str]]:
    """(inventory, host) -> addresses on which nothing answered, as the items judged it: keyed by
    inventory as well as name, so two inventories' ``web`` on different addresses stay apart."""
    silent: dict[tuple[str, str], list[str]] = {}
    for nodeid, record in run.records.items():
        if record.silent:
            addresses = silent.setdefault((nodeid.split("::", 1)[0], record.host), [])
            addresses += [address for address in record.silent if address not in addresses]
    return silent


class ControllerHooks:
    """Registered on the controller only (or the single process): gathers item reports, prints the
    exposure summary and writes the report file."""

    def __init__(self, run: PortcheckRun) -> None:
        self.run = run

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" or (report.when == "setup" and report.passed):
            return  # the call report (or a failed setup's) carries the same properties
        record = _parse_record(report.user_properties)
        if record is not None:
            if getattr(report, "wasxfail", None) is not None:
                record.verdict = "waived"
            self.run.records[report.nodeid] = record

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.run.records:
            _write_summary(self.run, terminalreporter)
        for problem in self.run.write_errors:
            terminalreporter.write_line(f"ERROR: portcheck: {problem}", red=True, bold=True)

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from pytest_portcheck.atomicfile import WriteError
        from pytest_portcheck.htmlreport import write_html

        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        writers: list[tuple[str, Callable[[str], None]]] = [
            ("portcheck_report", lambda path: _write_report_file(self.run, path, interrupted)),
            ("portcheck_html", lambda path: write_html(_report_document(self.run, interrupted), Path(path))),
            ("portcheck_markdown", lambda path: _write_markdown(self.run, path)),
        ]
        for (dest, writer), (_, flag) in zip(writers, _REPORT_OPTIONS, strict=True):
            path = session.config.getoption(dest, None)
            if not path:
                continue
            try:
                writer(path)
            except (WriteError, OSError) as exc:  # one report lost is no reason to lose the others
                self.run.write_errors.append(f"{flag}: {exc}")
        if self.run.write_errors and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = pytest.ExitCode.USAGE_ERROR


def _write_markdown(run: PortcheckRun, path: str) -> None:
    from pytest_portcheck.atomicfile import write_text_atomically

    text = markdown_summary(run)
    write_text_atomically(path, text)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as handle:
            handle.write(text)


def _write_summary(run: PortcheckRun, terminalreporter: Any) -> None:
    from pytest_portcheck.results import quality_notes
    from pytest_portcheck.verdicts import today

    rows = _summary_rows(run)
    header = ("host", "addresses", "expected", "found (per address)", "drift", "errors")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    terminalreporter.section("portcheck exposure")
    terminalreporter.write_line("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        line = "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        drifted = row[4] or row[5]
        terminalreporter.write_line(line, red=bool(drifted), green=not drifted)
    total_drift = sum(row[4] for row in rows)
    terminalreporter.write_line(f"drift: {total_drift} expectation(s) not met on {len(rows)} host(s)")
    services = [
        (record.host, record.target, line) for record in run.records.values() for line in record.services
    ]
    if services:
        terminalreporter.write_line("services found:")
        for host, target, line in services:
            terminalreporter.write_line(f"  {host} {target} {line}")
    day = today()
    notes = [(record, note) for record in run.records.values() if (note := record.waiver_note(day))]
    if notes:
        terminalreporter.write_line(
            f"waivers to look at (expired, or expiring within {WAIVER_WARNING_DAYS} days):"
        )
        for record, note in notes:
            terminalreporter.write_line(
                f"  {record.host} {record.target} {record.expected}: {note}", yellow=True
            )
    for (path, host), addresses in _silent_hosts(run).items():
        how = "made errors by --portcheck-strict" if run.strict else "pass --portcheck-strict to fail on this"
        terminalreporter.write_line(
            f"WARNING: {path}::{host}: no port answered on {', '.join(addresses)} — is the address right? "
            f"({how})",
            yellow=True,
        )
    if run.judging is not None:
        for line in run.judging.summary_lines():
            terminalreporter.write_line(line, yellow=line.startswith("WARNING"), red=line.startswith("ERROR"))
        return
    report = run.shared_report()
    if report is not None:
        terminalreporter.write_line(
            f"scanned {len(report.results):,} (address, port) pair(s) once each in {report.elapsed_s:.2f} s"
        )
        for line in quality_notes(report.stats):
            terminalreporter.write_line(f"scan quality: {line}", yellow=True)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def _md(text: str) -> str:
    """Text for a Markdown table cell or list item: markup and HTML from peers stays text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def markdown_summary(run: PortcheckRun) -> str:
    """The run as Markdown: hosts, drift, errors, waivers, services found and scan quality."""
    from pytest_portcheck.results import quality_notes
    from pytest_portcheck.verdicts import Verdict, today

    rows = _summary_rows(run)
    records = list(run.records.items())
    drift = [(nodeid, r) for nodeid, r in records if r.verdict == Verdict.FAILED.value]
    errors = [(nodeid, r) for nodeid, r in records if r.verdict == Verdict.ERROR.value]
    waived = [(nodeid, r) for nodeid, r in records if r.verdict == "waived"]
    lines = [
        f"## portcheck: {len(drift)} drift, {len(errors)} error(s), {len(waived)} waived "
        f"on {len(rows)} host(s)",
        "",
        "| host | addresses | expected | found (per address) | drift | errors |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(_md(str(cell)) for cell in row)} |" for row in rows]
    for title, items in (("Drift", drift), ("Errors", errors), ("Waived", waived)):
        if items:
            lines += ["", f"### {title}", ""]
            lines += _capped([f"- {_md(nodeid)}: {_md(record.message)}" for nodeid, record in items])
    day = today()
    notes = [(nodeid, note) for nodeid, record in records if (note := record.waiver_note(day))]
    if notes:
        lines += ["", f"### Waivers expired or expiring within {WAIVER_WARNING_DAYS} days", ""]
        lines += _capped([f"- {_md(nodeid)}: {_md(note)}" for nodeid, note in notes])
    silent = _silent_hosts(run)
    if silent:
        how = (
            "made errors by --portcheck-strict"
            if run.strict
            else "warnings; --portcheck-strict makes them errors"
        )
        lines += ["", f"### Nothing answered ({how})", ""]
        lines += [
            f"- {_md(path)}::{_md(host)}: no port answered on {_md(', '.join(addresses))} "
            "— is the address right?"
            for (path, host), addresses in silent.items()
        ]
    services = [(record.host, record.target, line) for _, record in records for line in record.services]
    if services:
        lines += ["", "### Services found", ""]
        lines += _capped([f"- {_md(host)} {_md(target)}: {_md(line)}" for host, target, line in services])
    report = run.shared_report()
    quality = quality_notes(report.stats) if report is not None else []
    if quality:
        lines += ["", "### Scan quality", ""]
        lines += [f"- {_md(line)}" for line in quality]
    return "\n".join(lines) + "\n"


def _capped(lines: list[str]) -> list[str]:
    """At most MARKDOWN_LIST_LIMIT lines and a count of the rest: GitHub refuses step summaries over 1 MiB."""
    if len(lines) <= MARKDOWN_LIST_LIMIT:
        return lines
    rest = len(lines) - MARKDOWN_LIST_LIMIT
    more = f"- … and {rest:,} more: the JSON report (--portcheck-report) has them all"
    return [*lines[:MARKDOWN_LIST_LIMIT], more]


def _report_parts(run: PortcheckRun, interrupted: bool = False) -> tuple[ScanReport, list[dict[str, Any]]]:
    from pytest_portcheck.engine import ScanSettings
    from pytest_portcheck.results import ScanReport

    report = run.shared_report() or ScanReport([], [], ScanSettings(), "", 0.0)
    if interrupted:  # whatever was scanned or judged so far, and saying that it is not all
        report = dataclasses.replace(report, interrupted=True)
    expectations = [
        {
            "nodeid": nodeid,
            "host": record.host,
            "target": record.target,
            "expected": record.expected,
            "verdict": record.verdict,
            "message": record.message,
            "found": [
                {"address": a, "state": s, "reason": r, "latency_ms": float(lat) if lat else None}
                for a, s, r, lat in record.found
            ],
            "services": record.services,
        }
        for nodeid, record in run.records.items()
    ]
    return report, expectations


def _write_report_file(run: PortcheckRun, destination: str, interrupted: bool = False) -> None:
    from pytest_portcheck.results import write_report

    report, expectations = _report_parts(run, interrupted)
    write_report(report, destination, {"expectations": expectations})


def _report_document(run: PortcheckRun, interrupted: bool = False) -> dict[str, Any]:
    """The --portcheck-report document, in memory (for the HTML page)."""
    from pytest_portcheck.results import dump_report

    buffer = io.StringIO()
    report, expectations = _report_parts(run, interrupted)
    dump_report(report, buffer, {"expectations": expectations})
    return dict(json.loads(buffer.getvalue()))


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def portcheck_results(request: pytest.FixtureRequest) -> InventoryResults:
    """The session's inventory scan (the same one the inventory items read), for Python tests."""
    run = request.config.stash.get(RUN_KEY, None)
    if run is None:
        pytest.skip("no inventory to check: pass --portcheck INVENTORY or set portcheck_inventory")
    return run.results()


@pytest.fixture(scope="session")
def portcheck_settings() -> ScanSettings:
    """Settings for ``portcheck_scan``; override this fixture in a conftest to change them."""
    from pytest_portcheck.engine import ScanSettings

    return ScanSettings(timeout=1.0, retries=1)


@pytest.fixture
def portcheck_scan(portcheck_settings: ScanSettings) -> Callable[..., ScanReport]:
    """Scan now: ``portcheck_scan("127.0.0.1", "8000-8010")`` returns the whole ``ScanReport``."""
    from pytest_portcheck.engine import ScanSettings
    from pytest_portcheck.ports import parse_port_spec
    from pytest_portcheck.results import collect_scan

    def run_scan(hosts: str | Sequence[str], ports: str | int, **settings: Any) -> ScanReport:
        names = [hosts] if isinstance(hosts, str) else list(hosts)
        chosen = portcheck_settings
        if settings:
            chosen = ScanSettings(
                timeout=settings.pop("timeout", chosen.timeout),
                retries=settings.pop("retries", chosen.retries),
                window=settings.pop("window", chosen.window),
                max_rate=settings.pop("max_rate", chosen.max_rate),
                min_rate=settings.pop("min_rate", chosen.min_rate),
            )
            if settings:
                raise TypeError(f"unknown scan settings: {', '.join(settings)}")
        return collect_scan(names, parse_port_spec(ports), chosen)

    return run_scan
