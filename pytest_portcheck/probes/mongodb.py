"""MongoDB: three OP_MSG commands in one write — ``hello``, ``buildInfo`` (the version) and
``listDatabases`` with ``nameOnly`` (answered only without authentication: code 13 when it is on).

No data is read: database names are not kept, only whether the server would list them. The BSON
reader reads the top level of each reply and skips everything else by its declared length.
"""

from __future__ import annotations

import struct
from typing import Any

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe

OP_MSG = 2013


def _bson(fields: list[tuple[str, object]]) -> bytes:
    body = b""
    for name, value in fields:
        key = name.encode() + b"\x00"
        if isinstance(value, bool):
            body += b"\x08" + key + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            body += b"\x10" + key + struct.pack("<i", value)
        else:
            text = str(value).encode() + b"\x00"
            body += b"\x02" + key + struct.pack("<i", len(text)) + text
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _message(request_id: int, command: list[tuple[str, object]]) -> bytes:
    payload = struct.pack("<I", 0) + b"\x00" + _bson(command)
    return struct.pack("<iiii", 16 + len(payload), request_id, 0, OP_MSG) + payload


def request(_: str) -> bytes:
    return (
        _message(1, [("hello", 1), ("$db", "admin")])
        + _message(2, [("buildInfo", 1), ("$db", "admin")])
        + _message(3, [("listDatabases", 1), ("nameOnly", True), ("$db", "admin")])
    )


def _fixed(kind: int) -> int | None:
    return {1: 8, 7: 12, 8: 1, 9: 8, 10: 0, 16: 4, 17: 8, 18: 8, 19: 16, 127: 0, 255: 0}.get(kind)


def read_document(data: bytes) -> dict[str, Any]:
    """The top level of one BSON document: strings, numbers and booleans; nested values skipped."""
    found: dict[str, Any] = {}
    if len(data) < 5:
        return found
    end, at = min(len(data), struct.unpack_from("<i", data)[0]), 4
    while at < end - 1:
        kind, name_end = data[at], data.find(b"\x00", at + 1)
        if name_end < 0:
            break
        name, at = data[at + 1 : name_end].decode(errors="replace"), name_end + 1
        size = _fixed(kind)
        if kind in (2, 13, 14) and at + 4 <= len(data):
            length = struct.unpack_from("<i", data, at)[0]
            found[name], size = data[at + 4 : at + 3 + length].decode(errors="replace"), 4 + length
        elif kind in (3, 4) and at + 4 <= len(data):
            size = struct.unpack_from("<i", data, at)[0]
        elif kind == 5 and at + 4 <= len(data):
            size = 5 + struct.unpack_from("<i", data, at)[0]
        elif kind == 1 and at + 8 <= len(data):
            found[name] = struct.unpack_from("<d", data, at)[0]
        elif kind in (16, 18) and at + (4 if kind == 16 else 8) <= len(data):
            found[name] = struct.unpack_from("<i" if kind == 16 else "<q", data, at)[0]
        elif kind == 8 and at < len(data):
            found[name] = data[at] == 1
        if size is None or size < 0:
            break
        at += size
    return found


def replies(data: bytes) -> list[dict[str, Any]]:
    """The first section of every complete OP_MSG reply in ``data``, in order."""
    documents, at = [], 0
    while at + 21 <= len(data):
        length, _, _, opcode = struct.unpack_from("<iiii", data, at)
        if length < 21 or opcode != OP_MSG or at + length > len(data):
            break
        if data[at + 20] == 0:
            documents.append(read_document(data[at + 21 : at + length]))
        at += length
    return documents


def complete(data: bytes) -> bool:
    return len(replies(data)) >= 3


def classify(data: bytes) -> ServiceInfo | None:
    documents = replies(data)
    if not documents or not any(
        k in documents[0] for k in ("maxWireVersion", "isWritablePrimary", "ismaster")
    ):
        return None
    version = documents[1].get("version") if len(documents) > 1 else None
    auth = None
    if len(documents) > 2:
        listed = documents[2]
        auth = "none" if listed.get("ok") == 1 else "required" if listed.get("code") == 13 else None
    wire = documents[0].get("maxWireVersion")
    evidence = f"hello answered (wire version {wire})" if isinstance(wire, int) else "hello answered"
    named = neutralise(version, 40) if isinstance(version, str) else None
    return ServiceInfo("mongodb", evidence, "MongoDB", named, auth=auth)


PROBE = ProtocolProbe("mongodb", classify, frozenset({27017, 27018}), request, complete, rarity=4)
