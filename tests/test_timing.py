"""The adaptive timing's rules with made-up clocks: pacing, round-trip timeouts, rate cuts on drops,
and when silence counts as real. No sockets: the loops that use these are tested in test_engine.py
and, over emulated networks, in test_network.py."""

from __future__ import annotations

from collections import deque

from pytest_portcheck.engine.timing import (
    EPOCH_SAMPLES,
    GENUINE_SAMPLE,
    INITIAL_RATE,
    MIN_RTO,
    REEXAMINE_ATTEMPTS,
    Destination,
    Pace,
)


def remote(**settings: float | None) -> Destination:
    dest = Destination("192.0.2.1", adaptive=True, ceiling=1.0, udp_rate=1.0, **settings)
    dest.sample(0.001)  # a fast path: the timeout is the floor, an epoch lasts 0.2 s
    return dest


def test_pace_releases_at_its_rate_without_catching_up_in_a_burst() -> None:
    pace: Pace[int] = Pace(100.0)  # one every 10 ms
    out: deque[int] = deque()
    for item in range(50):
        pace.add(item, 0.0)
    assert pace.release(0.0, out) == 1
    assert pace.release(0.0095, out) == 0
    assert pace.release(0.0105, out) == 1
    # A long pause earns at most one interval's (or a few milliseconds') worth of turns, not a second's.
    assert pace.release(1.0, out) == 2
    assert list(out) == [0, 1, 2, 3]


def test_delayed_pace_waits_one_interval_first() -> None:
    pace: Pace[str] = Pace(2.0, delayed=True)
    out: deque[str] = deque()
    pace.add("retry", 10.0)
    assert pace.release(10.2, out) == 0
    assert pace.release(10.5, out) == 1


def test_rto_follows_the_round_trip_between_the_floor_and_the_ceiling() -> None:
    dest = Destination("192.0.2.1", adaptive=True, ceiling=1.0, udp_rate=1.0)
    assert dest.rto() == 1.0  # nothing measured yet: the user's timeout
    for _ in range(20):
        dest.sample(0.0002)
    assert dest.rto() == MIN_RTO
    for _ in range(50):
        dest.sample(0.3)
    assert 0.3 <= dest.rto() <= 1.0
    for _ in range(50):
        dest.sample(5.0)
    assert dest.rto() == 1.0  # -t stays the ceiling
    local = Destination("127.0.0.1", adaptive=False, ceiling=0.5, udp_rate=1.0)
    local.sample(0.0001)
    assert local.rto() == 0.5


def feed(dest: Destination, now: float, good: int, drops: int) -> None:
    """Outcomes of probes sent at ``now``, answered over the next 0.3 s (more than an epoch)."""
    dest.pace.add(object(), now)  # the pace holds the scan back, so good answers earn rate
    total = good + drops
    for index in range(total):
        dest.outcome(now, now + 0.3 * (index + 1) / total, answered=True, dropped=index >= good)


def test_rate_grows_while_answered_and_is_cut_on_drops() -> None:
    dest = remote()
    feed(dest, 0.01, good=100, drops=0)
    grown = dest.pace.rate
    assert grown > INITIAL_RATE
    feed(dest, 0.5, good=EPOCH_SAMPLES, drops=EPOCH_SAMPLES * 2)  # most of what came back was dropped first
    assert dest.slowdowns == 1
    assert dest.pace.rate <= grown * 0.9
    assert dest.drops == EPOCH_SAMPLES * 2
    assert dest.ssthresh == dest.pace.rate


def test_random_loss_below_the_threshold_does_not_slow_the_scan() -> None:
    dest = remote()
    now = 0.0
    for _ in range(30):
        now += 0.25
        feed(dest, now, good=90, drops=10)  # 10%: what 5% loss each way looks like
    assert dest.slowdowns == 0
    assert dest.pace.rate > INITIAL_RATE


def test_drops_of_probes_sent_before_a_cut_do_not_cut_again() -> None:
    dest = remote()
    feed(dest, 0.5, good=EPOCH_SAMPLES, drops=EPOCH_SAMPLES * 2)
    assert dest.slowdowns == 1
    for index in range(EPOCH_SAMPLES * 4):  # late answers to probes sent before the cut
        dest.outcome(0.5, 1.0 + index / 10, answered=True, dropped=True)
    assert dest.slowdowns == 1


def test_min_and_max_rate_bound_the_adaptive_rate() -> None:
    capped = remote(max_rate=1500.0)
    feed(capped, 0.01, good=1000, drops=0)
    assert capped.pace.rate == 1500.0
    floored = remote(min_rate=800.0)
    for step in range(1, 20):
        feed(floored, step * 0.5, good=1, drops=EPOCH_SAMPLES)
    assert floored.pace.rate == 800.0


def test_silence_is_reexamined_only_where_drops_were_seen_and_until_a_sample_stays_silent() -> None:
    dest = remote()
    assert not dest.should_reexamine(0)  # no drop seen: silence is taken as it is
    dest.outcome(0.0, 0.1, answered=True, dropped=True)
    assert dest.should_reexamine(0)
    assert not dest.should_reexamine(REEXAMINE_ATTEMPTS)
    dest.reexam_silent = GENUINE_SAMPLE
    assert dest.silence_is_real()
    assert not dest.should_reexamine(0)
    dest.reexam_answered = GENUINE_SAMPLE  # re-examinations get answered: the silence is the limit's
    assert not dest.silence_is_real()
    assert dest.should_reexamine(0)


def test_quality_is_reported_only_when_something_happened() -> None:
    dest = remote()
    assert dest.quality() is None
    dest.retries = 3
    quality = dest.quality()
    assert quality is not None and quality.retries == 3 and not quality.limited
