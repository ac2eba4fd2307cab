"""Greeting protocols: FTP, SMTP, IMAP and POP3 speak first; product and version from the greeting.

``220 (vsFTPd 3.0.3)``, ``220 mx ESMTP Postfix (Debian/GNU)``, ``* OK [CAPABILITY ...] Dovecot (Debian)
ready.``, ``+OK Dovecot ready.``: the classifiers only read what was sent, nothing is answered.
"""

from __future__ import annotations

import re

from pytest_portcheck.probes.model import ServiceInfo, neutralise
from pytest_portcheck.probes.spec import ProtocolProbe
from pytest_portcheck.probes.ssh import first_line

# Products that name themselves in greetings, with the version when they give it.
_PRODUCTS = re.compile(
    rb"(vsFTPd|ProFTPD|Pure-FTPd|FileZilla Server|Postfix|Exim|Sendmail|Microsoft ESMTP|OpenSMTPD|"
    rb"Dovecot|Cyrus|Courier)[ /_-]?v?(\d[\w.]*)?",
    re.IGNORECASE,
)


def _product(line: bytes) -> tuple[str | None, str | None]:
    match = _PRODUCTS.search(line)
    if match is None:
        return None, None
    version = match.group(2)
    return neutralise(match.group(1), 40), neutralise(version, 40) if version else None


def _info(service: str, line: bytes) -> ServiceInfo:
    return ServiceInfo(service, neutralise(line), *_product(line))


def classify_220(data: bytes) -> ServiceInfo | None:
    """FTP or SMTP: both greet with 220; the text tells them apart (``FTP``/``SMTP``/``ESMTP``)."""
    line = first_line(data)
    if not line.startswith((b"220 ", b"220-")):
        return None
    upper = line.upper()
    if b"SMTP" in upper or b"POSTFIX" in upper or b"EXIM" in upper:
        return _info("smtp", line)
    return _info("ftp", line)


def classify_imap(data: bytes) -> ServiceInfo | None:
    line = first_line(data)
    return _info("imap", line) if line.startswith((b"* OK", b"* PREAUTH")) else None


def classify_pop3(data: bytes) -> ServiceInfo | None:
    line = first_line(data)
    return _info("pop3", line) if line.startswith(b"+OK") else None


FTP_SMTP = ProtocolProbe("ftp", classify_220, frozenset({21, 25, 587, 2121}), rarity=1)
IMAP = ProtocolProbe("imap", classify_imap, frozenset({143}), rarity=2)
POP3 = ProtocolProbe("pop3", classify_pop3, frozenset({110}), rarity=3)
