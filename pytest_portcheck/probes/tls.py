"""TLS: client contexts (verifying or not, capped below a minimum) and reading the certificate.

The handshake itself is the driver's; this module turns what it returned into a ``TlsInfo``. A
certificate is hostile input like any banner: one that ``cryptography`` refuses (a ``notAfter`` in
month 13, which OpenSSL serves happily) yields a ``TlsInfo`` with ``certificate_error`` set, for that
port only — never an exception.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ssl
import warnings

from pytest_portcheck.probes.model import TLS_VERSIONS, TlsInfo, neutralise

_SSL_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def client_context(verify: bool) -> ssl.SSLContext:
    if verify:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # inventories check internal hosts with self-signed certificates
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    return context


def capped_context(minimum: str) -> tuple[ssl.SSLContext | None, str]:
    """A context that offers only versions below ``minimum``, and what it can test.

    Returns (None, why) when the local OpenSSL cannot offer any version below it. Old versions need
    OpenSSL's security level 0 (level 1+ refuses TLS 1.0/1.1 outright), set on this context only.
    """
    below = [name for name in TLS_VERSIONS[: TLS_VERSIONS.index(minimum)] if _can_offer(name)]
    untestable = [name for name in TLS_VERSIONS[: TLS_VERSIONS.index(minimum)] if name not in below]
    if not below:
        return None, f"untested: the local OpenSSL cannot offer {', '.join(untestable) or 'anything lower'}"
    context = client_context(False)
    with contextlib.suppress(ssl.SSLError):  # an OpenSSL without security levels needs none
        context.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():  # offering deprecated versions is the point of this context
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = _SSL_VERSIONS[below[0]]
        context.maximum_version = _SSL_VERSIONS[below[-1]]
    note = f" ({', '.join(untestable)} untested: the local OpenSSL lacks them)" if untestable else ""
    return context, note


def _can_offer(name: str) -> bool:
    flag = {
        "TLSv1": "HAS_TLSv1",
        "TLSv1.1": "HAS_TLSv1_1",
        "TLSv1.2": "HAS_TLSv1_2",
        "TLSv1.3": "HAS_TLSv1_3",
    }
    return bool(getattr(ssl, flag[name], False))


def tls_info(der: bytes | None, version: str, cipher: str, verified: bool) -> TlsInfo:
    """What the handshake showed; the certificate's fields when ``cryptography`` can read them, and
    its fingerprint whenever one came (a certificate whose fields cannot be read still has bytes)."""
    if der is None:
        return TlsInfo(version, cipher, "", "", "", 0, verified)
    fingerprint = hashlib.sha256(der).hexdigest()
    try:
        subject, issuer, expires = _certificate_fields(der)
    except Exception as exc:
        reason = neutralise(f"the certificate could not be read: {exc}", 160)
        return TlsInfo(
            version, cipher, "", "", "", 0, verified, certificate_error=reason, fingerprint_sha256=fingerprint
        )
    days_left = (expires - datetime.datetime.now(datetime.timezone.utc)).days
    expiry = expires.isoformat(timespec="seconds")
    return TlsInfo(
        version, cipher, subject, issuer, expiry, days_left, verified, fingerprint_sha256=fingerprint
    )


def _certificate_fields(der: bytes) -> tuple[str, str, datetime.datetime]:
    from cryptography import x509  # imported only when a TLS probe ran: it costs ~50 ms

    certificate = x509.load_der_x509_certificate(der)
    return (
        neutralise(certificate.subject.rfc4514_string(), 200),
        neutralise(certificate.issuer.rfc4514_string(), 200),
        certificate.not_valid_after_utc,
    )
