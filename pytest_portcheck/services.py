"""What answers on a port, as the probes report it: the service model, and neutralising peer text.

Data only (no sockets, no asyncio), so reports and inventories can use it without the probes' cost.
A scanned service is untrusted input: ``neutralise`` is applied to everything a peer sent before it is
stored or shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SERVICES = ("ssh", "http", "https", "tls", "postgresql", "mysql", "redis", "smtp", "ftp", "memcached")
TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


@dataclass(frozen=True, slots=True)
class TlsInfo:
    version: str
    cipher: str
    subject: str
    issuer: str
    not_after: str
    """Expiry of the certificate, ISO 8601 in UTC."""
    days_left: int
    verified: bool
    """True when the chain and name were verified (only when verification was asked for)."""


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    service: str
    """What answered: one of SERVICES, or ``unknown``."""
    evidence: str
    """The first line the peer sent (or the TLS summary), neutralised for terminals and XML."""
    product: str | None = None
    version: str | None = None
    tls: TlsInfo | None = None
    auth: str | None = None
    """For Redis: ``required`` or ``none``."""
    error: str | None = None
    """Why the probe could not finish (timeout, reset, TLS failure...), neutralised."""

    def describe(self) -> str:
        """``ssh (OpenSSH 9.2p1) "SSH-2.0-OpenSSH_9.2p1"``: for one line of output."""
        product = " ".join(filter(None, (self.product, self.version)))
        parts = [self.service + (f" ({product})" if product else "")]
        if self.auth:
            parts.append(f"auth {self.auth}")
        if self.tls:
            parts.append(f"{self.tls.version}, certificate expires in {self.tls.days_left} days")
        if self.evidence:
            parts.append(f'"{self.evidence}"')
        if self.error:
            parts.append(f"[{self.error}]")
        return " ".join(parts)


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def neutralise(data: bytes | str, limit: int = 200) -> str:
    """Printable text from untrusted bytes: invalid UTF-8, controls, escapes and bidi marks escaped."""
    text = data.decode("utf-8", errors="backslashreplace") if isinstance(data, bytes) else data
    text = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else
                       f"\\u{ord(m.group()):04x}", text)  # fmt: skip
    return text if len(text) <= limit else text[: limit - 1] + "…"
