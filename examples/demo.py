"""The quick-start demo: start the example's own services on loopback, then check the inventory.

    python examples/demo.py [PYTEST ARGS...]     e.g. -v, -n 2, --portcheck-report report.json

The services live as long as this script, on 127.0.0.1: two plain TCP listeners (the "web" ports), a
TCP service that greets like an SSH server (so the inventory can say `service: ssh`), and a UDP echo
service. pytest runs as a child process against ``examples/inventory.yml``, so xdist workers see the
same services.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLAIN_TCP = (28080, 28443)
GREETING_TCP = (28022, b"SSH-2.0-OpenSSH_9.2p1 portcheck-demo\r\n")
ECHO_UDP = 28053


def bind(kind: int, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    if kind == socket.SOCK_STREAM:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sys.exit(f"demo: 127.0.0.1:{port} is needed but cannot be bound: {exc.strerror}")
    return sock


def greet(listener: socket.socket, banner: bytes) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return  # closed at exit
        try:
            connection.sendall(banner)
        except OSError:
            pass  # the scan's own connection resets at once
        finally:
            connection.close()


def echo(sock: socket.socket) -> None:
    while True:
        try:
            data, peer = sock.recvfrom(4096)
            sock.sendto(data or b"echo", peer)
        except OSError:
            return


def start_services() -> list[socket.socket]:
    sockets = []
    for port in PLAIN_TCP:
        listener = bind(socket.SOCK_STREAM, port)
        listener.listen(128)
        sockets.append(listener)
    port, banner = GREETING_TCP
    greeter = bind(socket.SOCK_STREAM, port)
    greeter.listen(128)
    sockets.append(greeter)
    threading.Thread(target=greet, args=(greeter, banner), daemon=True).start()
    udp = bind(socket.SOCK_DGRAM, ECHO_UDP)
    sockets.append(udp)
    threading.Thread(target=echo, args=(udp,), daemon=True).start()
    return sockets


def main() -> int:
    sockets = start_services()
    ports = [*map(str, PLAIN_TCP), f"{GREETING_TCP[0]} (ssh-like)", f"{ECHO_UDP}/udp (echo)"]
    print(f"demo: serving on 127.0.0.1: {', '.join(ports)}", flush=True)
    try:
        command = [sys.executable, "-m", "pytest", "--portcheck", str(HERE / "inventory.yml"), *sys.argv[1:]]
        return subprocess.call(command, cwd=HERE.parent)
    finally:
        for sock in sockets:
            sock.close()


if __name__ == "__main__":
    sys.exit(main())
