"""MQTT: a CONNECT without user name or password (MQTT 3.1.1, clean session); the CONNACK's return
code says whether the broker lets anyone in (0) or wants credentials (4, 5). No guessed credentials.
"""

from __future__ import annotations

from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.probes.spec import ProtocolProbe

_CLIENT_ID = b"portcheck"
_VARIABLE = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4 (3.1.1), clean session, keep-alive 10 s
CONNECT = (
    bytes([0x10, len(_VARIABLE) + 2 + len(_CLIENT_ID)])
    + _VARIABLE
    + len(_CLIENT_ID).to_bytes(2, "big")
    + _CLIENT_ID
)
_CODES = {0: "accepted", 1: "unacceptable protocol version", 2: "client id rejected", 3: "server unavailable",
          4: "bad user name or password", 5: "not authorized"}  # fmt: skip


def classify(data: bytes) -> ServiceInfo | None:
    if len(data) < 4 or data[0] != 0x20 or data[1] != 0x02 or data[3] not in _CODES:
        return None
    code = data[3]
    auth = "none" if code == 0 else "required" if code in (4, 5) else None
    return ServiceInfo("mqtt", f"CONNACK {code} ({_CODES[code]})", auth=auth)


PROBE = ProtocolProbe(
    "mqtt", classify, frozenset({1883}), lambda _: CONNECT, lambda data: len(data) >= 4, rarity=4
)
