"""Protocol probes against real servers from Debian packages, and against hostile peers."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import servers
from conftest import REPO, Behaviour, Namespace, greeting

from pytest_portcheck.probes.catalogue import classify
from pytest_portcheck.probes.connection import ProbeRequest
from pytest_portcheck.probes.driver import identify_services
from pytest_portcheck.probes.model import ServiceInfo, neutralise

pytest_plugins = ["pytester"]


def probe(port: int, expect: str | None = None, timeout: float = 3.0) -> ServiceInfo:
    [info] = identify_services([ProbeRequest("127.0.0.1", port, expect)], timeout=timeout, banner_wait=1.0)
    return info


# --- real servers (session-wide: some take seconds to initialise) ---------------------------------


@pytest.fixture(scope="session")
def sshd_port() -> Iterator[int]:
    with servers.sshd() as port:
        yield port


@pytest.fixture(scope="session")
def nginx_ports() -> Iterator[servers.NginxPorts]:
    with servers.nginx() as ports:
        yield ports


@pytest.fixture(scope="session")
def postgresql_port() -> Iterator[int]:
    with servers.postgresql() as port:
        yield port


@pytest.fixture(scope="session")
def redis_open_port() -> Iterator[int]:
    with servers.redis() as port:
        yield port


@pytest.fixture(scope="session")
def redis_auth_port() -> Iterator[int]:
    with servers.redis(password="s3cret") as port:
        yield port


@pytest.fixture(scope="session")
def mariadb_port() -> Iterator[int]:
    with servers.mariadb() as port:
        yield port


@pytest.fixture(scope="session")
def memcached_port() -> Iterator[int]:
    with servers.memcached() as port:
        yield port


def test_sshd(sshd_port: int) -> None:
    for expect in ("ssh", None):  # identified by what it says, whether or not it was expected
        info = probe(sshd_port, expect)
        assert (info.service, info.product) == ("ssh", "OpenSSH")
        assert info.evidence.startswith("SSH-2.0-OpenSSH_") and info.version


def test_nginx_http(nginx_ports: servers.NginxPorts) -> None:
    info = probe(nginx_ports.http, "http")
    assert (info.service, info.product) == ("http", "nginx")
    assert info.evidence.startswith("HTTP/1.1 200")
    assert info.version  # nginx/1.22.1 -> 1.22.1


def test_nginx_https_and_tls(nginx_ports: servers.NginxPorts) -> None:
    info = probe(nginx_ports.https, "https")
    assert (info.service, info.product) == ("https", "nginx")
    assert info.tls is not None
    assert info.tls.version == "TLSv1.3"
    assert info.tls.subject == "CN=good" and info.tls.issuer == "CN=good"
    assert 364 <= info.tls.days_left <= 365
    assert not info.tls.verified
    bare = probe(nginx_ports.https, "tls")  # what runs inside is named, whatever was expected
    assert bare.service == "https" and bare.tls is not None


def test_tls_versions_and_expiry(nginx_ports: servers.NginxPorts) -> None:
    old = probe(nginx_ports.https_tls12_only, "https")
    assert old.tls is not None and old.tls.version == "TLSv1.2"
    expiring = probe(nginx_ports.https_expiring, "https")
    assert expiring.tls is not None and expiring.tls.days_left == 3


def test_tls_verification_fails_for_self_signed(nginx_ports: servers.NginxPorts) -> None:
    [info] = identify_services([ProbeRequest("127.0.0.1", nginx_ports.https, "https", "localhost", True)])
    assert info.tls is None
    assert info.error is not None and "certificate verification failed" in info.error


def test_postgresql(postgresql_port: int) -> None:
    info = probe(postgresql_port, "postgresql")
    assert (info.service, info.product) == ("postgresql", "PostgreSQL")
    assert "SSLRequest answered N" in info.evidence


def test_mariadb(mariadb_port: int) -> None:
    for expect in ("mysql", None):
        info = probe(mariadb_port, expect)
        assert (info.service, info.product) == ("mysql", "MariaDB")
        assert info.version and info.version[0].isdigit()


def test_redis_with_and_without_auth(redis_open_port: int, redis_auth_port: int) -> None:
    open_info = probe(redis_open_port, "redis")
    assert (open_info.service, open_info.auth) == ("redis", "none")
    locked = probe(redis_auth_port, "redis")
    assert (locked.service, locked.auth) == ("redis", "required")
    assert locked.evidence.startswith("-NOAUTH")


@pytest.fixture(scope="session")
def memcached_auth_ports() -> Iterator[dict[str, int]]:
    with servers.memcached(auth="ascii") as ascii_auth, servers.memcached(auth="sasl") as sasl:
        yield {"ascii": ascii_auth, "sasl": sasl}


def test_memcached(memcached_port: int) -> None:
    info = probe(memcached_port, "memcached")
    assert (info.service, info.version) == ("memcached", "1.6.18") or info.service == "memcached"
    assert info.evidence.startswith("VERSION ")


@pytest.mark.parametrize("kind", ["ascii", "sasl"])
def test_memcached_with_authentication(memcached_auth_ports: dict[str, int], kind: str) -> None:
    # -Y: "CLIENT_ERROR unauthenticated" to version; -S: the text protocol is off, the binary one
    # answers its version and refuses a NOOP with "Auth failure."
    for expect in ("memcached", None):
        info = probe(memcached_auth_ports[kind], expect)
        assert (info.service, info.auth, info.exposed) == ("memcached", "required", False), info


def test_memcached_auth_through_the_plugin(
    pytester: pytest.Pytester, memcached_auth_ports: dict[str, int], memcached_port: int
) -> None:
    locked, sasl = memcached_auth_ports["ascii"], memcached_auth_ports["sasl"]
    pytester.makefile(
        ".yml",
        inventory=f"""
        hosts:
          cache:
            address: 127.0.0.1
            open:
              - {{port: {locked}, service: memcached, auth: required}}
              - {{port: {sasl}, service: memcached, auth: required}}
              - {{port: {memcached_port}, service: memcached, auth: required}}
          careless:
            address: localhost
            open:
              - {{port: {locked}, service: memcached, auth: none}}
        """,
    )
    result = pytester.runpytest("--portcheck", "inventory.yml", "-v", "-rf")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            f"*inventory.yml::cache::tcp/{locked}::open PASSED*",
            f"*inventory.yml::cache::tcp/{sasl}::open PASSED*",
            f"*tcp/{memcached_port}: memcached answers without authentication (auth: required)",
            f"*careless (127.0.0.1) tcp/{locked}: memcached requires authentication (auth: none was declared)",
        ]
    )


@pytest.fixture(scope="session")
def more_servers() -> Iterator[dict[str, int]]:
    """vsftpd, dovecot, slapd, mosquitto (anonymous and not), etcd and dnsmasq, started together."""
    with contextlib.ExitStack() as stack:
        yield {
            "ftp": stack.enter_context(servers.vsftpd()),
            "imap": stack.enter_context(servers.dovecot()),
            "ldap": stack.enter_context(servers.slapd()),
            "mqtt-open": stack.enter_context(servers.mosquitto(anonymous=True)),
            "mqtt-locked": stack.enter_context(servers.mosquitto(anonymous=False)),
            "etcd": stack.enter_context(servers.etcd()),
            "dns": stack.enter_context(servers.dnsmasq()),
        }


@pytest.mark.parametrize(
    ("name", "service", "product", "auth"),
    [
        ("ftp", "ftp", "vsFTPd", None),
        ("imap", "imap", "Dovecot", None),
        ("ldap", "ldap", None, None),
        ("mqtt-open", "mqtt", None, "none"),
        ("mqtt-locked", "mqtt", None, "required"),
        ("etcd", "etcd", "etcd", "none"),
        ("dns", "dns", "dnsmasq", None),
    ],
)
def test_more_real_servers_on_random_ports(
    more_servers: dict[str, int], name: str, service: str, product: str | None, auth: str | None
) -> None:
    info = probe(more_servers[name])
    assert (info.service, info.product, info.auth) == (service, product, auth), info
    if product in ("vsFTPd", "etcd", "dnsmasq"):
        assert info.version and info.version[0].isdigit()


def test_every_real_server_named_without_hints(
    sshd_port: int,
    nginx_ports: servers.NginxPorts,
    redis_open_port: int,
    redis_auth_port: int,
    postgresql_port: int,
    mariadb_port: int,
    memcached_port: int,
) -> None:
    """The issue's set: eight servers on random ports, nothing declared, all named with products."""
    ports = {
        sshd_port: ("ssh", "OpenSSH"), nginx_ports.http: ("http", "nginx"), nginx_ports.https: ("https", "nginx"),
        redis_open_port: ("redis", "Redis"), redis_auth_port: ("redis", "Redis"),
        postgresql_port: ("postgresql", "PostgreSQL"), mariadb_port: ("mysql", "MariaDB"),
        memcached_port: ("memcached", "memcached"),
    }  # fmt: skip
    found = identify_services([ProbeRequest("127.0.0.1", port) for port in ports])
    by_port = dict(zip(ports, found, strict=True))
    assert {port: (info.service, info.product) for port, info in by_port.items()} == ports
    assert by_port[redis_open_port].version and by_port[redis_open_port].auth == "none"
    assert by_port[redis_auth_port].auth == "required"
    assert not (by_port[mariadb_port].version or "").startswith("5.5.5")


def test_nginx_refuses_a_handshake_below_tls12(nginx_ports: servers.NginxPorts) -> None:
    [info] = identify_services([ProbeRequest("127.0.0.1", nginx_ports.https, "https", tls_floor="TLSv1.2")])
    assert info.tls is not None and info.tls.below_minimum == "refused"


# --- small Python peers: greeters and hostile servers ---------------------------------------------


def test_smtp_and_ftp_greetings(peer: Callable[[Behaviour], int]) -> None:
    smtp = peer(greeting(b"220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n"))
    ftp = peer(greeting(b"220 (vsFTPd 3.0.3)\r\n"))
    assert probe(smtp).service == "smtp"
    assert probe(ftp, "ftp").service == "ftp"
    assert probe(smtp, "ssh").service == "smtp"  # identified by content, not by what was expected


def silent(connection: socket.socket) -> None:
    time.sleep(10)


def streams_forever(connection: socket.socket) -> None:
    while True:
        connection.sendall(b"A" * 65536)


def trickles(connection: socket.socket) -> None:
    for byte in b"220 slowly\r\n":
        connection.sendall(bytes([byte]))
        time.sleep(1)


def closes_at_once(connection: socket.socket) -> None:
    connection.close()


def huge_line(connection: socket.socket) -> None:
    connection.sendall(b"B" * 1_000_000 + b"\r\n")


def hostile_banner(connection: socket.socket) -> None:
    connection.sendall(b"\x1b[2J\x1b]0;owned\x07\xe2\x80\xaeevil\xff\xfe\x00 <script>\r\n")


@pytest.mark.parametrize(
    ("behaviour", "service", "error_words"),
    [
        (silent, "unknown", "no banner within 1 s"),
        (streams_forever, "unknown", None),
        (trickles, "unknown", "partial answer"),
        (closes_at_once, "unknown", "closed the connection without a word"),
        (huge_line, "unknown", None),
        (hostile_banner, "unknown", None),
    ],
    ids=["silent", "streams-forever", "trickles", "closes-at-once", "1MB-line", "hostile-banner"],
)
def test_hostile_peers_end_in_time_with_a_verdict(
    peer: Callable[[Behaviour], int], behaviour: Behaviour, service: str, error_words: str | None
) -> None:
    port = peer(behaviour)
    started = time.monotonic()
    info = probe(port, timeout=2.0)
    assert time.monotonic() - started < 2.5
    assert info.service == service
    if error_words:
        assert info.error is not None and error_words in info.error
    assert len(info.evidence) <= 200
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u202e\ufeff" for c in info.evidence)


def test_neutralise() -> None:
    assert neutralise(b"\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m"
    assert neutralise(b"ok \xff") == "ok \\xff"
    assert neutralise("\u202egnp.exe") == "\\u202egnp.exe"
    assert neutralise("é ü 日本") == "é ü 日本"
    assert len(neutralise("x" * 500)) == 200


def test_classify_without_network() -> None:
    assert classify(b"SSH-2.0-dropbear_2022.83\r\n", None).product == "dropbear"
    assert (
        classify(b"HTTP/1.0 404 Not Found\r\nServer: Apache/2.4.57 (Debian)\r\n\r\n", None).version
        == "2.4.57"
    )
    greeting = b"\x0a8.0.36\x00" + b"\x00" * 20
    packet = len(greeting).to_bytes(3, "little") + b"\x00" + greeting
    assert (classify(packet, None).service, classify(packet, None).product) == ("mysql", "MySQL")
    assert classify(b"N", "postgresql").service == "postgresql"
    assert classify(b"N", None).service == "unknown"
    assert classify(b"", None).error is not None


# --- through the command and the plugin ---------------------------------------------------------


def test_command_banner_shows_services_and_writes_json(sshd_port: int, redis_auth_port: int) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest_portcheck", "scan", "127.0.0.1", "-p", f"{sshd_port},{redis_auth_port}",
         "--banner", "--json", "-"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert f"tcp/{sshd_port}" in completed.stderr and "ssh (OpenSSH" in completed.stderr
    report = json.loads(completed.stdout)
    probes = {r["port"]: r["probe"] for r in report["results"]}
    assert probes[sshd_port]["service"] == "ssh" and probes[sshd_port]["product"] == "OpenSSH"
    # not Redis's usual port: after the banner wait, the Redis probe names it
    assert (probes[redis_auth_port]["service"], probes[redis_auth_port]["auth"]) == ("redis", "required")


def test_inventory_service_checks(
    pytester: pytest.Pytester,
    sshd_port: int,
    nginx_ports: servers.NginxPorts,
    redis_open_port: int,
    redis_auth_port: int,
    postgresql_port: int,
    mariadb_port: int,
    memcached_port: int,
    tmp_path: Path,
) -> None:
    pytester.makefile(
        ".yml",
        inventory=f"""
        hosts:
          box:
            address: 127.0.0.1
            open:
              - {{port: {sshd_port}, service: ssh}}
              - {{port: {nginx_ports.http}, service: http}}
              - {{port: {nginx_ports.https}, service: https, tls: {{min_version: TLSv1.2, expires_in_days: 14}}}}
              - {{port: {nginx_ports.https_tls12_only}, service: https, tls: {{min_version: TLSv1.3}}}}
              - {{port: {nginx_ports.https_expiring}, service: tls, tls: {{expires_in_days: 14}}}}
              - {{port: {redis_auth_port}, service: redis, auth: required}}
              - {{port: {redis_open_port}, service: redis, auth: required}}
              - {{port: {postgresql_port}, service: postgresql}}
              - {{port: {mariadb_port}, service: mysql}}
              - {{port: {memcached_port}, service: memcached}}
        """,
    )
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest(
        "--portcheck", "inventory.yml", "-v", f"--junitxml={junit}", "--portcheck-report=r.json"
    )
    result.assert_outcomes(passed=7, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            f"*tcp/{nginx_ports.https_tls12_only}: TLS version TLSv1.2 is below the minimum TLSv1.3",
            f"*tcp/{nginx_ports.https_expiring}: certificate (CN=expiring) expires in 3 days (*), sooner than "
            "the 14 days required",
            f"*tcp/{redis_open_port}: Redis answers without authentication (auth: required)",
            "services found:",
            f"*box tcp/{sshd_port} 127.0.0.1 ssh (OpenSSH *",
        ]
    )
    root = ET.parse(junit).getroot()
    outcomes = [json.loads(str(p.get("value"))) for p in root.iter("property") if p.get("name") == "portcheck"]
    values = {" ".join(line.split(" ")[:2]) for outcome in outcomes for line in outcome.get("services", [])}
    assert "127.0.0.1 ssh" in values and "127.0.0.1 mysql" in values
    report = json.loads((pytester.path / "r.json").read_text())
    probed = {r["port"]: r["probe"]["service"] for r in report["results"] if "probe" in r}
    assert probed[postgresql_port] == "postgresql" and probed[memcached_port] == "memcached"


def test_wrong_service_fails_with_what_answered(
    pytester: pytest.Pytester, nginx_ports: servers.NginxPorts
) -> None:
    pytester.makefile(
        ".yml",
        inventory=f"hosts:\n  web:\n    address: 127.0.0.1\n    open:\n      - {{port: {nginx_ports.http}, service: ssh}}\n",
    )
    result = pytester.runpytest("--portcheck", "inventory.yml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        # SSH speaks first; nginx waits for a request, and gets one after the banner wait
        [f'web (127.0.0.1) tcp/{nginx_ports.http}: expected ssh, found http (nginx *) "HTTP/1.1 200 OK"']
    )


def test_hostile_banner_cannot_break_junit_or_the_terminal(
    pytester: pytest.Pytester, peer: Callable[[Behaviour], int], tmp_path: Path
) -> None:
    port = peer(hostile_banner)
    pytester.makefile(".yml", inventory=f"hosts:\n  evil:\n    address: 127.0.0.1\n    open: [{port}]\n")
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest("--portcheck", "inventory.yml", "--portcheck-banners", f"--junitxml={junit}")
    result.assert_outcomes(passed=1)
    output = result.stdout.str()
    assert "\x1b" not in output and "\u202e" not in output
    assert "\\x1b[2J" in output
    banners = [
        line
        for p in ET.parse(junit).getroot().iter("property")
        if p.get("name") == "portcheck"
        for line in json.loads(str(p.get("value"))).get("services", [])
    ]
    assert banners and "\\x1b" in banners[0]


def test_snapshot_banner_declares_every_identified_service(
    pytester: pytest.Pytester, redis_auth_port: int, memcached_port: int, nginx_ports: servers.NginxPorts
) -> None:
    spec = ",".join(map(str, sorted([redis_auth_port, memcached_port, nginx_ports.https])))
    snapshot = pytester.path / "inventory.yml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest_portcheck", "snapshot", "127.0.0.1", "-p", spec, "--banner", "-o", str(snapshot)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = snapshot.read_text()
    assert f"- {{port: {redis_auth_port}, service: redis, auth: required}}" in text
    assert f"- {{port: {memcached_port}, service: memcached}}  # memcached (memcached 1." in text
    assert "EXPOSED: no authentication" in text  # memcached answers anyone: noted, not declared
    assert f"- {{port: {nginx_ports.https}, service: https}}" in text
    pytester.runpytest("--portcheck", "inventory.yml").assert_outcomes(passed=4)


def test_only_open_names_what_answers_on_an_unexpected_port(
    pytester: pytest.Pytester, redis_open_port: int
) -> None:
    pytester.makefile(
        ".yml",
        inventory=f'hosts:\n  box:\n    address: 127.0.0.1\n    only_open: []\n    range: "{redis_open_port}/tcp"\n',
    )
    result = pytester.runpytest("--portcheck", "inventory.yml")  # no --portcheck-banners needed
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*1 unexpected open port(s) in tcp/{redis_open_port}: {redis_open_port} (redis 7.*, no auth)*"]
    )


def test_auth_required_beyond_redis(
    pytester: pytest.Pytester, more_servers: dict[str, int], memcached_port: int
) -> None:
    pytester.makefile(
        ".yml",
        inventory=f"""
        hosts:
          box:
            address: 127.0.0.1
            open:
              - {{port: {more_servers["mqtt-locked"]}, service: mqtt, auth: required}}
              - {{port: {more_servers["mqtt-open"]}, service: mqtt, auth: required}}
              - {{port: {more_servers["etcd"]}, service: etcd, auth: required}}
              - {{port: {memcached_port}, service: memcached, auth: required}}
          api:
            address: localhost
            open: [{{port: {more_servers["etcd"]}, service: http}}]  # etcd's API is HTTP
        """,
    )
    result = pytester.runpytest("--portcheck", "inventory.yml", "-v")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            f"*tcp/{more_servers['mqtt-open']}: mqtt answers without authentication (auth: required)",
            f"*tcp/{more_servers['etcd']}: etcd answers without authentication (auth: required)",
            f"*tcp/{memcached_port}: memcached answers without authentication (auth: required)",
        ]
    )


@pytest.mark.parametrize("order", ["verify first", "verify last"])
def test_tls_verify_is_checked_whoever_else_probes_the_port(
    pytester: pytest.Pytester, nginx_ports: servers.NginxPorts, order: str
) -> None:
    # Two inventories meet on one port: one asks for verification (the self-signed certificate must
    # fail it), the other only for an https service (which must pass), in either flag order.
    https = nginx_ports.https
    pytester.makefile(
        ".yml",
        strict=f"hosts:\n  vouched:\n    address: 127.0.0.1\n    open:\n"
        f"      - {{port: {https}, service: https, tls: {{verify: true, expires_in_days: 14}}}}\n",
        lax=f"hosts:\n  internal:\n    address: 127.0.0.1\n    open:\n"
        f"      - {{port: {https}, service: https, tls: {{expires_in_days: 14}}}}\n",
    )
    files = ["strict.yml", "lax.yml"] if order == "verify first" else ["lax.yml", "strict.yml"]
    xdist = ["-n", "2"] if order == "verify last" else []  # the merged answer also travels between workers
    result = pytester.runpytest_subprocess(*(f"--portcheck={name}" for name in files), "-v", *xdist)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random(
        [
            f"FAILED strict.yml::vouched::tcp/{https}::open - *",  # so internal is the one that passed
            f"vouched (127.0.0.1) tcp/{https}: TLS verification failed: certificate verification failed*",
        ]
    )


SNI_SERVER = """
import socket, ssl, sys, threading
folder, port = sys.argv[1], int(sys.argv[2])
default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
default.load_cert_chain(f"{folder}/good.crt", f"{folder}/good.key")
expiring = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
expiring.load_cert_chain(f"{folder}/expiring.crt", f"{folder}/expiring.key")
def choose(connection, name, _context):
    if name == "b.test":
        connection.context = expiring
default.sni_callback = choose
listener = socket.create_server(("127.0.0.1", port))
print("ready", flush=True)
def serve(client):
    try:
        with default.wrap_socket(client, server_side=True) as tls:
            tls.recv(1)
    except OSError:
        pass
while True:
    client, _ = listener.accept()
    threading.Thread(target=serve, args=(client,), daemon=True).start()
"""


def test_names_with_different_certificates_on_one_address_are_not_judged_on_one(
    netns: Namespace, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    # Name-based virtual hosts: b.test's certificate expires in 3 days, a.test's in a year. Probing the
    # port once (under whichever name came last) would pass b.test on a.test's certificate.
    servers.make_certificate(tmp_path, "good", 365)
    servers.make_certificate(tmp_path, "expiring", 3)
    netns.add_hosts("127.0.0.1 a.test\n127.0.0.1 b.test\n")
    server = netns.popen(sys.executable, "-c", SNI_SERVER, str(tmp_path), "8443")
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        pytester.makefile(
            ".yml",
            inventory="hosts:\n"
            "  b.test:\n    open:\n      - {port: 8443, service: tls, tls: {expires_in_days: 14}}\n"
            "  a.test:\n    open:\n      - {port: 8443, service: tls, tls: {expires_in_days: 14}}\n",
        )
        command = [
            "ip",
            "netns",
            "exec",
            netns.name,
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
        ]
        result = pytester.run(*command, "--portcheck", "inventory.yml", "-rf", timeout=120)
    finally:
        server.kill()
        server.wait()
    outcomes = result.parseoutcomes()
    assert (
        outcomes.get("failed", 0) >= 1
        and "FAILED inventory.yml::b.test::tcp/8443::open" in result.stdout.str()
    )
    result.stdout.fnmatch_lines(["*b.test (127.0.0.1) tcp/8443: *the answer depends on the name asked for*"])
