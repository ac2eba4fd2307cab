"""pytest hooks and options only: the plugin's front door (the way pytest-xdist and pytest-mypy shape theirs).

An inventory becomes ``inventory.yml::HOST::PROTO/PORT::EXPECTATION`` items (``collect``). The scan runs
once per session, at the first item's setup, shared by every item and xdist worker (``session``); the
controller prints and writes the summaries (``summary``). Fixtures for ordinary tests live here too.
Without ``--portcheck`` or ``portcheck_inventory`` the plugin does nothing.

pytest loads this module in every run of every project where the package is installed, so at import
it needs pytest and the standard library only (``collect``, ``session`` and ``summary`` keep to that):
the engine, YAML, asyncio/ssl (probes), filelock and the report writers are imported where an inventory
run first needs them (``tests/test_plugin_imports.py`` checks it; ``benchmarks/bench_plugin_import.py``
measures the cost). Holds no scanning, judging or report writing of its own.
Must not import, at import time, anything beyond pytest and the standard library.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # at run time, imported where an inventory run needs them (see the docstring)
    from pytest_portcheck.collect import InventoryFile
    from pytest_portcheck.engine import ScanSettings
    from pytest_portcheck.report.model import ScanReport
    from pytest_portcheck.session import InventoryResults, PortcheckRun


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
    group.addoption(
        "--portcheck-run-id", metavar="ID", dest="portcheck_run_id",
        help="with --portcheck-results: judge the reports of this run (default: the newest run)",
    )  # fmt: skip
    group.addoption(
        "--portcheck-max-age", metavar="DURATION", dest="portcheck_max_age",
        help="with --portcheck-results: reports older than this are errors, e.g. 90m, 24h, 7d (default 24h)",
    )  # fmt: skip
    parser.addini("portcheck_inventory", type="paths", help="inventory YAML files checked on every run")


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
    from pytest_portcheck.session import RUN_KEY, PortcheckRun, XdistHooks
    from pytest_portcheck.summary import ControllerHooks

    run = PortcheckRun(config, inventories)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(InventoryHooks(run), "portcheck-inventory")
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS
    wanted = [str(path) for path in inventories]
    if from_option and not explicit:
        # `pytest --portcheck inventory.yml` checks the inventory, not the whole test suite as well.
        config.args = [str(path) for path in from_option] + [str(p) for p in from_ini]
    else:
        known = {Path(arg.split("::", 1)[0]).resolve() for arg in config.args}
        config.args = list(config.args) + [arg for arg in wanted if Path(arg).resolve() not in known]
    if config.getoption("tbstyle", "auto") == "auto" and run.paths.issuperset(
        Path(arg.split("::", 1)[0]).resolve() for arg in config.args
    ):
        # A run of inventory items only: each failure is its one message line. pytest's
        # other styles print a failure's teardown output too, found by scanning every report once per
        # failure: 3,200 drifted items spent 5-10 s there, longer than their whole scan.
        config.option.tbstyle = "line"
    if not run.is_worker:
        config.pluginmanager.register(ControllerHooks(run), "portcheck-controller")
        run.previous_sigterm = _interrupt_on_sigterm()
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(run), "portcheck-xdist")


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
    from pytest_portcheck.judge.verdict import today

    try:
        today()
    except ValueError:
        raise pytest.UsageError(
            f"portcheck: PORTCHECK_TODAY={os.environ.get('PORTCHECK_TODAY', '')!r} is not a date: "
            "write a real day as YYYY-MM-DD, or unset it"
        ) from None


def _check_report_paths(config: pytest.Config) -> None:
    """Refuse report files that cannot be written before scanning, not after."""
    from pytest_portcheck.atomicfile import WriteError, check_writable
    from pytest_portcheck.summary import REPORT_OPTIONS

    for dest, flag in REPORT_OPTIONS:
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


class InventoryHooks:
    """Registered only when inventories are checked, so that a run without one imports nothing of ours
    beyond this module: collection of the inventory files, the items' own test reports, the hand-over of the
    selected expectations to the session, and clean-up."""

    def __init__(self, run: PortcheckRun) -> None:
        from pytest_portcheck.collect import CheckItem

        self.run = run
        self.item_class = CheckItem

    @pytest.hookimpl
    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> InventoryFile | None:
        from pytest_portcheck.collect import InventoryFile

        if file_path.resolve() not in self.run.paths:
            return None
        return InventoryFile.from_parent(parent, path=file_path)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> pytest.TestReport | None:
        # An inventory item builds its own reports: pytest would format a setup error's traceback
        # (0.1-0.2 s an item: it parses the source of every frame) only for the item to replace it.
        return item.make_report(call) if isinstance(item, self.item_class) else None

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from pytest_portcheck.collect import PortItem, RangeItem

        # The session scans what was selected: handed over as data, not items.
        items = session.items
        self.run.pairs = [(item.host, item.expectation) for item in items if isinstance(item, PortItem)]
        self.run.ranges = [(item.host, item.rule) for item in items if isinstance(item, RangeItem)]

    @pytest.hookimpl
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.run.cleanup()
        if self.run.previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self.run.previous_sigterm)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def portcheck_results(request: pytest.FixtureRequest) -> InventoryResults:
    """The session's inventory scan (the same one the inventory items read), for Python tests."""
    from pytest_portcheck.session import RUN_KEY

    run = request.config.stash.get(RUN_KEY, None)
    if run is None:
        pytest.skip("no inventory to check: pass --portcheck INVENTORY or set portcheck_inventory")
    return run.results()


@pytest.fixture(scope="session")
def portcheck_settings() -> ScanSettings:
    """Settings for ``portcheck_scan``; override this fixture in a conftest to change them."""
    from pytest_portcheck.engine.model import settings_from_options

    return settings_from_options({"timeout": 1.0, "retries": 1})


@pytest.fixture
def portcheck_scan(portcheck_settings: ScanSettings) -> Callable[..., ScanReport]:
    """Scan now: ``portcheck_scan("127.0.0.1", "8000-8010")`` returns the whole ``ScanReport``."""
    from pytest_portcheck.engine.model import settings_from_options
    from pytest_portcheck.pipeline.scan import collect_scan
    from pytest_portcheck.ports import parse_port_spec

    def run_scan(hosts: str | Sequence[str], ports: str | int, **settings: Any) -> ScanReport:
        names = [hosts] if isinstance(hosts, str) else list(hosts)
        # Named settings over the fixture's: every other field of portcheck_settings is kept.
        chosen = settings_from_options(settings, base=portcheck_settings) if settings else portcheck_settings
        return collect_scan(names, parse_port_spec(ports), chosen)

    return run_scan
