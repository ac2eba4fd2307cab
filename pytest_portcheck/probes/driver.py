"""The asyncio driver: the order of the probes on one port, and all ports concurrently.

For each open port: the move the inventory or the port number suggests, at once; otherwise a short wait
for a server that speaks first (SSH, MySQL, FTP, SMTP, IMAP, VNC...); a port still silent gets an HTTP
nudge on that connection (with the few protocols a nudge cannot reveal beside it), and only a port that
reacts gets every speaking probe on its own connection, concurrently, its usual protocols first. The
first answer a classifier recognises wins (among several, the lower rank: TLS before plain HTTP); the
others are cancelled.
Any exception inside one port's probing is that port's error, never the run's.
"""

from __future__ import annotations

import asyncio
import resource
import ssl
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from pytest_portcheck.engine.kernel import fit_window
from pytest_portcheck.probes import catalogue, handshake, http, tls
from pytest_portcheck.probes.connection import MAX_READ, Exchange, LocalFailure, Port, ProbeRequest, read
from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe
from pytest_portcheck.probes.ssh import first_line

# --- one port ------------------------------------------------------------------------------------


async def identify(port: Port) -> ServiceInfo:
    """What answers on one port, within its deadline."""
    first = catalogue.first_moves(port.request.port, port.request.expect)
    if first:
        found = await speak(port, first, port.remaining())
        if found is not None and found.service != "unknown":
            return found
    answer_wait = max(1.0, port.banner_wait)
    async with port.gate:
        reader, writer = await port.connect()
        try:
            early = await _unprompted(port, reader, writer, answer_wait)
        finally:
            writer.transport.abort()
    if early is not None:
        return early
    rest = catalogue.by_likelihood(port.request.port, first)
    found = await speak(port, rest, port.remaining(answer_wait))
    if found is not None and (found.service != "unknown" or found.evidence or found.local_failure):
        return found
    return _silent(port, len(first) + len(rest))


async def _unprompted(
    port: Port, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer_wait: float
) -> ServiceInfo | None:
    """The verdict before any speaking probe: a greeting, a close, a quiet protocol's answer, or a
    black hole; None when the port reacted to the nudge and deserves every speaking probe."""
    greeting = await read(reader, catalogue.greeting_complete, port.remaining(port.banner_wait))
    if greeting.data:
        return _from_greeting(greeting, port.banner_wait)
    if greeting.ended:
        return ServiceInfo("unknown", "", error="the peer closed the connection without a word")
    quiet = asyncio.ensure_future(speak(port, catalogue.QUIET, port.remaining(answer_wait)))
    nudge = asyncio.ensure_future(_nudge(port, reader, writer, answer_wait))
    try:
        await asyncio.wait({quiet, nudge}, return_when=asyncio.FIRST_COMPLETED)
        if quiet.done() and (named := quiet.result()) is not None and named.service != "unknown":
            return named
        if await nudge:
            return None
        return await quiet or _silent(port, 1 + len(catalogue.QUIET))
    finally:
        for task in (quiet, nudge):
            task.cancel()
        await asyncio.gather(quiet, nudge, return_exceptions=True)


async def _nudge(port: Port, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: float) -> bool:
    """Whether a silent peer reacts at all (a byte, a close, a reset) to an HTTP request on the banner
    connection. One connection tells a black hole from a server that waits for the client; only a
    server that reacts gets every speaking probe (a connection each)."""
    try:
        writer.write(http.ROOT.request(port.host) if http.ROOT.request else b"")
        reaction = await read(reader, lambda data: True, port.remaining(wait))
    except ConnectionError:
        return True
    return bool(reaction.data) or reaction.ended


def _silent(port: Port, probes: int) -> ServiceInfo:
    waited = f"no banner within {port.banner_wait:g} s"
    return ServiceInfo("unknown", "", error=f"{waited}, and no answer to {probes} probes")


def _from_greeting(greeting: Exchange, waited: float) -> ServiceInfo:
    info = catalogue.classify(greeting.data)
    if greeting.finished or greeting.ended or len(greeting.data) >= MAX_READ:
        return info
    note = f"partial answer: {len(greeting.data)} byte(s) in {waited:g} s"
    return ServiceInfo(info.service, info.evidence, info.product, info.version, info.tls, info.auth, note)


async def speak(port: Port, probes: Sequence[ProtocolProbe], wait: float) -> ServiceInfo | None:
    """Every probe on its own connection at once; the best-ranked recognised answer, or the first
    unrecognised text (as evidence), or None when nothing came back."""
    tasks = {asyncio.ensure_future(_one(port, probe, wait)): probe for probe in probes}
    found: dict[ProtocolProbe, ServiceInfo | None] = {}
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                found[tasks[task]] = task.result()
            best = _best(found)
            if best is not None and all(p in found for p in probes if p.rank < _rank(*best)):
                return await _refined(port, *best)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return _fallback(found)


def _best(found: dict[ProtocolProbe, ServiceInfo | None]) -> tuple[ProtocolProbe, ServiceInfo] | None:
    matches = [
        (probe, info) for probe, info in found.items() if info is not None and info.service != "unknown"
    ]
    return min(matches, key=lambda pair: _rank(*pair)) if matches else None


def _rank(probe: ProtocolProbe, info: ServiceInfo) -> int:
    return probe.rank if probe.rank_of is None else probe.rank_of(info)


def _fallback(found: dict[ProtocolProbe, ServiceInfo | None]) -> ServiceInfo | None:
    answers = [info for info in found.values() if info is not None]
    local = [info for info in answers if info.local_failure]
    spoken = [info for info in answers if info.evidence]
    return (local or spoken)[0] if local or spoken else None


async def _refined(port: Port, probe: ProtocolProbe, info: ServiceInfo) -> ServiceInfo:
    """The answer after the probe's further questions, each where it applies to the answer so far,
    through TLS where the answer came through it. A question that cannot be asked (time is up, the
    connection fails) leaves the answer as it is: an unasked question proves nothing."""
    context = tls.client_context(False) if info.tls is not None else None
    for step in probe.refine:
        if not step.applies(info) or port.remaining() <= 0:
            continue
        try:
            answer = await port.exchange(step.request(port.host), step.complete, port.remaining(), context)
        except (OSError, LocalFailure, asyncio.TimeoutError):  # ssl.SSLError is an OSError
            return info
        info = step.update(info, answer.data)
    return info


async def _one(port: Port, probe: ProtocolProbe, wait: float) -> ServiceInfo | None:
    """One probe's verdict: recognised, unrecognised text, or None; our own failures are marked."""
    try:
        if probe is catalogue.TLS:
            return await handshake.probe(port, wait)
        assert probe.request is not None
        answer = await port.exchange(probe.request(port.host), probe.complete, wait)
    except LocalFailure as exc:
        return ServiceInfo("unknown", "", error=neutralise(str(exc)), local_failure=True)
    except (OSError, asyncio.TimeoutError, ssl.SSLError, EOFError):
        return None
    if not answer.data:
        return None
    return probe.classify(answer.data) or ServiceInfo("unknown", neutralise(first_line(answer.data)))


# --- every port -----------------------------------------------------------------------------------

_CONNECTIONS_PER_PORT = len(catalogue.SPEAKERS) + 2  # the greeting wait, every speaker, a refinement
# (refinements are asked one after another: one connection at a time)


async def _guarded(request: ProbeRequest, ports: asyncio.Semaphore, connections: asyncio.Semaphore,
                   timeout: float, banner_wait: float) -> ServiceInfo:  # fmt: skip
    async with ports:
        port = Port(request, connections, timeout, banner_wait)
        try:
            # The deadline bounds every read; this outer bound only catches a bug that ignores it.
            return await asyncio.wait_for(identify(port), timeout + 1.0)
        except asyncio.TimeoutError:
            return ServiceInfo("unknown", "", error=f"probe timed out after {timeout:g} s")
        except ConnectionRefusedError:
            return ServiceInfo("unknown", "", error="connection refused: the port closed since the scan")
        except LocalFailure as exc:
            return ServiceInfo("unknown", "", error=neutralise(str(exc)), local_failure=True)
        except OSError as exc:
            return ServiceInfo("unknown", "", error=neutralise(f"connection failed: {exc.strerror or exc}"))
        except Exception as exc:
            reason = f"the probe failed on this side: {type(exc).__name__}: {exc}"
            return ServiceInfo("unknown", "", error=neutralise(reason), local_failure=True)


async def _probe_all(
    requests: Sequence[ProbeRequest], timeout: float, banner_wait: float, slots: int
) -> list[ServiceInfo]:
    connections = asyncio.Semaphore(slots)
    # Whole ports at a time, each with room for all its connections: a probe that waited for a slot
    # would lose its time to our own limit and look like a silent peer.
    ports = asyncio.Semaphore(max(1, slots // _CONNECTIONS_PER_PORT))
    work = (_guarded(request, ports, connections, timeout, banner_wait) for request in requests)
    return list(await asyncio.gather(*work))


def _run(work: Callable[[], Coroutine[None, None, list[ServiceInfo]]]) -> list[ServiceInfo]:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work())
    # Called from code that already runs an event loop (an async test): use a loop of our own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()


def identify_services(
    requests: Iterable[ProbeRequest],
    *,
    timeout: float = 3.0,
    banner_wait: float = 1.0,
    concurrency: int = 16384,
) -> list[ServiceInfo]:
    """Identify what answers on every requested port; one ServiceInfo each, in order. Never raises
    for a peer. ``concurrency`` bounds open connections (and is itself bounded by RLIMIT_NOFILE)."""
    requests = list(requests)
    if not requests:
        return []
    slots, saved_limit = fit_window(min(concurrency, len(requests) * _CONNECTIONS_PER_PORT))
    try:
        return _run(lambda: _probe_all(requests, timeout, min(banner_wait, timeout), slots))
    except OSError as exc:  # not even an event loop (its epoll and self-pipe need descriptors too)
        reason = neutralise(f"the probes could not start on this host: {exc.strerror or exc}")
        return [ServiceInfo("unknown", "", error=reason, local_failure=True) for _ in requests]
    finally:
        if saved_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, saved_limit)
