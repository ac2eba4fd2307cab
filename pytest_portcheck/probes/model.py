"""What answers on a port, as the probes report it: the service model, and neutralising peer text.

Data only (no sockets, no asyncio), so reports and inventories can use it without the probes' cost.
A scanned service is untrusted input: ``neutralise`` is applied to everything a peer sent before it is
stored or shown.
Must not import pytest, asyncio, ssl or the other modules of the probes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

HTTP_APIS = ("elasticsearch", "etcd", "docker", "kubernetes", "prometheus", "couchdb")
"""Services that are HTTP underneath: ``service: http`` (or ``https`` over TLS) accepts them too."""
SERVICES = (
    "ssh", "http", "https", "tls", "postgresql", "mysql", "redis", "smtp", "ftp", "memcached",
    "imap", "pop3", "ldap", "mqtt", "amqp", "dns", "smb", "rdp", "vnc", "mongodb", *HTTP_APIS,
)  # fmt: skip
AUTH_SERVICES = ("redis", "memcached", "mongodb", "mqtt", "elasticsearch", "etcd", "docker", "kubernetes")
"""Services whose probe can tell whether they answer without authentication (``auth:`` in the YAML)."""
EXPOSED_WITHOUT_AUTH = frozenset(AUTH_SERVICES) - {"mqtt"}
"""Services that hand out data or control to whoever connects when they need no authentication."""
_AUTH_WORDS = {"none": "no auth", "required": "auth required"}
TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


def tls_rank(version: str) -> int:
    """The place of a TLS version in TLS_VERSIONS (older is lower); -1 for one not listed."""
    return TLS_VERSIONS.index(version) if version in TLS_VERSIONS else -1


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
    below_minimum: str | None = None
    """A handshake capped below the inventory's ``min_version``: the version the server accepted
    there, ``refused``, or ``untested: why`` (the local OpenSSL cannot offer those versions)."""
    certificate_error: str | None = None
    """Why the certificate could not be read (a malformed field): the handshake itself succeeded."""
    fingerprint_sha256: str | None = None
    """SHA-256 of the leaf certificate's DER bytes, 64 lowercase hex digits (what ``openssl x509
    -outform der | sha256sum`` prints): a swapped certificate shows here even with the same names and
    dates. None where no certificate came, and in reports written before it was recorded."""


@dataclass(frozen=True, slots=True)
class NameAnswer:
    """What the probe made under one name found, where several names met on one port: the port's
    answer is the same for each (else it is an error), but whether its certificate verified is not."""

    name: str | None
    """The name asked for (SNI, HTTP Host); None for the address itself."""
    verified: bool
    """The handshake under this name verified chain and name (only when an entry under it asked)."""
    error: str | None = None


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
    """``required`` or ``none`` where the probe can tell (AUTH_SERVICES), else None."""
    error: str | None = None
    """Why the probe could not finish (timeout, reset, TLS failure...), neutralised."""
    local_failure: bool = False
    """The probe failed on this side (no descriptor left, a bug): an error, never evidence of drift."""
    auth_note: str | None = None
    """What ``auth`` rests on where that needs saying, neutralised: the identity an anonymous request
    is given (Elasticsearch's anonymous user), or why the answer cannot tell (a 403 from Docker's
    authorization plugin; Kubernetes' ``system:anonymous`` limited to public paths)."""
    names: tuple[NameAnswer, ...] = ()
    """Where entries under several names met on this port: each name's own verification. ``tls`` and
    ``error`` above are then the strictest reading (verified only if every name that asked got it)."""

    @property
    def exposed(self) -> bool:
        """Answers without authentication where that hands out data or control."""
        return self.auth == "none" and self.service in EXPOSED_WITHOUT_AUTH

    def as_asked_by(self, address: str) -> ServiceInfo:
        """The answer as the probe made for an inventory host written ``address`` found it: its own
        verification where several names met on the port (see ``probe_name``)."""
        name = probe_name(address)
        for answer in self.names:
            if answer.name == name:
                tls = None if self.tls is None else replace(self.tls, verified=answer.verified)
                return replace(self, tls=tls, error=answer.error, names=())
        return self

    def answers_as(self, wanted: str) -> bool:
        """Whether this counts as the declared service: ``http`` accepts the HTTP APIs, ``https``
        them over TLS, ``tls`` anything over TLS."""
        if self.service == wanted:
            return True
        if wanted == "tls":
            return self.tls is not None
        if wanted in ("http", "https") and self.service in HTTP_APIS:
            return (self.tls is not None) == (wanted == "https")
        return False

    def summary(self) -> str:
        """``redis 7.0.15, no auth``: what answers, short (for lists of unexpected ports)."""
        named = self.product if self.product and self.product.lower() != self.service else None
        head = " ".join(filter(None, (self.service, named, self.version)))
        notes = [_AUTH_WORDS[self.auth]] if self.auth in _AUTH_WORDS else []
        if self.tls is not None and self.service not in ("tls", "https"):
            notes.append("TLS")
        return ", ".join([head, *notes])

    def describe(self) -> str:
        """``ssh (OpenSSH 9.2p1) "SSH-2.0-OpenSSH_9.2p1"``: for one line of output."""
        product = " ".join(filter(None, (self.product, self.version)))
        parts = [self.service + (f" ({product})" if product else "")]
        if self.exposed:
            parts.append("EXPOSED: no authentication")
        elif self.auth:
            parts.append(_AUTH_WORDS.get(self.auth, f"auth {self.auth}"))
        if self.auth_note:
            parts.append(f"({self.auth_note})")
        if self.tls:
            parts.append(f"{self.tls.version}, certificate expires in {self.tls.days_left} days")
        if self.evidence:
            parts.append(f'"{self.evidence}"')
        if self.error:
            parts.append(f"[{self.error}]")
        return " ".join(parts)


def probe_name(address: str) -> str | None:
    """The name a probe asks for (TLS SNI and verification, the HTTP Host) for an inventory host
    written ``address``: None for an IP address or network, which is probed as itself."""
    try:
        ipaddress.ip_network(address.strip("[]"), strict=False)
    except ValueError:
        return address
    return None


_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def neutralise(data: bytes | str, limit: int = 200) -> str:
    """Printable text from untrusted bytes: invalid UTF-8, controls, escapes and bidi marks escaped."""
    text = data.decode("utf-8", errors="backslashreplace") if isinstance(data, bytes) else data
    text = _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else
                       f"\\u{ord(m.group()):04x}", text)  # fmt: skip
    return text if len(text) <= limit else text[: limit - 1] + "…"
