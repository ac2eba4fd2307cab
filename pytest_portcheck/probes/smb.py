"""SMB: an SMB1 NEGOTIATE offering ``NT LM 0.12`` and the SMB2 dialects; a server answers with an
SMB1 or SMB2 NEGOTIATE response (over the NetBIOS session framing). No session is set up.
"""

from __future__ import annotations

import struct

from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.probes.spec import ProtocolProbe

_DIALECTS = b"".join(b"\x02" + name + b"\x00" for name in (b"NT LM 0.12", b"SMB 2.002", b"SMB 2.???"))
_HEADER = (
    b"\xffSMB\x72"
    + b"\x00" * 4
    + b"\x18"
    + struct.pack("<H", 0xC801)
    + b"\x00" * 12
    + struct.pack("<HHHH", 0, 0xFEFF, 0, 0)
)
_BODY = b"\x00" + struct.pack("<H", len(_DIALECTS)) + _DIALECTS
NEGOTIATE = b"\x00" + (len(_HEADER) + len(_BODY)).to_bytes(3, "big") + _HEADER + _BODY
_SMB2_DIALECTS = {
    0x0202: "2.0.2",
    0x0210: "2.1",
    0x0300: "3.0",
    0x0302: "3.0.2",
    0x0311: "3.1.1",
    0x02FF: "2.x",
}


def complete(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= 4 + int.from_bytes(data[1:4], "big")


def classify(data: bytes) -> ServiceInfo | None:
    if len(data) < 8 or data[0] != 0:
        return None
    if data[4:8] == b"\xffSMB":
        return ServiceInfo("smb", "SMB1 NEGOTIATE answered", "SMB", "1")
    if data[4:8] != b"\xfeSMB":
        return None
    dialect = struct.unpack_from("<H", data, 4 + 64 + 4)[0] if len(data) >= 4 + 64 + 6 else None
    version = _SMB2_DIALECTS.get(dialect or 0)
    return ServiceInfo(
        "smb", f"SMB2 NEGOTIATE answered{f' (dialect {version})' if version else ''}", "SMB", version
    )


PROBE = ProtocolProbe("smb", classify, frozenset({139, 445}), lambda _: NEGOTIATE, complete, rarity=5)
