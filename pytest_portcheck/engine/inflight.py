"""What one scan loop juggles, for TCP and UDP alike: the probes and their sockets in flight.

``Probe`` is one target's attempts (its socket, timings, retries); ``ScanState`` holds the probes in
flight with their deadlines, the ones ready to start, the paces they wait in, the silent ones waiting
for a verdict, and the window and rate cap over all of them; ``Poller`` watches their sockets (epoll,
or ``selectors`` elsewhere). Bookkeeping only: ``scanner.py`` decides what each answer means.
Must not import pytest, yaml, asyncio, ssl or anything outside the engine but ``ports``.
"""

from __future__ import annotations

import heapq
import select
import selectors
import socket
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pytest_portcheck.engine.model import Target
from pytest_portcheck.engine.timing import CATCH_UP, Destination, Pace
from pytest_portcheck.ports import Protocol


class Poller:
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
class Probe:
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


class ScanState:
    """Everything one scan loop juggles, for TCP and UDP alike: the probes in flight and their
    deadlines, the probes ready to start, the paces probes wait in, the probes whose silence waits
    for a verdict, and the window and rate cap over all of them."""

    def __init__(
        self, fresh: Iterator[Probe], window: int, max_rate: float | None, clock: Callable[[], float]
    ) -> None:
        self.clock = clock
        self.in_flight: dict[int, Probe] = {}
        self.deadlines: list[tuple[float, int, Probe]] = []
        self.ready: deque[Probe] = deque()
        self.fresh = fresh
        self.exhausted = False
        self.waiting: dict[Pace[Probe], None] = {}  # paces with probes in them, in insertion order
        self.queued = 0
        self.parked: dict[Destination, list[Probe]] = {}
        self.window = window
        self.serial = 0
        self.cap_interval = 0.0 if max_rate is None else 1.0 / max_rate
        self.cap_due = 0.0
        self.idle_failures = 0

    def busy(self) -> bool:
        return bool(not self.exhausted or self.ready or self.in_flight or self.waiting)

    def next_probe(self, now: float) -> Probe | None:
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

    def wait(self, pace: Pace[Probe], probe: Probe, now: float, *, first: bool = False) -> None:
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

    def watch(self, probe: Probe, deadline: float) -> None:
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

    def expired(self, now: float) -> Iterator[Probe]:
        deadlines = self.deadlines
        while deadlines and deadlines[0][0] <= now:
            _deadline, serial, probe = heapq.heappop(deadlines)
            if probe.serial == serial and not probe.done:
                yield probe

    def park(self, probe: Probe) -> None:
        self.parked.setdefault(probe.dest, []).append(probe)

    def unpark(self, dest: Destination) -> list[Probe]:
        return self.parked.pop(dest, [])
