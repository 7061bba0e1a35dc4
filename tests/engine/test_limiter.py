"""batcher.limiter: the token bucket and its AIMD adaptation, on a fake clock only."""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import pairwise

import anyio
import pytest

from batcher.engine.limiter import RateLimiter

# Float slack for comparing sums of intervals such as 20 * 0.05 against 1.0.
EPS = 1e-9


@dataclass
class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        assert delay > 0, "acquire() should not sleep for nothing"
        self.sleeps.append(delay)
        self.now += delay

    def advance(self, seconds: float) -> None:
        self.now += seconds


def limiter(clock: FakeClock, **kwargs: object) -> RateLimiter:
    # Unit tests of the x0.7 rule feed answers at arbitrary paces, so the one-step cut to
    # the observed pass rate is off here unless a test asks for it (the simulations do).
    kwargs.setdefault("proportional_cut", False)
    return RateLimiter(clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


def max_in_window(times: list[float], width: float = 1.0) -> int:
    """Most calls in any half-open window [t, t + width) — starting at a call is enough."""
    times = sorted(times)
    return max(bisect_left(times, t + width - EPS) - i for i, t in enumerate(times))


def max_in_closed_window(times: list[float], width: float = 1.0) -> int:
    times = sorted(times)
    return max(bisect_left(times, t + width + EPS) - i for i, t in enumerate(times))


# --------------------------------------------------------------------------- the bucket


async def test_rate_20_burst_1_paces_100_calls_over_5_seconds() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, burst=1)
    times = []
    for _ in range(100):
        await lim.acquire()
        times.append(clock.now)
    # The first call goes at once, then one every 1/20 s: the 100th leaves at 99/20 s.
    assert times[0] == 0
    assert clock.now == pytest.approx(4.95)
    assert len(clock.sleeps) == 99
    assert all(d == pytest.approx(0.05) for d in clock.sleeps)
    # No half-open second holds more than 20 calls; a closed one [t, t+1] may hold 21
    # (a call at each end), and with these exact spacings it does.
    assert max_in_window(times) == 20
    assert max_in_closed_window(times) == 21
    assert lim.rate == 20


def test_concurrent_reservations_are_fifo_and_spaced() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, burst=1)
    delays = [lim.reserve() for _ in range(100)]  # 100 callers arriving at the same instant
    assert delays[0] == 0
    assert all(b > a for a, b in pairwise(delays))
    assert delays == pytest.approx([i * 0.05 for i in range(100)])
    assert max_in_window(delays) == 20


def test_reservations_are_fifo_across_time() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=10, burst=1)
    first = [lim.reserve() for _ in range(5)]  # slots at 0, .1, .2, .3, .4
    clock.advance(0.15)
    later = lim.reserve()  # a later caller queues behind the earlier ones
    assert first == pytest.approx([0, 0.1, 0.2, 0.3, 0.4])
    assert clock.now + later == pytest.approx(0.5)


async def test_burst_5_after_idle_then_spaced() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, burst=5)
    clock.advance(100)  # idle: the bucket is full
    start = clock.now
    times = []
    for _ in range(15):
        await lim.acquire()
        times.append(clock.now - start)
    assert times[:5] == pytest.approx([0] * 5, abs=EPS)
    assert times[5:] == pytest.approx([0.05 * i for i in range(1, 11)])


def test_burst_refills_at_the_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, burst=5)
    assert [lim.reserve() for _ in range(5)] == pytest.approx([0] * 5, abs=EPS)
    assert lim.reserve() == pytest.approx(0.05)  # the bucket is empty: wait a slot
    clock.advance(1.0)  # 20 slots of refill, capped at the burst of 5
    assert [lim.reserve() for _ in range(5)] == pytest.approx([0] * 5, abs=EPS)
    assert lim.reserve() > 0


def test_burst_is_capped_after_a_long_idle() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, burst=3)
    clock.advance(3600)
    delays = [lim.reserve() for _ in range(23)]
    # Over the first second: the burst plus one second of refill, never an hour's worth.
    assert delays[:3] == pytest.approx([0, 0, 0], abs=1e-6)  # float noise at t=3600
    assert max_in_window(delays) == 3 + 19


async def test_rate_0_never_waits() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=0)
    for _ in range(10_000):
        await lim.acquire()
    assert clock.sleeps == []
    assert lim.rate == 0


@pytest.mark.parametrize(("rate", "burst"), [(-1, 1), (10, 0)])
def test_invalid_arguments(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=rate, burst=burst)


# --------------------------------------------------------------------------- adaptation


def answers(lim: RateLimiter, clock: FakeClock, pattern: list[bool], spacing: float) -> None:
    """Report answers (True = 429) ``spacing`` seconds apart."""
    for throttled in pattern:
        clock.advance(spacing)
        lim.on_response(throttled=throttled)


def test_a_few_429s_in_a_full_window_do_not_cut() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    # Windows of 20 answers over >= 1 s with 1, 3 and 5 429s (5/20 = 25%: not above).
    for bad in (1, 3, 5):
        answers(lim, clock, [True] * bad + [False] * (20 - bad), 0.06)
    assert lim.rate == 20
    assert lim.cuts == 0
    assert lim.throttle_events == 9


def test_a_window_above_the_threshold_cuts_once_by_0_7() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    answers(lim, clock, [True] * 6 + [False] * 13, 0.06)
    assert lim.rate == 20  # 19 answers: the window is not full yet
    answers(lim, clock, [False], 0.06)
    assert lim.rate == pytest.approx(14.0)
    assert lim.cuts == 1
    # The same burst of 429s still arriving (answers to old-rate calls) does not cut again.
    answers(lim, clock, [True] * 8, 0.05)
    assert lim.rate == pytest.approx(14.0)
    assert lim.cuts == 1


def test_window_needs_a_second_as_well_as_20_answers() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=0)
    answers(lim, clock, [True] * 40, 0.01)  # 40 answers in 0.4 s: no decision yet
    assert lim.cuts == 0
    answers(lim, clock, [True] * 61, 0.01)  # the window opened at the first: 1 s later
    assert lim.cuts == 1


def test_twenty_throttled_answers_over_a_second_cut_once_and_are_counted() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    for _ in range(20):
        clock.advance(0.06)
        lim.on_response(throttled=True)
    assert lim.cuts == 1
    assert lim.throttle_events == 20
    assert lim.responses == 20


def test_cut_never_goes_below_min_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=2, min_rate=0.5)
    for _ in range(20):
        answers(lim, clock, [True] * 20, 0.5)
    assert lim.rate == 0.5


def test_rate_holds_until_a_clean_window_then_recovers_additively() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, increase_per_second=2.0)
    answers(lim, clock, [True] * 20, 0.06)
    assert lim.rate == pytest.approx(14.0)
    clock.advance(3)
    lim.reserve()
    assert lim.rate == pytest.approx(14.0)  # no clean window at the new rate yet
    answers(lim, clock, [False] * 20, 0.06)  # ... now there is: recovery starts here
    seen = []
    for _ in range(5):
        clock.advance(0.5)
        lim.reserve()
        seen.append(lim.rate)
    assert seen == pytest.approx([15.0, 16.0, 17.0, 18.0, 19.0])
    clock.advance(1000)
    lim.reserve()
    assert lim.rate == 20  # never above the configured rate


def test_default_recovery_step() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=100)  # default step: 3% of the cut rate (70) = 2.1/s
    answers(lim, clock, [True] * 20, 0.06)
    clock.advance(1.0)
    answers(lim, clock, [False] * 20, 0.06)
    lim.reserve()  # recovery starts
    clock.advance(5.0)
    lim.reserve()
    assert lim.rate == pytest.approx(70 + 2.1 * 5)


def test_not_adaptive_never_changes_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, adaptive=False)
    for _ in range(50):
        answers(lim, clock, [True] * 20, 0.1)
        lim.reserve()
    assert lim.rate == 20
    assert lim.throttle_events == 1000


def test_unlimited_limiter_throttled_starts_near_observed_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=0)
    while lim.cuts == 0:  # 50 calls a second, unlimited, every answer a 429
        assert lim.reserve() == 0
        clock.advance(0.02)
        lim.on_response(throttled=True)
    # Below what was getting through (50/s), but not a collapse to a crawl.
    assert 0.5 * 50 <= lim.rate < 50
    # And it now actually limits: a burst of callers is spaced at the new rate.
    delays = [lim.reserve() for _ in range(10)]
    assert delays[-1] == pytest.approx(9 / lim.rate, rel=0.05)


async def test_callers_asleep_on_old_slots_take_new_ones_after_a_cut() -> None:
    # 40 callers queued at 20/s hold 2 s of slots; a cut voids them, so the calls after
    # the cut are spaced at the new rate, not sent at the old one for another 2 s.
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    sent: list[float] = []

    async def caller() -> None:
        await lim.acquire()
        sent.append(clock.now)

    # Fill the queue, then cut at t=0 by 20 429s arriving at once.
    delays = [lim.reserve() for _ in range(40)]
    assert delays[-1] == pytest.approx(1.95)
    for _ in range(20):
        lim.on_response(throttled=True)
    assert lim.cuts == 0  # 20 answers but not a second's worth
    clock.advance(1.0)
    lim.on_response(throttled=True)
    assert lim.rate == pytest.approx(14.0)
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(caller)
    assert all(b - a >= 1 / 14 - EPS for a, b in pairwise(sorted(sent)))


def test_concurrent_callers_stay_spaced_while_rate_recovers() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    answers(lim, clock, [True] * 20, 0.06)
    answers(lim, clock, [False] * 20, 0.06)
    clock.advance(5)  # recovering: every reserve() now also raises the rate a little
    delays = [lim.reserve() for _ in range(20)]
    assert all(b > a for a, b in pairwise(delays))
    assert max_in_window(delays) <= math.ceil(lim.max_rate)


def test_answers_to_old_rate_calls_are_not_evidence() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    answers(lim, clock, [True] * 20, 0.06)
    assert lim.cuts == 1
    answers(lim, clock, [True] * 5, 0.05)  # within the drain after the cut: ignored
    answers(lim, clock, [False] * 20, 0.06)
    assert lim.cuts == 1


# --------------------------------------------------------------------------- simulations


@dataclass
class QuotaServer:
    """A hidden quota of ``limit`` calls per calendar second, as an API gateway keeps it."""

    limit: int = 20
    counts: dict[int, int] = field(default_factory=dict)
    served: int = 0
    throttled: int = 0

    def call(self, now: float) -> float | None:
        """None when served, else the Retry-After: time to the next window."""
        window = math.floor(now)
        if self.counts.get(window, 0) >= self.limit:
            self.throttled += 1
            return window + 1 - now
        self.counts[window] = self.counts.get(window, 0) + 1
        self.served += 1
        return None


async def test_simulation_sequential_finds_the_hidden_quota() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=60, proportional_cut=True)
    server = QuotaServer(limit=20)
    duration = 120.0
    while clock.now < duration:
        await lim.acquire()
        retry_after = server.call(clock.now)
        lim.on_response(throttled=retry_after is not None)
        if retry_after is not None and retry_after > 0:
            await clock.sleep(retry_after)
    useful = server.served / duration
    throttled_share = server.throttled / (server.served + server.throttled)
    assert useful >= 0.8 * 20, f"{useful:.1f}/s"
    assert throttled_share <= 0.15, f"{throttled_share:.1%}"
    assert max(server.counts.values()) == 20  # the model itself never lets more through
    assert 0.5 <= lim.rate <= 60


def simulate_workers(
    *, workers: int, max_rate: float, duration: float = 120.0, seed: int = 1
) -> tuple[float, float, RateLimiter]:
    """A discrete-event run of ``workers`` concurrent callers, latency 50-300 ms each.

    Each worker: reserve a slot, send when it comes, get the answer one latency later;
    on a 429, report it to the limiter and try again after the Retry-After.
    """
    rng = random.Random(seed)
    clock = FakeClock()
    lim = limiter(clock, rate=max_rate, proportional_cut=True)
    server = QuotaServer(limit=20)
    events: list[tuple[float, int, str, int, float]] = []
    order = 0

    def at(when: float, kind: str, worker: int, retry_after: float = 0.0) -> None:
        nonlocal order
        order += 1  # ties keep insertion order: deterministic
        heapq.heappush(events, (when, order, kind, worker, retry_after))

    for worker in range(workers):
        at(0.0, "ready", worker)
    while events:
        when, _, kind, worker, retry_after = heapq.heappop(events)
        if when >= duration:
            break
        clock.now = when
        if kind == "ready":
            # As acquire() does: remember the cuts so far; a slot from before a cut is void.
            at(when + lim.reserve(), "send", worker, lim.cuts)
        elif kind == "send":
            if lim.cuts != retry_after:
                at(when, "ready", worker)  # woke on a voided slot: take a new one
                continue
            latency = rng.uniform(0.05, 0.3)
            answer = server.call(when)
            if answer is None:
                at(when + latency, "answered", worker)
            else:
                at(when + latency, "throttled", worker, answer)
        elif kind == "answered":
            lim.on_response(throttled=False)
            at(when, "ready", worker)
        else:
            lim.on_response(throttled=True)
            at(when + retry_after, "ready", worker)
    useful = server.served / duration
    throttled_share = server.throttled / (server.served + server.throttled)
    return useful, throttled_share, lim


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("workers", "max_rate"), [(16, 60), (16, 0), (4, 60), (64, 60)])
def test_simulation_concurrent_finds_the_hidden_quota(
    workers: int, max_rate: float, seed: int
) -> None:
    useful, throttled_share, lim = simulate_workers(workers=workers, max_rate=max_rate, seed=seed)
    assert useful >= 0.8 * 20, f"{useful:.1f}/s"
    assert throttled_share <= 0.15, f"{throttled_share:.1%}"
    if workers >= 16:
        # The learned rate is near the quota, not collapsed (calls are paced by it). With 4
        # workers the latency paces them below 25/s: 429s stay under the threshold (~8%),
        # and the limiter rightly never cuts.
        assert 10 <= lim.rate <= 30, lim.rate


def test_simulation_without_throttling_uses_the_full_rate() -> None:
    # Quota above max_rate: the limiter is the only pacing and should run at max_rate.
    clock = FakeClock()
    lim = limiter(clock, rate=15)
    server = QuotaServer(limit=20)
    for _ in range(15 * 60):
        delay = lim.reserve()
        clock.advance(delay)
        assert server.call(clock.now) is None
    assert clock.now == pytest.approx(60 - 1 / 15)
    assert lim.throttle_events == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("max_rate", [10, 50])
def test_random_429s_do_not_drag_the_rate_down(max_rate: float, seed: int) -> None:
    # An API that answers 10% of requests 429 whatever the rate: slowing down helps
    # nothing, so the limiter should keep (nearly) the configured rate.
    clock = FakeClock()
    lim = limiter(clock, rate=max_rate, proportional_cut=True)
    rng = random.Random(seed)
    calls = 0
    while clock.now < 300:
        clock.advance(lim.reserve())
        calls += 1
        clock.advance(0.001)  # the answer comes back a moment later
        lim.on_response(throttled=rng.random() < 0.1)
    assert calls / 300 >= 0.8 * max_rate, calls / 300


def test_above_a_found_quota_a_smaller_share_of_429s_cuts() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=60, proportional_cut=True)
    # 60 answers over 1 s, two thirds 429: a quota of about 20/s.
    answers(lim, clock, [True, True, False] * 20 + [True], 1 / 60)
    assert lim.cuts == 1 and lim.rate == pytest.approx(0.95 * 20, rel=0.1)
    clock.advance(2.0)
    # Below the quota found, 20% of 429s (random noise, say) does not cut...
    answers(lim, clock, ([True] + [False] * 4) * 4, 0.06)
    assert lim.cuts == 1
    # ...but once the rate has climbed past it, the same share does.
    clock.advance(30.0)
    lim.reserve()  # recovery is applied when the limiter is next used
    assert lim.rate > 20
    answers(lim, clock, ([True] + [False] * 4) * 4, 0.06)
    assert lim.cuts == 2
