"""PostgreSQL: the SSLRequest message, answered ``S`` (TLS offered) or ``N``, one byte.

That byte alone says little, so it counts only as the answer to this probe's own request. The version
is not read: the server states it only after a login.
"""

from __future__ import annotations

import struct

from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.probes.spec import ProtocolProbe

SSL_REQUEST = struct.pack("!II", 8, 80877103)


def classify(data: bytes) -> ServiceInfo | None:
    if data in (b"S", b"N"):
        offered = "yes" if data == b"S" else "no"
        return ServiceInfo("postgresql", f"SSLRequest answered {data.decode()} (TLS {offered})", "PostgreSQL")
    if data.startswith(b"E") and b"SFATAL" in data[:64]:  # an error response: still PostgreSQL
        return ServiceInfo("postgresql", "SSLRequest answered with an error", "PostgreSQL")
    return None


PROBE = ProtocolProbe(
    "postgresql", classify, frozenset({5432}), lambda _: SSL_REQUEST, lambda data: len(data) >= 1, rarity=2
)
