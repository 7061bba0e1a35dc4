"""batcher.limiter: the token bucket and its AIMD adaptation, on a fake clock only."""

from __future__ import annotations

import heapq
import math
import random
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import pairwise

import pytest

from batcher.limiter import RateLimiter

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


def test_throttle_cuts_once_per_cooldown() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    lim.on_throttled()
    assert lim.rate == pytest.approx(14.0)  # x 0.7
    clock.advance(0.5)
    lim.on_throttled()  # same burst of 429s: no second cut
    lim.on_throttled()
    assert lim.rate == pytest.approx(14.0)
    assert lim.throttle_events == 3
    clock.advance(0.6)  # 1.1 s after the first cut
    lim.on_throttled()
    assert lim.rate == pytest.approx(9.8)


def test_cut_never_goes_below_min_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=2, min_rate=0.5)
    for _ in range(20):
        lim.on_throttled()
        clock.advance(10)
    assert lim.rate == 0.5


def test_rate_recovers_additively_up_to_max_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, increase_per_second=2.0)
    lim.on_throttled()
    assert lim.rate == pytest.approx(14.0)
    clock.advance(0.5)
    lim.reserve()
    assert lim.rate == pytest.approx(14.0)  # holds still right after a cut
    seen = []
    for _ in range(6):
        clock.advance(0.5)
        lim.reserve()
        seen.append(lim.rate)
    # From the end of the hold (t=1), +2/s: 15, 16, 17, 18, 19 ... then capped at 20.
    assert seen == pytest.approx([14.0, 15.0, 16.0, 17.0, 18.0, 19.0])
    clock.advance(1000)
    lim.reserve()
    assert lim.rate == 20  # never above the configured rate


def test_default_recovery_step() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=100)  # default step: 2% of max_rate per second = 2/s
    lim.on_throttled()
    clock.advance(1.0)
    lim.reserve()  # end of the hold
    clock.advance(5.0)
    lim.reserve()
    assert lim.rate == pytest.approx(70 + 2 * 5)


def test_not_adaptive_never_changes_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20, adaptive=False)
    for _ in range(50):
        lim.on_throttled()
        clock.advance(3)
        lim.reserve()
    assert lim.rate == 20
    assert lim.throttle_events == 50


def test_unlimited_limiter_throttled_starts_near_observed_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=0)
    for _ in range(3):  # 50 calls a second, unlimited
        for _ in range(50):
            assert lim.reserve() == 0
            clock.advance(0.02)
    lim.on_throttled()
    # Below what was getting through (50/s), but not a collapse to a crawl.
    assert 0.5 * 50 <= lim.rate < 50
    # And it now actually limits: a burst of callers is spaced at the new rate.
    delays = [lim.reserve() for _ in range(10)]
    assert delays[-1] == pytest.approx(9 / lim.rate, rel=0.05)


def test_unlimited_limiter_throttled_in_its_first_second() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=0)
    for _ in range(30):  # 30 calls in the first half second
        lim.reserve()
        clock.advance(0.5 / 30)
    lim.on_throttled()
    assert 0.5 * 60 <= lim.rate < 60  # observed ~60/s so far


def test_slower_rate_keeps_slots_already_promised() -> None:
    # Callers already sleeping hold their slots; a cut must not hand the same instants out
    # again to newcomers (that would be a burst exactly when the API says "too fast").
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    promised = [lim.reserve() for _ in range(10)]  # up to 0.45 s
    lim.on_throttled()
    newcomer = lim.reserve()
    assert newcomer > promised[-1]


def test_concurrent_callers_stay_spaced_while_rate_recovers() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    lim.on_throttled()
    clock.advance(5)  # past the hold: every reserve() now also raises the rate a little
    delays = [lim.reserve() for _ in range(20)]
    assert all(b > a for a, b in pairwise(delays))
    assert max_in_window(delays) <= math.ceil(lim.max_rate)


def test_throttles_from_before_a_cut_do_not_cut_again() -> None:
    # 429s for requests sent at the old rate say nothing about the new one: with 40 callers
    # queued (2 s of slots at 20/s), the next cut waits until those slots have gone out.
    clock = FakeClock()
    lim = limiter(clock, rate=20)
    for _ in range(40):
        lim.reserve()
    lim.on_throttled()
    assert lim.rate == pytest.approx(14.0)
    clock.advance(1.5)
    lim.on_throttled()
    assert lim.rate == pytest.approx(14.0)
    clock.advance(1.0)  # past the queued slots (2 s) and the cool-down
    lim.on_throttled()
    assert lim.rate < 14.0


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
    lim = limiter(clock, rate=60)
    server = QuotaServer(limit=20)
    duration = 120.0
    while clock.now < duration:
        await lim.acquire()
        retry_after = server.call(clock.now)
        if retry_after is not None:
            lim.on_throttled()
            if retry_after > 0:
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
    lim = limiter(clock, rate=max_rate)
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
            at(when + lim.reserve(), "send", worker)
        elif kind == "send":
            latency = rng.uniform(0.05, 0.3)
            answer = server.call(when)
            if answer is None:
                at(when + latency, "ready", worker)
            else:
                at(when + latency, "throttled", worker, answer)
        else:
            lim.on_throttled()
            at(when + retry_after, "ready", worker)
    useful = server.served / duration
    throttled_share = server.throttled / (server.served + server.throttled)
    return useful, throttled_share, lim


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("workers", "max_rate"), [(16, 60), (16, 0), (4, 60), (64, 60)])
def test_simulation_concurrent_finds_the_hidden_quota(
    workers: int, max_rate: float, seed: int
) -> None:
    useful, throttled_share, lim = simulate_workers(
        workers=workers, max_rate=max_rate, seed=seed
    )
    assert useful >= 0.8 * 20, f"{useful:.1f}/s"
    assert throttled_share <= 0.15, f"{throttled_share:.1%}"
    # The learned rate is near the quota, not collapsed (calls are paced by it, not by luck).
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
