"""The session's shared results: the one inventory scan every item (and every xdist worker) reads.

``PortcheckRun`` scans once per session (under a ``FileLock`` across xdist workers, the pytest-mypy
pattern) and shares the report; ``InventoryResults`` is that scan as tests see it; ``ItemRecord`` is
what an item hands the controller (one JSON user property); ``XdistHooks`` hands workers the
shared folder.

Must not import ``collect`` (the items hand their expectations over as data) nor, at import time,
anything but pytest and the standard library: the engine, YAML and filelock load when a run needs them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_portcheck.engine import PortState, ProbeResult
    from pytest_portcheck.inventory import Expectation, HostSpec, Inventory, RangeRule
    from pytest_portcheck.judgemode import JudgeMode
    from pytest_portcheck.results import ScanReport

PROPERTY_PREFIX = "portcheck."
RECORD_PROPERTY = PROPERTY_PREFIX + "record"
"""The one user property the controller reads: an ``ItemRecord`` as JSON."""
WAIVER_WARNING_DAYS = 14


@dataclass(frozen=True)
class ItemRecord:
    """What the controller learns of one item from its report (works the same under xdist): handed
    over as ONE JSON user property (``RECORD_PROPERTY``); the other ``portcheck.*`` properties are
    for the JUnit XML only and are never read back."""

    host: str
    target: str
    expected: str
    verdict: str
    found: Sequence[tuple[str, str, str, str]] = ()
    """(address, state, reason, latency_ms) per resolved address."""
    services: Sequence[str] = ()
    """``ADDRESS SERVICE-DESCRIPTION`` per address a protocol probe ran on (already neutralised)."""
    message: str = ""
    waiver_until: str | None = None
    waiver_reason: str | None = None
    silent: Sequence[str] = ()
    """Addresses of the item's host on which nothing answered (``judge.silent_addresses``)."""

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

    def to_json(self) -> str:
        # Fields by name, not dataclasses.asdict: its deep copy cost ~80 us an item, a tenth of a
        # 10,000-item run's overhead over plain tests (benchmarks/bench_plugin.py).
        return json.dumps({name: getattr(self, name) for name in _ITEM_RECORD_FIELDS})

    @classmethod
    def from_json(cls, text: object) -> ItemRecord | None:
        """The record an item wrote, or None for anything that is not one (another plugin's property)."""
        try:
            data = json.loads(str(text))
            return cls(
                str(data["host"]),
                str(data["target"]),
                str(data["expected"]),
                str(data["verdict"]),
                [(str(a), str(s), str(r), str(lat)) for a, s, r, lat in data["found"]],
                [str(line) for line in data["services"]],
                str(data["message"]),
                None if data["waiver_until"] is None else str(data["waiver_until"]),
                None if data["waiver_reason"] is None else str(data["waiver_reason"]),
                [str(address) for address in data["silent"]],
            )
        except (ValueError, TypeError, KeyError):
            return None

    @classmethod
    def from_properties(cls, properties: Sequence[tuple[str, object]]) -> ItemRecord | None:
        for name, value in properties:
            if name == RECORD_PROPERTY:
                return cls.from_json(value)
        return None


_ITEM_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ItemRecord))


class InventoryResults:
    """The session's scan of the inventories, as ordinary tests see it through ``portcheck_results``."""

    def __init__(self, report: ScanReport, hosts: Sequence[HostSpec]) -> None:
        from pytest_portcheck.judge import silent_addresses
        from pytest_portcheck.results import index_results

        self.report = report
        self.by_key = index_results(report.results)
        self.resolutions = {r.host: r for r in report.resolutions}
        self.silent = silent_addresses(report.results)
        self._hosts = {host.name: host for host in hosts}
        self._ambiguous = {host.name for host in hosts if self._hosts[host.name].address != host.address}

    def silent_of(self, host: HostSpec) -> tuple[str, ...]:
        """The addresses of ``host`` on which no port answered."""
        from pytest_portcheck.judge import silent_of

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


class PortcheckError(Exception):
    """The expectation could not be checked (DNS failure, local error): an error, never a pass."""


class PortcheckRun:
    """Per-process state of a session that checks inventories."""

    def __init__(self, config: pytest.Config, inventories: list[Path]) -> None:
        self.config = config
        self.inventories = inventories
        self.paths = {path.resolve() for path in inventories}
        self._loaded: dict[Path, Inventory] = {}
        self.pairs: list[tuple[HostSpec, Expectation]] = []
        """The selected expectations (collection hands them over: this module knows no items)."""
        self.ranges: list[tuple[HostSpec, RangeRule]] = []
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
            from pytest_portcheck.scanning import scan_inventory

            if self._failure is not None:
                raise PortcheckError(self._failure)
            if self.judging is not None:  # no scan: items are judged from the reports
                self._results = self.judging.placeholder()
                return self._results
            pairs, ranges = self.pairs, self.ranges
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
            # By identity: a HostSpec hashes all its expectations, so hashing one per item made this
            # quadratic (a 10,000-port host took 20 s here).
            hosts = list({id(host): host for host, _ in [*pairs, *ranges]}.values())
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


class XdistHooks:
    """Registered only when xdist is loaded: hands the shared results folder to every worker."""

    def __init__(self, run: PortcheckRun) -> None:
        self.run = run

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["portcheck_dir"] = str(self.run.shared_dir)
