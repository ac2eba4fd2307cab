"""Identification of services that cannot run here, through protocol-faithful peers (tests/peers.py),
on ports that are not their usual ones; hostile TLS certificates; TLS accepted below a minimum."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import peers
import pytest
import servers
from conftest import REPO, Behaviour

from pytest_portcheck.probes.connection import ProbeRequest
from pytest_portcheck.probes.driver import identify_services
from pytest_portcheck.probes.model import ServiceInfo

pytest_plugins = ["pytester"]


def identify(port: int, expect: str | None = None, tls_floor: str | None = None) -> ServiceInfo:
    [info] = identify_services([ProbeRequest("127.0.0.1", port, expect, tls_floor=tls_floor)], timeout=3.0)
    return info


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("certificates")
    return {
        "good": servers.make_certificate(folder, "good", 90),
        "month13": peers.month_13_certificate(folder),
    }


@pytest.mark.parametrize(
    ("behaviour", "service", "product", "version", "auth"),
    [
        (peers.mongodb(requires_auth=False), "mongodb", "MongoDB", "7.0.14", "none"),
        (peers.mongodb(requires_auth=True), "mongodb", "MongoDB", "7.0.14", "required"),
        (peers.DOCKER, "docker", "Docker Engine - Community", "24.0.7", "none"),
        (peers.DOCKER_LOGIN, "docker", "Docker Engine", None, "required"),
        (peers.DOCKER_AUTHZ, "docker", "Docker Engine", None, None),  # a plugin's 403 proves nothing
        (peers.ELASTICSEARCH_OPEN, "elasticsearch", "Elasticsearch", "8.11.1", "none"),
        (peers.ELASTICSEARCH_LOCKED, "elasticsearch", "Elasticsearch", None, "required"),
        # 403 on GET /, yet anonymous requests read documents: its identity endpoint says so
        (peers.ELASTICSEARCH_ANONYMOUS_READER, "elasticsearch", "Elasticsearch", None, "none"),
        (peers.ELASTICSEARCH_BEHIND_PROXY, "elasticsearch", "Elasticsearch", None, None),
        (peers.kubernetes("default"), "kubernetes", "Kubernetes", "v1.28.4", None),  # public /version only
        (peers.kubernetes("off"), "kubernetes", "Kubernetes", None, "required"),
        (peers.kubernetes("open"), "kubernetes", "Kubernetes", "v1.28.4", "none"),
        (peers.COUCHDB, "couchdb", "CouchDB", "3.3.3", None),
        (peers.EXPORTER, "prometheus", "Node Exporter", None, None),
        (peers.rabbitmq, "amqp", "RabbitMQ", "3.12.10", None),
        (peers.smb, "smb", "SMB", "2.x", None),
        (peers.rdp, "rdp", None, None, None),
        (peers.vnc, "vnc", "RFB", "3.8", None),
    ],
    ids=["mongodb", "mongodb-auth", "docker", "docker-401", "docker-authz", "elasticsearch", "elasticsearch-auth",
         "elasticsearch-anonymous", "elasticsearch-proxy", "kubernetes", "kubernetes-locked", "kubernetes-open",
         "couchdb", "exporter", "rabbitmq", "smb", "rdp", "vnc"],
)  # fmt: skip
def test_peers_named_on_unusual_ports(
    peer: Callable[[Behaviour], int],
    behaviour: Behaviour,
    service: str,
    product: str | None,
    version: str | None,
    auth: str | None,
) -> None:
    info = identify(peer(behaviour))
    assert (info.service, info.product, info.version, info.auth) == (service, product, version, auth), info
    assert info.exposed == (
        auth == "none" and service in ("mongodb", "docker", "elasticsearch", "kubernetes")
    )
    assert ("EXPOSED" in info.describe()) == info.exposed


def test_auth_notes_say_what_the_verdict_rests_on(peer: Callable[[Behaviour], int]) -> None:
    reader = identify(peer(peers.ELASTICSEARCH_ANONYMOUS_READER))
    assert reader.describe().startswith(
        'elasticsearch (Elasticsearch) EXPOSED: no authentication (anonymous requests act as user "_anonymous")'
    )
    default = identify(peer(peers.kubernetes("default")))
    assert default.auth_note is not None and "system:anonymous" in default.auth_note, default
    assert "--anonymous-auth=false" in default.auth_note
    authz = identify(peer(peers.DOCKER_AUTHZ))
    assert authz.auth_note == (
        "403 from an authorization plugin: authorization denied by plugin opa-docker-authz: request rejected "
        "by administrative policy"
    )


def test_auth_requirements_on_http_apis_through_the_plugin(
    pytester: pytest.Pytester, peer: Callable[[Behaviour], int]
) -> None:
    reader, kubernetes, authz = (
        peer(peers.ELASTICSEARCH_ANONYMOUS_READER), peer(peers.kubernetes("default")), peer(peers.DOCKER_AUTHZ)
    )  # fmt: skip
    locked = peer(peers.kubernetes("off"))
    pytester.makefile(
        ".yml",
        inventory=f"""
        hosts:
          box:
            address: 127.0.0.1
            open:
              - {{port: {reader}, service: elasticsearch, auth: required}}
              - {{port: {kubernetes}, service: kubernetes, auth: required}}
              - {{port: {authz}, service: docker, auth: none}}
              - {{port: {locked}, service: kubernetes, auth: required}}
          cluster:
            address: localhost
            open: [{{port: {kubernetes}, service: kubernetes}}]
        """,
    )
    result = pytester.runpytest("--portcheck", "inventory.yml", "-v", "-rfE")
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            f"*box (127.0.0.1) tcp/{reader}: Elasticsearch answers without authentication: anonymous requests "
            'act as user "_anonymous" (auth: required)',
            f"*box (127.0.0.1) tcp/{kubernetes}: cannot tell whether kubernetes requires authentication: "
            "*system:anonymous*",
            f"*box (127.0.0.1) tcp/{authz}: cannot tell whether docker requires authentication: *403 from an "
            "authorization plugin*",
            f"*inventory.yml::box::tcp/{locked}::open PASSED*",
            f"*inventory.yml::cluster::tcp/{kubernetes}::open PASSED*",
        ]
    )
    shown = [line for line in result.stdout.lines if f"tcp/{kubernetes}" in line]
    assert shown and not [line for line in shown if "EXPOSED" in line]  # a public /version exposes nothing


def test_kubernetes_over_tls(
    peer: Callable[[Behaviour], int], certificates: dict[str, tuple[Path, Path]]
) -> None:
    # GET / inside TLS: the default cluster refuses / to system:anonymous (403 Status), and /api too:
    # anonymous requests reach public paths only, which proves neither "required" nor "none".
    anonymous = identify(peer(peers.tls_server(certificates["good"], peers.kubernetes("default"))))
    assert (anonymous.service, anonymous.version, anonymous.auth) == ("kubernetes", None, None), anonymous
    assert anonymous.auth_note is not None and "system:anonymous" in anonymous.auth_note
    assert anonymous.tls is not None and anonymous.tls.subject == "CN=good"
    locked = identify(peer(peers.tls_server(certificates["good"], peers.kubernetes("off"))))
    assert (locked.service, locked.auth) == ("kubernetes", "required")
    assert locked.answers_as("https") and locked.answers_as("tls") and not locked.answers_as("http")
    # the discovery question is asked through TLS as well
    exposed = identify(peer(peers.tls_server(certificates["good"], peers.kubernetes("open"))))
    assert (exposed.service, exposed.auth, exposed.exposed) == ("kubernetes", "none", True), exposed
    reader = identify(peer(peers.tls_server(certificates["good"], peers.ELASTICSEARCH_ANONYMOUS_READER)))
    assert (reader.service, reader.auth) == ("elasticsearch", "none"), reader


def test_month_13_certificate_stays_on_its_port(
    peer: Callable[[Behaviour], int], certificates: dict[str, tuple[Path, Path]]
) -> None:
    hostile = peer(peers.tls_server(certificates["month13"], peers.COUCHDB))
    fine = peer(peers.COUCHDB)
    bad, good = identify_services([ProbeRequest("127.0.0.1", hostile), ProbeRequest("127.0.0.1", fine)])
    assert (
        bad.tls is not None and bad.tls.certificate_error and "could not be read" in bad.tls.certificate_error
    )
    assert bad.service == "couchdb"  # the handshake worked; what runs inside is still named
    assert good.service == "couchdb" and good.tls is None


def test_month_13_certificate_through_the_command(
    peer: Callable[[Behaviour], int], certificates: dict[str, tuple[Path, Path]]
) -> None:
    hostile = peer(peers.tls_server(certificates["month13"]))
    fine = peer(peers.vnc)
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_portcheck", "scan", "127.0.0.1", "-p", f"{hostile},{fine}", "--banner",
         "--json", "-"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    probes = {r["port"]: r["probe"] for r in json.loads(completed.stdout)["results"]}
    assert probes[hostile]["service"] == "tls" and probes[hostile]["tls"]["certificate_error"]
    assert probes[fine]["service"] == "vnc"


def test_month_13_certificate_fails_only_its_own_item(
    pytester: pytest.Pytester, peer: Callable[[Behaviour], int], certificates: dict[str, tuple[Path, Path]]
) -> None:
    hostile = peer(peers.tls_server(certificates["month13"], peers.COUCHDB))
    fine = peer(peers.tls_server(certificates["good"], peers.COUCHDB))
    pytester.makefile(
        ".yml",
        inventory=f"""
        hosts:
          evil:
            address: 127.0.0.1
            open: [{{port: {hostile}, service: https, tls: {{expires_in_days: 14}}}}]
          fine:
            address: localhost
            open: [{{port: {fine}, service: https, tls: {{expires_in_days: 14}}}}]
          plain:
            address: 127.0.0.1
            open: [{fine}]
        """,
    )
    result = pytester.runpytest("--portcheck", "inventory.yml", "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([f"*evil (127.0.0.1) tcp/{hostile}: the certificate could not be read*"])
    assert "the inventory scan failed" not in result.stdout.str()


@pytest.fixture(scope="module")
def old_tls_port(certificates: dict[str, tuple[Path, Path]]) -> Iterator[int]:
    """A server that accepts TLSv1 as well as TLSv1.3 (``peer`` is function-scoped: start our own)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    behaviour = peers.tls_server(certificates["good"], peers.COUCHDB, oldest="TLSv1")

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_quietly, args=(behaviour, connection), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()


def _quietly(behaviour: Behaviour, connection: object) -> None:
    import contextlib
    import socket

    assert isinstance(connection, socket.socket)
    with connection, contextlib.suppress(OSError, ValueError):
        behaviour(connection)


def test_min_version_tries_a_handshake_below_it(old_tls_port: int) -> None:
    info = identify(old_tls_port, "https", tls_floor="TLSv1.2")
    assert info.tls is not None and info.tls.version == "TLSv1.3"
    assert info.tls.below_minimum is not None and info.tls.below_minimum.startswith("TLSv1.1"), info.tls


def test_min_version_refused_below(
    peer: Callable[[Behaviour], int], certificates: dict[str, tuple[Path, Path]]
) -> None:
    port = peer(peers.tls_server(certificates["good"], peers.COUCHDB))
    info = identify(port, "https", tls_floor="TLSv1.2")
    assert info.tls is not None and info.tls.below_minimum == "refused"
    floor_13 = identify(port, "https", tls_floor="TLSv1.3")
    assert floor_13.tls is not None and floor_13.tls.below_minimum == "TLSv1.2"


def test_min_version_item_fails_when_older_versions_are_accepted(
    pytester: pytest.Pytester, old_tls_port: int
) -> None:
    pytester.makefile(
        ".yml",
        inventory=f"hosts:\n  old:\n    address: 127.0.0.1\n    open:\n"
        f"      - {{port: {old_tls_port}, service: https, tls: {{min_version: TLSv1.2}}}}\n",
    )
    result = pytester.runpytest("--portcheck", "inventory.yml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*also accepts TLSv1.1, below the minimum TLSv1.2*"])


def test_each_name_on_one_port_is_judged_on_its_own_verification(
    pytester: pytest.Pytester,
    peer: Callable[[Behaviour], int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One TLS server, trusted here, whose certificate names localhost only. An inventory that names it
    # by address must fail verify: true (IP address mismatch); another that names it localhost must
    # pass, although both entries meet on 127.0.0.1 and are merged into one probe plan.
    certificate = servers.make_certificate(tmp_path, "localhost", 90, dns_names=["localhost"])
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    port = peer(peers.tls_server(certificate, peers.COUCHDB))
    pytester.makefile(
        ".yml",
        by_address=f"hosts:\n  bare:\n    address: 127.0.0.1\n    open:\n"
        f"      - {{port: {port}, service: https, tls: {{verify: true}}}}\n",
        by_name=f"hosts:\n  named:\n    address: localhost\n    open:\n"
        f"      - {{port: {port}, service: https, tls: {{verify: true}}}}\n",
    )
    for order, xdist in (
        (["by_address.yml", "by_name.yml"], False),
        (["by_name.yml", "by_address.yml"], True),
    ):
        flags = [*(f"--portcheck={name}" for name in order), "-v", "-rf"]
        # under xdist the per-name answers also travel between workers, in the shared report
        result = pytester.runpytest_subprocess(*flags, "-n", "2") if xdist else pytester.runpytest(*flags)
        result.assert_outcomes(passed=1, failed=1)
        result.stdout.fnmatch_lines_random(
            [
                f"*PASSED*by_name.yml::named::tcp/{port}::open*"
                if xdist
                else f"by_name.yml::named::tcp/{port}::open PASSED*",
                f"FAILED by_address.yml::bare::tcp/{port}::open - *",
                f"bare (127.0.0.1) tcp/{port}: TLS verification failed: certificate verification failed: *IP*",
            ]
        )
