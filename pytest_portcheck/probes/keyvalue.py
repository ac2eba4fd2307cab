"""Redis and memcached: key-value stores that wait for the client.

Redis gets ``PING`` and ``INFO server`` in one write: ``+PONG`` then the INFO text (product and version)
when no password is set, ``-NOAUTH`` twice when one is. memcached gets ``version`` in its text
protocol: ``VERSION 1.6.18`` without authentication, ``CLIENT_ERROR unauthenticated`` with an auth
file (``-Y``). A memcached with SASL (``-S``) speaks only the binary protocol and ignores text, so a
second probe sends binary VERSION and NOOP: the NOOP is refused with "Auth failure." (status 0x20)
unless the client is authenticated. No request reads or changes data.
"""

from __future__ import annotations

import re

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe
from pytest_portcheck.probes.ssh import first_line

_REDIS_VERSION = re.compile(rb"\r\nredis_version:([\w.]+)\r\n")
_BULK_HEADER = re.compile(rb"\r\n\$(\d+)\r\n")


def redis_complete(data: bytes) -> bool:
    if not data.startswith(b"+PONG\r\n"):
        return data.count(b"\r\n") >= (2 if data.startswith(b"-") else 1)  # -NOAUTH answers both
    header = _BULK_HEADER.search(data)
    return header is not None and len(data) >= header.end() + int(header.group(1)) + 2


def classify_redis(data: bytes) -> ServiceInfo | None:
    line = first_line(data)
    if line.startswith(b"+PONG"):
        match = _REDIS_VERSION.search(data)
        version = neutralise(match.group(1), 40) if match else None
        return ServiceInfo("redis", neutralise(line), "Redis", version, auth="none")
    if line.startswith((b"-NOAUTH", b"-WRONGPASS", b"-ERR operation not permitted")):
        return ServiceInfo("redis", neutralise(line), "Redis", auth="required")
    if line.startswith(b"-DENIED"):  # protected mode: no password, but refuses non-loopback clients
        return ServiceInfo("redis", neutralise(line), "Redis", auth="required")
    return None


def classify_memcached(data: bytes) -> ServiceInfo | None:
    line = first_line(data)
    if line.startswith(b"VERSION "):
        return ServiceInfo("memcached", neutralise(line), "memcached", neutralise(line[8:], 40), auth="none")
    if line.rstrip() == b"CLIENT_ERROR unauthenticated":  # -Y: every command waits for the credentials
        return ServiceInfo("memcached", neutralise(line), "memcached", auth="required")
    return None


_HEADER = 24
_VERSION, _NOOP = 0x0B, 0x0A
_AUTH_ERROR = 0x20
BINARY_REQUEST = b"".join(
    bytes([0x80, opcode]) + bytes(6) + bytes(4) + opaque.to_bytes(4, "big") + bytes(8)
    for opcode, opaque in ((_VERSION, 1), (_NOOP, 2))
)
"""Binary VERSION then NOOP, each a bare 24-byte header (magic 0x80, no key, extras or value)."""


def _binary_responses(data: bytes) -> list[tuple[int, int, bytes]]:
    """The complete binary responses at the start of ``data``: (opcode, status, value)."""
    found = []
    at = 0
    while len(data) - at >= _HEADER and data[at] == 0x81:
        key_length = int.from_bytes(data[at + 2 : at + 4], "big")
        extras_length = data[at + 4]
        body_length = int.from_bytes(data[at + 8 : at + 12], "big")
        end = at + _HEADER + body_length
        if end > len(data) or key_length + extras_length > body_length:
            break
        value = data[at + _HEADER + extras_length + key_length : end]
        found.append((data[at + 1], int.from_bytes(data[at + 6 : at + 8], "big"), value))
        at = end
    return found


def binary_complete(data: bytes) -> bool:
    if data[:1] != b"\x81":
        return b"\n" in data  # a text answer (an auth-file memcached refuses anything with a line)
    return len(_binary_responses(data)) >= 2


def classify_memcached_binary(data: bytes) -> ServiceInfo | None:
    if data[:1] != b"\x81":
        return classify_memcached(data)
    answers = {opcode: (status, value) for opcode, status, value in _binary_responses(data)}
    if _VERSION not in answers and _NOOP not in answers:
        return None
    status, value = answers.get(_VERSION, (1, b""))
    version = neutralise(value, 40) if status == 0 and value else None
    auth, said = None, "no answer"
    if _NOOP in answers:
        status, value = answers[_NOOP]
        auth = {0: "none", _AUTH_ERROR: "required"}.get(status)  # any other status proves nothing
        said = "ok" if status == 0 else neutralise(value, 40) or f"status {status:#x}"
    evidence = f"binary protocol: VERSION {version or '?'}, NOOP {said}"
    return ServiceInfo("memcached", evidence, "memcached", version, auth=auth)


REDIS = ProtocolProbe(
    "redis", classify_redis, frozenset({6379, 6380}), lambda _: b"PING\r\nINFO server\r\n", redis_complete, 2
)
MEMCACHED = ProtocolProbe(
    "memcached", classify_memcached, frozenset({11211}), lambda _: b"version\r\n", rarity=3
)
MEMCACHED_BINARY = ProtocolProbe(
    "memcached-binary", classify_memcached_binary, frozenset({11211}), lambda _: BINARY_REQUEST,
    binary_complete, rarity=5, rank=5,
    # A refused NOOP is SASL's answer, which the text probe never gets: decisive at once. Anything else
    # waits for the text probe (which names the version in memcached's own words).
    rank_of=lambda info: 0 if info.auth == "required" else 5,
)  # fmt: skip
