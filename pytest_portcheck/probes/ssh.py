"""SSH: the server speaks first (``SSH-2.0-OpenSSH_9.2p1 Debian-2``); product and version from it."""

from __future__ import annotations

import re

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe

_SOFTWARE = re.compile(rb"^SSH-[\d.]+-([A-Za-z]+)[_-]?([\w.]*)")


def first_line(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0].rstrip(b"\r")


def classify(data: bytes) -> ServiceInfo | None:
    if not data.startswith(b"SSH-"):
        return None
    match = _SOFTWARE.match(data)
    product, version = (match.group(1).decode(), match.group(2).decode() or None) if match else (None, None)
    return ServiceInfo("ssh", neutralise(first_line(data)), product, version)


PROBE = ProtocolProbe("ssh", classify, frozenset({22, 2222}), rarity=1)
