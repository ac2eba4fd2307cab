"""Adaptive timing per destination address: pacing, round-trip estimates and congestion control.

Pure bookkeeping over a clock the caller passes in: no sockets here, so every rule can be tested with
made-up times. ``Pace`` is the one pacing mechanism of the engine (TCP probes to remote addresses and
UDP retries against ICMP rate limits both wait in one); ``Destination`` holds everything the scan
knows about one address. Imports only the engine's model.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar

from pytest_portcheck.engine.model import AddressQuality

if TYPE_CHECKING:
    from typing import Any

Item = TypeVar("Item")

INITIAL_RATE = 1000.0  # TCP probes per second to a remote address before anything is known
MAX_RATE = 100_000.0  # far above what one Python process sends; the window is the real limit
MIN_RATE = 20.0  # the floor of the adaptive rate when the user sets none
MIN_RTO = 0.1  # seconds: below this, our own loop's hiccups would look like loss (nmap uses 100 ms too)
SLOW_START_GAIN = 7.0  # probes/s added per good outcome before the first drop: doubles in ~0.1 s,
# about as fast as drops (seen one timeout later) can stop it
CONGESTION_GAIN = 0.1  # after a drop, the rate grows by this share of the last good rate each second
DROP_SHARE = 0.2  # drops above this share of an epoch's answers cut the rate (random loss stays below)
EPOCH_MIN = 0.1  # seconds: the shortest span whose drops decide a cut
EPOCH_SAMPLES = 16  # outcomes an epoch needs before it decides anything
CATCH_UP = 0.005  # seconds of tokens a pace may spend at once after the loop was busy elsewhere
RATE_SPAN = 0.5  # seconds over which the reported send rate is measured
GENUINE_SAMPLE = 16  # paced re-examinations that must stay silent before silence counts as real
REEXAMINE_ATTEMPTS = 4  # paced re-examinations of one silent port at most
ICMP_ANSWERS_BEFORE_SPEEDUP = 4
ICMP_MAX_RATE = 2000.0


class Pace(Generic[Item]):
    """Items waiting for their turn, released at ``rate`` per second.

    After an idle spell it may spend a few milliseconds' worth of tokens at once (the loop wakes up
    at most about once a millisecond) but never catches up on a long pause in one burst. With
    ``delayed`` the first item after an idle spell waits one interval (an ICMP limit that was just
    exhausted refills one interval from now).
    """

    __slots__ = ("delayed", "due", "queue", "rate")

    def __init__(self, rate: float, *, delayed: bool = False) -> None:
        self.rate = rate
        self.due = 0.0
        # Made when something waits, dropped when empty: a scan of a /16 keeps 65,536 paces.
        self.queue: deque[Item] | None = None
        self.delayed = delayed

    def add(self, item: Item, now: float, *, first: bool = False) -> None:
        if self.queue is None:
            self.queue = deque()
            if self.delayed:
                self.due = max(self.due, now + 1.0 / self.rate)
        if first:
            self.queue.appendleft(item)
        else:
            self.queue.append(item)

    def release(self, now: float, out: deque[Item]) -> int:
        """Move the items whose turn has come to ``out``; returns how many."""
        interval = 1.0 / self.rate
        due = max(self.due, now - max(interval, CATCH_UP))
        released = 0
        queue = self.queue
        while queue and due <= now:
            out.append(queue.popleft())
            due += interval
            released += 1
        self.due = due
        if not queue:
            self.queue = None
        return released


class Destination:
    """What the scan knows about one address: its pace, its round-trip time, and how it answered.

    Remote addresses are ``adaptive``: TCP probes wait in ``pace`` at a rate that starts at
    ``INITIAL_RATE``, grows while answers come back and is cut on evidence of drops (a probe that was
    silent and whose retry was answered), at most once per epoch, to what the address actually
    answered. Local addresses (loopback, this host's own) are not paced and keep the fixed timeout.
    """

    __slots__ = (
        "_icmp_pace",
        "_span_sent",
        "_span_start",
        "adaptive",
        "address",
        "answers",
        "cap",
        "ceiling",
        "cut_at",
        "drops",
        "epoch_answers_at",
        "epoch_drops",
        "epoch_good",
        "epoch_start",
        "floor",
        "icmp_base",
        "icmp_limited",
        "icmp_streak",
        "pace",
        "peak_rate",
        "reexam_answered",
        "reexam_silent",
        "reexaminations",
        "retries",
        "rttvar",
        "slowdowns",
        "srtt",
        "ssthresh",
        "udp_refusals",
        "unresolved",
    )  # fmt: skip

    def __init__(
        self,
        address: str,
        *,
        adaptive: bool,
        ceiling: float,
        udp_rate: float,
        min_rate: float | None = None,
        max_rate: float | None = None,
    ) -> None:
        self.address = address
        self.adaptive = adaptive
        self.ceiling = ceiling
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.cap = MAX_RATE if max_rate is None else min(max_rate, MAX_RATE)
        self.floor = min(MIN_RATE if min_rate is None else min_rate, self.cap)
        rate = min(max(INITIAL_RATE, self.floor), self.cap)
        self.pace: Pace[Any] = Pace(rate)
        self.ssthresh = math.inf
        self.epoch_start = 0.0
        self.cut_at = 0.0
        self.epoch_good = 0
        self.epoch_drops = 0
        self.epoch_answers_at = 0
        self.answers = 0
        # What the report says about the address.
        self.drops = 0
        self.retries = 0
        self.reexaminations = 0
        self.unresolved = 0
        self.slowdowns = 0
        self.peak_rate = 0.0
        self._span_start = -1.0
        self._span_sent = 0
        # Re-examinations of silence: answered ones show drops, a silent sample shows real silence.
        self.reexam_answered = 0
        self.reexam_silent = 0
        # UDP: ICMP port-unreachable replies seen, and the pace of retries against the ICMP limit.
        self.udp_refusals = 0
        self.icmp_base = udp_rate
        self._icmp_pace: Pace[Any] | None = None
        self.icmp_streak = 0
        self.icmp_limited = False

    # --- round-trip time -------------------------------------------------------------------

    def rto(self) -> float:
        """How long an attempt waits for an answer: TCP's SRTT + 4 RTTVAR, between MIN_RTO and -t."""
        if not self.adaptive or self.srtt is None:
            return self.ceiling
        return min(self.ceiling, max(MIN_RTO, self.srtt + 4 * self.rttvar))

    def sample(self, rtt: float) -> None:
        # Every attempt has its own socket, so an answer always belongs to the attempt it came to:
        # unlike TCP (Karn), retries give valid samples too.
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    # --- congestion control ------------------------------------------------------------------

    def sent(self, now: float) -> None:
        if self._span_start < 0:
            self._span_start = now
        self._span_sent += 1
        if now - self._span_start >= RATE_SPAN:
            self.peak_rate = max(self.peak_rate, self._span_sent / (now - self._span_start))
            self._span_start, self._span_sent = now, 0

    def outcome(self, first_sent: float, now: float, *, answered: bool, dropped: bool) -> None:
        """An attempt was answered (``dropped``: after earlier silence), or a port ended silent."""
        if dropped:
            self.drops += 1
        self.answers += answered
        if not self.adaptive or first_sent < self.cut_at:
            return  # sent before the last cut: it says nothing about the current rate
        if self.epoch_start == 0.0:
            self.epoch_start = now
        if dropped:
            self.epoch_drops += 1
        else:
            self.epoch_good += 1
            self._grow()
        samples = self.epoch_good + self.epoch_drops
        if samples >= EPOCH_SAMPLES and now - self.epoch_start >= max(EPOCH_MIN, 2 * self.rto()):
            self._decide(now)

    def _grow(self) -> None:
        if not self.pace.queue:
            return  # the pace is not what holds the scan back (the window or the CPU is): no credit
        rate = self.pace.rate
        if rate < self.ssthresh:
            rate += SLOW_START_GAIN
        else:
            rate += CONGESTION_GAIN * self.ssthresh / rate
        self.pace.rate = min(rate, self.cap)

    def _decide(self, now: float) -> None:
        samples = self.epoch_good + self.epoch_drops
        if self.epoch_drops > DROP_SHARE * samples:
            # What came back is what the address lets through: start again just below it.
            # Halve at most (as TCP does), whatever a noisy measure of the answers says.
            rate = self.pace.rate
            delivered = (self.answers - self.epoch_answers_at) / max(now - self.epoch_start, 1e-3)
            self.pace.rate = max(self.floor, rate * 0.5, min(rate * 0.9, delivered * 0.9))
            self.ssthresh = self.pace.rate
            self.slowdowns += 1
            self.cut_at = now
        self.epoch_start = now
        self.epoch_answers_at = self.answers
        self.epoch_good = self.epoch_drops = 0

    # --- silence --------------------------------------------------------------------------------

    def should_reexamine(self, reexams_so_far: int) -> bool:
        """Whether a port still silent after its retries gets another, paced, look."""
        if not self.adaptive or self.drops == 0 or reexams_so_far >= REEXAMINE_ATTEMPTS:
            return False
        return not self.silence_is_real()

    def silence_is_real(self) -> bool:
        """A paced sample of re-examinations stayed silent: what is still silent is dropped on purpose."""
        return self.reexam_silent >= GENUINE_SAMPLE and self.reexam_answered * 50 < self.reexam_silent

    # --- UDP: retries paced against an ICMP rate limit ----------------------------------------

    @property
    def icmp_pace(self) -> Pace[Any]:
        """UDP retries against this address's ICMP rate limit (made when first needed)."""
        if self._icmp_pace is None:
            self._icmp_pace = Pace(self.icmp_base, delayed=True)
        return self._icmp_pace

    def icmp_answered(self) -> None:
        self.icmp_streak += 1
        if self.icmp_streak >= ICMP_ANSWERS_BEFORE_SPEEDUP:
            self.icmp_streak = 0
            self.icmp_pace.rate = min(self.icmp_pace.rate * 2, ICMP_MAX_RATE)

    def icmp_unanswered(self) -> None:
        self.icmp_streak = 0
        self.icmp_pace.rate = self.icmp_base

    def quality(self) -> AddressQuality | None:
        """The report's view of this address; None when every port answered at the first attempt."""
        if self._span_sent and self._span_start >= 0 and self.peak_rate == 0.0:
            self.peak_rate = float(self._span_sent) / RATE_SPAN  # a scan shorter than one span
        if not (self.retries or self.drops or self.reexaminations or self.unresolved):
            return None
        return AddressQuality(
            self.address,
            round(self.peak_rate, 1),
            self.drops,
            self.retries,
            self.reexaminations,
            self.unresolved,
            self.slowdowns,
        )
