"""What this host's kernel says about its own sockets, and what it allows a scan.

On local addresses a completed handshake or a silence is not always the target's answer: the kernel's
tables tell our own sockets (a self-connect, a simultaneous open), listeners that do not answer and
NAT'd connections apart. Here are those tables — the listening sockets (sock_diag netlink,
/proc/net/tcp), the other end of a connection (/proc/net/tcp), connection tracking (ctnetlink) — the
ephemeral port range, the descriptor limit a scan's window must fit under, and ``LocalSockets``, which
reads them for one scan and caches its readings briefly.
Must not import pytest, yaml, asyncio, ssl or anything outside the engine but ``ports``; ipaddress
only for IPv6 addresses.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass

from pytest_portcheck.engine.model import Target
from pytest_portcheck.engine.resolve import plain_ipv4

_LISTENERS_FRESH_FOR = 1.0  # seconds a reading of the listening ports vouches for the ports it lists
_FD_HEADROOM = 16  # descriptors left for the poller, the resolver, logging and the caller


def ephemeral_port_range() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            low, high = (int(part) for part in handle.read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(1024, 65536)


@dataclass(frozen=True, slots=True)
class Listening:
    """A listening TCP socket of this network namespace: its family, the address it is bound to
    (packed, 4 or 16 bytes; all zeros for a wildcard), its port, and for IPv6 whether it refuses IPv4."""

    family: int
    address: bytes
    port: int
    v6only: bool = False

    def serves(self, address: str) -> bool:
        """Whether a connection to ``address`` (on this socket's port) reaches this socket: its own
        address, or any address of its family for a wildcard (IPv4 too for a dual-stack ``::``)."""
        family, packed = _packed(address)
        if self.family == socket.AF_INET:
            return family == socket.AF_INET and self.address in (packed, _ANY4)
        if family == socket.AF_INET6:
            return self.address in (packed, _ANY6)
        return self.address == _V4_MAPPED + packed or (self.address == _ANY6 and not self.v6only)


_ANY4, _ANY6, _V4_MAPPED = bytes(4), bytes(16), bytes(10) + b"\xff\xff"


def _packed(address: str) -> tuple[int, bytes]:
    """The family and packed form of an address literal; an IPv4-mapped IPv6 one reads as IPv4 (the
    kernel takes a connection to it through the IPv4 stack)."""
    bare = address.split("%", 1)[0]
    if ":" not in bare:
        return socket.AF_INET, socket.inet_aton(bare)
    packed = socket.inet_pton(socket.AF_INET6, bare)
    if packed.startswith(_V4_MAPPED):
        return socket.AF_INET, packed[12:]
    return socket.AF_INET6, packed


def listening_ports() -> set[int] | None:
    """TCP ports with a listening socket in this network namespace, or None where /proc cannot tell."""
    found = proc_listening_sockets()
    return None if found is None else {listening.port for listening in found}


def proc_listening_sockets() -> list[Listening] | None:
    """The listening TCP sockets of this network namespace by /proc/net/tcp{,6}, or None where /proc
    cannot tell. /proc does not say whether an IPv6 socket refuses IPv4: each counts as dual-stack."""
    found: list[Listening] | None = None
    for name, family in (("/proc/self/net/tcp", socket.AF_INET), ("/proc/self/net/tcp6", socket.AF_INET6)):
        try:
            with open(name, encoding="ascii") as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        found = found or []
        for line in lines:
            fields = line.split(None, 4)
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                address, port = fields[1].rsplit(":", 1)
                # 32-bit words, each printed as the number its bytes make in this machine's order.
                words = (int(address[i : i + 8], 16) for i in range(0, len(address), 8))
                packed = b"".join(word.to_bytes(4, sys.byteorder) for word in words)
                found.append(Listening(family, packed, int(port, 16)))
    return found


_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_DIAG_MESSAGE = 16 + 72  # netlink header, then inet_diag_msg; its attributes follow
_INET_DIAG_SKV6ONLY = 11


def _diag_request(family: int, port: int, seq: int) -> bytes:
    """A sock_diag dump request for the TCP sockets listening on ``port``, or on any port for 0
    (inet_diag_req_v2)."""
    header = struct.pack("=LHHLL", 72, _SOCK_DIAG_BY_FAMILY, _NLM_DUMP_REQUEST, seq, 0)
    request = struct.pack("=BBBBL", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
    # inet_diag_sockid: source port (the filter), destination port, addresses, interface; no cookie.
    sockid = struct.pack("!HH", port, 0) + bytes(36) + struct.pack("=LL", 0xFFFFFFFF, 0xFFFFFFFF)
    return header + request + sockid


def has_listener(port: int) -> bool | None:
    """Whether a TCP socket listens on ``port`` in this network namespace, asked of the kernel's
    sock_diag netlink interface; None where it cannot tell (not Linux, netlink refused).

    Reading /proc/net/tcp walks the whole connection hash table: ~4.5 ms a file on a machine with
    262,144 buckets, whatever few sockets there are, while a dump of the listening sockets of one
    port takes some 50 us. Replies are checked here too (state and port), not left to the filter.
    """
    found = _ask_sock_diag(port, first=True)
    return None if found is None else bool(found)


def listening_sockets(port: int = 0) -> list[Listening] | None:
    """The TCP sockets listening on ``port`` (on any port for 0) in this network namespace, with
    their addresses, by sock_diag; None where it cannot tell."""
    return _ask_sock_diag(port, first=False)


def _ask_sock_diag(port: int, *, first: bool) -> list[Listening] | None:
    """IPv4's listeners, then IPv6's (unless ``first`` and IPv4 had one); None on any failure."""
    try:
        diag = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    except (AttributeError, OSError):
        return None
    found: list[Listening] = []
    with diag:
        try:
            diag.settimeout(1.0)
            for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
                diag.sendto(_diag_request(family, port, seq), (0, 0))
                replies = _listening_replies(diag, port)
                if replies is None:
                    return None
                found += replies
                if found and first:
                    break
        except OSError:
            return None
    return found


def _listening_replies(diag: socket.socket, port: int) -> list[Listening] | None:
    """Read one dump's replies: the listeners on ``port`` (any for 0), None on a netlink error."""
    found: list[Listening] = []
    while True:
        data = diag.recv(65536)
        offset = 0
        while offset + 16 <= len(data):
            length, kind = struct.unpack_from("=LH", data, offset)
            if kind == _NLMSG_DONE:
                return found
            if kind == _NLMSG_ERROR or length < 16:
                return None
            if kind == _SOCK_DIAG_BY_FAMILY and length >= _DIAG_MESSAGE:  # inet_diag_msg: family, state, ...
                family, state = data[offset + 16], data[offset + 17]
                (sport,) = struct.unpack_from("!H", data, offset + 20)
                if state == _TCP_LISTEN and (sport == port or not port):
                    bound = data[offset + 24 : offset + 40]
                    if family == socket.AF_INET:
                        found.append(Listening(family, bound[:4], sport))
                    else:
                        extra = _attributes(data, offset + _DIAG_MESSAGE, offset + length)
                        only = extra.get(_INET_DIAG_SKV6ONLY, b"")  # absent: taken as dual-stack
                        found.append(Listening(family, bound, sport, bool(only and only[0])))
            offset += (length + 3) & ~3


def _attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    """Netlink attributes from ``start`` to ``end``: their payloads by type (flags masked off)."""
    found: dict[int, bytes] = {}
    while start + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, start)
        if length < 4:
            break
        found[kind & _NLA_TYPE_MASK] = data[start + 4 : start + length]
        start += (length + 3) & ~3
    return found


_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
_NLA_NESTED = 0x8000
_NETLINK_NETFILTER = 12
_CT_GET, _CT_NEW = (1 << 8) | 1, 1 << 8  # NFNL_SUBSYS_CTNETLINK: IPCTNL_MSG_CT_GET, IPCTNL_MSG_CT_NEW
_CTA_TUPLE_ORIG, _CTA_TUPLE_REPLY = 1, 2
_CTA_TUPLE_IP, _CTA_TUPLE_PROTO = 1, 2
_CTA_PROTO_NUM, _CTA_PROTO_SRC_PORT, _CTA_PROTO_DST_PORT = 1, 2, 3
# CTA_IP_V4_SRC and CTA_IP_V6_SRC by family; the DST attribute is the next number.
_CTA_IP_SRC: dict[int, int] = {socket.AF_INET: 1, socket.AF_INET6: 3}


def _attribute(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + bytes(-length % 4)


def _ct_tuple(family: int, source: tuple[bytes, int], destination: tuple[bytes, int]) -> bytes:
    """A conntrack tuple (CTA_TUPLE_IP and CTA_TUPLE_PROTO) of a TCP connection."""
    src = _CTA_IP_SRC[family]
    addresses = _attribute(src, source[0]) + _attribute(src + 1, destination[0])
    ports = (
        _attribute(_CTA_PROTO_NUM, bytes([socket.IPPROTO_TCP]))
        + _attribute(_CTA_PROTO_SRC_PORT, struct.pack("!H", source[1]))
        + _attribute(_CTA_PROTO_DST_PORT, struct.pack("!H", destination[1]))
    )
    return _attribute(_CTA_TUPLE_IP | _NLA_NESTED, addresses) + _attribute(
        _CTA_TUPLE_PROTO | _NLA_NESTED, ports
    )


def _ct_endpoints(family: int, tuple_: bytes) -> tuple[tuple[bytes, int], tuple[bytes, int]] | None:
    """(source, destination) as (packed address, port) from a conntrack tuple; None if incomplete."""
    parts = _attributes(tuple_, 0, len(tuple_))
    addresses = _attributes(parts.get(_CTA_TUPLE_IP, b""), 0, len(parts.get(_CTA_TUPLE_IP, b"")))
    ports = _attributes(parts.get(_CTA_TUPLE_PROTO, b""), 0, len(parts.get(_CTA_TUPLE_PROTO, b"")))
    src = _CTA_IP_SRC[family]
    try:
        (sport,) = struct.unpack("!H", ports[_CTA_PROTO_SRC_PORT])
        (dport,) = struct.unpack("!H", ports[_CTA_PROTO_DST_PORT])
        return (addresses[src], sport), (addresses[src + 1], dport)
    except (KeyError, struct.error):
        return None


def translated_destination(local: tuple[str, int], remote: tuple[str, int]) -> tuple[str, int] | None:
    """Where the TCP connection from ``local`` to ``remote`` (address, port) really leads, by the
    kernel's connection tracking: the (address, port) its replies come from when a NAT rule changed
    its destination; None when nothing changed it, or conntrack cannot tell (no entry: nothing was
    translated; not Linux; no CAP_NET_ADMIN to ask).

    One exact lookup of the connection's original tuple (ctnetlink IPCTNL_MSG_CT_GET). An entry
    found by its reply direction (the other end of a simultaneous open) is not ours: None.
    """
    try:
        family, source = _packed(local[0])
        other, destination = _packed(remote[0])
        diag = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_NETFILTER)
    except (AttributeError, OSError, ValueError):
        return None
    if other != family:
        return None
    ours = ((source, local[1]), (destination, remote[1]))
    body = struct.pack("=BBH", family, 0, 0) + _attribute(
        _CTA_TUPLE_ORIG | _NLA_NESTED, _ct_tuple(family, *ours)
    )
    with diag:
        try:
            diag.settimeout(1.0)
            header = struct.pack("=LHHLL", 16 + len(body), _CT_GET, 1, 1, 0)  # NLM_F_REQUEST
            diag.sendto(header + body, (0, 0))
            data = diag.recv(65536)
        except OSError:
            return None
    if len(data) < 20 or struct.unpack_from("=LH", data)[1] != _CT_NEW:
        return None  # NLMSG_ERROR: no such connection (ENOENT), or not allowed to ask (EPERM)
    entry = _attributes(data, 20, min(len(data), struct.unpack_from("=L", data)[0]))
    original = _ct_endpoints(family, entry.get(_CTA_TUPLE_ORIG, b""))
    reply = _ct_endpoints(family, entry.get(_CTA_TUPLE_REPLY, b""))
    if original != ours or reply is None or reply[0] == ours[1]:
        return None
    return socket.inet_ntop(family, reply[0][0]), reply[0][1]


# Socket states of the accepting end of a connection (or of a simultaneous open) in /proc/net/tcp:
# ESTABLISHED, SYN_RECV, CLOSE_WAIT. Not SYN_SENT: another probe of ours merely aiming at a port.
_ANSWERING_STATES = frozenset({"01", "03", "08"})


def _proc_forms(address: str, port: int) -> set[str]:
    """How /proc/net/tcp{,6} writes ``address:port`` (32-bit words in host order; IPv4 also as mapped)."""
    import ipaddress  # only for the rare look at /proc after a reset

    ip = ipaddress.ip_address(address.split("%", 1)[0])
    forms = set()
    if ip.version == 4:
        forms.add(ip.packed[::-1].hex().upper())
        ip = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed)
    packed = ip.packed
    forms.add(b"".join(packed[i : i + 4][::-1] for i in range(0, 16, 4)).hex().upper())
    return {f"{form}:{port:04X}" for form in forms}


def connected_peer_port(local: tuple[str, int]) -> int | None:
    """The local port of the socket at the other end of our connection from ``local`` (address,
    port), when that end is in this network namespace (None when it is elsewhere, gone, or /proc
    cannot tell)."""
    ours = _proc_forms(*local)
    for name in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(name, encoding="ascii") as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split(None, 4)
            if len(fields) > 3 and fields[3] in _ANSWERING_STATES and fields[2] in ours:
                return int(fields[1].rsplit(":", 1)[1], 16)
    return None


def is_local_address(address: str) -> bool:
    """True when ``address`` belongs to this host (so a probe of it could meet one of our own sockets)."""
    loopback = _loopback(address)
    if loopback is None:
        return False
    if loopback:
        return True
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def fit_window(requested: int) -> tuple[int, tuple[int, int] | None]:
    """Raise the soft RLIMIT_NOFILE toward (never above) the hard limit so ``requested`` probes fit.

    Returns the window that fits under the soft limit, and the limits to restore afterwards (or None).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        in_use = len(os.listdir("/proc/self/fd")) + _FD_HEADROOM
    except OSError:
        in_use = 64 + _FD_HEADROOM
    previous: tuple[int, int] | None = None
    if soft != resource.RLIM_INFINITY and requested + in_use > soft:
        wanted = requested + in_use
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if raised > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                previous, soft = (soft, hard), raised
            except (ValueError, OSError):
                pass
    if soft == resource.RLIM_INFINITY:
        return requested, previous
    return max(1, min(requested, soft - in_use)), previous


def _loopback(address: str) -> bool | None:
    """Whether ``address`` is a loopback address; None when it is not an address at all."""
    bare = address.split("%", 1)[0]
    packed = plain_ipv4(bare)
    if packed is not None:
        return packed[0] == 127
    if ":" not in bare:
        return None
    import ipaddress  # IPv6 addresses only

    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return None


def is_loopback(address: str) -> bool:
    return _loopback(address) is True


class LocalSockets:
    """What this host's own sockets say about the probes of one scan: whether an address is this
    host's, whether a socket listens behind a silent port, and whether a completed handshake (or a
    reset after one) met a listener or one of our own sockets. Readings of the kernel's tables are
    kept briefly: a firewalled local address can leave thousands of ports silent."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.ephemeral = ephemeral_port_range()
        self._local: dict[str, bool] = {}
        self._listeners: set[int] | None = None
        self._listeners_read_at = 0.0
        self._sockets: dict[int, list[Listening]] = {}
        self._sockets_read_at: float | None = None

    def is_local(self, address: str) -> bool:
        local = self._local.get(address)
        if local is None:
            local = self._local[address] = is_local_address(address)
        return local

    def listens(self, address: str, port: int) -> bool:
        """Whether a listening socket of this namespace serves ``address``:``port``.

        All listeners are read at once (one sock_diag dump; /proc where netlink is refused or dumps
        nothing, as a sandbox may) and the reading serves every silent port for a second: a
        firewalled local address can leave thousands of ports silent.
        """
        now = self._clock()
        if self._sockets_read_at is None or now - self._sockets_read_at >= _LISTENERS_FRESH_FOR:
            found = listening_sockets() or proc_listening_sockets() or []
            self._sockets = {}
            for listening in found:
                self._sockets.setdefault(listening.port, []).append(listening)
            self._sockets_read_at = now
        return any(listening.serves(address) for listening in self._sockets.get(port, ()))

    def reset_after_handshake(self, target: Target) -> bool:
        """A reset after the handshake is the target's, except where two of our own probes on this
        host may have met (a local address in the ephemeral range with nothing listening)."""
        if target.port not in self.ephemeral or not self.is_local(target.address):
            return True
        return self.has_listener(target.port)

    def is_genuine_open(self, target: Target, sock: socket.socket) -> bool:
        """False when a handshake completed with one of our own sockets rather than a listener.

        Probing a local address in the ephemeral range, the kernel may give a probe the very port it
        connects to (a self-connect), or two probes may reach each other's local ports at once (a
        simultaneous open, possibly across our scanning processes). Neither has a listener behind it.
        A local NAT redirect to a listener elsewhere is genuine: the other end of the connection is
        then a socket on another port, which the kernel's socket table shows. So is a DNAT to
        another namespace (a container's published port): the other end is in no table of ours, but
        conntrack says the connection was sent to an address that is not this host's.
        """
        if target.port not in self.ephemeral or not self.is_local(target.address):
            return True
        try:
            ours = sock.getsockname()
            peer = sock.getpeername()
            if peer[:2] == ours[:2]:
                return False
        except OSError:
            return False  # reset between the event and now: nothing we can vouch for
        if self.has_listener(target.port):
            return True
        local = (str(ours[0]), int(ours[1]))
        other_end = connected_peer_port(local)
        if other_end is not None:
            return other_end != target.port
        moved = translated_destination(local, (str(peer[0]), int(peer[1])))
        return moved is not None and not is_loopback(moved[0]) and not self.is_local(moved[0])

    def has_listener(self, port: int) -> bool:
        if has_listener(port):  # the kernel's answer for this one port, in microseconds
            return True
        # No listener by netlink, or no answer: rare (a self-connect, a simultaneous open), so /proc is
        # read to confirm it — a sandbox whose sock_diag dumps nothing cannot turn real opens into errors.
        # /proc/net/tcp lists every socket of the namespace: reading it for each open port of a scan
        # with many listeners costs seconds, so a recent reading vouches for ports it lists, and a port
        # it does not list gets a fresh reading.
        now = self._clock()
        fresh = self._listeners is not None and now - self._listeners_read_at < _LISTENERS_FRESH_FOR
        if fresh and self._listeners is not None and port in self._listeners:
            return True
        listeners = listening_ports()
        if listeners is None:
            return True  # no /proc: the self-connect comparison above is all we can do
        self._listeners, self._listeners_read_at = listeners, now
        return port in listeners
