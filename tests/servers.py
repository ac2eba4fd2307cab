"""Real servers from Debian packages, started as children of the tests on free loopback ports.

Each starts in a temporary folder of its own and is stopped afterwards. A missing program makes the
test skip with the package to install, or fail when PORTCHECK_REQUIRE_SERVERS=1 (as in CI).
"""

from __future__ import annotations

import datetime
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import skip_or_fail, unused_port

POSTGRES_BIN = Path("/usr/lib/postgresql")


def require(program: str, package: str) -> str:
    found = shutil.which(program) or (program if os.path.isabs(program) and os.path.exists(program) else None)
    if found is None:
        skip_or_fail(f"{program} is missing: apt-get install {package}", "PORTCHECK_REQUIRE_SERVERS")
    assert found is not None
    return found


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}"
            )
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(
        f"server did not listen on {port} within {seconds} s: {log.read_text(errors='replace')[-2000:]}"
    )


@contextmanager
def running(
    command: Sequence[str],
    port: int,
    folder: Path,
    user: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[int]:
    log = folder / "server.log"
    with log.open("wb") as output:
        prefix = ["runuser", "-u", user, "--"] if user else []
        process = subprocess.Popen(
            [*prefix, *command], stdout=output, stderr=subprocess.STDOUT, cwd=folder,
            env=None if env is None else {**os.environ, **env},
        )  # fmt: skip
    try:
        wait_for_port(port, process, log)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def workdir(owner: str | None = None) -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root, and some servers drop privileges.
    folder = Path(tempfile.mkdtemp(prefix="portcheck-server-", dir="/tmp"))
    folder.chmod(0o755)
    if owner:
        shutil.chown(folder, owner, owner)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def sshd() -> Iterator[int]:
    daemon = require("/usr/sbin/sshd", "openssh-server")
    keygen = require("ssh-keygen", "openssh-client")
    with workdir() as folder:
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key")], check=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        port = unused_port()
        command = [
            daemon, "-D", "-e", "-f", "/dev/null", "-o", f"Port={port}", "-o", "ListenAddress=127.0.0.1",
            "-o", f"HostKey={folder / 'host_key'}", "-o", "PidFile=none", "-o", "UsePAM=no",
        ]  # fmt: skip
        with running(command, port, folder) as ready:
            yield ready


@dataclass(frozen=True)
class NginxPorts:
    http: int
    https: int
    https_tls12_only: int
    https_expiring: int


def make_certificate(folder: Path, name: str, days: int, dns_names: Sequence[str] = ()) -> tuple[Path, Path]:
    """A self-signed certificate (CN=``name``); ``dns_names`` go in its subjectAltName, so that a
    client trusting it (SSL_CERT_FILE) verifies it under those names and no other."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days, hours=1))
    )
    if dns_names:
        names = x509.SubjectAlternativeName([x509.DNSName(dns) for dns in dns_names])
        builder = builder.add_extension(names, critical=False)
    certificate = builder.sign(key, hashes.SHA256())
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@contextmanager
def nginx() -> Iterator[NginxPorts]:
    program = require("nginx", "nginx-light")
    with workdir() as folder:
        good = make_certificate(folder, "good", 365)
        expiring = make_certificate(folder, "expiring", 3)
        ports = NginxPorts(unused_port(), unused_port(), unused_port(), unused_port())
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (folder / name).mkdir()

        def tls_server(port: int, cert: tuple[Path, Path], protocols: str) -> str:
            return (
                f"server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {cert[0]}; "
                f"ssl_certificate_key {cert[1]}; ssl_protocols {protocols}; "
                f'location / {{ return 200 "ok"; }} }}'
            )

        (folder / "nginx.conf").write_text(
            f"""
            user root; daemon off; worker_processes 1; pid {folder}/nginx.pid;
            error_log {folder}/error.log;
            events {{ worker_connections 256; }}
            http {{
              access_log off;
              client_body_temp_path {folder}/body; proxy_temp_path {folder}/proxy;
              fastcgi_temp_path {folder}/fastcgi; uwsgi_temp_path {folder}/uwsgi; scgi_temp_path {folder}/scgi;
              server {{ listen 127.0.0.1:{ports.http}; location / {{ return 200 "ok"; }} }}
              {tls_server(ports.https, good, "TLSv1.2 TLSv1.3")}
              {tls_server(ports.https_tls12_only, good, "TLSv1.2")}
              {tls_server(ports.https_expiring, expiring, "TLSv1.2 TLSv1.3")}
            }}
            """
        )
        command = [program, "-p", str(folder), "-c", str(folder / "nginx.conf")]
        with running(command, ports.https_expiring, folder):
            yield ports


@contextmanager
def postgresql() -> Iterator[int]:
    versions = sorted(POSTGRES_BIN.glob("*/bin/postgres")) if POSTGRES_BIN.exists() else []
    if not versions:
        skip_or_fail("PostgreSQL is missing: apt-get install postgresql", "PORTCHECK_REQUIRE_SERVERS")
    binaries = versions[-1].parent
    with workdir("postgres") as folder:
        data = folder / "data"
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(binaries / "initdb"), "-D", str(data), "-A", "trust",
             "--no-sync", "-U", "postgres"],
            check=True, capture_output=True,
        )  # fmt: skip
        port = unused_port()
        command = [
            str(binaries / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
        ]  # fmt: skip
        with running(command, port, folder, user="postgres") as ready:
            yield ready


@contextmanager
def redis(password: str | None = None) -> Iterator[int]:
    program = require("redis-server", "redis-server")
    with workdir() as folder:
        port = unused_port()
        command = [program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", str(folder)]  # fmt: skip
        if password:
            command += ["--requirepass", password]
        with running(command, port, folder) as ready:
            yield ready


@contextmanager
def mariadb() -> Iterator[int]:
    server = require("mariadbd", "mariadb-server")
    installer = require("mariadb-install-db", "mariadb-server")
    with workdir() as folder:
        data = folder / "data"
        subprocess.run(
            [installer, "--no-defaults", f"--datadir={data}", "--user=root", "--skip-test-db",
             "--auth-root-authentication-method=normal"],
            check=True, capture_output=True,
        )  # fmt: skip
        port = unused_port()
        command = [
            server, "--no-defaults", f"--datadir={data}", f"--port={port}", "--bind-address=127.0.0.1",
            f"--socket={folder / 'mysqld.sock'}", "--user=root", f"--pid-file={folder / 'mysqld.pid'}",
            "--skip-log-bin", "--innodb-buffer-pool-size=16M",
        ]  # fmt: skip
        with running(command, port, folder) as ready:
            yield ready


@contextmanager
def memcached(auth: str | None = None) -> Iterator[int]:
    """memcached; ``auth="ascii"``: ``-Y authfile`` (the text protocol asks for a user and password
    first), ``auth="sasl"``: ``-S`` (binary protocol only, SASL; Cyrus SASL reads its configuration
    from SASL_CONF_PATH)."""
    program = require("memcached", "memcached")
    with workdir() as folder:
        port = unused_port()
        command = [program, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-u", "root"]
        env = None
        if auth == "ascii":
            (folder / "authfile").write_text("portcheck:unused-in-tests\n")
            command += ["-Y", str(folder / "authfile")]
        elif auth == "sasl":
            (folder / "memcached.conf").write_text(f"mech_list: plain\nsasldb_path: {folder / 'sasldb2'}\n")
            command += ["-S"]
            env = {"SASL_CONF_PATH": str(folder)}
        with running(command, port, folder, env=env) as ready:
            yield ready


@contextmanager
def vsftpd() -> Iterator[int]:
    program = require("vsftpd", "vsftpd")
    with workdir() as folder:
        port = unused_port()
        empty = folder / "empty"
        empty.mkdir(mode=0o755)
        (folder / "vsftpd.conf").write_text(
            f"listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n"
            # vsftpd refuses to start with no way in; the probes never log in
            f"anonymous_enable=YES\nanon_root={empty}\nlocal_enable=NO\nsecure_chroot_dir={empty}\n"
            "seccomp_sandbox=NO\n"
            f"vsftpd_log_file={folder / 'vsftpd.log'}\n"
        )
        with running([program, str(folder / "vsftpd.conf")], port, folder) as ready:
            yield ready


@contextmanager
def dovecot() -> Iterator[int]:
    program = require("/usr/sbin/dovecot", "dovecot-imapd")
    with workdir() as folder:
        port = unused_port()
        (folder / "run").mkdir()
        (folder / "dovecot.conf").write_text(
            f"""
            protocols = imap
            listen = 127.0.0.1
            base_dir = {folder / "run"}
            state_dir = {folder}
            log_path = {folder / "dovecot.log"}
            ssl = no
            mail_location = maildir:{folder}/mail/%u
            passdb {{
              driver = static
              args = password=unused-in-tests
            }}
            userdb {{
              driver = static
              args = uid=nobody gid=nogroup home={folder}/home/%u
            }}
            service imap-login {{
              inet_listener imap {{
                address = 127.0.0.1
                port = {port}
              }}
              inet_listener imaps {{
                port = 0
              }}
            }}
            """
        )
        with running([program, "-F", "-c", str(folder / "dovecot.conf")], port, folder) as ready:
            yield ready


@contextmanager
def slapd() -> Iterator[int]:
    program = require("/usr/sbin/slapd", "slapd")
    with workdir() as folder:
        port = unused_port()
        (folder / "slapd.conf").write_text(
            f"include /etc/ldap/schema/core.schema\npidfile {folder / 'slapd.pid'}\n"
            f"argsfile {folder / 'slapd.args'}\n"
        )
        command = [program, "-d", "0", "-h", f"ldap://127.0.0.1:{port}/", "-f", str(folder / "slapd.conf")]
        with running(command, port, folder) as ready:
            yield ready


@contextmanager
def mosquitto(anonymous: bool) -> Iterator[int]:
    program = require("/usr/sbin/mosquitto", "mosquitto")
    with workdir() as folder:
        port = unused_port()
        (folder / "mosquitto.conf").write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous {'true' if anonymous else 'false'}\npersistence false\n"
        )
        with running([program, "-c", str(folder / "mosquitto.conf")], port, folder) as ready:
            yield ready


@contextmanager
def etcd() -> Iterator[int]:
    program = require("etcd", "etcd-server")
    with workdir() as folder:
        port, peer_port = unused_port(), unused_port()
        client, peer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{peer_port}"
        command = [
            program, "--name", "portcheck", "--data-dir", str(folder / "data"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"portcheck={peer}", "--log-level", "warn",
        ]  # fmt: skip
        with running(command, port, folder) as ready:
            yield ready


@contextmanager
def dnsmasq() -> Iterator[int]:
    program = require("/usr/sbin/dnsmasq", "dnsmasq-base")
    with workdir() as folder:
        port = unused_port()
        command = [
            program, "--keep-in-foreground", "--conf-file=/dev/null", f"--port={port}",
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            f"--pid-file={folder / 'dnsmasq.pid'}", "--user=root", "--log-facility=-",
        ]  # fmt: skip
        with running(command, port, folder) as ready:
            yield ready
