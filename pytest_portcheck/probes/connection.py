"""Connections for the probes: the request, one port's deadline, descriptor discipline, bounded reads.

Descriptors are bounded like the engine's: a semaphore shared by every probe keeps connections under
the (raised) soft RLIMIT_NOFILE, and EMFILE-like errors back off and retry until the port's deadline.
What still fails raises ``LocalFailure``: this side's problem, never evidence about the peer.
No protocol knowledge here.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

MAX_READ = 4096
"""Bytes a probe reads at most from one connection."""
T = TypeVar("T")
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EAGAIN})


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    address: str
    port: int
    expect: str | None = None
    """The service declared for the port, if any: its probe goes first, without the banner wait."""
    server_name: str | None = None
    """Name for TLS SNI and verification, and the HTTP Host header."""
    verify_tls: bool = False
    tls_floor: str | None = None
    """The inventory's TLS ``min_version``: a second handshake capped below it must fail."""


class LocalFailure(Exception):
    """This side could not make the attempt (no descriptor left...): not evidence about the peer."""


@dataclass(slots=True)
class Exchange:
    data: bytes = b""
    ended: bool = False
    """The peer closed the connection."""
    finished: bool = False
    """The answer was complete (or MAX_READ was reached) before time ran out."""


class Port:
    """One port's probing: its deadline and the shared connection gate."""

    def __init__(
        self, request: ProbeRequest, gate: asyncio.Semaphore, timeout: float, banner_wait: float
    ) -> None:
        self.request = request
        self.gate = gate
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + timeout
        self.banner_wait = banner_wait
        self.host = request.server_name or (
            f"[{request.address}]" if ":" in request.address else request.address
        )

    def remaining(self, cap: float | None = None) -> float:
        left = max(0.0, self.deadline - self.loop.time())
        return left if cap is None else min(left, cap)

    async def connect(
        self, context: ssl.SSLContext | None = None, server_name: str | None = None, cap: float | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection (and TLS handshake with ``context``) within ``cap`` seconds and the deadline,
        retried with backoff while this host is out of descriptors or buffers."""
        pause = 0.02
        while True:
            handshake = max(0.05, self.remaining(cap)) if context else None
            try:
                return await within(
                    asyncio.open_connection(
                        self.request.address, self.request.port, ssl=context, server_hostname=server_name,
                        limit=MAX_READ, ssl_handshake_timeout=handshake,
                    ),
                    self.remaining(cap),
                )  # fmt: skip
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRNOS:
                    raise
                if self.remaining() <= pause:
                    raise LocalFailure(f"no descriptor or buffer left on this host: {exc.strerror}") from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.5)

    async def exchange(
        self,
        payload: bytes | None,
        complete: Callable[[bytes], bool],
        wait: float,
        context: ssl.SSLContext | None = None,
    ) -> Exchange:
        """One request and its answer on a connection of its own (through TLS with ``context``)."""
        async with self.gate:
            server_name = self.request.server_name if context is not None else None
            reader, writer = await self.connect(context, server_name)
            try:
                if payload:
                    writer.write(payload)
                return await read(reader, complete, self.remaining(wait))
            finally:
                writer.transport.abort()


async def within(work: Awaitable[T], seconds: float) -> T:
    """``work``'s result, or TimeoutError after ``seconds``. Unlike ``asyncio.wait_for`` before Python
    3.12, a cancellation that arrives as ``work`` completes is never swallowed: a probe cancelled
    because another one already named the port stops, instead of reading on for its full wait."""
    task = asyncio.ensure_future(work)
    # Cancelled just as ``work`` failed (a reset), nobody would read its exception and asyncio would
    # print "Task exception was never retrieved" into the user's output: read it whatever happens.
    task.add_done_callback(_retrieve)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if not done:
        raise asyncio.TimeoutError
    return task.result()


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def read(reader: asyncio.StreamReader, complete: Callable[[bytes], bool], wait: float) -> Exchange:
    """Read until ``complete(data)``, EOF, MAX_READ bytes or ``wait`` seconds; what came is kept."""
    result = Exchange()
    data = bytearray()

    async def gather() -> None:
        while len(data) < MAX_READ:
            chunk = await reader.read(MAX_READ - len(data))
            if not chunk:
                result.ended = True
                return
            data.extend(chunk)
            if complete(bytes(data)):
                return

    try:
        await within(gather(), wait)
        result.finished = True
    except asyncio.TimeoutError:
        pass
    except ConnectionError:
        result.ended = True  # reset: the peer is gone as surely as after a close
    result.data = bytes(data)
    return result
