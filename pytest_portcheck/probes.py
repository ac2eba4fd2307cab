"""Protocol probes: what answers on an open port, with evidence, product and version.

Each probe talks just enough of one protocol to identify the server (an SSH banner, an HTTP status
line, a TLS handshake, a PostgreSQL SSLRequest, a MySQL greeting, a Redis PING, an SMTP or FTP
greeting, a memcached ``version``), bounded in bytes and in time. Probes run concurrently in one
asyncio loop. A scanned service is untrusted input: everything it sent is neutralised here (control
characters, escape sequences, invalid UTF-8 escaped) before any front end sees it.

The engine stays free of protocol knowledge; this module knows nothing of pytest or YAML.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import ssl
import struct
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pytest_portcheck.services import ServiceInfo, TlsInfo, neutralise

MAX_READ = 4096
"""Bytes a probe reads at most from a peer."""
_CLIENT_FIRST = frozenset({"http", "https", "tls", "postgresql", "redis", "memcached"})
# Ports whose conventional service decides the first move when nobody said what to expect.
_PORT_HINTS = {
    21: "ftp", 22: "ssh", 25: "smtp", 80: "http", 443: "https", 465: "tls", 587: "smtp", 993: "tls",
    995: "tls", 3306: "mysql", 5432: "postgresql", 6379: "redis", 8000: "http", 8080: "http",
    8443: "https", 11211: "memcached",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    address: str
    port: int
    expect: str | None = None
    """The service declared for the port, if any; it only decides the probe's first move."""
    server_name: str | None = None
    """Name for TLS SNI and verification."""
    verify_tls: bool = False


def first_line(data: bytes) -> bytes:
    return data.split(b"\n", 1)[0].rstrip(b"\r")


# --- classification of what a peer sent ----------------------------------------------------------

_SSH_SOFTWARE = re.compile(rb"^SSH-[\d.]+-([A-Za-z]+)[_-]?([\w.]*)")
_SERVER_HEADER = re.compile(rb"^server:[ \t]*(.+?)\r?$", re.IGNORECASE | re.MULTILINE)
_PRODUCT_VERSION = re.compile(r"^([A-Za-z][\w.-]*?)(?:/([\w.-]+))?(?:\s|$)")


def classify(data: bytes, hint: str | None) -> ServiceInfo:
    """Identify a service from the first bytes it sent, whatever was expected."""
    if data.startswith(b"SSH-"):
        match = _SSH_SOFTWARE.match(data)
        product, version = (
            (match.group(1).decode(), match.group(2).decode() or None) if match else (None, None)
        )
        return ServiceInfo("ssh", neutralise(first_line(data)), product, version)
    if data.startswith(b"HTTP/"):
        return _http_info("http", data)
    mysql = _mysql_greeting(data)
    if mysql is not None:
        return mysql
    line = first_line(data)
    if hint == "postgresql" and data[:1] in (b"S", b"N") and len(data) == 1:
        ssl_text = "yes" if data == b"S" else "no"
        return ServiceInfo(
            "postgresql", f"SSLRequest answered {data.decode()} (TLS {ssl_text})", "PostgreSQL"
        )
    if line.startswith(b"+PONG"):
        return ServiceInfo("redis", neutralise(line), "Redis", auth="none")
    if line.startswith(b"-NOAUTH") or (hint == "redis" and line.startswith((b"-ERR", b"-WRONGPASS"))):
        return ServiceInfo("redis", neutralise(line), "Redis", auth="required")
    if line.startswith(b"VERSION "):
        return ServiceInfo("memcached", neutralise(line), "memcached", neutralise(line[8:], 40))
    if line.startswith(b"220"):
        upper = line.upper()
        if b"FTP" in upper or (hint == "ftp" and b"SMTP" not in upper):
            return ServiceInfo("ftp", neutralise(line))
        if b"SMTP" in upper or hint == "smtp":
            return ServiceInfo("smtp", neutralise(line))
    if not data:
        return ServiceInfo("unknown", "", error="no banner: the server did not speak first")
    return ServiceInfo("unknown", neutralise(line))


def _http_info(service: str, data: bytes, tls: TlsInfo | None = None) -> ServiceInfo:
    status = neutralise(first_line(data))
    product = version = None
    header = _SERVER_HEADER.search(data.split(b"\r\n\r\n", 1)[0])
    if header:
        server = neutralise(header.group(1), 80)
        match = _PRODUCT_VERSION.match(server)
        product, version = (match.group(1), match.group(2)) if match else (server, None)
    return ServiceInfo(service, status, product, version, tls)


def _mysql_greeting(data: bytes) -> ServiceInfo | None:
    if len(data) < 6 or data[3] != 0:
        return None
    length = int.from_bytes(data[:3], "little")
    if length + 4 < len(data) or length < 2:
        return None
    body = data[4 : 4 + length]
    if body[0] == 0x0A and b"\x00" in body[1:]:
        server = body[1 : body.index(b"\x00", 1)].decode("ascii", errors="replace")
        number = server.split("-", 1)[0]
        product = "MariaDB" if "MariaDB" in server else "MySQL"
        return ServiceInfo(
            "mysql", neutralise(f"protocol 10, server {server}"), product, neutralise(number, 40)
        )
    if body[0] == 0xFF and len(body) > 3:
        message = body[3:].lstrip(b"#").decode("utf-8", errors="backslashreplace")
        return ServiceInfo("mysql", neutralise(f"error packet: {message}"), "MySQL")
    return None


# --- the probes ---------------------------------------------------------------------------------


class _Conversation:
    """What a peer sent so far, kept when a read times out so a slow peer still gets a verdict."""

    def __init__(self, reader: asyncio.StreamReader, deadline: float) -> None:
        self.reader = reader
        self.deadline = deadline
        self.data = bytearray()
        self.ended = False

    async def read(self, until: bytes | None, budget: float | None = None) -> bool:
        """Read until ``until``, a complete MySQL packet, EOF, MAX_READ bytes or the time budget.

        Returns False when time ran out first.
        """
        loop = asyncio.get_running_loop()
        remaining = self.deadline - loop.time()
        if budget is not None:
            remaining = min(remaining, budget)
        try:
            await asyncio.wait_for(self._gather(until), max(0.0, remaining))
        except asyncio.TimeoutError:
            return False
        return True

    async def _gather(self, until: bytes | None) -> None:
        while len(self.data) < MAX_READ:
            chunk = await self.reader.read(MAX_READ - len(self.data))
            if not chunk:
                self.ended = True
                return
            self.data += chunk
            if until is None or until in self.data or _complete_packet(self.data):
                return


def _complete_packet(data: bytearray) -> bool:
    return len(data) >= 4 and data[3] == 0 and 4 + int.from_bytes(data[:3], "little") <= len(data)


def _tls_context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # inventories check internal hosts with self-signed certificates
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return context


def _tls_info(ssl_object: ssl.SSLObject, verified: bool) -> TlsInfo:
    from cryptography import x509  # imported only when a TLS probe ran: it costs ~50 ms

    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    version = ssl_object.version() or "unknown"
    if der is None:
        return TlsInfo(version, cipher[0] if cipher else "", "", "", "", 0, verified)
    certificate = x509.load_der_x509_certificate(der)
    expires = certificate.not_valid_after_utc
    days_left = (expires - datetime.datetime.now(datetime.timezone.utc)).days
    return TlsInfo(
        version,
        cipher[0] if cipher else "",
        neutralise(certificate.subject.rfc4514_string(), 200),
        neutralise(certificate.issuer.rfc4514_string(), 200),
        expires.isoformat(timespec="seconds"),
        days_left,
        verified,
    )


async def _probe(request: ProbeRequest, timeout: float, banner_wait: float) -> ServiceInfo:
    hint = request.expect or _PORT_HINTS.get(request.port)
    deadline = asyncio.get_running_loop().time() + timeout
    if hint in ("https", "tls"):
        return await _probe_tls(request, hint, deadline)
    reader, writer = await asyncio.open_connection(request.address, request.port, limit=MAX_READ)
    try:
        talk = _Conversation(reader, deadline)
        if hint in _CLIENT_FIRST:
            writer.write(_REQUESTS[hint](request))
            await writer.drain()
            finished = await talk.read(_TERMINATORS.get(hint))
        else:  # server-first protocols, and anything unknown: wait for a banner, send nothing
            finished = await talk.read(b"\n", banner_wait)
        return _verdict(talk, finished, hint, banner_wait if hint not in _CLIENT_FIRST else timeout)
    finally:
        writer.transport.abort()


def _verdict(talk: _Conversation, finished: bool, hint: str | None, waited: float) -> ServiceInfo:
    data = bytes(talk.data)
    if not data:
        if talk.ended:
            return ServiceInfo("unknown", "", error="the peer closed the connection without a word")
        return ServiceInfo("unknown", "", error=f"no banner within {waited:g} s")
    info = classify(data, hint)
    if not finished:
        note = f"partial answer: {len(data)} byte(s) in {waited:g} s"
        return ServiceInfo(info.service, info.evidence, info.product, info.version, info.tls, info.auth, note)
    return info


async def _probe_tls(request: ProbeRequest, hint: str, deadline: float) -> ServiceInfo:
    context = _tls_context(request.verify_tls)
    server_name = request.server_name if request.verify_tls or request.server_name else None
    try:
        reader, writer = await asyncio.open_connection(
            request.address, request.port, ssl=context, server_hostname=server_name, limit=MAX_READ
        )
    except ssl.SSLCertVerificationError as exc:
        return ServiceInfo(
            "tls", "", error=neutralise(f"certificate verification failed: {exc.verify_message}")
        )
    except ssl.SSLError as exc:
        return ServiceInfo("unknown", "", error=neutralise(f"TLS handshake failed: {exc.reason or exc}"))
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        tls = _tls_info(ssl_object, request.verify_tls)
        if hint == "tls":
            return ServiceInfo("tls", f"{tls.version} {tls.cipher}", tls=tls)
        writer.write(_REQUESTS["http"](request))
        await writer.drain()
        talk = _Conversation(reader, deadline)
        await talk.read(b"\r\n\r\n")
        if talk.data.startswith(b"HTTP/"):
            return _http_info("https", bytes(talk.data), tls)
        return ServiceInfo("tls", f"{tls.version} {tls.cipher}", tls=tls)
    finally:
        writer.transport.abort()


def _http_request(request: ProbeRequest) -> bytes:
    host = request.server_name or (f"[{request.address}]" if ":" in request.address else request.address)
    return f"HEAD / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: portcheck\r\nConnection: close\r\n\r\n".encode()


_REQUESTS: dict[str, Callable[[ProbeRequest], bytes]] = {
    "http": _http_request,
    "postgresql": lambda _: struct.pack("!II", 8, 80877103),  # SSLRequest
    "redis": lambda _: b"PING\r\n",
    "memcached": lambda _: b"version\r\n",
}
_TERMINATORS = {"http": b"\r\n\r\n", "redis": b"\r\n", "memcached": b"\r\n"}


async def _probe_bounded(request: ProbeRequest, timeout: float, banner_wait: float) -> ServiceInfo:
    try:
        return await asyncio.wait_for(_probe(request, timeout, banner_wait), timeout)
    except asyncio.TimeoutError:
        return ServiceInfo("unknown", "", error=f"probe timed out after {timeout:g} s")
    except ConnectionRefusedError:
        return ServiceInfo("unknown", "", error="connection refused: the port closed since the scan")
    except (ConnectionError, OSError) as exc:
        return ServiceInfo("unknown", "", error=neutralise(f"connection failed: {exc.strerror or exc}"))


async def _probe_all(
    requests: Sequence[ProbeRequest], timeout: float, banner_wait: float, concurrency: int
) -> list[ServiceInfo]:
    gate = asyncio.Semaphore(concurrency)

    async def one(request: ProbeRequest) -> ServiceInfo:
        async with gate:
            return await _probe_bounded(request, timeout, banner_wait)

    return list(await asyncio.gather(*(one(request) for request in requests)))


def probe_services(
    requests: Iterable[ProbeRequest],
    *,
    timeout: float = 3.0,
    banner_wait: float = 1.0,
    concurrency: int = 256,
) -> list[ServiceInfo]:
    """Probe every request concurrently; one ServiceInfo each, in order. Never raises for a peer."""
    requests = list(requests)
    if not requests:
        return []
    work = _probe_all(requests, timeout, min(banner_wait, timeout), concurrency)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    # Called from code that already runs an event loop (an async test): use a loop of our own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()
