"""The house rules of the package, read from its source: every module says what it holds and what it
must not import, and the imports run one way (the engine knows nothing of pytest or YAML, judging
needs no pytest, the session's shared results know no collection nodes)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_portcheck

PACKAGE = Path(pytest_portcheck.__file__).resolve().parent

FORBIDDEN = {
    "engine/": ("pytest", "_pytest", "yaml", "asyncio", "ssl", "pytest_portcheck.plugin",
                "pytest_portcheck.plugin.items", "pytest_portcheck.plugin.session", "pytest_portcheck.plugin.summary",
                "pytest_portcheck.inventory", "pytest_portcheck.judge", "pytest_portcheck.scanning",
                "pytest_portcheck.report.model", "pytest_portcheck.probes", "pytest_portcheck.cli"),
    "judge/": ("pytest", "_pytest", "pytest_portcheck.plugin", "pytest_portcheck.plugin.items",
                 "pytest_portcheck.plugin.session", "pytest_portcheck.cli", "pytest_portcheck.scanning"),
    "pipeline/": ("pytest", "_pytest", "yaml", "pytest_portcheck.plugin", "pytest_portcheck.cli",
                    "pytest_portcheck.judge", "pytest_portcheck.plugin.session", "pytest_portcheck.plugin.items"),
    "plugin/session.py": ("pytest_portcheck.plugin.items", "pytest_portcheck.plugin.summary",
                          "pytest_portcheck.plugin.hooks"),
    "plugin/summary.py": ("pytest_portcheck.plugin.items", "pytest_portcheck.plugin.hooks"),
    "plugin/items.py": ("pytest_portcheck.plugin.hooks", "pytest_portcheck.plugin.summary"),
    "report/model.py": ("pytest", "_pytest", "yaml", "pytest_portcheck.scanning", "pytest_portcheck.probes.driver"),
    "report/diff.py": ("pytest", "_pytest", "yaml", "pytest_portcheck.scanning", "pytest_portcheck.probes.driver"),
    "cli/": ("pytest", "_pytest", "pytest_portcheck.plugin", "pytest_portcheck.plugin.items",
               "pytest_portcheck.plugin.session", "pytest_portcheck.plugin.summary"),
    "inventory/": ("pytest", "_pytest", "pytest_portcheck.plugin", "pytest_portcheck.probes.driver"),
    "report/judged.py": ("pytest", "_pytest", "yaml", "pytest_portcheck.scanning", "pytest_portcheck.probes.driver",
                        "pytest_portcheck.plugin", "pytest_portcheck.cli"),
    "report/html.py": ("pytest", "_pytest", "yaml", "pytest_portcheck.scanning", "pytest_portcheck.probes.driver",
                      "pytest_portcheck.plugin", "pytest_portcheck.cli", "pytest_portcheck.engine.scanner",
                      "pytest_portcheck.engine.processes"),
    "progress.py": ("pytest", "_pytest", "pytest_portcheck"),
    "cli/status.py": ("pytest", "_pytest", "pytest_portcheck"),
    "cli/shard.py": ("pytest", "_pytest", "pytest_portcheck.plugin"),
}  # fmt: skip


def imported(path: Path) -> set[str]:
    """Every module an import statement anywhere in the file names (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_imports_run_one_way() -> None:
    checked = 0
    for rule, forbidden in FORBIDDEN.items():
        paths = sorted((PACKAGE / rule).glob("*.py")) if rule.endswith("/") else [PACKAGE / rule]
        for path in paths:
            checked += 1
            bad = sorted(
                name
                for name in imported(path)
                for ban in forbidden
                if name == ban or name.startswith(ban + ".")
            )
            assert not bad, f"{path.relative_to(PACKAGE)} imports {', '.join(bad)}"
    assert checked >= 15


def test_only_the_entry_point_imports_the_command_line() -> None:
    """cli.py is a front end: what its other front ends (sharecommand) share with it lives below it
    (``exitstatus``, ``progress``), so nothing in the package but ``__main__`` imports it."""

    def imports_cli(path: Path) -> bool:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliased = any(  # from pytest_portcheck import cli
            isinstance(node, ast.ImportFrom)
            and node.module == "pytest_portcheck"
            and any(alias.name == "cli" for alias in node.names)
            for node in ast.walk(tree)
        )
        return aliased or "pytest_portcheck.cli" in imported(path)

    importers = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if imports_cli(path))
    assert importers == ["__main__.py"]


def test_module_docstrings_say_what_must_not_be_imported() -> None:
    paths = [*PACKAGE.glob("*.py"), *(PACKAGE / "engine").glob("*.py")]
    for path in paths:
        doc = (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").lower()
        assert doc, f"{path.name} has no module docstring"
        says = any(
            words in doc for words in ("must not import", "never imports", "imports only", "only pytest")
        )
        assert says, f"{path.relative_to(PACKAGE)}: its docstring does not say what it must not import"


def test_the_probe_used_by_the_layout_test_sees_nested_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import yaml\n    from pytest_portcheck.engine import scan\n")
    assert imported(module) == {"yaml", "pytest_portcheck.engine"}


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these: " + "; ".join(long)
