"""DNS over TCP: a ``version.bind`` TXT query in the CHAOS class (no recursion asked for); any answer
with our query id and the response bit names DNS, and the TXT text often names the server
(``dnsmasq-2.90``, ``9.18.19-1~deb12u1-Debian`` for BIND).
"""

from __future__ import annotations

import re
import struct

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe

QUERY_ID = 0x5043
_QUESTION = b"\x07version\x04bind\x00" + struct.pack("!HH", 16, 3)  # TXT, CHAOS
_MESSAGE = struct.pack("!HHHHHH", QUERY_ID, 0, 1, 0, 0, 0) + _QUESTION
QUERY = struct.pack("!H", len(_MESSAGE)) + _MESSAGE
_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


def complete(data: bytes) -> bool:
    return len(data) >= 2 and len(data) >= 2 + int.from_bytes(data[:2], "big")


def _txt(message: bytes) -> str | None:
    """The first TXT string of the first answer, when the answer follows our question verbatim."""
    at = 12 + len(_QUESTION)
    if message[12:at].lower() != _QUESTION or struct.unpack_from("!H", message, 6)[0] < 1:
        return None
    if message[at : at + 2] == b"\xc0\x0c":
        at += 2
    else:
        return None
    if len(message) < at + 11:
        return None
    kind, _, _, length = struct.unpack_from("!HHIH", message, at)
    text_length = message[at + 10]
    return neutralise(message[at + 11 : at + 11 + min(text_length, length - 1)], 60) if kind == 16 else None


def classify(data: bytes) -> ServiceInfo | None:
    if len(data) < 14:
        return None
    message = data[2 : 2 + int.from_bytes(data[:2], "big")]
    if len(message) < 12:
        return None
    query_id, flags = struct.unpack_from("!HH", message)
    if query_id != QUERY_ID or not flags & 0x8000:
        return None
    rcode = _RCODES.get(flags & 0xF, str(flags & 0xF))
    text = _txt(message)
    product = version = None
    if text:
        match = re.match(r"([A-Za-z][\w]*)[-/ ](\d[\w.]*)", text)
        product, version = (match.group(1), match.group(2)) if match else ("BIND", text.split("-")[0])
    return ServiceInfo("dns", f"version.bind CH TXT: {text or rcode}", product, version)


PROBE = ProtocolProbe("dns", classify, frozenset({53, 5353}), lambda _: QUERY, complete, rarity=5)
