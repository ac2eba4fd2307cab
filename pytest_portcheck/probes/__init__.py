"""Protocol probes: what answers on an open port, with evidence, product, version and exposure.

One module per protocol (its usual ports, its first move, a pure classifier over bytes): ``ssh``,
``mysql``, ``mail`` (FTP, SMTP, IMAP, POP3), ``vnc``, ``http`` (and the HTTP APIs), ``keyvalue`` (Redis,
memcached), ``postgresql``, ``mongodb``, ``ldap``, ``mqtt``, ``amqp``, ``dns``, ``smb``, ``rdp``, ``tls``;
``catalogue`` lists them and orders them for a port; ``connection``, ``handshake`` and ``driver`` do the
I/O (asyncio). A scanned service is untrusted input: everything it sent is neutralised before any front
end sees it. Nothing here knows pytest or YAML; importing this package is cheap, the driver (asyncio,
ssl) loads with ``probe_services``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_portcheck.probes.catalogue import classify
    from pytest_portcheck.probes.connection import MAX_READ, ProbeRequest
    from pytest_portcheck.probes.driver import probe_services

__all__ = ["MAX_READ", "ProbeRequest", "classify", "probe_services"]


def __getattr__(name: str) -> Any:
    if name == "classify":
        from pytest_portcheck.probes.catalogue import classify

        return classify
    if name in ("MAX_READ", "ProbeRequest"):
        from pytest_portcheck.probes import connection

        return getattr(connection, name)
    if name == "probe_services":
        from pytest_portcheck.probes.driver import probe_services

        return probe_services
    raise AttributeError(name)
