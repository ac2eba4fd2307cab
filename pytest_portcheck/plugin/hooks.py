"""pytest hooks and options only: the plugin's front door and its ``pytest11`` entry point (the way
pytest-xdist and pytest-mypy shape theirs).

An inventory becomes ``inventory.yml::HOST::PROTO/PORT::EXPECTATION`` items (``items``). The scan runs
once per session, at the first item's setup, shared by every item and xdist worker (``session``), or
the items are judged from reports (``judgemode``); the controller prints and writes the summaries
(``summary``). Fixtures for ordinary tests live here too. Without ``--portcheck`` or
``portcheck_inventory`` the plugin does nothing.

pytest loads this module in every run of every project where the package is installed, so at import
it needs pytest and the standard library only. This is the plugin's one seam: ``pytest_configure``
loads the rest of the plugin (and with it the engine, YAML, asyncio/ssl, filelock and the report
writers) when a run checks inventories, and each fixture loads what it serves when a test asks for it
(``tests/test_plugin_imports.py`` checks it; ``benchmarks/bench_plugin_import.py`` measures the cost).
Every module below this one imports at its top. Holds no scanning, judging or report writing.
Must not import, at import time, anything beyond pytest and the standard library.
"""

from __future__ import annotations

import signal
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # at run time, imported where an inventory run needs them (see the docstring)
    from pytest_portcheck.engine import ScanSettings
    from pytest_portcheck.plugin.session import InventoryResults
    from pytest_portcheck.report.model import ScanReport


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
        "--portcheck-sarif", metavar="FILE", dest="portcheck_sarif",
        help="write a SARIF 2.1.0 log for code scanning: one result per failing or erroring item, at the "
        "line that declares the port",
    )  # fmt: skip
    group.addoption(
        "--portcheck-metrics", metavar="FILE", dest="portcheck_metrics",
        help="write Prometheus metrics (text format, for node_exporter's textfile collector), atomically",
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


_JUDGE_ONLY = (
    ("portcheck_run_id", "--portcheck-run-id"),
    ("portcheck_max_age", "--portcheck-max-age"),
    ("portcheck_allow_other", "--portcheck-allow-other-inventory"),
)
"""Options only the judge reads: a scanning run would ignore them silently, so they are refused."""


def _check_judge_only_options(config: pytest.Config) -> None:
    if config.getoption("portcheck_results", None):
        return
    for dest, flag in _JUDGE_ONLY:
        if config.getoption(dest, None) not in (None, False):
            raise pytest.UsageError(
                f"portcheck: {flag} goes with --portcheck-results REPORTS (it says how reports are "
                "judged, and this run scans): add --portcheck-results, or leave the option out"
            )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "portcheck: an item generated from a pytest-portcheck inventory")
    _check_judge_only_options(config)
    from_option, from_ini = _inventories(config)
    if not from_option and not from_ini:
        return
    inventories = list(dict.fromkeys(from_option + from_ini))
    for path in inventories:
        problem = _not_a_file(path)
        if problem is not None:
            where = "--portcheck" if path in from_option else "the portcheck_inventory ini option"
            raise pytest.UsageError(f"portcheck: inventory {path} given by {where} {problem}")
    # The plugin's seam: only a run that checks inventories loads the rest of the package.
    from pytest_portcheck.plugin.items import InventoryHooks, check_today
    from pytest_portcheck.plugin.session import RUN_KEY, PortcheckRun, XdistHooks
    from pytest_portcheck.plugin.summary import ControllerHooks, check_report_paths

    check_today()
    if not hasattr(config, "workerinput"):
        check_report_paths(config)
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


def _interrupt_on_sigterm() -> Any:
    """Make SIGTERM end the session as Ctrl-C does: reports marked interrupted, temp dirs removed."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return None  # someone (a runner, another plugin) already handles it

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    return signal.signal(signal.SIGTERM, interrupt)


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def portcheck_results(request: pytest.FixtureRequest) -> InventoryResults:
    """The session's inventory scan (the same one the inventory items read), for Python tests."""
    from pytest_portcheck.plugin.session import RUN_KEY

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
    from pytest_portcheck.pipeline.scan import scan_targets
    from pytest_portcheck.ports import parse_port_spec

    def run_scan(hosts: str | Sequence[str], ports: str | int, **settings: Any) -> ScanReport:
        names = [hosts] if isinstance(hosts, str) else list(hosts)
        # Named settings over the fixture's: every other field of portcheck_settings is kept.
        chosen = settings_from_options(settings, base=portcheck_settings) if settings else portcheck_settings
        return scan_targets(names, parse_port_spec(ports), chosen)

    return run_scan
