"""examples/ci/ cannot rot: the workflow and the manifests are parsed, and the very commands they
contain run here, N=4 shard processes on loopback and then the judge."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO
from test_sarif import valid

from pytest_portcheck.inventory.load import parse_inventory

EXAMPLES = REPO / "examples" / "ci"
INSTALL = "pip install --quiet pytest-portcheck && "
SECRET = "test-report-key-7f3a"
"""What the platform would hand the jobs for the examples' report key (a repository secret, a Secret)."""


@pytest.fixture
def loopback_inventory() -> Iterator[str]:
    """An inventory of two loopback hosts that holds: a port open from VANTAGE, a closed one, a range."""
    with socket.socket() as first:
        first.bind(("127.78.0.1", 0))
        port = int(first.getsockname()[1])
    listeners = []
    for address in ("127.78.0.1", "127.78.0.2"):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(16)
        listeners.append(sock)
    text = (
        "hosts:\n"
        f"  app:\n    address: 127.78.0.1\n    closed: [{port + 1}]\n"
        f"    from:\n      VANTAGE:\n        open: [{port}]\n"
        f'  db:\n    address: 127.78.0.2\n    only_open: [{port}]\n    range: "{port}-{port + 60}"\n'
    )
    yield text
    for sock in listeners:
        sock.close()


def environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PORTCHECK_", "JOB_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def run(shell: str, script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shell, "-e", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def step(job: dict[str, Any], needle: str) -> str:
    scripts = [s["run"] for s in job["steps"] if needle in s.get("run", "")]
    assert len(scripts) == 1, f"one step of the job runs {needle!r}"
    return str(scripts[0])


def test_github_actions_workflow_runs_here(tmp_path: Path, loopback_inventory: str) -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    shards = workflow["jobs"]["scan"]["strategy"]["matrix"]["shard"]
    variables = {key: str(value) for key, value in workflow["env"].items()}
    assert variables.pop("PORTCHECK_REPORT_KEY") == "${{ secrets.PORTCHECK_REPORT_KEY }}"
    # What Actions sets on every job of one workflow run (the secret expands to its value).
    variables |= {"GITHUB_RUN_ID": "9912345678", "GITHUB_RUN_ATTEMPT": "2", "PORTCHECK_REPORT_KEY": SECRET}
    assert shards == list(range(1, int(variables["SHARDS"]) + 1)) and len(shards) == 4
    assert workflow["jobs"]["judge"]["needs"] == "scan"
    assert workflow["jobs"]["judge"]["if"] == "always()"  # a failed share must still be judged
    (tmp_path / "inventory.yml").write_text(loopback_inventory.replace("VANTAGE", variables["VANTAGE"]))
    scan = step(workflow["jobs"]["scan"], "portcheck scan")
    env = environment(**variables)

    def one(shard: int) -> subprocess.CompletedProcess[str]:
        return run("bash", scan.replace("${{ matrix.shard }}", str(shard)), tmp_path, env)

    with ThreadPoolExecutor(4) as pool:
        for done in pool.map(one, shards):
            assert done.returncode == 0, done.stdout + done.stderr
    # upload-artifact + download-artifact with merge-multiple put every report in reports/
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [f"shard-{k}.json" for k in shards]
    judged = run("bash", step(workflow["jobs"]["judge"], "--portcheck-results"), tmp_path, env)
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert "4 passed" in judged.stdout and "4/4 shard(s) from github-runner" in judged.stdout
    assert "judged run 9912345678-2: 4 report(s)" in judged.stdout
    assert "reports checked with PORTCHECK_REPORT_KEY" in judged.stdout
    assert (tmp_path / "portcheck.xml").exists() and (tmp_path / "portcheck.md").exists()
    # The SARIF file the judge writes is the one uploaded to code scanning, even after drift.
    upload = next(s for s in workflow["jobs"]["judge"]["steps"] if "upload-sarif" in s.get("uses", ""))
    assert upload["uses"] == "github/codeql-action/upload-sarif@v3" and upload["if"] == "always()"
    assert workflow["jobs"]["judge"]["permissions"]["security-events"] == "write"
    valid((tmp_path / upload["with"]["sarif_file"]).read_text())


def container(document: dict[str, Any]) -> dict[str, Any]:
    containers = document["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


POD_LABELS = {"batch.kubernetes.io/controller-uid": "3f0d5a6e-52b1-4c1d-9a53-0e8cbb1f7e21"}
"""The labels the Job controller puts on the Job's pods (its uid), for the downward API."""


def mapped(env: list[dict[str, Any]], mounts: dict[str, Path]) -> dict[str, str]:
    """The container's environment with the volumes' mount paths moved under the test's folder, and
    what Kubernetes fills in itself: a pod label through the downward API, the key from its Secret."""
    values = {}
    for variable in env:
        source = variable.get("valueFrom", {})
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            assert path.startswith("metadata.labels['") and path.endswith("']"), path
            value = POD_LABELS[path[len("metadata.labels['") : -2]]
        elif "secretKeyRef" in source:
            assert source["secretKeyRef"]["name"] == "portcheck-report-key"
            value = SECRET
        else:
            value = variable["value"]
        for mount, local in mounts.items():
            if value.startswith(mount):
                value = str(local) + value[len(mount) :]
        values[variable["name"]] = value
    return values


def test_kubernetes_indexed_job_runs_here(tmp_path: Path, loopback_inventory: str) -> None:
    documents = list(yaml.safe_load_all((EXAMPLES / "kubernetes.yml").read_text()))
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    config = kinds[("ConfigMap", "portcheck-inventory")]["data"]["inventory.yml"]
    parse_inventory(config, Path("configmap.yml"))  # valid, but it names hosts we may not scan here
    scan_job, judge_job = kinds[("Job", "portcheck-scan")], kinds[("Job", "portcheck-judge")]
    assert scan_job["spec"]["completionMode"] == "Indexed"
    completions = scan_job["spec"]["completions"]
    scan, judge = container(scan_job), container(judge_job)
    mounts = {m["mountPath"]: tmp_path / m["name"] for m in scan["volumeMounts"]}
    for local in mounts.values():
        local.mkdir()
    env = mapped(scan["env"], mounts)
    (mounts["/config"] / "inventory.yml").write_text(
        loopback_inventory.replace("VANTAGE", env["PORTCHECK_VANTAGE"])
    )
    assert int(env["SHARDS"]) == completions == 4  # N is given twice: they must agree
    shell, flag, script = scan["command"]
    assert (shell, flag) == ("sh", "-c") and script.startswith(INSTALL)

    def pod(index: int) -> subprocess.CompletedProcess[str]:
        variables = environment(**env, JOB_COMPLETION_INDEX=str(index))
        return run("sh", script[len(INSTALL) :], tmp_path, variables)

    with ThreadPoolExecutor(completions) as pool:
        for done in pool.map(pod, range(completions)):
            assert done.returncode == 0, done.stdout + done.stderr
    reports = mounts["/reports"]
    assert sorted(p.name for p in reports.iterdir()) == [f"shard-{k}.json" for k in range(completions)]
    shell, flag, script = judge["command"]
    assert script.startswith(INSTALL)
    judged = run("sh", script[len(INSTALL) :], tmp_path, environment(**mapped(judge["env"], mounts)))
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert "4 passed" in judged.stdout and "4/4 shard(s) from cluster" in judged.stdout
    assert f"judged run {POD_LABELS['batch.kubernetes.io/controller-uid']}: 4 report(s)" in judged.stdout
    assert "reports checked with PORTCHECK_REPORT_KEY" in judged.stdout
    assert (reports / "portcheck.xml").exists()
