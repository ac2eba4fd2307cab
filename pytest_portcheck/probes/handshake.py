"""The TLS probe's I/O: a ClientHello through ``ssl``, what runs inside, and a handshake capped below
the inventory's minimum version (a server that also accepts TLSv1 fails ``min_version: TLSv1.2``).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import replace

from pytest_portcheck.probes import catalogue, http, tls
from pytest_portcheck.probes.connection import LocalFailure, Port, read
from pytest_portcheck.probes.model import ServiceInfo, TlsInfo, neutralise

INNER_BANNER_WAIT = 0.3
"""Inside TLS, how long a server gets to speak first (IMAPS, SMTPS) before it is sent an HTTP request."""


async def probe(port: Port, wait: float) -> ServiceInfo | None:
    """The handshake's facts and what answers inside; None when the port does not speak TLS."""
    request = port.request
    server_name = request.server_name if request.verify_tls or request.server_name else None
    async with port.gate:
        try:
            reader, writer = await port.connect(tls.client_context(request.verify_tls), server_name, wait)
        except ssl.SSLCertVerificationError as exc:
            reason = f"certificate verification failed: {exc.verify_message}"
            return ServiceInfo("tls", "", error=neutralise(reason))
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            cipher = ssl_object.cipher()
            facts = tls.tls_info(
                ssl_object.getpeercert(binary_form=True), ssl_object.version() or "unknown",
                cipher[0] if cipher else "", request.verify_tls,
            )  # fmt: skip
            inner = await _inside(port, reader, writer)
        finally:
            writer.transport.abort()
    if request.tls_floor:
        facts = replace(facts, below_minimum=await _below(port, request.tls_floor))
    return _combined(facts, inner)


async def _inside(
    port: Port, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> ServiceInfo | None:
    greeting = await read(reader, catalogue.greeting_complete, port.remaining(INNER_BANNER_WAIT))
    if greeting.data:
        return catalogue.classify(greeting.data)
    if greeting.ended:
        return None
    writer.write(http.request("/")(port.host))
    answer = await read(reader, http.response_complete, port.remaining())
    return http.classify_version(answer.data) or http.classify_root(answer.data) if answer.data else None


def _combined(facts: TlsInfo, inner: ServiceInfo | None) -> ServiceInfo:
    if inner is None or inner.service == "unknown":
        evidence = (
            inner.evidence if inner is not None and inner.evidence else f"{facts.version} {facts.cipher}"
        )
        return ServiceInfo("tls", evidence, tls=facts)
    service = "https" if inner.service == "http" else inner.service
    return ServiceInfo(service, inner.evidence, inner.product, inner.version, facts, inner.auth, inner.error)


async def _below(port: Port, floor: str) -> str:
    """``TLSv1`` when a handshake offering only versions below ``floor`` succeeded, else ``refused``
    (or ``untested: ...``), with the versions the local OpenSSL could not offer named."""
    context, note = tls.capped_context(floor)
    if context is None:
        return note
    async with port.gate:
        try:
            _, writer = await port.connect(context, None, port.remaining())
        except (ssl.SSLError, ConnectionError, EOFError):
            return "refused" + note
        except (asyncio.TimeoutError, OSError, LocalFailure) as exc:
            return neutralise(f"untested: the capped handshake did not finish ({exc or 'timed out'})")
        try:
            return (writer.get_extra_info("ssl_object").version() or "unknown") + note
        finally:
            writer.transport.abort()
