"""The quick-start demo: start the example's own services on loopback, then check the inventory.

    python examples/demo.py [PYTEST ARGS...]     e.g. -v, -n 2, --portcheck-report report.json

The services are plain TCP listeners on 127.0.0.1 that live as long as this script; pytest runs as a
child process against ``examples/inventory.yml``, so xdist workers see the same services.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_PORTS = (28080, 28443, 28022)


def start_listeners() -> list[socket.socket]:
    listeners = []
    for port in DEMO_PORTS:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("127.0.0.1", port))
        except OSError as exc:
            sys.exit(f"demo: 127.0.0.1:{port} is needed but cannot be bound: {exc.strerror}")
        listener.listen(128)
        listeners.append(listener)
    return listeners


def main() -> int:
    listeners = start_listeners()
    print(f"demo: listening on 127.0.0.1 ports {', '.join(map(str, DEMO_PORTS))}", flush=True)
    try:
        command = [sys.executable, "-m", "pytest", "--portcheck", str(HERE / "inventory.yml"), *sys.argv[1:]]
        return subprocess.call(command, cwd=HERE.parent)
    finally:
        for listener in listeners:
            listener.close()


if __name__ == "__main__":
    sys.exit(main())
