"""Protocol probes: what answers on an open port, with evidence, product, version and exposure.

One module per protocol (its usual ports, its first move, a pure classifier over bytes): ``ssh``, ``mysql``,
``mail`` (FTP, SMTP, IMAP, POP3), ``vnc``, ``http`` (and the HTTP APIs), ``keyvalue`` (Redis, memcached),
``postgresql``, ``mongodb``, ``ldap``, ``mqtt``, ``amqp``, ``dns``, ``smb``, ``rdp``, ``tls``; ``catalogue``
lists them and orders them for a port; ``connection``, ``handshake`` and ``driver`` do the I/O (asyncio). A
scanned service is untrusted input: everything it sent is neutralised before any front end sees it; ``model``
holds what a probe found (``ServiceInfo``, ``TlsInfo``) and ``neutralise``. Must not import pytest, YAML, the
inventory or the report. This file holds no code: importing the package, or ``model``, loads no asyncio or
ssl; the driver's modules bring them.
"""
