"""The session's shared results: the one inventory scan every item (and every xdist worker) reads.

``PortcheckRun`` scans once per session (under a ``FileLock`` across xdist workers, the pytest-mypy
pattern) and shares the report, or holds the judge mode (``judgemode``) when reports are judged
instead; ``InventoryResults`` is that scan as tests see it, ``scan_evidence`` as the judge reads it;
what an item hands the controller is its ``report.judged.ItemOutcome`` on its test report
(``OUTCOME_ATTRIBUTE``); ``XdistHooks`` hands workers the shared folder; ``terminal_progress`` shows
how far the scan is, on a terminal only.
Must not import the items (they hand their expectations over as data) or the summary. Loaded only
when a run checks inventories (``hooks.pytest_configure``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from pytest_portcheck.atomicfile import WriteError
from pytest_portcheck.engine import PortState, ProbeResult
from pytest_portcheck.engine.model import index_results, settings_from_options
from pytest_portcheck.inventory.load import load_inventory
from pytest_portcheck.inventory.model import Expectation, HostSpec, Inventory, InventoryError, RangeRule
from pytest_portcheck.judge.evidence import ScanEvidence
from pytest_portcheck.judge.silence import silent_addresses, silent_of
from pytest_portcheck.pipeline.inventory import scan_inventory
from pytest_portcheck.plugin.judgemode import JudgeMode
from pytest_portcheck.ports import Protocol
from pytest_portcheck.progress import ProgressLine
from pytest_portcheck.report.decode import read_report
from pytest_portcheck.report.encode import write_report
from pytest_portcheck.report.judged import ItemOutcome
from pytest_portcheck.report.model import ReportError, ScanReport

OUTCOME_ATTRIBUTE = "portcheck_outcome"
"""The test report attribute that carries an item's ``ItemOutcome`` (its compact JSON text) to the
controller: pytest keeps a report's extra attributes when xdist serialises it."""
JUNIT_PROPERTY = "portcheck"
"""The one user property (in the JUnit XML) of an item with something to say beyond its name and
status: the same compact JSON outcome, as text."""


class CrashLocation:
    """Where an item's failure points (its inventory line) and its message: pytest takes the message
    for the short summary and JUnit's ``message``, and prints ``str()`` as the crash line of
    ``--tb=line``: the message alone, as every other style shows it (it names host and port)."""

    def __init__(self, path: str, lineno: int, message: str) -> None:
        self.path = path
        self.lineno = lineno
        self.message = message

    def __str__(self) -> str:
        return self.message


class ItemMessage:
    """An item's error or failure as its test report holds it (``longrepr``): the plain message,
    built directly, never through pytest's traceback formatting, which reads and parses the source
    of every frame (a tenth of a second an item). Under ``--tb=line`` a failure prints its crash line
    only, not the message twice. ``str()`` is the message: what xdist carries, and what JUnit's
    ``<failure>``/``<error>`` hold."""

    def __init__(self, path: str, lineno: int, message: str, *, crash_line_only: bool = False) -> None:
        self.reprcrash = CrashLocation(path, lineno, message)
        self.crash_line_only = crash_line_only

    @classmethod
    def for_report(cls, config: pytest.Config, location: tuple[str, int | None, str], when: str, message: str
                   ) -> ItemMessage:  # fmt: skip
        line_style = when == "call" and getattr(config.option, "tbstyle", "auto") == "line"
        return cls(location[0], (location[1] or 0) + 1, message, crash_line_only=line_style)

    def toterminal(self, tw: Any) -> None:
        if not self.crash_line_only:
            tw.line(self.reprcrash.message)

    def __str__(self) -> str:
        return self.reprcrash.message


class InventoryResults:
    """The session's scan of the inventories, as ordinary tests see it through ``portcheck_results``."""

    def __init__(self, report: ScanReport, hosts: Sequence[HostSpec]) -> None:
        self.report = report
        self.by_key = index_results(report.results)
        self.resolutions = {r.host: r for r in report.resolutions}
        self.silent = silent_addresses(report.results)
        self._hosts = {host.name: host for host in hosts}
        self._ambiguous = {host.name for host in hosts if self._hosts[host.name].address != host.address}

    def silent_of(self, host: HostSpec) -> tuple[str, ...]:
        """The addresses of ``host`` on which no port answered."""
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
        key_proto = Protocol(proto)
        found = [self.by_key.get((address, key_proto, port)) for address in self.addresses(host)]
        if not found or any(result is None for result in found):
            raise KeyError(f"{proto}/{port} of {host!r} was not scanned: declare it in the inventory")
        return [result for result in found if result is not None]

    def state(self, host: str, port: int, proto: str = "tcp") -> PortState:
        """The state of a port when every address agrees; ``error`` otherwise."""
        states = {result.state for result in self.results(host, port, proto)}
        return states.pop() if len(states) == 1 else PortState.ERROR


class PortcheckError(Exception):
    """Nothing could be checked (the shared scan failed, the reports could not be read): each item an
    error with this message, never a pass. An item's own error verdict is reported, not raised."""


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
        self.records: dict[str, ItemOutcome] = {}
        self.outcomes_here: dict[str, ItemOutcome] = {}
        """Outcomes of the items this process ran, by node id, until the controller takes them: in a
        run without workers it takes the item's own object rather than parsing its report's copy
        (xdist workers' outcomes arrive as that copy, ``OUTCOME_ATTRIBUTE``)."""
        self.write_errors: list[str] = []
        self.previous_sigterm: Any = None
        self.strict: bool = bool(config.getoption("portcheck_strict"))
        self.banners: bool = bool(config.getoption("portcheck_banners"))
        self.result_globs: list[str] = list(config.getoption("portcheck_results") or [])
        self.judging: JudgeMode | None = None
        if self.result_globs:
            self.judging = JudgeMode(config, inventories, self.load, strict=self.strict)
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
            self._loaded[key] = load_inventory(path)
        return self._loaded[key]

    def results(self) -> InventoryResults:
        """Scan once for the whole session (under a lock across xdist workers) and share the outcome."""
        if self._results is None:
            if self._failure is not None:
                raise PortcheckError(self._failure)
            if self.judging is not None:  # no scan: items are judged from the reports
                # No scan, nothing in it: the items ask the judge mode's union instead.
                self._results = InventoryResults(ScanReport([], [], settings_from_options(), "", 0.0), [])
                return self._results
            pairs, ranges = self.pairs, self.ranges
            try:
                if not self.is_worker:  # one process: nobody to share the scan with
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
            try:
                return read_report(self.results_path)
            except ReportError:
                return None  # the items that needed it already failed saying why
        return None

    def source_notes(self) -> list[str]:
        """What the inventories' sources declare that no port check confirms (a random host port, a
        ClusterIP Service...), each once: loaded here too, since under xdist only workers collect."""
        notes: dict[str, None] = {}
        for path in self.inventories:
            try:
                inventory = self.load(path)
            except InventoryError:
                continue  # its collection error says why
            for host in inventory.hosts:
                notes.update(dict.fromkeys(host.notes))
        return list(notes)

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


@contextlib.contextmanager
def terminal_progress(config: pytest.Config) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback that redraws one line on the terminal while the session's scan runs, or
    None when standard error is not a terminal (CI logs get nothing). pytest captures output during
    an item's setup, so each redraw suspends the capture."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None or config.getoption("verbose", 0) < -1:
        yield None
        return
    with capture.global_and_fixture_disabled():
        on_terminal = sys.stderr.isatty()
    if not on_terminal:
        yield None
        return

    def draw(text: str) -> None:
        with capture.global_and_fixture_disabled():
            sys.stderr.write("\r\033[K" + text)
            sys.stderr.flush()

    line = ProgressLine(draw)
    try:
        yield line.update
    finally:
        line.finish()


def current_vantage() -> str | None:
    return os.environ.get("PORTCHECK_VANTAGE") or None


def scan_evidence(shared: InventoryResults) -> ScanEvidence:
    """The session's scan as the judge reads it, from the vantage this run scans from."""
    report = shared.report
    return ScanEvidence(
        shared.by_key,
        shared.resolutions,
        report.services,
        shared.silent,
        report.stats.addresses,
        current_vantage(),
    )
