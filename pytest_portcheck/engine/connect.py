"""The TCP connect scanner: a sliding window of non-blocking connects in one poll loop.

One process, one loop: sockets are created non-blocking, ``connect_ex`` starts each handshake, the
kernel's readiness events say when it is decided, and ``SO_ERROR`` says how. Attempts that time out
are retried; our own failures (no descriptors, no ephemeral ports, a socket that met itself) are
retried or reported as errors, never as a state of the target.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import resource
import select
import selectors
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pytest_portcheck.engine.model import PortState, ProbeResult, Reason, ScanSettings, ScanStats, Target
from pytest_portcheck.engine.payloads import udp_payload
from pytest_portcheck.ports import Protocol

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
_MAX_PACED_RATE = 2000.0  # paced UDP retries per second at most, however well a host answers
_MAX_PACED_ATTEMPTS = 4  # a paced retry that meets silence may be paced again, this many times in all
_ANSWERS_BEFORE_SPEEDUP = 4
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


def listening_ports() -> set[int] | None:
    """TCP ports with a listening socket in this network namespace, or None where /proc cannot tell."""
    ports: set[int] = set()
    found = False
    for name in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            with open(name, encoding="ascii") as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        found = True
        for line in lines:
            fields = line.split(None, 4)
            if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports if found else None


def is_local_address(address: str) -> bool:
    """True when ``address`` belongs to this host (so a probe of it could meet one of our own sockets)."""
    try:
        if ipaddress.ip_address(address.split("%", 1)[0]).is_loopback:
            return True
    except ValueError:
        return False
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


@dataclass(slots=True, eq=False)
class _Probe:
    target: Target
    sockaddr: tuple[object, ...]
    family: int
    attempt: int = 1
    resource_failures: int = 0
    reprobes: int = 0
    sock: socket.socket | None = None
    started: float = 0.0
    deadline: float = 0.0
    done: bool = False
    paced: bool = False
    paced_attempts: int = 0


class _Pacer:
    """Per-address queues of UDP retries, released at a rate that adapts to the target's ICMP limit.

    It starts at the base rate (Linux refills its per-peer limit about once a second), doubles after
    every few answered retries in a row (a host limited only by its global budget answers hundreds a
    second), and falls back to the base rate when one goes unanswered.
    """

    def __init__(self, base_rate: float) -> None:
        self.base_rate = base_rate
        self.rate: dict[str, float] = {}
        self.streak: dict[str, int] = {}
        self.queues: dict[str, deque[_Probe]] = {}
        self.due: dict[str, float] = {}

    @property
    def waiting(self) -> bool:
        return bool(self.queues)

    @property
    def addresses(self) -> set[str]:
        return set(self.rate)

    def add(self, address: str, probe: _Probe, now: float) -> None:
        # The burst that exhausted the limit has just been answered: the first token comes back one
        # interval from now, not at once.
        rate = self.rate.setdefault(address, self.base_rate)
        self.queues.setdefault(address, deque()).append(probe)
        self.due.setdefault(address, now + 1.0 / rate)

    def answered(self, address: str) -> None:
        if address in self.rate:
            self.streak[address] = self.streak.get(address, 0) + 1
            if self.streak[address] >= _ANSWERS_BEFORE_SPEEDUP:
                self.streak[address] = 0
                self.rate[address] = min(self.rate[address] * 2, _MAX_PACED_RATE)

    def unanswered(self, address: str) -> None:
        if address in self.rate:
            self.streak[address] = 0
            self.rate[address] = self.base_rate

    def next_due(self) -> float:
        return min(self.due[address] for address in self.queues)

    def release_due(self, now: float, pending: deque[_Probe]) -> None:
        for address in list(self.queues):
            queue = self.queues[address]
            interval = 1.0 / self.rate[address]
            due = max(self.due[address], now - interval)  # no catching up in a burst after a pause
            while queue and due <= now:
                pending.append(queue.popleft())
                due += interval
            self.due[address] = due
            if not queue:
                del self.queues[address]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _top_up(pending: deque[_Probe], fresh: Iterator[_Probe]) -> bool:
    """Retries first, then the next fresh target; False when nothing is left to start."""
    if not pending:
        upcoming = next(fresh, None)
        if upcoming is None:
            return False
        pending.append(upcoming)
    return True


def _sockaddr(address: str, port: int) -> tuple[int, tuple[object, ...]]:
    if ":" not in address:
        return socket.AF_INET, (address, port)
    info = socket.getaddrinfo(address, port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    return socket.AF_INET6, tuple(info[0][4])


class ConnectScanner:
    """A TCP connect scan in one process. Iterate ``scan(targets)`` for one result per target.

    Closing the iterator early (Ctrl-C, a consumer that stops) closes every socket still open.
    """

    def __init__(self, settings: ScanSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.stats = ScanStats()
        self._clock = clock
        self._ephemeral = ephemeral_port_range()
        self._local: dict[str, bool] = {}
        self._udp_refusals: dict[str, int] = {}
        self._pacer: _Pacer | None = None
        self._listeners: set[int] | None = None
        self._listeners_read_at = 0.0

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
        fresh = self._probes(targets)  # made one by one: a probe object only while it is in use
        pending: deque[_Probe] = deque()
        in_order: deque[_Probe] = deque()  # in-flight probes by start time, hence by deadline
        in_flight: dict[int, _Probe] = {}
        paced = self._pacer = _Pacer(self.settings.udp_rate)
        window = max_window
        idle_failures = 0
        try:
            while _top_up(pending, fresh) or in_flight or paced.waiting:
                paced.release_due(self._clock(), pending)
                while _top_up(pending, fresh) and len(in_flight) < window:
                    probe = pending.popleft()
                    outcome = self._start(probe, poller, in_flight, in_order, pending)
                    if not isinstance(outcome, str):
                        idle_failures = 0  # an attempt started: resources are back
                        if outcome is not None:
                            yield outcome
                        continue
                    # The attempt could not even start: our own shortage, never the target's answer.
                    probe.resource_failures += 1
                    self.stats.resource_backoffs += 1
                    if in_flight:  # finishing probes will free what we lack: narrow the window
                        window = max(1, len(in_flight))
                        self.stats.smallest_window = min(self.stats.smallest_window, window)
                        pending.appendleft(probe)
                        break
                    # Nothing of ours will free anything: give whoever holds it growing pauses, then
                    # report this probe, and those after it until one starts, as errors.
                    if idle_failures < len(_IDLE_PAUSES):
                        pending.appendleft(probe)
                        time.sleep(_IDLE_PAUSES[idle_failures])
                        idle_failures += 1
                    else:
                        yield self._result(probe, PortState.ERROR, Reason.local_error(outcome), None)
                    break
                if not in_flight:
                    if not pending and paced.waiting:
                        time.sleep(max(0.0, paced.next_due() - self._clock()))
                    continue
                while in_order[0].done:
                    in_order.popleft()
                wait = max(0.0, in_order[0].deadline - self._clock())
                if paced.waiting:
                    wait = min(wait, max(0.0, paced.next_due() - self._clock()))
                for fd in poller.wait(wait):
                    probe = in_flight[fd]
                    assert probe.sock is not None
                    err = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if probe.target.proto is Protocol.UDP:
                        result = self._finish_udp(probe, err, poller, in_flight, pending)
                    else:
                        result = self._finish(probe, err, poller, in_flight, pending)
                    if result is not None:
                        yield result
                    if window < max_window:
                        window += 1  # additive recovery after a backoff
                now = self._clock()
                while in_order and (in_order[0].done or in_order[0].deadline <= now):
                    probe = in_order.popleft()
                    if probe.done:
                        continue
                    self._release(probe, poller, in_flight)
                    if probe.paced:
                        paced.unanswered(probe.target.address)
                    if probe.attempt <= self.settings.retries or (
                        probe.paced and probe.paced_attempts < _MAX_PACED_ATTEMPTS
                    ):
                        probe.attempt += 1
                        self._retry(probe, pending, paced)
                    elif probe.target.proto is Protocol.UDP:
                        yield self._result(
                            probe, PortState.OPEN_FILTERED, Reason.NO_RESPONSE, now - probe.started
                        )
                    else:
                        yield self._result(probe, PortState.FILTERED, Reason.NO_RESPONSE, now - probe.started)
        finally:
            for probe in list(in_flight.values()):
                self._release(probe, poller, in_flight)
            poller.close()
            if saved_limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, saved_limit)

    def _probes(self, targets: Iterable[Target]) -> Iterator[_Probe]:
        known: dict[str, tuple[int, tuple[object, ...]]] = {}
        for target in targets:
            entry = known.get(target.address)
            if entry is None:
                entry = known[target.address] = _sockaddr(target.address, target.port)
            family, base = entry
            yield _Probe(target, (base[0], target.port, *base[2:]), family)

    def _result(self, probe: _Probe, state: PortState, reason: str, latency: float | None) -> ProbeResult:
        target = probe.target
        latency_ms = None if latency is None else round(latency * 1000, 3)
        return ProbeResult(
            target.host, target.address, target.proto, target.port, state, reason, latency_ms, probe.attempt
        )

    def _start(
        self,
        probe: _Probe,
        poller: _Poller,
        in_flight: dict[int, _Probe],
        in_order: deque[_Probe],
        pending: deque[_Probe],
    ) -> ProbeResult | str | None:
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
        probe.started = self._clock()
        probe.deadline = probe.started + self.settings.timeout
        self.stats.probes_sent += 1
        if udp:
            return self._start_udp(probe, sock, poller, in_flight, in_order, pending)
        err = sock.connect_ex(probe.sockaddr)
        if err == errno.EINPROGRESS:
            # A local peer often answers within the connect call itself (on loopback the RST is
            # processed before connect returns): take that answer now and skip the poller.
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.EINPROGRESS
        if err == errno.EINPROGRESS:
            self._watch(probe, sock, poller, in_flight, in_order, readable=False)
            return None
        if err in RESOURCE_ERRNOS:
            return self._abandon(probe, sock, err)
        return self._finish(probe, err, poller, in_flight, pending)

    def _watch(
        self,
        probe: _Probe,
        sock: socket.socket,
        poller: _Poller,
        in_flight: dict[int, _Probe],
        in_order: deque[_Probe],
        *,
        readable: bool,
    ) -> None:
        """Wait for the answer: writable (TCP handshake) or readable (UDP reply or ICMP error)."""
        fd = sock.fileno()
        in_flight[fd] = probe
        in_order.append(probe)
        poller.add(fd, readable=readable)

    def _abandon(self, probe: _Probe, sock: socket.socket, err: int) -> str:
        """The attempt could not be made for want of a resource: close it, name the errno."""
        sock.close()
        probe.sock = None
        return errno.errorcode.get(err, str(err))

    def _start_udp(
        self,
        probe: _Probe,
        sock: socket.socket,
        poller: _Poller,
        in_flight: dict[int, _Probe],
        in_order: deque[_Probe],
        pending: deque[_Probe],
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
            self._watch(probe, sock, poller, in_flight, in_order, readable=True)
            return None
        if err in RESOURCE_ERRNOS:
            return self._abandon(probe, sock, err)
        return self._finish_udp(probe, err, poller, in_flight, pending)

    def _finish_udp(
        self, probe: _Probe, err: int, poller: _Poller, in_flight: dict[int, _Probe], pending: deque[_Probe]
    ) -> ProbeResult | None:
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
                self._release(probe, poller, in_flight)
                self._answered(probe)
                return self._result(probe, PortState.OPEN, Reason.UDP_RESPONSE, latency)
        self._release(probe, poller, in_flight)
        if err == errno.ECONNREFUSED:
            self._answered(probe)
            self._udp_refusals[probe.target.address] = self._udp_refusals.get(probe.target.address, 0) + 1
            return self._result(probe, PortState.CLOSED, Reason.PORT_UNREACH, latency)
        return self._unanswered_error(probe, err, latency, pending)

    def _unanswered_error(
        self, probe: _Probe, err: int, latency: float, pending: deque[_Probe]
    ) -> ProbeResult | None:
        """An errno that is neither an answer nor a refusal: filtered, our own shortage, or an error."""
        reason = _FILTERED_REASONS.get(err)
        if reason is not None:
            return self._result(probe, PortState.FILTERED, reason, latency)
        name = errno.errorcode.get(err, str(err))
        if err in _REPROBE_ERRNOS and probe.target.proto is Protocol.TCP:
            return self._reprobe(probe, pending, name)
        if err in RESOURCE_ERRNOS and probe.resource_failures < _MAX_IDLE_RESOURCE_FAILURES:
            probe.resource_failures += 1
            self.stats.resource_backoffs += 1
            pending.appendleft(probe)
            return None
        return self._result(probe, PortState.ERROR, Reason.local_error(name), latency)

    def _release(self, probe: _Probe, poller: _Poller, in_flight: dict[int, _Probe]) -> None:
        probe.done = True
        sock = probe.sock
        if sock is None:
            return
        fd = sock.fileno()
        if in_flight.pop(fd, None) is not None:
            poller.discard(fd)
        sock.close()
        probe.sock = None

    def _finish(
        self,
        probe: _Probe,
        err: int,
        poller: _Poller,
        in_flight: dict[int, _Probe],
        pending: deque[_Probe],
    ) -> ProbeResult | None:
        """Classify a finished attempt; None when the probe went back to ``pending`` to be tried again."""
        latency = self._clock() - probe.started
        sock = probe.sock
        assert sock is not None
        if err == 0:
            genuine = self._is_genuine_open(probe, sock)
            # An RST on close instead of FIN: the probe leaves no TIME_WAIT socket behind.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            self._release(probe, poller, in_flight)
            if genuine:
                return self._result(probe, PortState.OPEN, Reason.SYN_ACK, latency)
            self.stats.self_connects += 1
            return self._reprobe(probe, pending, "self-connect")
        self._release(probe, poller, in_flight)
        if err == errno.ECONNREFUSED:
            return self._result(probe, PortState.CLOSED, Reason.CONN_REFUSED, latency)
        return self._unanswered_error(probe, err, latency, pending)

    def _is_genuine_open(self, probe: _Probe, sock: socket.socket) -> bool:
        """False when a handshake completed with one of our own sockets rather than a listener.

        Probing a local address in the ephemeral range, the kernel may give a probe the very port it
        connects to (a self-connect), or two probes may reach each other's local ports at once (a
        simultaneous open, possibly across our scanning processes). Neither has a listener behind it.
        """
        target = probe.target
        if target.port not in self._ephemeral:
            return True
        local = self._local.get(target.address)
        if local is None:
            local = self._local[target.address] = is_local_address(target.address)
        if not local:
            return True
        try:
            if sock.getpeername()[:2] == sock.getsockname()[:2]:
                return False
        except OSError:
            return False  # reset between the event and now: nothing we can vouch for
        return self._has_listener(target.port)

    def _has_listener(self, port: int) -> bool:
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

    def _answered(self, probe: _Probe) -> None:
        if probe.paced and self._pacer is not None:
            self._pacer.answered(probe.target.address)

    def _retry(self, probe: _Probe, pending: deque[_Probe], paced: _Pacer) -> None:
        """Try a silent probe again: at once, or paced when its address rate-limits ICMP errors.

        Linux answers a burst of closed UDP ports with port-unreachable, then about one a second
        (loopback is exempt). Silence from an address that did refuse some ports is most likely that
        limit, not a drop, so its retries go out no faster than the limit refills.
        """
        address = probe.target.address
        if (
            probe.target.proto is Protocol.UDP
            and self._udp_refusals.get(address)
            and not _is_loopback(address)
        ):
            if address not in paced.addresses:
                self.stats.rate_limited += 1
            self.stats.paced_probes += 1
            probe.paced = True
            probe.paced_attempts += 1
            paced.add(address, probe, self._clock())
        else:
            pending.append(probe)

    def _reprobe(self, probe: _Probe, pending: deque[_Probe], why: str) -> ProbeResult | None:
        probe.reprobes += 1
        if probe.reprobes > _MAX_REPROBES:
            return self._result(probe, PortState.ERROR, Reason.local_error(why), None)
        pending.appendleft(probe)
        return None
