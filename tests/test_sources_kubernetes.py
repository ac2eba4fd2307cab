"""The Kubernetes reader: every fixture under tests/data/kubernetes is first validated against the
Kubernetes API schemas (kubernetes-validate, which ships them: no cluster, no network), then read;
each kind of exposure is checked entry by entry with its line, and bad input names file, line, fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pytest_portcheck.inventory.sources import Reach, SourceError, SourceReading, read_kubernetes
from pytest_portcheck.ports import Protocol

DATA = Path(__file__).parent / "data" / "kubernetes"
FIXTURES = sorted(DATA.glob("*.yaml"))
NODES = ("10.0.0.11", "10.0.0.12")


def objects(path: Path) -> Iterator[dict[str, object]]:
    """Every object of a manifest, the items of a ``kind: List`` one by one (the schemas have no List)."""
    for document in yaml.safe_load_all(path.read_text()):
        if document is None:
            continue
        if str(document.get("kind", "")).endswith("List"):
            yield from document["items"]
        else:
            yield document


def validate(path: Path) -> int:
    count = 0
    for obj in objects(path):
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        count += 1
    return count


def exposures(reading: SourceReading) -> set[tuple[str, str, str | None, Reach, str | None, int]]:
    return {(e.origin.owner, e.spec, e.address, e.reach, e.peer, e.origin.line) for e in reading.exposures}


@pytest.mark.parametrize("path", FIXTURES, ids=[path.name for path in FIXTURES])
def test_each_fixture_is_a_valid_manifest_and_is_read(path: Path) -> None:
    assert validate(path) >= 2
    reading = read_kubernetes([path], node_addresses=NODES)
    assert reading.exposures or reading.notes


def test_the_schema_check_catches_a_wrong_manifest(tmp_path: Path) -> None:
    """The validation step is a real check: a port written as text is refused by the schemas."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports: [{port: '80'}]\n")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad)


def test_services() -> None:
    reading = read_kubernetes([DATA / "services.yaml"], node_addresses=NODES)
    assert exposures(reading) == {
        # NodePort: the node port on every node named, TCP and UDP
        *{("Service/shop/web", "30080/tcp", node, Reach.EVERYONE, None, 12) for node in NODES},
        *{("Service/shop/web", "30053/udp", node, Reach.EVERYONE, None, 16) for node in NODES},
        # LoadBalancer: the port on the address in its status, from each source range; and its node port
        ("Service/shop/api", "443/tcp", "192.0.2.50", Reach.NETWORK, "203.0.113.0/24", 36),
        ("Service/shop/api", "443/tcp", "192.0.2.50", Reach.NETWORK, "198.51.100.7/32", 36),
        *{("Service/shop/api", "31443/tcp", node, Reach.EVERYONE, None, 36) for node in NODES},
        # no address in the manifest and no node ports allocated: "the load balancer", unknown
        ("Service/default/public", "8443/tcp", None, Reach.EVERYONE, None, 55),
        # externalIPs on a ClusterIP Service
        ("Service/shop/legacy", "8080/tcp", "192.0.2.80", Reach.EVERYONE, None, 65),
    }
    notes = {(note.origin.owner, note.origin.line): note.message for note in reading.notes}
    assert "the cluster picks the node port" in notes[("Service/shop/web", 20)]
    assert "map Service/default/public" in notes[("Service/default/public", 46)]
    assert "ClusterIP Service: not exposed outside" in notes[("Service/shop/db", 73)]
    assert "ExternalName" in notes[("Service/shop/upstream", 84)]
    web = next(e for e in reading.exposures if e.spec == "30080/tcp")
    assert web.origin.entry == "Service shop/web spec.ports[0] nodePort 30080"
    assert web.origin.path == str(DATA / "services.yaml")


def test_a_load_balancer_address_the_caller_maps() -> None:
    reading = read_kubernetes(
        [DATA / "services.yaml"], addresses={"Service/default/public": ["198.51.100.20", "2001:db8::20"]}
    )
    public = {(e.spec, e.address) for e in reading.exposures if e.origin.owner == "Service/default/public"}
    assert public == {("8443/tcp", "198.51.100.20"), ("8443/tcp", "2001:db8::20")}
    # without node addresses, a node port is declared on "every node": address None
    assert ("30080/tcp", None) in {(e.spec, e.address) for e in reading.exposures}


def test_pod_templates() -> None:
    reading = read_kubernetes([DATA / "workloads.yaml"], node_addresses=NODES)
    found = {(e.origin.owner, e.spec, e.address, e.reach) for e in reading.exposures}
    every_node = {
        ("Deployment/edge/proxy", "8080/tcp"),
        ("DaemonSet/monitoring/node-exporter", "9100/tcp"),
        ("StatefulSet/edge/dns", "8053/tcp"),
        ("StatefulSet/edge/dns", "53/udp"),
        ("StatefulSet/edge/dns", "53/tcp"),
        ("Pod/default/debug", "2222/tcp"),
        ("ReplicaSet/default/cache", "16379/tcp"),
        ("Job/default/migrate", "7000/tcp"),
        ("CronJob/default/report", "7070/udp"),
    }
    assert found == {
        *{(owner, spec, node, Reach.EVERYONE) for owner, spec in every_node for node in NODES},
        ("Deployment/edge/proxy", "9000/tcp", "127.0.0.1", Reach.THIS_HOST),
    }
    lines = {(e.origin.owner, e.spec): e.origin.line for e in reading.exposures}
    assert lines[("Deployment/edge/proxy", "8080/tcp")] == 20
    assert lines[("CronJob/default/report", "7070/udp")] == 146
    host_network = [note for note in reading.notes if "node's network" in note.message]
    assert {note.origin.owner for note in host_network} == {
        "DaemonSet/monitoring/node-exporter",
        "CronJob/default/report",
    }


def test_ingress() -> None:
    reading = read_kubernetes([DATA / "ingress.yaml"], addresses={"IngressClass/nginx": ["192.0.2.61"]})
    assert {(e.origin.owner, e.spec, e.address) for e in reading.exposures} == {
        ("Ingress/shop/shop", "80/tcp", "192.0.2.60"),
        ("Ingress/shop/shop", "443/tcp", "192.0.2.60"),
        ("Ingress/shop/docs", "80/tcp", "192.0.2.61"),
    }
    unmapped = read_kubernetes([DATA / "ingress.yaml"])
    assert ("Ingress/shop/docs", "80/tcp", None) in {
        (e.origin.owner, e.spec, e.address) for e in unmapped.exposures
    }
    assert any("IngressClass/nginx" in note.message for note in unmapped.notes)


def test_lists_and_helm_output() -> None:
    reading = read_kubernetes([DATA / "helm-rendered.yaml"], node_addresses=["10.0.0.11"])
    assert {(e.origin.owner, e.spec, e.origin.line) for e in reading.exposures} == {
        ("Service/default/release-shop", "30081/tcp", 13),
        ("Service/tools/listed", "30082/tcp", 43),
        ("Deployment/tools/listed", "8443/tcp", 63),
    }
    assert {e.protocol for e in reading.exposures} == {Protocol.TCP}


def test_several_files_are_one_reading() -> None:
    reading = read_kubernetes(FIXTURES, node_addresses=NODES)
    assert reading.paths == tuple(str(path) for path in FIXTURES)
    assert {e.origin.path for e in reading.exposures} == {str(path) for path in FIXTURES}


# ---- bad input: file, line and fix ----


def write(tmp_path: Path, text: str, name: str = "manifest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_manifest_that_does_not_parse(tmp_path: Path) -> None:
    path = write(tmp_path, "apiVersion: v1\nkind: Service\nmetadata:\n  name: [x\n")
    with pytest.raises(SourceError) as raised:
        read_kubernetes([path])
    assert raised.value.line == 5 and f"{path}:5:" in str(raised.value)
    assert "not valid YAML" in str(raised.value) and "fix the syntax" in str(raised.value)


def test_a_missing_or_empty_manifest_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.yaml: the manifest does not exist: check the path"):
        read_kubernetes([tmp_path / "nope.yaml"])
    empty = write(tmp_path, "---\n# nothing\n")
    with pytest.raises(SourceError, match="holds no Kubernetes object"):
        read_kubernetes([empty])
    config_only = write(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "c.yaml")
    with pytest.raises(
        SourceError, match=r"c\.yaml: holds 1 object\(s\) but none of the kinds .* name the manifest"
    ):
        read_kubernetes([config_only])


def test_every_bad_entry_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, """\
apiVersion: v1
kind: Service
metadata: {name: a}
spec:
  type: NodePort
  ports:
    - port: "80"
      nodePort: 30080
    - port: 81
      nodePort: 99999
    - port: 82
      protocol: tcp
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  type: Nodeport
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  hostNetwork: maybe
  containers: [{name: c, image: i}]
---
apiVersion: v1
kind: Service
spec: {}
""")  # fmt: skip
    with pytest.raises(SourceError) as raised:
        read_kubernetes([path])
    problems = [(problem.line, problem.message) for problem in raised.value.problems]
    assert [line for line, _ in problems] == [7, 10, 12, 18, 25, 28]
    text = str(raised.value)
    assert (
        f"{path}:7: Service default/a: port '80' is not a port number: write a number 1-65535, unquoted"
        in text
    )
    assert "nodePort '99999' is not a port number" in text
    assert "unknown protocol 'tcp': use TCP, UDP or SCTP" in text
    assert "unknown Service type 'Nodeport': use ClusterIP, NodePort, LoadBalancer or ExternalName" in text
    assert "hostNetwork must be true or false" in text
    assert f"{path}:28: 'metadata' is missing" in text


def test_a_host_port_on_every_address_of_the_node(tmp_path: Path) -> None:
    """hostIP 0.0.0.0 or :: is every address of the node, as no hostIP is: the node addresses named."""
    path = write(tmp_path, """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - name: c
      image: i
      ports:
        - {containerPort: 80, hostPort: 8080, hostIP: "::"}
        - {containerPort: 81, hostPort: 8081, hostIP: 0.0.0.0}
        - {containerPort: 82, hostPort: 8082, hostIP: 10.0.0.11}
""")  # fmt: skip
    validate(path)
    reading = read_kubernetes([path], node_addresses=NODES)
    assert {(e.spec, e.address) for e in reading.exposures} == {
        *{(spec, node) for spec in ("8080/tcp", "8081/tcp") for node in NODES},
        ("8082/tcp", "10.0.0.11"),
    }
