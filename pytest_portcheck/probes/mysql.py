"""MySQL and MariaDB: the server speaks first with a greeting packet naming its version.

MariaDB prefixes its real version with ``5.5.5-`` (for clients that once refused a major version 10):
``5.5.5-10.11.6-MariaDB-0+deb12u1`` is MariaDB 10.11.6.
"""

from __future__ import annotations

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe

_MARIADB_PREFIX = "5.5.5-"


def packet_complete(data: bytes) -> bool:
    return len(data) >= 4 and 4 + int.from_bytes(data[:3], "little") <= len(data)


def product_version(server: str) -> tuple[str, str]:
    """``5.5.5-10.11.6-MariaDB-0+deb12u1`` -> (MariaDB, 10.11.6); ``8.0.36`` -> (MySQL, 8.0.36)."""
    product = "MariaDB" if "MariaDB" in server else "MySQL"
    if product == "MariaDB" and server.startswith(_MARIADB_PREFIX):
        server = server[len(_MARIADB_PREFIX) :]
    return product, server.split("-", 1)[0]


def classify(data: bytes) -> ServiceInfo | None:
    if len(data) < 6 or data[3] != 0:
        return None
    length = int.from_bytes(data[:3], "little")
    if length + 4 < len(data) or length < 2:
        return None
    body = data[4 : 4 + length]
    if body[0] == 0x0A and b"\x00" in body[1:]:
        server = body[1 : body.index(b"\x00", 1)].decode("ascii", errors="replace")
        product, version = product_version(server)
        return ServiceInfo(
            "mysql", neutralise(f"protocol 10, server {server}"), product, neutralise(version, 40)
        )
    if body[0] == 0xFF and len(body) > 3:  # an error packet: "Host ... is not allowed to connect"
        message = body[3:].lstrip(b"#").decode("utf-8", errors="backslashreplace")
        return ServiceInfo("mysql", neutralise(f"error packet: {message}"), "MySQL")
    return None


PROBE = ProtocolProbe("mysql", classify, frozenset({3306}), complete=packet_complete, rarity=1)
