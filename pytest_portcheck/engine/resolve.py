"""Turning what the user wrote into addresses: IP literals, CIDR blocks and hostnames.

Hostnames are resolved once each, all A and AAAA addresses, in a small thread pool since the system
resolver only offers a blocking call. A name that does not resolve becomes error results, never a
verdict about its ports.
Must not import pytest, yaml or anything outside the engine but ``ports``; ipaddress only for IPv6
and blocks.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pytest_portcheck.engine.model import PortState, ProbeResult, Reason, Resolution, ScanError, Target
from pytest_portcheck.ports import Protocol

if TYPE_CHECKING:
    import ipaddress

MAX_ADDRESSES_PER_TARGET = 65536
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)


class TargetTooLarge(ScanError):
    """A block of more addresses than a scan takes unless its front end allows it: the facts only.

    The engine knows no front end, so the message names no option; each front end adds the fix it
    offers (the command line's ``--allow-large-targets``)."""

    def __init__(self, target: str, addresses: int, limit: int) -> None:
        self.target = target
        self.addresses = addresses
        self.limit = limit
        super().__init__(f"target {target!r} has {addresses:,} addresses, more than {limit:,}: split it")

    def __reduce__(self) -> tuple[type[TargetTooLarge], tuple[str, int, int]]:
        return type(self), (self.target, self.addresses, self.limit)  # copies and pickles keep the facts


def plain_ipv4(text: str) -> bytes | None:
    """The four bytes of ``text`` if it is an IPv4 address written as ``ipaddress`` writes it back
    (four decimal numbers, no leading zeros), else None. The common target and every address the
    resolver returns, read without importing ipaddress (~1.5 ms at start-up)."""
    try:
        packed = socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return None
    return packed if socket.inet_ntop(socket.AF_INET, packed) == text else None


def address_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as people write it: IPv4-mapped IPv6 keeps its dotted quad (``::ffff:127.1.2.3``)."""
    import ipaddress  # loaded already: the caller made ``address``

    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _literal_addresses(text: str, allow_large: bool) -> tuple[str, ...] | None:
    """Addresses of an IP literal or CIDR block, or None when ``text`` is a hostname."""
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if plain_ipv4(candidate) is not None:
        return (candidate,)
    if ":" not in candidate and "/" not in candidate:
        return None  # not IPv6, not a block, not an IPv4 address ipaddress would read: a hostname
    import ipaddress  # IPv6 literals and blocks

    try:
        return (address_text(ipaddress.ip_address(candidate)),)
    except ValueError:
        pass
    if "/" not in candidate:
        return None
    try:
        network = ipaddress.ip_network(candidate, strict=False)
    except ValueError as exc:
        raise ScanError(f"target {text!r} is not a valid address block: {exc}") from None
    if network.num_addresses > MAX_ADDRESSES_PER_TARGET and not allow_large:
        raise TargetTooLarge(text, network.num_addresses, MAX_ADDRESSES_PER_TARGET)
    return tuple(address_text(address) for address in network)


def _refuse_numeric_shorthand(text: str) -> None:
    """The system resolver reads 010.0.0.1 as 8.0.0.1 (octal), 0x7f.1 and 2130706433 as 127.0.0.1:
    a numeric target that is not a plain dotted quad would be scanned somewhere it does not say."""
    address = text.split("/", 1)[0]
    if not _NUMERIC_HOST.fullmatch(address) or plain_ipv4(address) is not None:
        return
    try:
        meant = f" (the resolver would read it as {socket.inet_ntoa(socket.inet_aton(address))})"
    except OSError:
        meant = ""
    raise ScanError(
        f"{text!r} is not a plain IPv4 address{meant}: write four decimal numbers without leading zeros"
    )


def check_target(text: str, *, allow_large: bool = False) -> None:
    """Raise ScanError for a target that can never be scanned as written (bad block, too large, empty,
    a numeric shorthand the resolver would read as another address)."""
    if not text.strip():
        raise ScanError("a target is empty: give a hostname, an address or a block like 127.0.0.0/28")
    _refuse_numeric_shorthand(text.strip())
    _literal_addresses(text.strip(), allow_large)


def resolve_one(host: str, *, allow_large: bool = False) -> Resolution:
    """Resolve one target: IP literal, CIDR block, or hostname (every A and AAAA address, once each)."""
    _refuse_numeric_shorthand(host.strip())
    literal = _literal_addresses(host, allow_large)
    if literal is not None:
        return Resolution(host, literal)
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return Resolution(host, (), Reason.dns_error(exc.strerror or str(exc)))
    except (UnicodeError, ValueError) as exc:
        # The IDNA codec rejects empty or over-long labels before any query is sent.
        return Resolution(host, (), Reason.dns_error(f"invalid hostname ({exc})"))
    seen: dict[str, None] = {}
    for family, _type, _proto, _name, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            seen.setdefault(str(sockaddr[0]), None)
    if not seen:
        return Resolution(host, (), Reason.dns_error("no IPv4 or IPv6 address"))
    return Resolution(host, tuple(seen))


def resolve_hosts(hosts: Sequence[str], *, allow_large: bool = False, threads: int = 16) -> list[Resolution]:
    """Resolve many targets in parallel, each once; the answer keeps the order of ``hosts``."""
    unique = list(dict.fromkeys(hosts))
    for host in unique:  # refuse bad blocks before any lookup starts
        check_target(host, allow_large=allow_large)
    if len(unique) <= 1:
        resolved = [resolve_one(host, allow_large=allow_large) for host in unique]
    else:
        from concurrent.futures import ThreadPoolExecutor  # only for several names

        with ThreadPoolExecutor(max_workers=min(threads, len(unique))) as pool:
            resolved = list(pool.map(lambda host: resolve_one(host, allow_large=allow_large), unique))
    by_host = dict(zip(unique, resolved, strict=True))
    return [by_host[host] for host in hosts]


def expand_targets(
    resolutions: Iterable[Resolution], ports: Sequence[tuple[Protocol, int]]
) -> tuple[list[Target], list[ProbeResult]]:
    """Resolutions times ports: the targets to probe, and the error results of the hosts that did not
    resolve (never probed)."""
    targets: list[Target] = []
    failed: list[ProbeResult] = []
    for resolution in resolutions:
        if resolution.error is not None:
            failed.extend(
                ProbeResult(resolution.host, None, proto, port, PortState.ERROR, resolution.error)
                for proto, port in ports
            )
            continue
        for address in resolution.addresses:
            targets.extend(Target(resolution.host, address, proto, port) for proto, port in ports)
    return targets, failed
