"""LDAP: an anonymous search of the root DSE (base ``""``, scope base), the metadata every directory
publishes; no bind, so no credentials. Any LDAPMessage answer names the protocol; ``vendorName`` and
``vendorVersion`` name the product where the directory publishes them.
"""

from __future__ import annotations

import re

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe

_ATTRIBUTES = (b"supportedLDAPVersion", b"vendorName", b"vendorVersion")


def _ber(tag: int, content: bytes) -> bytes:
    assert len(content) < 0x80 * 0x100  # the request is small: short or one-byte-long lengths
    length = bytes([len(content)]) if len(content) < 0x80 else bytes([0x81, len(content)])
    return bytes([tag]) + length + content


def request(_: str) -> bytes:
    search = (
        _ber(0x04, b"") + _ber(0x0A, b"\x00") + _ber(0x0A, b"\x00") + _ber(0x02, b"\x00")
        + _ber(0x02, b"\x00") + _ber(0x01, b"\x00") + _ber(0x87, b"objectClass")
        + _ber(0x30, b"".join(_ber(0x04, name) for name in _ATTRIBUTES))
    )  # fmt: skip
    return _ber(0x30, _ber(0x02, b"\x01") + _ber(0x63, search))


def _message_length(data: bytes) -> int | None:
    """Bytes of the first BER element (tag, length, content), or None when not yet known."""
    if len(data) < 2:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _operation(data: bytes) -> int | None:
    """The protocolOp tag of an LDAPMessage with messageID 1, or None."""
    if data[:1] != b"\x30" or len(data) < 2:
        return None
    at = 2 + (data[1] & 0x7F if data[1] >= 0x80 else 0)
    if data[at : at + 3] != b"\x02\x01\x01" or len(data) <= at + 3:
        return None
    return data[at + 3]


def complete(data: bytes) -> bool:
    """The search is done (0x65 after the entry) or the first message is whole and not an entry."""
    length = _message_length(data)
    if length is None or length > len(data):
        return False
    return _operation(data) != 0x64 or (_operation(data[length:]) is not None and b"\x65" in data[length:])


def _value(data: bytes, name: bytes) -> str | None:
    match = re.search(re.escape(name) + rb"1[\x00-\x7f]\x04([\x00-\x7f])", data)
    if match is None:
        return None
    start = match.end()
    return neutralise(data[start : start + match.group(1)[0]], 60)


def classify(data: bytes) -> ServiceInfo | None:
    operation = _operation(data)
    if operation not in (0x64, 0x65, 0x61, 0x78):  # search entry / done, bind or extended response
        return None
    versions = _value(data, b"supportedLDAPVersion")
    evidence = f"root DSE answered (LDAPv{versions})" if versions else "answered an anonymous root DSE search"
    return ServiceInfo("ldap", evidence, _value(data, b"vendorName"), _value(data, b"vendorVersion"))


PROBE = ProtocolProbe("ldap", classify, frozenset({389, 3268}), request, complete, rarity=4)
