"""Debian's docker-compose 1.29.2 as the Compose reader's oracle: ``docker-compose -f ... config``, run
in a folder with only the variables given, and its answers shared between the suites of one run.

docker-compose is a slow-starting Python program and its answer depends only on what it reads (the
files named, every file of their folders and of the working folder, where it finds ``.env``), on the
arguments and on the variables, not on the Python that runs the suite. ``./run tests`` runs the
suites of two Pythons at once and hands both the same folder in PORTCHECK_ORACLE_CACHE: the first to
ask a question runs docker-compose, under a lock, and the other waits for and reads its answer. The
suites run from different copies of tests/, so folder paths are keyed and stored as placeholders.
Without the variable (a laptop), every question runs docker-compose.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import filelock

CACHE_VARIABLE = "PORTCHECK_ORACLE_CACHE"

Runner = Callable[[list[str], Path, dict[str, str]], "subprocess.CompletedProcess[str]"]


def run_docker_compose(
    command: list[str], cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def config(
    cwd: Path, files: Iterable[Path], *, profiles: Iterable[str] = (),
    environment: dict[str, str] | None = None, env_file: Path | None = None,
    cache: Path | None = None, runner: Runner = run_docker_compose,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``docker-compose -f ... config`` in ``cwd``; through ``cache`` (default: PORTCHECK_ORACLE_CACHE)."""
    files = list(files)
    command = ["docker-compose"]
    for path in files:
        command += ["-f", str(path)]
    for profile in profiles:
        command += ["--profile", profile]
    if env_file is not None:
        command += ["--env-file", str(env_file)]
    command.append("config")
    env = {
        "PATH": os.environ["PATH"],
        "COMPOSE_PROJECT_NAME": "oracle",
        # 1.29.2 imports distutils, which setuptools' shim replaces by its own copy at a cost of half of
        # docker-compose's start-up (pkg_resources); the standard library's is the same code.
        "SETUPTOOLS_USE_DISTUTILS": "stdlib",
        **(environment or {}),
    }
    if cache is None and os.environ.get(CACHE_VARIABLE):
        cache = Path(os.environ[CACHE_VARIABLE])
    if cache is None:
        done = runner(command, cwd, env)
    else:
        folders = sorted({cwd, *(path.parent for path in files), *([env_file.parent] if env_file else [])})
        done = _through_cache(cache, folders, command, cwd, env, runner)
    # A docker-compose that cannot start fails every file: the tests of files it must refuse would pass.
    assert "No module named" not in done.stderr, f"docker-compose did not start:\n{done.stderr}"
    return done


def _through_cache(
    cache: Path, folders: Sequence[Path], command: list[str], cwd: Path, env: dict[str, str], runner: Runner
) -> subprocess.CompletedProcess[str]:
    # Longest first: a folder inside another must become its own placeholder, not the outer one's.
    names = sorted(((str(folder), f"<folder-{index}>") for index, folder in enumerate(folders)),
                   key=lambda pair: -len(pair[0]))  # fmt: skip

    def placeholders(text: str) -> str:
        for real, placeholder in names:
            text = text.replace(real, placeholder)
        return text

    def real(text: str) -> str:
        for folder, placeholder in names:
            text = text.replace(placeholder, folder)
        return text

    question = {
        "docker-compose": _program_identity(),
        "command": [placeholders(word) for word in command],
        "cwd": placeholders(str(cwd)),
        "environment": {key: placeholders(value) for key, value in sorted(env.items())},
        "folders": [_contents(folder) for folder in folders],
    }
    key = hashlib.sha256(json.dumps(question, sort_keys=True).encode()).hexdigest()
    cache.mkdir(parents=True, exist_ok=True)
    answer_file = cache / f"{key}.json"
    with filelock.FileLock(str(cache / f"{key}.lock")):
        if not answer_file.exists():
            done = runner(command, cwd, env)
            answer = {"returncode": done.returncode, "stdout": placeholders(done.stdout),
                      "stderr": placeholders(done.stderr)}  # fmt: skip
            written = answer_file.with_suffix(f".{os.getpid()}.tmp")
            written.write_text(json.dumps(answer))
            os.replace(written, answer_file)
        answer = json.loads(answer_file.read_text())
    return subprocess.CompletedProcess(
        command, answer["returncode"], real(answer["stdout"]), real(answer["stderr"])
    )


def _program_identity() -> list[object]:
    """Which docker-compose answers: its path and the stat of its script (a reinstall changes it)."""
    program = shutil.which("docker-compose")
    assert program is not None, "docker-compose is not installed"
    resolved = Path(program).resolve()
    status = resolved.stat()
    return [str(resolved), status.st_size, status.st_mtime_ns]


def _contents(folder: Path) -> list[tuple[str, str]]:
    """Every file under ``folder``, by its path there and the SHA-256 of its bytes."""
    return sorted(
        (path.relative_to(folder).as_posix(), hashlib.sha256(path.read_bytes()).hexdigest())
        for path in folder.rglob("*")
        if path.is_file()
    )
