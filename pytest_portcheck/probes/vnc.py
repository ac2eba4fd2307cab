"""VNC (RFB): the server speaks first with ``RFB 003.008``; the protocol version is the product's."""

from __future__ import annotations

import re

from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.probes.spec import ProtocolProbe

_VERSION = re.compile(rb"^RFB (\d{3})\.(\d{3})\n")


def classify(data: bytes) -> ServiceInfo | None:
    match = _VERSION.match(data)
    if match is None:
        return None
    version = f"{int(match.group(1))}.{int(match.group(2))}"
    return ServiceInfo("vnc", f"RFB {version}", "RFB", version)


PROBE = ProtocolProbe("vnc", classify, frozenset(range(5900, 5910)), rarity=4)
