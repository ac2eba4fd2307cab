"""The house rules a linter cannot say, read from the package's source: every module has a docstring
(and every package's and primitive's says what it must not import), no module is over 500 lines and no
function over 60. Which stage imports which is declared once, as import-linter contracts in
pyproject.toml (``lint-imports``); ``imported`` stays here for the tests that check a module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest_portcheck

PACKAGE = Path(pytest_portcheck.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module an import statement anywhere in the file names (function-level imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_probe_used_by_the_layout_test_sees_nested_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import yaml\n    from pytest_portcheck.engine import scan\n")
    assert imported(module) == {"yaml", "pytest_portcheck.engine"}


def test_every_module_has_a_docstring() -> None:
    missing = [str(p.relative_to(PACKAGE)) for p in MODULES if not ast.get_docstring(ast.parse(p.read_text()))]
    assert len(MODULES) > 80
    assert not missing, "no module docstring: " + ", ".join(missing)


def test_package_and_primitive_docstrings_say_what_must_not_be_imported() -> None:
    paths = [*PACKAGE.glob("*.py"), *PACKAGE.glob("*/__init__.py"), *(PACKAGE / "engine").glob("*.py")]
    silent = []
    for path in paths:
        doc = " ".join((ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "").lower().split())
        says = any(
            words in doc
            for words in ("must not import", "never imports", "imports only", "only pytest", "no pytest")
        )
        if not says:
            silent.append(str(path.relative_to(PACKAGE)))
    assert len(paths) > 20
    assert not silent, "these docstrings do not say what the module must not import: " + ", ".join(silent)


def test_no_module_is_longer_than_500_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE)} ({lines} lines)"
        for path in MODULES
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 500
    ]
    assert not long, "split these along their seams: " + "; ".join(long)


def test_no_function_is_longer_than_a_screen() -> None:
    long = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "split these: " + "; ".join(long)
