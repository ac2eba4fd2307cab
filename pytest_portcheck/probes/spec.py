"""What a protocol module registers: its usual ports, its first move, and a pure classifier.

A ``ProtocolProbe`` is data plus pure functions over bytes, so every classifier is testable without a
socket (h11's shape: the protocol here, the I/O in ``driver``). Nothing here may import asyncio, ssl
or sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pytest_portcheck.probes.model import ServiceInfo

Classifier = Callable[[bytes], "ServiceInfo | None"]
"""What the peer sent in answer to the probe's move -> who it is, or None when it is not this protocol."""


def line_complete(data: bytes) -> bool:
    return b"\n" in data


@dataclass(frozen=True, slots=True)
class ProtocolProbe:
    name: str
    """The service it names (one of services.SERVICES), or a variant such as ``http-version``."""
    classify: Classifier
    ports: frozenset[int] = frozenset()
    """Ports where the protocol usually runs: its probe goes first there."""
    request: Callable[[str], bytes] | None = None
    """The first move, given the host name for protocols that carry one; None: the server speaks first."""
    complete: Callable[[bytes], bool] = line_complete
    """True once the answer read so far is enough to classify (stop reading early)."""
    rarity: int = 5
    """1 (common) to 9 (rare), as nmap's service probes: common ones are sent first."""
    rank: int = 0
    """When two probes of one port both match, the lower rank wins, and a match waits for the probes
    ranked before it. Rank 0: an answer only this protocol gives, decisive at once."""
    rank_of: Callable[[ServiceInfo], int] | None = None
    """The rank of a match when it depends on the answer (an HTTP 400 defers to TLS: that is what
    servers answer a plain request on a TLS port); ``rank`` otherwise."""
    refine: tuple[Refinement, ...] = ()
    """Further exchanges once identified (an authentication check), in order: each on its own
    connection (inside TLS when the answer came through it), each where it ``applies`` to the answer
    so far. Over the ``tls`` probe: those of the protocols that run inside TLS."""


@dataclass(frozen=True, slots=True)
class Refinement:
    """One more question to an identified service: a separate request, and a pure update of the
    answer from what came back (any bytes, or none: the answer then stays as it was)."""

    request: Callable[[str], bytes]
    update: Callable[[ServiceInfo, bytes], ServiceInfo]
    applies: Callable[[ServiceInfo], bool] = field(default=lambda info: True)
    complete: Callable[[bytes], bool] = line_complete
