"""The scan of one process: TCP connects and UDP datagrams, a sliding window of them in one poll loop.

Sockets are created non-blocking, ``connect_ex`` starts each handshake (a connected UDP socket sends
each datagram), the kernel's readiness events say when it is decided, and ``SO_ERROR`` says how.
Attempts that time out are retried; our own failures (no descriptors, no ephemeral ports, a socket
that met itself) are retried or reported as errors, never as a state of the target. Probes to remote
addresses wait their turn in the address's pace and time out after its measured round trip
(``timing.py``); ``inflight.py`` holds what the loop juggles, and ``kernel.py`` what this host's own
sockets say on its local addresses (self-connects, listeners that do not answer, NAT'd connections).
Must not import pytest, yaml, asyncio, ssl or anything outside the engine but ``ports``.
"""

from __future__ import annotations

import errno
import resource
import socket
import struct
import time
from collections.abc import Callable, Iterable, Iterator

from pytest_portcheck.engine.inflight import Poller, Probe, ScanState
from pytest_portcheck.engine.kernel import LocalSockets, fit_window, is_loopback
from pytest_portcheck.engine.model import PortState, ProbeResult, Reason, ScanSettings, ScanStats, Target
from pytest_portcheck.engine.payloads import udp_payload
from pytest_portcheck.engine.timing import Destination
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
_MAX_PACED_ATTEMPTS = 4  # a paced retry that meets silence may be paced again, this many times in all
_IDLE_PAUSES = (0.05, 0.1, 0.2, 0.4)
_HAS_SOCK_NONBLOCK = hasattr(socket, "SOCK_NONBLOCK")
_NONBLOCKING_STREAM = socket.SOCK_STREAM | getattr(socket, "SOCK_NONBLOCK", 0)
_NONBLOCKING_DGRAM = socket.SOCK_DGRAM | getattr(socket, "SOCK_NONBLOCK", 0)
_UDP_READ = 4096


def _sockaddr(address: str, port: int) -> tuple[int, tuple[object, ...]]:
    if ":" not in address:
        return socket.AF_INET, (address, port)
    info = socket.getaddrinfo(address, port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    return socket.AF_INET6, tuple(info[0][4])


class SocketScanner:
    """A TCP/UDP scan in one process. Iterate ``scan(targets)`` for one result per target.

    Closing the iterator early (Ctrl-C, a consumer that stops) closes every socket still open.
    """

    def __init__(self, settings: ScanSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.stats = ScanStats()
        self._clock = clock
        self._destinations: dict[str, Destination] = {}
        self._host = LocalSockets(clock)

    def scan(self, targets: Iterable[Target]) -> Iterator[ProbeResult]:
        max_window, saved_limit = fit_window(self.settings.window)
        self.stats.smallest_window = max_window
        try:
            poller = Poller()
        except OSError as exc:  # not even one descriptor for the poller: nothing can be probed
            reason = Reason.local_error(errno.errorcode.get(exc.errno or 0, str(exc)))
            for t in targets:
                yield ProbeResult(t.host, t.address, t.proto, t.port, PortState.ERROR, reason)
            return
        # Probes are made one by one: a probe object exists only while it is in use.
        state = ScanState(self._probes(targets), max_window, self.settings.max_rate, self._clock)
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

    def _start_some(self, state: ScanState, poller: Poller) -> Iterator[ProbeResult]:
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

    def _expire(self, state: ScanState, poller: Poller) -> Iterator[ProbeResult]:
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

    def _reexamine(self, probe: Probe, state: ScanState, now: float) -> None:
        """Another paced look at a port still silent on an address seen dropping probes."""
        probe.reexams += 1
        probe.attempt += 1
        probe.dest.reexaminations += 1
        state.wait(probe.dest.pace, probe, now)

    def _silent(self, probe: Probe, latency: float | None) -> ProbeResult:
        dest = probe.dest
        if dest.adaptive and dest.drops and not dest.silence_is_real():
            dest.unresolved += 1
        return self._result(probe, PortState.FILTERED, self._silence_reason(probe), latency)

    def _silence_reason(self, probe: Probe) -> str:
        """no-response, unless a socket of this host listens behind the silence: a local address
        whose listener does not complete handshakes (its accept queue is full, the service is stuck,
        or a rule of this host drops the SYNs) is still exposed, and says so."""
        target = probe.target
        local = not probe.dest.adaptive  # loopback or one of this host's addresses
        if target.proto is Protocol.TCP and local and self._host.listens(target.address, target.port):
            return Reason.LISTEN_NO_ACCEPT
        return Reason.NO_RESPONSE

    def _settle_parked(self, state: ScanState) -> Iterator[ProbeResult]:
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
            adaptive = not is_loopback(address) and not self._host.is_local(address)
            dest = self._destinations[address] = Destination(
                address,
                adaptive=adaptive,
                ceiling=settings.timeout,
                udp_rate=settings.udp_rate,
                min_rate=settings.min_rate,
                max_rate=settings.max_rate,
            )
        return dest

    def _probes(self, targets: Iterable[Target]) -> Iterator[Probe]:
        known: dict[str, tuple[int, tuple[object, ...], Destination]] = {}
        for target in targets:
            entry = known.get(target.address)
            if entry is None:
                family, base = _sockaddr(target.address, target.port)
                entry = known[target.address] = (family, base, self._destination(target.address))
            family, base, dest = entry
            yield Probe(target, (base[0], target.port, *base[2:]), family, dest)

    def _result(self, probe: Probe, state: PortState, reason: str, latency: float | None) -> ProbeResult:
        target = probe.target
        latency_ms = None if latency is None else round(latency * 1000, 3)
        return ProbeResult(
            target.host, target.address, target.proto, target.port, state, reason, latency_ms, probe.attempt
        )

    def _start(self, probe: Probe, poller: Poller, state: ScanState) -> ProbeResult | str | None:
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
        probe: Probe,
        sock: socket.socket,
        poller: Poller,
        state: ScanState,
        deadline: float,
        *,
        readable: bool,
    ) -> None:
        """Wait for the answer: writable (TCP handshake) or readable (UDP reply or ICMP error)."""
        fd = sock.fileno()
        state.in_flight[fd] = probe
        state.watch(probe, deadline)
        poller.add(fd, readable=readable)

    def _abandon(self, probe: Probe, sock: socket.socket, err: int) -> str:
        """The attempt could not be made for want of a resource: close it, name the errno."""
        sock.close()
        probe.sock = None
        return errno.errorcode.get(err, str(err))

    def _start_udp(
        self, probe: Probe, sock: socket.socket, poller: Poller, state: ScanState
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

    def _finish_udp(self, probe: Probe, err: int, poller: Poller, state: ScanState) -> ProbeResult | None:
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
        self, probe: Probe, err: int, latency: float, state: ScanState
    ) -> ProbeResult | None:
        """An errno that is neither an answer nor a refusal: filtered, our own shortage, or an error."""
        reason = _FILTERED_REASONS.get(err)
        if reason == Reason.NO_RESPONSE:  # the kernel itself gave up waiting (ETIMEDOUT)
            reason = self._silence_reason(probe)
        if reason is not None:
            return self._result(probe, PortState.FILTERED, reason, latency)
        name = errno.errorcode.get(err, str(err))
        tcp = probe.target.proto is Protocol.TCP
        if err == errno.ECONNRESET and tcp and self._host.reset_after_handshake(probe.target):
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

    def _release(self, probe: Probe, poller: Poller, state: ScanState) -> None:
        probe.done = True
        sock = probe.sock
        if sock is None:
            return
        fd = sock.fileno()
        if state.in_flight.pop(fd, None) is not None:
            poller.discard(fd)
        sock.close()
        probe.sock = None

    def _finish(self, probe: Probe, err: int, poller: Poller, state: ScanState) -> ProbeResult | None:
        """Classify a finished attempt; None when the probe went back to be tried again."""
        latency = self._clock() - probe.started
        sock = probe.sock
        assert sock is not None
        if err == 0:
            genuine = self._host.is_genuine_open(probe.target, sock)
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

    def _answered(self, probe: Probe, latency: float, state: ScanState) -> None:
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

    def _retry(self, probe: Probe, state: ScanState, now: float) -> None:
        """Try a silent probe again: at once, paced to its address, or paced against an ICMP limit.

        Linux answers a burst of closed UDP ports with port-unreachable, then about one a second
        (loopback is exempt). Silence from an address that did refuse some ports is most likely that
        limit, not a drop, so its retries go out no faster than the limit refills. TCP retries to a
        remote address go first in its pace: their answers are the evidence of drops.
        """
        dest = probe.dest
        if probe.target.proto is Protocol.UDP:
            if dest.udp_refusals and not is_loopback(dest.address):
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

    def _reprobe(self, probe: Probe, state: ScanState, why: str) -> ProbeResult | None:
        probe.reprobes += 1
        if probe.reprobes > _MAX_REPROBES:
            return self._result(probe, PortState.ERROR, Reason.local_error(why), None)
        state.ready.appendleft(probe)
        return None
