"""RDP: an X.224 Connection Request with an RDP negotiation request (TLS or CredSSP offered); the
server answers with an X.224 Connection Confirm, with the protocol it selected or a failure code.
"""

from __future__ import annotations

from pytest_portcheck.probes.model import ServiceInfo
from pytest_portcheck.probes.spec import ProtocolProbe

CONNECTION_REQUEST = bytes.fromhex("030000130ee000000000000100080003000000")
_SELECTED = {0: "standard RDP security", 1: "TLS", 2: "CredSSP (NLA)", 8: "RDSTLS"}


def complete(data: bytes) -> bool:
    return len(data) >= 4 and len(data) >= int.from_bytes(data[2:4], "big")


def classify(data: bytes) -> ServiceInfo | None:
    if len(data) < 11 or data[:2] != b"\x03\x00" or data[5] != 0xD0:
        return None
    evidence = "X.224 Connection Confirm"
    if len(data) >= 19 and data[11] == 0x02:  # RDP_NEG_RSP
        selected = int.from_bytes(data[15:19], "little")
        evidence += f", {_SELECTED.get(selected, f'protocol {selected}')} selected"
    elif len(data) >= 19 and data[11] == 0x03:
        evidence += f", negotiation failure {int.from_bytes(data[15:19], 'little')}"
    return ServiceInfo("rdp", evidence)


PROBE = ProtocolProbe("rdp", classify, frozenset({3389}), lambda _: CONNECTION_REQUEST, complete, rarity=6)
