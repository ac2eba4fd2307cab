"""The Compose reader against a real oracle: Debian's docker-compose 1.29.2 (``config`` normalises a
project without a daemon) derives the same published (host IP, ports, protocol) set for every file
of tests/data/compose; where 1.29.2 and the Compose v2 specification differ, the reader follows v2
and the difference is tested on its own; every kind of bad input names the file, the line and the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import compose_oracle
import pytest
import yaml
from conftest import skip_or_fail

from pytest_portcheck.inventory.sources import Reach, SourceError, SourceReading, read_compose
from pytest_portcheck.ports import Protocol

CORPUS = Path(__file__).parent / "data" / "compose"
CASES = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())

# (host IP or None, port or (first, last) for "one port of the range", protocol)
Published = tuple[str | None, int | tuple[int, int], str]


def case_settings(case: str) -> dict[str, object]:
    settings_file = CORPUS / case / "case.json"
    settings: dict[str, object] = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    settings.setdefault("files", ["compose.yml"])
    settings.setdefault("profiles", [])
    settings.setdefault("environment", {})
    return settings


def read_case(case: str) -> SourceReading:
    settings = case_settings(case)
    env_file = settings.get("env_file")
    return read_compose(
        [CORPUS / case / str(name) for name in settings["files"]],  # type: ignore[attr-defined]
        profiles=settings["profiles"],  # type: ignore[arg-type]
        environment=settings["environment"],  # type: ignore[arg-type]
        env_file=CORPUS / case / str(env_file) if env_file else None,
    )


def require_docker_compose() -> None:
    if shutil.which("docker-compose") is None:
        skip_or_fail("docker-compose (Debian's 1.29.2) is not installed", "PORTCHECK_REQUIRE_SERVERS")


def docker_compose_config(
    tmp_path: Path, files: Iterable[Path], *, profiles: Iterable[str] = (),
    environment: dict[str, str] | None = None, env_file: Path | None = None,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``docker-compose -f ... config`` in an empty folder with only the variables given (no daemon needed)."""
    require_docker_compose()
    return compose_oracle.config(
        tmp_path, files, profiles=profiles, environment=environment, env_file=env_file
    )


def parse_published(entry: object) -> tuple[str | None, str | None, str]:
    """One port of ``config``'s output: its long form, or the short form it keeps for a host IP."""
    if isinstance(entry, dict):
        published = entry.get("published")
        return None, None if published is None else str(published), str(entry.get("protocol", "tcp"))
    spec, _, protocol = str(entry).rpartition("/")
    parts = spec.split(":")
    return ":".join(parts[:-2]), parts[-2] or None, protocol


def oracle_published(config: dict[str, object], enabled: set[str]) -> set[Published]:
    found: set[Published] = set()
    services = config["services"]
    assert isinstance(services, dict)
    for service in services.values():
        # docker-compose 1.29.2's Service.enabled_for_profiles: no profiles, or one of them enabled.
        if service.get("profiles") and not enabled.intersection(service["profiles"]):
            continue
        # Docker discards the published ports of a container on the host's network.
        if service.get("network_mode") == "host":
            continue
        for entry in service.get("ports", []):
            host_ip, published, protocol = parse_published(entry)
            if published is None:
                continue  # a random host port
            low, _, high = published.partition("-")
            port: int | tuple[int, int] = (int(low), int(high)) if high else int(low)
            found.add((host_ip or None, port, protocol))
    return found


def reader_published(reading: SourceReading) -> set[Published]:
    found: set[Published] = set()
    for exposure in reading.exposures:
        if exposure.one_of:
            found.add((exposure.address, (exposure.first, exposure.last), exposure.protocol.value))
        else:
            found.update((exposure.address, port, exposure.protocol.value) for port in exposure.ports)
    return found


@pytest.mark.parametrize("case", CASES)
def test_the_reader_publishes_what_docker_compose_config_publishes(case: str, tmp_path: Path) -> None:
    settings = case_settings(case)
    reading = read_case(case)
    # The corpus holds no entry that 1.29.2 (YAML 1.1) and v2 read differently; those are tested below.
    assert not [note for note in reading.notes if "base-60" in note.message]
    env_file = settings.get("env_file")
    result = docker_compose_config(
        tmp_path,
        [CORPUS / case / str(name) for name in settings["files"]],  # type: ignore[attr-defined]
        profiles=settings["profiles"],  # type: ignore[arg-type]
        environment=settings["environment"],  # type: ignore[arg-type]
        env_file=CORPUS / case / str(env_file) if env_file else None,
    )
    assert result.returncode == 0, result.stderr
    # What docker-compose enables: --profile, else COMPOSE_PROFILES (get_profiles_from_options); the
    # case says which when it is the variable, since `config` prints every service either way.
    enabled = set(settings.get("enabled", settings["profiles"]))  # type: ignore[call-overload]
    expected = oracle_published(yaml.safe_load(result.stdout), enabled)
    assert reader_published(reading) == expected


def test_a_second_suite_reads_the_first_suites_answer_with_its_own_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_docker_compose()
    copies = []
    for suite in ("suite-a", "suite-b"):  # the two Pythons' copies of tests/
        folder = tmp_path / suite / "project"
        folder.mkdir(parents=True)
        (folder / "compose.yml").write_text(
            "services:\n  web:\n    image: x\n    build: .\n    ports: ['${PORT}:80']\n"
        )
        (folder / ".env").write_text("PORT=8080\n")
        copies.append(folder)
    ran: list[Path] = []

    def counting(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        ran.append(cwd)
        return compose_oracle.run_docker_compose(command, cwd, env)

    cache = tmp_path / "cache"
    answers = [
        compose_oracle.config(folder, [folder / "compose.yml"], cache=cache, runner=counting)
        for folder in copies
    ]
    assert ran == [copies[0]]
    monkeypatch.delenv(compose_oracle.CACHE_VARIABLE, raising=False)
    fresh = compose_oracle.config(copies[1], [copies[1] / "compose.yml"])
    assert (answers[1].returncode, answers[1].stdout, answers[1].stderr) == (0, fresh.stdout, fresh.stderr)
    assert f"context: {copies[1]}" in answers[1].stdout and str(copies[0]) not in answers[1].stdout
    assert "published: 8080" in answers[1].stdout


def test_the_oracle_runs_again_when_anything_it_reads_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compose_oracle, "_program_identity", lambda: ["docker-compose", 1, 1])
    folder = tmp_path / "project"
    (folder / "sub").mkdir(parents=True)
    write(folder, "services:\n  web:\n    image: x\n    ports: ['${PORT}:80']\n")
    write(folder, "PORT=8080\n", ".env")
    ran: list[list[str]] = []

    def fake(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, len(ran), f"answer {len(ran)} in {cwd}", "")

    def ask(cwd: Path = folder, **options: Any) -> str:
        done = compose_oracle.config(
            cwd, [folder / "compose.yml"], cache=tmp_path / "cache", runner=fake, **options
        )
        return f"{done.returncode} {done.stdout}"

    assert ask() == ask() == f"1 answer 1 in {folder}"  # the same question: one run
    write(folder, "PORT=8081\n", ".env")
    assert ask() == f"2 answer 2 in {folder}"
    write(folder / "sub", "anything\n", "x.yml")
    assert ask() == f"3 answer 3 in {folder}"
    assert ask(profiles=["debug"]) == f"4 answer 4 in {folder}"
    assert ask(environment={"PORT": "1"}) == f"5 answer 5 in {folder}"
    assert ask(env_file=folder / ".env") == f"6 answer 6 in {folder}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert ask(elsewhere) == f"7 answer 7 in {elsewhere}"
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"/nowhere:{path}")
    assert ask() == f"8 answer 8 in {folder}"
    monkeypatch.setenv("PATH", path)
    assert ask(profiles=["debug"]) == f"4 answer 4 in {folder}"  # an earlier question's answer
    monkeypatch.setattr(compose_oracle, "_program_identity", lambda: ["docker-compose", 1, 2])
    assert ask() == f"9 answer 9 in {folder}"


def test_the_corpus_uses_every_syntax_the_reader_knows() -> None:
    readings = {case: read_case(case) for case in CASES}
    exposures = [exposure for reading in readings.values() for exposure in reading.exposures]
    notes = [note.message for reading in readings.values() for note in reading.notes]
    files = sum(len(case_settings(case)["files"]) for case in CASES)  # type: ignore[arg-type, misc]
    assert files >= 25
    assert {exposure.protocol for exposure in exposures} == {Protocol.TCP, Protocol.UDP}
    assert {"127.0.0.1", "::1", "::", "0.0.0.0", "2001:db8::1", None} <= {e.address for e in exposures}
    assert any(exposure.one_of for exposure in exposures)
    assert any(exposure.last > exposure.first and not exposure.one_of for exposure in exposures)
    assert {Reach.EVERYONE, Reach.THIS_HOST} == {exposure.reach for exposure in exposures}
    assert any("random host port" in note for note in notes)
    assert any("none enabled" in note for note in notes)
    assert any("host's network" in note for note in notes)
    assert any(len(case_settings(case)["files"]) == 3 for case in CASES)  # type: ignore[arg-type]
    assert any((CORPUS / case / ".env").exists() for case in CASES)
    texts = "\n".join(path.read_text() for path in CORPUS.rglob("*.yml"))
    for syntax in ("${", ":-", "-8181}", ":?", "$$", "<<: *", "published:", "mode: host", "[::1]"):
        assert syntax in texts, syntax


def test_every_entry_knows_its_line_and_service() -> None:
    reading = read_case("14-merge-two")
    by_spec = {(e.origin.owner, e.spec, e.address): e.origin for e in reading.exposures}
    override = str(CORPUS / "14-merge-two" / "override.yml")
    # The same port in both files is one port, declared where the later file says it.
    assert by_spec[("web", "8080/tcp", None)].path == override
    assert by_spec[("web", "8080/tcp", None)].line == 4
    assert by_spec[("web", "8080/tcp", None)].entry == 'service web ports[0] "8080:80"'
    assert by_spec[("db", "5432/tcp", "127.0.0.1")].line == 9
    assert by_spec[("db", "5432/tcp", "127.0.0.1")].path.endswith("compose.yml")
    assert by_spec[("adminer", "8081/tcp", None)].line == 12


def write(tmp_path: Path, text: str, name: str = "compose.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_unquoted_base_60_entry_is_read_as_compose_v2_reads_it(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  ssh:\n    image: x\n    ports:\n      - 22:22\n      - 53:53/udp\n")
    reading = read_compose([path])
    assert [(e.spec, e.origin.line) for e in reading.exposures] == [("22/tcp", 5), ("53/udp", 6)]
    (note,) = reading.notes
    assert note.origin.line == 5 and "1342" in note.message and "quote it" in note.message
    # What 1.29.2 does with it instead: the container port 1342 on a random host port.
    result = docker_compose_config(tmp_path, [path])
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["services"]["ssh"]["ports"][0] == {"target": 1342}


def test_v2_only_syntax(tmp_path: Path) -> None:
    """Read as the Compose specification says; docker-compose 1.29.2 refuses each of these."""
    path = write(tmp_path, """\
services:
  web:
    image: x
    ports:
      - target: 80
        published: "8000-8002"
      - target: 443
        published: 443
        host_ip: 127.0.0.1
      - name: dns
        target: 53
        published: 53
        protocol: udp
        app_protocol: dns
""")  # fmt: skip
    reading = read_compose([path])
    assert [(e.spec, e.address, e.one_of, e.reach) for e in reading.exposures] == [
        ("8000-8002/tcp", None, True, Reach.EVERYONE),
        ("443/tcp", "127.0.0.1", False, Reach.THIS_HOST),
        ("53/udp", None, False, Reach.EVERYONE),
    ]
    assert docker_compose_config(tmp_path, [path]).returncode != 0
    replaced = write(
        tmp_path,
        "services:\n  web:\n    image: x\n    ports: ['${SET:+8084}:82', '${UNSET:+1}8085:85']\n",
        "plus.yml",
    )
    reading = read_compose([replaced], environment={"SET": "1"})
    assert [e.spec for e in reading.exposures] == ["8084/tcp", "8085/tcp"]
    assert (
        "Invalid interpolation format"
        in docker_compose_config(tmp_path, [replaced], environment={"SET": "1"}).stderr
    )


def test_reset_and_override_tags_replace_the_ports_of_earlier_files(tmp_path: Path) -> None:
    base = write(
        tmp_path,
        "services:\n  web:\n    image: x\n    ports: ['80:80', '443:443']\n  db:\n    image: y\n    ports: ['5432:5432']\n",
    )
    override = write(
        tmp_path,
        "services:\n  web:\n    ports: !override ['8080:80']\n  db:\n    ports: !reset []\n",
        "override.yml",
    )
    reading = read_compose([base, override])
    assert [(e.origin.owner, e.spec) for e in reading.exposures] == [("web", "8080/tcp")]
    assert any(note.message == "service db publishes no port" for note in reading.notes)


def test_the_star_profile_enables_every_service(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "services:\n  a:\n    image: x\n    profiles: [p]\n    ports: ['1000:1']\n  b:\n    image: x\n    profiles: [q]\n    ports: ['1001:1']\n",
    )
    assert [e.spec for e in read_compose([path], profiles=["*"]).exposures] == ["1000/tcp", "1001/tcp"]


def test_the_process_environment_is_not_read_unless_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTCHECK_TEST_PORT", "8080")
    path = write(tmp_path, "services:\n  web:\n    image: x\n    ports: ['${PORTCHECK_TEST_PORT}:80']\n")
    with pytest.raises(SourceError, match="PORTCHECK_TEST_PORT"):
        read_compose([path])
    reading = read_compose([path], environment=dict(os.environ))
    assert [e.spec for e in reading.exposures] == ["8080/tcp"]


# ---- bad input: one test per kind, each naming the file, the line and the fix ----


def assert_problem(error: SourceError, path: Path, line: int, *words: str) -> None:
    assert any(problem.path == str(path) and problem.line == line for problem in error.problems), str(error)
    text = str(error)
    assert f"{path}:{line}:" in text or (line == 0 and f"{path}:" in text)
    for word in words:
        assert word in text, (word, text)


def test_a_file_that_does_not_parse(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  web:\n    ports: ['80:80'\n    image: x\n")
    with pytest.raises(SourceError) as raised:
        read_compose([path])
    assert_problem(raised.value, path, 4, "not valid YAML", "fix the syntax")
    assert docker_compose_config(tmp_path, [path]).returncode != 0


def test_a_missing_file_and_a_file_without_services_are_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(SourceError) as raised:
        read_compose([missing])
    assert_problem(raised.value, missing, 0, "does not exist", "check the path")
    empty = write(tmp_path, "version: '3.9'\n")
    with pytest.raises(SourceError) as raised:
        read_compose([empty])
    assert_problem(raised.value, empty, 0, "declares no services", "'services:'")


def test_a_variable_with_no_value_and_no_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "services:\n  web:\n    image: x\n    ports:\n      - '8080:80'\n      - '${WEB_PORT}:80'\n      - '${DB_PORT:?set DB_PORT}:5432'\n      - '1-2:1-3'\n",
    )
    with pytest.raises(SourceError) as raised:
        read_compose([path])
    # all at once: the variables, and the ranges found when the ports are declared
    assert [problem.line for problem in raised.value.problems] == [6, 7, 8]
    assert_problem(raised.value, path, 6, "WEB_PORT", "no value and no default", "${WEB_PORT:-VALUE}")
    assert_problem(raised.value, path, 7, "DB_PORT is not set (set DB_PORT)", "set it in the .env file")
    assert docker_compose_config(tmp_path, [path]).returncode != 0  # 1.29.2 stops at the :? one


def test_port_ranges_of_different_lengths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "services:\n  web:\n    image: x\n    ports:\n      - '3000-3005:3000-3002'\n      - '8080:80-81'\n",
    )
    with pytest.raises(SourceError) as raised:
        read_compose([path])
    assert_problem(raised.value, path, 5, "3000-3005 has 6 ports", "3000-3002 has 3", "same length")
    assert_problem(raised.value, path, 6, "has 1 ports", "same length")
    assert docker_compose_config(tmp_path, [path]).returncode != 0


def test_an_unknown_protocol(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  web:\n    image: x\n    ports:\n      - '8080:80/tpc'\n")
    with pytest.raises(SourceError) as raised:
        read_compose([path])
    assert_problem(raised.value, path, 5, "unknown protocol 'tpc'", "use tcp or udp")


def test_bad_entries_are_all_reported_with_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, """\
services:
  web:
    image: x
    ports:
      - "999999:80"
      - "localhost:80:80"
      - target: 80
        publishd: 8080
      - published: 8080
      - "$${X}:80"
  other:
    image: y
    ports: "80:80"
""")  # fmt: skip
    with pytest.raises(SourceError) as raised:
        read_compose([path])
    assert [problem.line for problem in raised.value.problems] == [5, 6, 7, 9, 10, 13]
    assert_problem(raised.value, path, 5, "out of range")
    assert_problem(raised.value, path, 6, "'localhost'", "not an IP address")
    assert_problem(raised.value, path, 7, "unknown key 'publishd'")
    assert_problem(raised.value, path, 9, "needs 'target'")
    assert_problem(raised.value, path, 10, "'${X}' in '${X}:80' is not a host port")
    assert_problem(raised.value, path, 13, "'ports' must be a list")


def test_unsupported_keys_are_errors_rather_than_missed_ports(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "services:\n  web:\n    extends:\n      service: base\n  base:\n    image: x\n    ports: ['80:80']\n",
    )
    with pytest.raises(SourceError) as raised:
        read_compose([path])
    assert_problem(raised.value, path, 3, "'extends' is not read", "copy the extended service's ports")


def test_a_project_whose_every_service_is_in_a_disabled_profile(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  a:\n    image: x\n    profiles: [debug]\n    ports: ['80:80']\n")
    with pytest.raises(SourceError) as raised:
        read_compose([path])
    assert_problem(raised.value, path, 0, "no service is active", "debug")


def test_a_bad_env_file(tmp_path: Path) -> None:
    write(tmp_path, "PORT=8080\nnot a line\nOTHER=${MISSING}\n", ".env")
    path = write(tmp_path, "services:\n  a:\n    image: x\n    ports: ['${PORT}:80']\n")
    with pytest.raises(SourceError) as raised:
        read_compose([path])
    env = tmp_path / ".env"
    assert_problem(raised.value, env, 2, "write KEY=VALUE")
    assert_problem(raised.value, env, 3, "MISSING")
