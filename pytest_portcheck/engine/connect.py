"""The TCP connect scanner: a sliding window of non-blocking connects in one poll loop.

One process, one loop: sockets are created non-blocking, ``connect_ex`` starts each handshake, the
kernel's readiness events say when it is decided, and ``SO_ERROR`` says how. Attempts that time out
are retried; our own failures (no descriptors, no ephemeral ports, a socket that met itself) are
retried or reported as errors, never as a state of the target. Probes to remote addresses wait their
turn in the address's pace and time out after its measured round trip (``timing.py``); ``_ScanState``
holds everything the loop juggles, for TCP and UDP alike. On local addresses the kernel's tables tell
our own sockets, listeners that do not answer and NAT'd connections apart: the listening sockets
(sock_diag netlink, /proc/net/tcp) and connection tracking (ctnetlink). Imports the engine's model,
payloads and timing only.
Must not import pytest, yaml, dataclasses or anything outside the engine but ``ports`` and ``record``;
ipaddress only for IPv6 addresses.
"""

from __future__ import annotations

import errno
import heapq
import os
import resource
import select
import selectors
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from pytest_portcheck.engine.model import PortState, ProbeResult, Reason, ScanSettings, ScanStats, Target
from pytest_portcheck.engine.payloads import udp_payload
from pytest_portcheck.engine.resolve import plain_ipv4
from pytest_portcheck.engine.timing import CATCH_UP, Destination, Pace
from pytest_portcheck.ports import Protocol
from pytest_portcheck.record import record

# errno values that mean "we could not make the attempt": back off and try again.
RESOURCE_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL, errno.EAGAIN}
)
_FILTERED_REASONS = {
    errno.EHOSTUNREACH: Reason.HOST_UNREACH,
    errno.EHOSTDOWN: Reason.HOST_UNREACH,
    errno.ENETUNREACH: Reason.NET_UNREACH,
    errno.ETIMEDOUT: Reason.NO_RESPONSE,
    errno.EPERM: Reason.LOCAL_FIREWALL,  # a rule of this host's own firewall refused to send
    errno.EACCES: Reason.ADMIN_PROHIBITED,  # ICMPv6 administratively prohibited
}
# A reset before we saw the handshake finish: possibly our own probe meeting another; look again.
_REPROBE_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNABORTED})
_LINGER_ZERO = struct.pack("ii", 1, 0)
_MAX_REPROBES = 5
_MAX_IDLE_RESOURCE_FAILURES = 3
_MAX_PACED_ATTEMPTS = 4  # a paced retry that meets silence may be paced again, this many times in all
_LISTENERS_FRESH_FOR = 1.0  # seconds a reading of the listening ports vouches for the ports it lists
_IDLE_PAUSES = (0.05, 0.1, 0.2, 0.4)
_FD_HEADROOM = 16  # descriptors left for the poller, the resolver, logging and the caller
_HAS_SOCK_NONBLOCK = hasattr(socket, "SOCK_NONBLOCK")
_NONBLOCKING_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
_NONBLOCKING_DGRAM = socket.SOCK_DGRAM | getattr(socket, "SOCK_NONBLOCK", 0)
_UDP_READ = 4096


def ephemeral_port_range() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            low, high = (int(part) for part in handle.read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(1024, 65536)


@record
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


class _Poller:
    """Write-readiness of many sockets: epoll where the kernel has it, ``selectors`` elsewhere."""

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = None if self._epoll is not None else selectors.DefaultSelector()

    def add(self, fd: int, readable: bool = False) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN if readable else select.EPOLLOUT)
        else:
            assert self._selector is not None
            self._selector.register(fd, selectors.EVENT_READ if readable else selectors.EVENT_WRITE)

    def discard(self, fd: int) -> None:
        # Closing a descriptor removes it from an epoll set; selectors keep their own map.
        if self._selector is not None:
            self._selector.unregister(fd)

    def wait(self, timeout: float) -> list[int]:
        if self._epoll is not None:
            return [fd for fd, _events in self._epoll.poll(timeout)]
        assert self._selector is not None
        return [key.fd for key, _events in self._selector.select(timeout)]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        if self._selector is not None:
            self._selector.close()


@record(frozen=False, eq=False)
class _Probe:
    target: Target
    sockaddr: tuple[object, ...]
    family: int
    dest: Destination
    attempt: int = 1
    resource_failures: int = 0
    reprobes: int = 0
    sock: socket.socket | None = None
    started: float = 0.0
    first_sent: float = 0.0
    serial: int = 0
    done: bool = False
    silent: int = 0
    """Attempts that met silence: an answer after one is a drop."""
    paced: bool = False
    """A UDP retry paced against its address's ICMP rate limit."""
    paced_attempts: int = 0
    reexams: int = 0


class _ScanState:
    """Everything one scan loop juggles, for TCP and UDP alike: the probes in flight and their
    deadlines, the probes ready to start, the paces probes wait in, the probes whose silence waits
    for a verdict, and the window and rate cap over all of them."""

    def __init__(
        self, fresh: Iterator[_Probe], window: int, max_rate: float | None, clock: Callable[[], float]
    ) -> None:
        self.clock = clock
        self.in_flight: dict[int, _Probe] = {}
        self.deadlines: list[tuple[float, int, _Probe]] = []
        self.ready: deque[_Probe] = deque()
        self.fresh = fresh
        self.exhausted = False
        self.waiting: dict[Pace[_Probe], None] = {}  # paces with probes in them, in insertion order
        self.queued = 0
        self.parked: dict[Destination, list[_Probe]] = {}
        self.window = window
        self.serial = 0
        self.cap_interval = 0.0 if max_rate is None else 1.0 / max_rate
        self.cap_due = 0.0
        self.idle_failures = 0

    def busy(self) -> bool:
        return bool(not self.exhausted or self.ready or self.in_flight or self.waiting)

    def next_probe(self, now: float) -> _Probe | None:
        """The next probe to start: retries and released ones first, then fresh ones (paced to
        their address if it is remote); None when nothing may start now."""
        while True:
            if self.ready:
                return self.ready.popleft()
            if self.exhausted or self.queued >= self.window:
                return None
            probe = next(self.fresh, None)
            if probe is None:
                self.exhausted = True
                return None
            if not (probe.dest.adaptive and probe.target.proto is Protocol.TCP):
                return probe
            self.wait(probe.dest.pace, probe, now)
            now = self.clock()  # at thousands a second, a pace's next turn is microseconds away
            self.release(now)

    def wait(self, pace: Pace[_Probe], probe: _Probe, now: float, *, first: bool = False) -> None:
        pace.add(probe, now, first=first)
        self.waiting[pace] = None
        self.queued += 1

    def release(self, now: float) -> None:
        for pace in list(self.waiting):
            self.queued -= pace.release(now, self.ready)
            if not pace.queue:
                del self.waiting[pace]

    def may_send(self, now: float) -> bool:
        """The --max-rate token bucket over the whole scan."""
        if not self.cap_interval:
            return True
        if self.cap_due > now:
            return False
        self.cap_due = max(self.cap_due, now - max(self.cap_interval, CATCH_UP)) + self.cap_interval
        return True

    def watch(self, probe: _Probe, deadline: float) -> None:
        self.serial += 1
        probe.serial = self.serial
        heapq.heappush(self.deadlines, (deadline, self.serial, probe))

    def next_wakeup(self, now: float) -> float:
        """Seconds until something may happen: a deadline, a pace's turn, or the rate cap."""
        times = [pace.due for pace in self.waiting]
        if self.deadlines:
            times.append(self.deadlines[0][0])
        if self.ready and self.cap_interval:
            times.append(self.cap_due)
        return max(0.0, min(times) - now) if times else 0.0

    def expired(self, now: float) -> Iterator[_Probe]:
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _deadline, serial, probe = heapq.heappop(deadlines)
            if probe.serial == serial and not probe.done:
                yield probe

    def park(self, probe: _Probe) -> None:
        self.parked.setdefault(probe.dest, []).append(probe)

    def unpark(self, dest: Destination) -> list[_Probe]:
        return self.parked.pop(dest, [])


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


def _is_loopback(address: str) -> bool:
    return _loopback(address) is True


def _sockaddr(address: str, port: int) -> tuple[int, tuple[object, ...]]:
    if ":" not in address:
        return socket.AF_INET, (address, port)
    info = socket.getaddrinfo(address, port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    return socket.AF_INET6, tuple(info[0][4])


class ConnectScanner:
    """A TCP/UDP scan in one process. Iterate ``scan(targets)`` for one result per target.

    Closing the iterator early (Ctrl-C, a consumer that stops) closes every socket still open.
    """

    def __init__(self, settings: ScanSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.stats = ScanStats()
        self._clock = clock
        self._ephemeral = ephemeral_port_range()
        self._local: dict[str, bool] = {}
        self._destinations: dict[str, Destination] = {}
        self._listeners: set[int] | None = None
        self._listeners_read_at = 0.0
        self._sockets: dict[int, list[Listening]] = {}
        self._sockets_read_at: float | None = None

    def scan(self, targets: Iterable[Target]) -> Iterator[ProbeResult]:
        max_window, saved_limit = fit_window(self.settings.window)
        self.stats.smallest_window = max_window
        try:
            poller = _Poller()
        except OSError as exc:  # not even one descriptor for the poller: nothing can be probed
            reason = Reason.local_error(errno.errorcode.get(exc.errno or 0, str(exc)))
            for t in targets:
                yield ProbeResult(t.host, t.address, t.proto, t.port, PortState.ERROR, reason)
            return
        # Probes are made one by one: a probe object exists only while it is in use.
        state = _ScanState(self._probes(targets), max_window, self.settings.max_rate, self._clock)
        try:
            while state.busy() or state.parked:
                if not state.busy():
                    yield from self._settle_parked(state)
                    continue
                yield from self._start_some(state, poller)
                if not state.in_flight:
                    if not state.ready or state.cap_interval:
                        time.sleep(state.next_wakeup(self._clock()))
                    continue
                for fd in poller.wait(state.next_wakeup(self._clock())):
                    probe = state.in_flight[fd]
                    assert probe.sock is not None
                    err = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if probe.target.proto is Protocol.UDP:
                        result = self._finish_udp(probe, err, poller, state)
                    else:
                        result = self._finish(probe, err, poller, state)
                    if result is not None:
                        yield result
                    if state.window < max_window:
                        state.window += 1  # additive recovery after a backoff
                yield from self._expire(state, poller)
        finally:
            for probe in list(state.in_flight.values()):
                self._release(probe, poller, state)
            poller.close()
            if saved_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, saved_limit)
            for dest in self._destinations.values():
                quality = dest.quality()
                if quality is not None:
                    self.stats.note(quality)

    def _start_some(self, state: _ScanState, poller: _Poller) -> Iterator[ProbeResult]:
        """Start probes until the window is full or nothing may start yet."""
        now = self._clock()
        state.release(now)
        while len(state.in_flight) < state.window and state.may_send(now):
            probe = state.next_probe(now)
            if probe is None:
                if state.cap_interval:
                    state.cap_due -= state.cap_interval  # the token was not spent
                return
            outcome = self._start(probe, poller, state)
            if not isinstance(outcome, str):
                state.idle_failures = 0  # an attempt started: resources are back
                if outcome is not None:
                    yield outcome
                continue
            # The attempt could not even start: our own shortage, never the target's answer.
            probe.resource_failures += 1
            self.stats.resource_backoffs += 1
            if state.in_flight:  # finishing probes will free what we lack: narrow the window
                state.window = max(1, len(state.in_flight))
                self.stats.smallest_window = min(self.stats.smallest_window, state.window)
                state.ready.appendleft(probe)
                return
            # Nothing of ours will free anything: give whoever holds it growing pauses, then
            # report this probe, and those after it until one starts, as errors.
            if state.idle_failures < len(_IDLE_PAUSES):
                state.ready.appendleft(probe)
                time.sleep(_IDLE_PAUSES[state.idle_failures])
                state.idle_failures += 1
            else:
                yield self._result(probe, PortState.ERROR, Reason.local_error(outcome), None)
            return

    def _expire(self, state: _ScanState, poller: _Poller) -> Iterator[ProbeResult]:
        """Attempts whose time is up: retry, re-examine, park, or report the silence."""
        now = self._clock()
        for probe in state.expired(now):
            self._release(probe, poller, state)
            dest = probe.dest
            probe.silent += 1
            if probe.reexams:
                dest.reexam_silent += 1
            if probe.paced:
                dest.icmp_unanswered()
            if probe.attempt <= self.settings.retries or (
                probe.paced and probe.paced_attempts < _MAX_PACED_ATTEMPTS
            ):
                probe.attempt += 1
                dest.retries += 1
                self._retry(probe, state, now)
            elif probe.target.proto is Protocol.UDP:
                yield self._result(probe, PortState.OPEN_FILTERED, Reason.NO_RESPONSE, now - probe.started)
            elif dest.should_reexamine(probe.reexams):
                self._reexamine(probe, state, now)
            elif dest.adaptive and dest.drops == 0:
                # Silence that is not a drop: the rate may grow. It is final only once we know
                # whether this address drops probes (then it gets a paced second look).
                dest.outcome(probe.first_sent, now, answered=False, dropped=False)
                state.park(probe)
            else:
                yield self._silent(probe, now - probe.started)

    def _reexamine(self, probe: _Probe, state: _ScanState, now: float) -> None:
        """Another paced look at a port still silent on an address seen dropping probes."""
        probe.reexams += 1
        probe.attempt += 1
        probe.dest.reexaminations += 1
        state.wait(probe.dest.pace, probe, now)

    def _silent(self, probe: _Probe, latency: float | None) -> ProbeResult:
        dest = probe.dest
        if dest.adaptive and dest.drops and not dest.silence_is_real():
            dest.unresolved += 1
        return self._result(probe, PortState.FILTERED, self._silence_reason(probe), latency)

    def _silence_reason(self, probe: _Probe) -> str:
        """no-response, unless a socket of this host listens behind the silence: a local address
        whose listener does not complete handshakes (its accept queue is full, the service is stuck,
        or a rule of this host drops the SYNs) is still exposed, and says so."""
        target = probe.target
        local = not probe.dest.adaptive  # loopback or one of this host's addresses
        if target.proto is Protocol.TCP and local and self._listens(target.address, target.port):
            return Reason.LISTEN_NO_ACCEPT
        return Reason.NO_RESPONSE

    def _listens(self, address: str, port: int) -> bool:
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

    def _settle_parked(self, state: _ScanState) -> Iterator[ProbeResult]:
        """Everything else is done: silent ports of addresses that dropped nothing are filtered; those
        of addresses that did drop get their paced re-examination first."""
        now = self._clock()
        for dest in list(state.parked):
            for probe in state.unpark(dest):
                if dest.should_reexamine(probe.reexams):
                    self._reexamine(probe, state, now)
                else:
                    yield self._silent(probe, None)

    def _destination(self, address: str) -> Destination:
        dest = self._destinations.get(address)
        if dest is None:
            settings = self.settings
            adaptive = not _is_loopback(address) and not self._is_local(address)
            dest = self._destinations[address] = Destination(
                address,
                adaptive=adaptive,
                ceiling=settings.timeout,
                udp_rate=settings.udp_rate,
                min_rate=settings.min_rate,
                max_rate=settings.max_rate,
            )
        return dest

    def _is_local(self, address: str) -> bool:
        local = self._local.get(address)
        if local is None:
            local = self._local[address] = is_local_address(address)
        return local

    def _probes(self, targets: Iterable[Target]) -> Iterator[_Probe]:
        known: dict[str, tuple[int, tuple[object, ...], Destination]] = {}
        for target in targets:
            entry = known.get(target.address)
            if entry is None:
                family, base = _sockaddr(target.address, target.port)
                entry = known[target.address] = (family, base, self._destination(target.address))
            family, base, dest = entry
            yield _Probe(target, (base[0], target.port, *base[2:]), family, dest)

    def _result(self, probe: _Probe, state: PortState, reason: str, latency: float | None) -> ProbeResult:
        target = probe.target
        latency_ms = None if latency is None else round(latency * 1000, 3)
        return ProbeResult(
            target.host, target.address, target.proto, target.port, state, reason, latency_ms, probe.attempt
        )

    def _start(self, probe: _Probe, poller: _Poller, state: _ScanState) -> ProbeResult | str | None:
        """Start one attempt. Returns a decided result, an errno name to back off on, or None."""
        udp = probe.target.proto is Protocol.UDP
        try:
            sock = socket.socket(probe.family, _NONBLOCKING_DGRAM if udp else _NONBLOCKING_STREAM)
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc))
            if exc.errno in RESOURCE_ERRNOS:
                return name
            return self._result(probe, PortState.ERROR, Reason.local_error(name), None)
        if not _HAS_SOCK_NONBLOCK:
            sock.setblocking(False)
        probe.sock = sock
        probe.done = False
        probe.started = now = self._clock()
        if probe.attempt == 1 and not probe.first_sent:
            probe.first_sent = now
        self.stats.probes_sent += 1
        if udp:
            return self._start_udp(probe, sock, poller, state)
        dest = probe.dest
        if dest.adaptive:
            dest.sent(now)
        err = sock.connect_ex(probe.sockaddr)
        if err == errno.EINPROGRESS:
            # A local peer often answers within the connect call itself (on loopback the RST is
            # processed before connect returns): take that answer now and skip the poller.
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.EINPROGRESS
        if err == errno.EINPROGRESS:
            self._watch(probe, sock, poller, state, now + dest.rto(), readable=False)
            return None
        if err in RESOURCE_ERRNOS:
            return self._abandon(probe, sock, err)
        return self._finish(probe, err, poller, state)

    def _watch(
        self,
        probe: _Probe,
        sock: socket.socket,
        poller: _Poller,
        state: _ScanState,
        deadline: float,
        *,
        readable: bool,
    ) -> None:
        """Wait for the answer: writable (TCP handshake) or readable (UDP reply or ICMP error)."""
        fd = sock.fileno()
        state.in_flight[fd] = probe
        state.watch(probe, deadline)
        poller.add(fd, readable=readable)

    def _abandon(self, probe: _Probe, sock: socket.socket, err: int) -> str:
        """The attempt could not be made for want of a resource: close it, name the errno."""
        sock.close()
        probe.sock = None
        return errno.errorcode.get(err, str(err))

    def _start_udp(
        self, probe: _Probe, sock: socket.socket, poller: _Poller, state: _ScanState
    ) -> ProbeResult | str | None:
        # A connected UDP socket: the kernel reports ICMP errors about this peer as errors on it.
        err = sock.connect_ex(probe.sockaddr)
        if err == 0:
            try:
                sock.send(udp_payload(probe.target.port))
            except OSError as exc:
                err = exc.errno or errno.EIO
        if err == 0:
            # On loopback the ICMP port-unreachable is already queued when send returns.
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            self._watch(probe, sock, poller, state, probe.started + self.settings.timeout, readable=True)
            return None
        if err in RESOURCE_ERRNOS:
            return self._abandon(probe, sock, err)
        return self._finish_udp(probe, err, poller, state)

    def _finish_udp(self, probe: _Probe, err: int, poller: _Poller, state: _ScanState) -> ProbeResult | None:
        """A reply, an ICMP error, or (err 0 and nothing to read) a spurious wake-up: keep waiting."""
        sock = probe.sock
        assert sock is not None
        latency = self._clock() - probe.started
        if err == 0:
            try:
                sock.recv(_UDP_READ)
            except BlockingIOError:
                return None
            except OSError as exc:
                err = exc.errno or errno.EIO
            else:
                self._release(probe, poller, state)
                self._answered(probe, latency, state)
                return self._result(probe, PortState.OPEN, Reason.UDP_RESPONSE, latency)
        self._release(probe, poller, state)
        if err == errno.ECONNREFUSED:
            self._answered(probe, latency, state)
            probe.dest.udp_refusals += 1
            return self._result(probe, PortState.CLOSED, Reason.PORT_UNREACH, latency)
        return self._unanswered_error(probe, err, latency, state)

    def _unanswered_error(
        self, probe: _Probe, err: int, latency: float, state: _ScanState
    ) -> ProbeResult | None:
        """An errno that is neither an answer nor a refusal: filtered, our own shortage, or an error."""
        reason = _FILTERED_REASONS.get(err)
        if reason == Reason.NO_RESPONSE:  # the kernel itself gave up waiting (ETIMEDOUT)
            reason = self._silence_reason(probe)
        if reason is not None:
            return self._result(probe, PortState.FILTERED, reason, latency)
        name = errno.errorcode.get(err, str(err))
        tcp = probe.target.proto is Protocol.TCP
        if err == errno.ECONNRESET and tcp and self._reset_after_handshake(probe):
            # Linux reports a reset in SYN-SENT as ECONNREFUSED: ECONNRESET means the handshake
            # completed and the peer then reset the connection. That is an open port.
            self._answered(probe, latency, state)
            return self._result(probe, PortState.OPEN, Reason.SYN_ACK, latency)
        if err in _REPROBE_ERRNOS and tcp:
            return self._reprobe(probe, state, name)
        if err in RESOURCE_ERRNOS and probe.resource_failures < _MAX_IDLE_RESOURCE_FAILURES:
            probe.resource_failures += 1
            self.stats.resource_backoffs += 1
            state.ready.appendleft(probe)
            return None
        return self._result(probe, PortState.ERROR, Reason.local_error(name), latency)

    def _reset_after_handshake(self, probe: _Probe) -> bool:
        """A reset after the handshake is the target's, except where two of our own probes on this
        host may have met (a local address in the ephemeral range with nothing listening)."""
        target = probe.target
        if target.port not in self._ephemeral or not self._is_local(target.address):
            return True
        return self._has_listener(target.port)

    def _release(self, probe: _Probe, poller: _Poller, state: _ScanState) -> None:
        probe.done = True
        sock = probe.sock
        if sock is None:
            return
        fd = sock.fileno()
        if state.in_flight.pop(fd, None) is not None:
            poller.discard(fd)
        sock.close()
        probe.sock = None

    def _finish(self, probe: _Probe, err: int, poller: _Poller, state: _ScanState) -> ProbeResult | None:
        """Classify a finished attempt; None when the probe went back to be tried again."""
        latency = self._clock() - probe.started
        sock = probe.sock
        assert sock is not None
        if err == 0:
            genuine = self._is_genuine_open(probe, sock)
            # An RST on close instead of FIN: the probe leaves no TIME_WAIT socket behind.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            self._release(probe, poller, state)
            if genuine:
                self._answered(probe, latency, state)
                return self._result(probe, PortState.OPEN, Reason.SYN_ACK, latency)
            self.stats.self_connects += 1
            return self._reprobe(probe, state, "self-connect")
        self._release(probe, poller, state)
        if err == errno.ECONNREFUSED:
            self._answered(probe, latency, state)
            return self._result(probe, PortState.CLOSED, Reason.CONN_REFUSED, latency)
        return self._unanswered_error(probe, err, latency, state)

    def _is_genuine_open(self, probe: _Probe, sock: socket.socket) -> bool:
        """False when a handshake completed with one of our own sockets rather than a listener.

        Probing a local address in the ephemeral range, the kernel may give a probe the very port it
        connects to (a self-connect), or two probes may reach each other's local ports at once (a
        simultaneous open, possibly across our scanning processes). Neither has a listener behind it.
        A local NAT redirect to a listener elsewhere is genuine: the other end of the connection is
        then a socket on another port, which the kernel's socket table shows. So is a DNAT to
        another namespace (a container's published port): the other end is in no table of ours, but
        conntrack says the connection was sent to an address that is not this host's.
        """
        target = probe.target
        if target.port not in self._ephemeral or not self._is_local(target.address):
            return True
        try:
            ours = sock.getsockname()
            peer = sock.getpeername()
            if peer[:2] == ours[:2]:
                return False
        except OSError:
            return False  # reset between the event and now: nothing we can vouch for
        if self._has_listener(target.port):
            return True
        local = (str(ours[0]), int(ours[1]))
        other_end = connected_peer_port(local)
        if other_end is not None:
            return other_end != target.port
        moved = translated_destination(local, (str(peer[0]), int(peer[1])))
        return moved is not None and not _is_loopback(moved[0]) and not self._is_local(moved[0])

    def _has_listener(self, port: int) -> bool:
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

    def _answered(self, probe: _Probe, latency: float, state: _ScanState) -> None:
        """An attempt got an answer: feed the address's round-trip estimate and congestion control."""
        dest = probe.dest
        dropped = probe.silent > 0
        if probe.reexams:
            dest.reexam_answered += 1
        if probe.target.proto is Protocol.UDP:
            dest.drops += dropped
            if probe.paced:
                dest.icmp_answered()
            return
        if not dest.adaptive:
            dest.drops += dropped
            return
        dest.sample(latency)
        first_drop = dropped and dest.drops == 0
        dest.outcome(probe.first_sent, self._clock(), answered=True, dropped=dropped)
        if first_drop:  # silence parked before this address was seen dropping gets a second look
            for parked in state.unpark(dest):
                self._reexamine(parked, state, self._clock())

    def _retry(self, probe: _Probe, state: _ScanState, now: float) -> None:
        """Try a silent probe again: at once, paced to its address, or paced against an ICMP limit.

        Linux answers a burst of closed UDP ports with port-unreachable, then about one a second
        (loopback is exempt). Silence from an address that did refuse some ports is most likely that
        limit, not a drop, so its retries go out no faster than the limit refills. TCP retries to a
        remote address go first in its pace: their answers are the evidence of drops.
        """
        dest = probe.dest
        if probe.target.proto is Protocol.UDP:
            if dest.udp_refusals and not _is_loopback(dest.address):
                if not dest.icmp_limited:
                    dest.icmp_limited = True
                    self.stats.rate_limited += 1
                self.stats.paced_probes += 1
                probe.paced = True
                probe.paced_attempts += 1
                state.wait(dest.icmp_pace, probe, now)
                return
        elif dest.adaptive:
            state.wait(dest.pace, probe, now, first=True)
            return
        state.ready.append(probe)

    def _reprobe(self, probe: _Probe, state: _ScanState, why: str) -> ProbeResult | None:
        probe.reprobes += 1
        if probe.reprobes > _MAX_REPROBES:
            return self._result(probe, PortState.ERROR, Reason.local_error(why), None)
        state.ready.appendleft(probe)
        return None
