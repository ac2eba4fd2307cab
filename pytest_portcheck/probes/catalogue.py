"""Every protocol probe, and the order in which a port gets them.

Adding a protocol: write its module (ports, first move, classifier) and list its probe here. The order
follows nmap's service probes: what the inventory declared first, then what the port number suggests,
then the rest from common to rare. Pure: no sockets, no asyncio.
"""

from __future__ import annotations

from pytest_portcheck.probes import (
    amqp,
    dns,
    http,
    keyvalue,
    ldap,
    mail,
    mongodb,
    mqtt,
    mysql,
    postgresql,
    rdp,
    smb,
    ssh,
    vnc,
)  # fmt: skip
from pytest_portcheck.probes.model import HTTP_APIS, ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe

GREETERS: tuple[ProtocolProbe, ...] = (ssh.PROBE, mysql.PROBE, mail.FTP_SMTP, mail.IMAP, mail.POP3, vnc.PROBE)
"""Protocols where the server speaks first: tried, in this order, on whatever a server sent unasked."""


def _tls_record(data: bytes) -> ServiceInfo | None:
    # A TLS record header (handshake or alert): only as the answer to the driver's own ClientHello.
    return (
        ServiceInfo("tls", "TLS record") if data[:1] in (b"\x15", b"\x16") and data[1:2] == b"\x03" else None
    )


TLS_PORTS = frozenset({443, 465, 636, 853, 993, 995, 2376, 5986, 6443, 8443, 9443})
TLS = ProtocolProbe("tls", _tls_record, TLS_PORTS, lambda _: b"", rarity=1, rank=20, refine=http.API_CHECKS)
"""The ClientHello: ``request`` is a placeholder, the driver hands the handshake to ``ssl``; an HTTP
API found inside gets its further questions through TLS."""

SPEAKERS: tuple[ProtocolProbe, ...] = (
    TLS, http.VERSION, http.ROOT, keyvalue.REDIS, postgresql.PROBE, keyvalue.MEMCACHED, mongodb.PROBE,
    ldap.PROBE, mqtt.PROBE, amqp.PROBE, dns.PROBE, smb.PROBE, rdp.PROBE, keyvalue.MEMCACHED_BINARY,
)  # fmt: skip
"""Protocols where the client speaks first: each gets its own connection once a port stays silent."""

QUIET: tuple[ProtocolProbe, ...] = (dns.PROBE, smb.PROBE, rdp.PROBE)
"""Protocols whose servers may stay silent after an HTTP request (a binary length prefix that asks for
more bytes): sent alongside the HTTP nudge when a port stays silent, since the nudge cannot show them."""

_FOR_SERVICE: dict[str, tuple[ProtocolProbe, ...]] = {
    "https": (TLS,), "tls": (TLS,), "http": (http.VERSION, http.ROOT), "redis": (keyvalue.REDIS,),
    "memcached": (keyvalue.MEMCACHED, keyvalue.MEMCACHED_BINARY), "postgresql": (postgresql.PROBE,),
    "mongodb": (mongodb.PROBE,),
    "ldap": (ldap.PROBE,), "mqtt": (mqtt.PROBE,), "amqp": (amqp.PROBE,), "dns": (dns.PROBE,),
    "smb": (smb.PROBE,), "rdp": (rdp.PROBE,),
    **{api: (http.VERSION, http.ROOT) for api in HTTP_APIS},
}  # fmt: skip


def first_moves(port: int, expect: str | None) -> tuple[ProtocolProbe, ...]:
    """The speaking probes worth sending at once, before any banner wait: what the inventory declared,
    else what the port number suggests. Empty when either points at a protocol whose server speaks first."""
    if expect is not None:
        return _FOR_SERVICE.get(expect, ())
    if any(port in greeter.ports for greeter in GREETERS):
        return ()
    return tuple(probe for probe in SPEAKERS if port in probe.ports)


def by_likelihood(port: int, already: tuple[ProtocolProbe, ...] = ()) -> list[ProtocolProbe]:
    """The speaking probes not yet sent: the port's usual protocols first, then common to rare."""
    rest = [probe for probe in SPEAKERS if probe not in already]
    return sorted(rest, key=lambda probe: (port not in probe.ports, probe.rarity))


def classify_greeting(data: bytes) -> ServiceInfo | None:
    """Who sent ``data`` unasked, or None."""
    for greeter in GREETERS:
        info = greeter.classify(data)
        if info is not None:
            return info
    return http.classify_root(data)  # some HTTP servers answer a connection before any request


def greeting_complete(data: bytes) -> bool:
    return b"\n" in data or mysql.packet_complete(data)


def classify(data: bytes, hint: str | None = None) -> ServiceInfo:
    """Identify bytes a server sent unasked or in answer to the probe ``hint`` names (tests, tools)."""
    found = classify_greeting(data)
    for probe in _FOR_SERVICE.get(hint or "", ()):
        found = found or probe.classify(data)
    if found is not None:
        return found
    if not data:
        return ServiceInfo("unknown", "", error="no banner: the server did not speak first")
    return ServiceInfo("unknown", neutralise(ssh.first_line(data)))
