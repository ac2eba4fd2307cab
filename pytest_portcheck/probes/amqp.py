"""AMQP 0-9-1: the protocol header; a broker answers with Connection.Start, whose server properties
name the product and version (RabbitMQ), or with its own protocol header when it speaks another version.
"""

from __future__ import annotations

import re

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe

HEADER = b"AMQP\x00\x00\x09\x01"
_START = b"\x00\x0a\x00\x0a"  # class 10 (connection), method 10 (start)


def complete(data: bytes) -> bool:
    if data.startswith(b"AMQP"):
        return len(data) >= 8
    return len(data) >= 7 and len(data) >= 8 + int.from_bytes(data[3:7], "big")


def _property(data: bytes, name: bytes) -> str | None:
    match = re.search(bytes([len(name)]) + re.escape(name) + rb"S(.{4})", data, re.DOTALL)
    if match is None:
        return None
    length = int.from_bytes(match.group(1), "big")
    return neutralise(data[match.end() : match.end() + min(length, 60)], 60)


def classify(data: bytes) -> ServiceInfo | None:
    if data.startswith(b"AMQP") and len(data) >= 8:
        return ServiceInfo("amqp", f"protocol header answered: AMQP {data[5]}-{data[6]}-{data[7]}")
    if len(data) < 13 or data[0] != 1 or data[1:3] != b"\x00\x00" or data[7:11] != _START:
        return None
    evidence = f"Connection.Start, AMQP {data[11]}-{data[12]}"
    return ServiceInfo("amqp", evidence, _property(data, b"product"), _property(data, b"version"))


PROBE = ProtocolProbe("amqp", classify, frozenset({5672}), lambda _: HEADER, complete, rarity=5)
