"""What users install: the wheel holds the whole package, and the suite runs against the installed copy.

`./run tests` builds the wheel, installs it (not editable) in a fresh virtualenv and runs this suite
from a copy of tests/ where the source tree is not importable; it hands the wheel and the source
tree over in PORTCHECK_WHEEL and PORTCHECK_SOURCE, and PORTCHECK_REQUIRE_INSTALLED=1 makes a run
against a source checkout fail here instead of passing quietly.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import skip_or_fail

import pytest_portcheck

REQUIRE = "PORTCHECK_REQUIRE_INSTALLED"


def _given(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value:
        skip_or_fail(f"{variable} is not set: run the suite through './run tests'", REQUIRE)
    return Path(str(value))


def test_wheel_holds_every_module_of_the_source_tree() -> None:
    wheel, source = _given("PORTCHECK_WHEEL"), _given("PORTCHECK_SOURCE")
    package = source / "pytest_portcheck"
    expected = {
        path.relative_to(source).as_posix()
        for path in package.rglob("*")
        if path.is_file() and (path.suffix == ".py" or path.name == "py.typed") and "__pycache__" not in path.parts
    }
    assert expected, f"no modules found under {package}"
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
        metadata = next(name for name in shipped if name.endswith(".dist-info/METADATA"))
        licence_files = [name for name in shipped if name.endswith(".dist-info/licenses/LICENSE")]
        assert "License-Expression: MIT" in archive.read(metadata).decode()
    assert expected - shipped == set(), "modules missing from the wheel"
    # setuptools' build/ folder keeps modules that were moved or deleted since: none may ship.
    stale = {name for name in shipped if name.startswith("pytest_portcheck/") and name.endswith(".py")} - expected
    assert stale == set(), "modules in the wheel that the checkout no longer has (an old build/ folder?)"
    assert licence_files, "the wheel carries no LICENSE"


def test_the_suite_imports_the_installed_package_not_the_source() -> None:
    location = Path(pytest_portcheck.__file__).resolve()
    installed = "site-packages" in location.parts
    if not installed:
        skip_or_fail(f"pytest_portcheck is imported from {location.parent}, not an installed wheel", REQUIRE)
    source = os.environ.get("PORTCHECK_SOURCE")
    if source:
        assert not location.is_relative_to(Path(source).resolve() / "pytest_portcheck")
    assert importlib.metadata.version("pytest-portcheck") == pytest_portcheck.__version__


def test_every_module_imports_and_says_what_it_holds() -> None:
    names = [
        info.name
        for info in pkgutil.walk_packages(pytest_portcheck.__path__, "pytest_portcheck.")
        if not info.name.endswith("__main__")
    ]
    assert "pytest_portcheck.engine.scanner" in names  # subpackages are walked, not only the top
    for name in ["pytest_portcheck", *names]:
        module = importlib.import_module(name)
        assert (module.__doc__ or "").strip(), f"{name} has no module docstring"


def test_the_command_is_installed() -> None:
    command = shutil.which("portcheck", path=str(Path(sys.executable).parent))
    if command is None:
        skip_or_fail(f"no 'portcheck' command beside {sys.executable}", REQUIRE)
    completed = subprocess.run([str(command), "--version"], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"portcheck {pytest_portcheck.__version__}"


def test_an_unrelated_suite_runs_as_without_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_one():\n    assert 1 + 1 == 2\n")
    with_plugin = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    without = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-p", "no:portcheck")
    with_plugin.assert_outcomes(passed=1)
    without.assert_outcomes(passed=1)
    assert with_plugin.ret == without.ret == 0
    assert "portcheck" not in with_plugin.stdout.str().lower()
    assert with_plugin.stderr.str() == without.stderr.str() == ""
