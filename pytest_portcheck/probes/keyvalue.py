"""Redis and memcached: plain-text key-value stores that wait for the client.

Redis gets ``PING`` and ``INFO server`` in one write: ``+PONG`` then the INFO text (product and version)
when no password is set, ``-NOAUTH`` twice when one is. memcached gets ``version``. Neither request
reads or changes data.
"""

from __future__ import annotations

import re

from pytest_portcheck.probes.spec import ProtocolProbe
from pytest_portcheck.probes.ssh import first_line
from pytest_portcheck.services import ServiceInfo, neutralise

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
    if not line.startswith(b"VERSION "):
        return None
    # ``version`` answers without SASL; a memcached with SASL answers the text protocol not at all.
    return ServiceInfo("memcached", neutralise(line), "memcached", neutralise(line[8:], 40), auth="none")


REDIS = ProtocolProbe(
    "redis", classify_redis, frozenset({6379, 6380}), lambda _: b"PING\r\nINFO server\r\n", redis_complete, 2
)
MEMCACHED = ProtocolProbe(
    "memcached", classify_memcached, frozenset({11211}), lambda _: b"version\r\n", rarity=3
)
