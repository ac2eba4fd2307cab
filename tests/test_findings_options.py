"""SARIF and Prometheus metrics from the front ends (issue 20): ``pytest --portcheck-sarif FILE``,
``--portcheck-metrics FILE`` and ``portcheck report REPORT --sarif FILE --metrics FILE``. Each SARIF
file is checked against the OASIS schema (``test_sarif.valid``), each metrics file by promtool; the
rule of each result comes from the kind the judge attached, and a source-declared port's result sits
on the source file's line with the inventory line as a related location."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ListenerFactory, portcheck, unused_port
from test_metrics import promtool_check
from test_sarif import valid

pytest_plugins = ["pytester"]


def fleet(pytester: pytest.Pytester, listen: ListenerFactory) -> dict[str, int]:
    """A Compose file and the inventory that reads it: one declared port answers, one does not, and
    one port that nothing declares answers."""
    ports = {"declared": listen().getsockname()[1], "silent": unused_port(), "undeclared": listen().getsockname()[1]}
    (pytester.path / "deploy").mkdir()
    (pytester.path / "deploy" / "compose.yml").write_text(
        f'services:\n  web:\n    ports:\n      - "{ports["declared"]}:80"\n      - "{ports["silent"]}:443"\n'
    )
    pytester.makefile(".yml", inventory=f"""\
        hosts:
          web:
            address: 127.0.0.1
            only_open: {{compose: deploy/compose.yml}}
            range: "{ports['declared']},{ports['silent']},{ports['undeclared']}/tcp"
        """)
    return ports


def results_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {result["ruleId"]: result for result in document["runs"][0]["results"]}


def test_pytest_writes_sarif_and_metrics_with_the_kind_and_the_source_line(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    ports = fleet(pytester, listen)
    (pytester.path / "out").mkdir()
    run = pytester.runpytest(
        "--portcheck", "inventory.yml", "-q", "--portcheck-sarif", "out/findings.sarif",
        "--portcheck-metrics", "out/portcheck.prom", "--portcheck-report", "out/report.json",
    )  # fmt: skip
    run.assert_outcomes(passed=1, failed=2)
    document = valid((pytester.path / "out/findings.sarif").read_text())
    results = results_of(document)
    assert set(results) == {"portcheck/declared-port-unreachable", "portcheck/unexpected-open-port"}
    unreachable = results["portcheck/declared-port-unreachable"]
    where = unreachable["locations"][0]["physicalLocation"]
    # On the Compose line that declares the port; the inventory line that reads the file is related.
    assert where["artifactLocation"] == {"uri": "deploy/compose.yml", "uriBaseId": "%SRCROOT%"}
    assert where["region"]["startLine"] == 5
    related = unreachable["relatedLocations"][0]["physicalLocation"]
    assert related["artifactLocation"]["uri"] == "inventory.yml" and related["region"]["startLine"] == 4
    exposed = results["portcheck/unexpected-open-port"]["locations"][0]["physicalLocation"]
    assert exposed["artifactLocation"]["uri"] == "inventory.yml" and exposed["region"]["startLine"] == 5  # range:
    assert f"{ports['undeclared']}" in results["portcheck/unexpected-open-port"]["message"]["text"]
    metrics = (pytester.path / "out/portcheck.prom").read_text()
    promtool_check(metrics)
    assert (
        f'portcheck_expectation_met{{inventory="inventory.yml",host="web",target="tcp/{ports["silent"]}",'
        'expected="open",verdict="failed"} 0'
    ) in metrics

    # From the JSON report, the same findings: same rules, locations and fingerprints.
    again = portcheck(
        "report", "out/report.json", "--sarif", "again.sarif", "--metrics", "again.prom", cwd=pytester.path
    )
    assert again.returncode == 0, again.stderr
    from_report = results_of(valid((pytester.path / "again.sarif").read_text()))
    for rule, result in results.items():
        assert from_report[rule]["locations"] == result["locations"]
        assert from_report[rule]["partialFingerprints"] == result["partialFingerprints"]
    promtool_check((pytester.path / "again.prom").read_text())


def test_output_paths_are_checked_before_the_scan(pytester: pytest.Pytester, listen: ListenerFactory) -> None:
    fleet(pytester, listen)
    for option in ("--portcheck-sarif", "--portcheck-metrics"):
        refused = pytester.runpytest("--portcheck", "inventory.yml", option, "missing/dir/out")
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        assert f"portcheck: {option}: " in refused.stderr.str()
    done = portcheck("report", "nothing.json", "--sarif", "missing/dir/out.sarif", cwd=pytester.path)
    assert done.returncode == 2 and "missing/dir" in done.stderr
    bare = portcheck("report", "nothing.json", cwd=pytester.path)
    assert bare.returncode == 2 and "-o FILE.html, --sarif FILE or --metrics FILE" in bare.stderr


def test_judge_mode_writes_one_sarif_run_for_the_whole_fleet(
    pytester: pytest.Pytester, listen: ListenerFactory
) -> None:
    fleet(pytester, listen)
    (pytester.path / "reports").mkdir()
    for vantage in ("office", "dmz"):
        scanned = portcheck(
            "scan", "--inventory", "inventory.yml", "--vantage", vantage, "--run-id", "n1",
            "--json", f"reports/{vantage}.json", cwd=pytester.path,
        )  # fmt: skip
        assert scanned.returncode in (0, 1), scanned.stderr
    judged = pytester.runpytest(
        "--portcheck", "inventory.yml", "--portcheck-results", "reports/*.json", "--portcheck-sarif", "fleet.sarif"
    )
    judged.assert_outcomes(passed=1, failed=2)
    document = valid((pytester.path / "fleet.sarif").read_text())  # one run: `valid` checks it
    messages = [result["message"]["text"] for result in document["runs"][0]["results"]]
    assert any("from office" in text and "from dmz" in text for text in messages), messages
    assert json.loads(json.dumps(document))["runs"][0]["tool"]["driver"]["name"]


def test_under_xdist_the_sarif_file_is_the_same(pytester: pytest.Pytester, listen: ListenerFactory) -> None:
    """Workers hand their outcomes over as text: the kind and the declaring line must survive it."""
    fleet(pytester, listen)
    alone = pytester.runpytest("--portcheck", "inventory.yml", "--portcheck-sarif", "alone.sarif")
    alone.assert_outcomes(passed=1, failed=2)
    workers = pytester.runpytest_subprocess(
        "--portcheck", "inventory.yml", "--portcheck-sarif", "workers.sarif", "-n", "2", "-p", "no:cacheprovider"
    )
    workers.assert_outcomes(passed=1, failed=2)
    one, two = (results_of(valid((pytester.path / name).read_text())) for name in ("alone.sarif", "workers.sarif"))
    assert set(one) == set(two) == {"portcheck/declared-port-unreachable", "portcheck/unexpected-open-port"}
    for rule, result in one.items():
        assert two[rule]["locations"] == result["locations"]
        assert two[rule].get("relatedLocations") == result.get("relatedLocations")
        assert two[rule]["partialFingerprints"] == result["partialFingerprints"]
