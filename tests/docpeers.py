"""The services the documentation's examples scan, started by tests/test_docs.py inside a page's namespace.

    python docpeers.py KIND ADDRESS:PORT [KIND ADDRESS:PORT ...]

KIND is one of ``tcp`` (accepts, says nothing), ``ssh`` (greets as OpenSSH 9.2p1 does), ``http`` (answers
every request as nginx 1.22.1), ``https`` (the same inside TLS 1.2 or 1.3, with a self-signed certificate
valid for 90 days), ``redis`` (a Redis 7.0.15 without a password), ``redis-auth`` (one that asks for a
password) and ``udp`` (echoes each datagram). ADDRESS may be an IPv6 address in brackets.

It binds every socket, prints ``ready`` and serves until its standard input closes, so it never outlives
the test that started it. Standard library only, except ``cryptography`` for the certificate.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

SSH_BANNER = b"SSH-2.0-OpenSSH_9.2p1\r\n"
HTTP_ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: 6\r\n"
    b"Connection: close\r\n\r\nhello\n"
)
REDIS_INFO = b"# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n"
NOAUTH = b"-NOAUTH Authentication required.\r\n"

Serve = Callable[[socket.socket], None]


def read_request(connection: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data and len(data) < 65536:
        chunk = connection.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def serve_tcp(connection: socket.socket) -> None:
    read_request(connection, b"\0never")  # until the scanner closes


def serve_ssh(connection: socket.socket) -> None:
    connection.sendall(SSH_BANNER)
    read_request(connection, b"\n")


def serve_http(connection: socket.socket) -> None:
    if read_request(connection, b"\r\n\r\n"):
        connection.sendall(HTTP_ANSWER)


def serve_redis(password: bool) -> Serve:
    def serve(connection: socket.socket) -> None:
        request = read_request(connection, b"\r\n")
        answers = []
        for command in (b"PING", b"INFO"):
            if command not in request.upper():
                continue
            if password:
                answers.append(NOAUTH)
            elif command == b"PING":
                answers.append(b"+PONG\r\n")
            else:
                answers.append(b"$%d\r\n%s\r\n" % (len(REDIS_INFO), REDIS_INFO))
        connection.sendall(b"".join(answers) or b"-ERR unknown command\r\n")
        read_request(connection, b"\0never")

    return serve


def tls_context(folder: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def serve_https(context: ssl.SSLContext) -> Serve:
    def serve(connection: socket.socket) -> None:
        with context.wrap_socket(connection, server_side=True) as wrapped:
            serve_http(wrapped)

    return serve


def split_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def bind(kind: int, address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    return sock


def accept_forever(listener: socket.socket, serve: Serve) -> None:
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=handle, args=(connection, serve), daemon=True).start()


def handle(connection: socket.socket, serve: Serve) -> None:
    # Scanners reset their connections, and a TLS probe may give up half way.
    with connection, contextlib.suppress(OSError, ssl.SSLError):
        connection.settimeout(10)
        serve(connection)


def echo_forever(sock: socket.socket) -> None:
    while True:
        data, peer = sock.recvfrom(4096)
        sock.sendto(data or b"echo", peer)


def main(arguments: list[str]) -> None:
    if len(arguments) % 2:
        sys.exit("usage: docpeers.py KIND ADDRESS:PORT [KIND ADDRESS:PORT ...]")
    folder = Path(tempfile.mkdtemp(prefix="docpeers-"))
    serves: dict[str, Callable[[], Serve]] = {
        "tcp": lambda: serve_tcp,
        "ssh": lambda: serve_ssh,
        "http": lambda: serve_http,
        "https": lambda: serve_https(tls_context(folder)),
        "redis": lambda: serve_redis(password=False),
        "redis-auth": lambda: serve_redis(password=True),
    }
    workers: list[threading.Thread] = []
    for kind, where in zip(arguments[::2], arguments[1::2], strict=True):
        address, port = split_address(where)
        if kind == "udp":
            workers.append(
                threading.Thread(target=echo_forever, args=(bind(socket.SOCK_DGRAM, address, port),))
            )
        elif kind in serves:
            listener = bind(socket.SOCK_STREAM, address, port)
            listener.listen(128)
            workers.append(threading.Thread(target=accept_forever, args=(listener, serves[kind]())))
        else:
            sys.exit(f"docpeers.py: unknown kind {kind!r} (known: udp, {', '.join(serves)})")
    for worker in workers:
        worker.daemon = True
        worker.start()
    print("ready", flush=True)
    sys.stdin.read()  # the test closes it when the page is done


if __name__ == "__main__":
    main(sys.argv[1:])
