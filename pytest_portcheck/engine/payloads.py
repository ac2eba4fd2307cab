"""What a UDP probe sends: a request the usual service on that port answers, or an empty datagram.

UDP has no handshake: a port only proves open by replying, and most services ignore a datagram they
cannot parse. These are minimal, well-formed requests (bytes only: the engine does not parse replies,
any reply counts).
Must not import pytest, yaml or anything outside the engine.
"""

from __future__ import annotations

import struct


def _tlv(tag: int, value: bytes) -> bytes:
    """One BER element (lengths under 128 bytes, which is all these requests need)."""
    return bytes([tag, len(value)]) + value


def _dns_query() -> bytes:
    # ID, flags (recursion desired), one question: the root zone's NS records, class IN.
    return struct.pack("!HHHHHH", 0x7063, 0x0100, 1, 0, 0, 0) + b"\x00" + struct.pack("!HH", 2, 1)


def _snmp_get() -> bytes:
    # SNMPv2c get-request, community "public", for sysDescr.0 (1.3.6.1.2.1.1.1.0).
    binding = _tlv(0x30, _tlv(0x06, bytes([0x2B, 6, 1, 2, 1, 1, 1, 0])) + b"\x05\x00")
    pdu = _tlv(
        0xA0,
        _tlv(0x02, b"\x70\x63\x00\x01") + _tlv(0x02, b"\x00") + _tlv(0x02, b"\x00") + _tlv(0x30, binding),
    )
    return _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x04, b"public") + pdu)


NTP_CLIENT_REQUEST = b"\x1b" + b"\x00" * 47  # version 3, client mode
MEMCACHED_STATS = struct.pack("!HHHH", 0x7063, 0, 1, 0) + b"stats\r\n"  # UDP frame header, then the command

UDP_PAYLOADS: dict[int, bytes] = {
    53: _dns_query(),
    123: NTP_CLIENT_REQUEST,
    161: _snmp_get(),
    5353: _dns_query(),
    11211: MEMCACHED_STATS,
}


def udp_payload(port: int) -> bytes:
    """The datagram a UDP probe of ``port`` sends (empty where no service is known)."""
    return UDP_PAYLOADS.get(port, b"")
