"""batcher.limiter: the token bucket and its AIMD adaptation, on a fake clock only."""

from __future__ import annotations

import dataclasses
import heapq
import math
import random
from bisect import bisect_left
from dataclasses import dataclass, field
from itertools import pairwise

import anyio
import pytest

from batcher.send._adapt_settings import AdaptSettings
from batcher.send.limiter import RateLimiter

# Float slack for comparing sums of intervals such as 20 * 0.05 against 1.0.
EPS = 1e-9
#: The share of the quota found that the limiter paces at.
MARGIN = AdaptSettings().margin
ADAPT_FIELDS = {field.name for field in dataclasses.fields(AdaptSettings)}


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
    # Likewise the cut on a run of 429s: on with the one-step cut, as in a real run.
    kwargs.setdefault("fast_cut", kwargs["proportional_cut"])
    knobs = {name: kwargs.pop(name) for name in list(kwargs) if name in ADAPT_FIELDS}
    settings = AdaptSettings(**knobs)  # type: ignore[arg-type]
    return RateLimiter(clock=clock, sleep=clock.sleep, settings=settings, **kwargs)  # type: ignore[arg-type]


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


def found_quota(clock: FakeClock, **kwargs: object) -> RateLimiter:
    """A limiter at --rate 60 that has found a quota of about 20/s (and a clean hold)."""
    lim = limiter(clock, rate=60, proportional_cut=True, **kwargs)
    # 60 answers over 1 s, two thirds 429: a quota of about 20/s.
    answers(lim, clock, [True, True, False] * 20 + [True], 1 / 60)
    assert lim.cuts == 1 and lim.rate == pytest.approx(MARGIN * 20, rel=0.05)
    clock.advance(1.0)
    answers(lim, clock, [False] * 20, 0.052)  # the hold comes back clean
    lim.reserve()
    return lim


def test_holds_under_a_found_quota_and_probes_only_now_and_then() -> None:
    clock = FakeClock()
    lim = found_quota(clock)
    hold = lim.rate
    for _ in range(7):  # clean answers at the hold: no probing for ~10 s
        answers(lim, clock, [False] * 20, 0.052)
        lim.reserve()
        assert lim.rate == hold
    clock.advance(2.0)
    lim.reserve()
    assert hold < lim.rate <= 1.06 * 20  # a gentle probe, 5% above the quota found
    # Two 429s while probing: past the quota. Back to the hold at once (a cut).
    answers(lim, clock, [False] * 21 + [True] + [False] * 21 + [True], 1 / lim.rate)
    assert lim.cuts == 2
    assert lim.rate == pytest.approx(hold, rel=0.05)
    after = lim.rate
    clock.advance(5.0)
    lim.reserve()
    assert lim.rate == after  # and the next probe waits again


def test_a_probe_that_passes_raises_the_estimate_and_probes_again_soon() -> None:
    # The quota grew (another client stopped sharing it): probes find it in a few steps.
    clock = FakeClock()
    lim = found_quota(clock, probe_after=2.0)
    seen = []
    for _ in range(80):
        answers(lim, clock, [False] * 5, 0.05)  # never a 429 again
        lim.reserve()
        seen.append(lim.rate)
    assert lim.cuts == 1
    assert max(seen) >= 40  # 20 -> 40 within ~20 s of probing
    assert max(seen) <= 60  # never above --rate


def test_a_run_of_429s_cuts_at_once_and_waits_for_the_quota_to_have_room() -> None:
    # 60 a second against a hidden 20 a second: 20 get through in 1/3 s, then 429s. A few
    # in a row cut at once to just under what got through, and no slot is handed out
    # before those 20 leave the quota's window (a second after the first of them).
    clock = FakeClock()
    lim = limiter(clock, rate=60, proportional_cut=True)
    answers(lim, clock, [False] * 20, 1 / 60)
    throttled = 0
    while lim.cuts == 0:
        answers(lim, clock, [True], 1 / 60)
        throttled += 1
    assert throttled <= 6
    assert lim.rate == pytest.approx(MARGIN * 20, rel=0.01)
    assert clock.now + lim.reserve() >= 1.0


def test_the_limit_a_429_states_sets_the_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, rate=100, proportional_cut=True)
    message = "The throttling threshold has been reached: policy user over ratelimit,limit:20,time:1 second"  # noqa: E501
    answers(lim, clock, [False] * 20, 0.01)
    while lim.cuts == 0:
        clock.advance(0.01)
        lim.on_response(throttled=True, error_msg=message, retry_after=1.0)
    assert lim.rate == pytest.approx(MARGIN * 20)
    clock.advance(60)  # clean answers for a minute: never a probe past the stated limit
    for _ in range(60):
        answers(lim, clock, [False] * 20, 0.05)
        assert lim.reserve() >= 0 and lim.rate <= 20


def test_a_stated_limit_that_more_got_through_than_is_ignored() -> None:
    # A 429 that says "limit:10" while 40 a second got through is not this quota's word.
    clock = FakeClock()
    lim = limiter(clock, rate=50, proportional_cut=True)
    answers(lim, clock, [False] * 40, 1 / 50)
    while lim.cuts == 0:
        clock.advance(1 / 50)
        lim.on_response(throttled=True, error_msg="limit:10,time:1 second")
    assert lim.rate == pytest.approx(MARGIN * 40, rel=0.05)


# --------------------------------------------------------------------------- quota kinds


@dataclass
class QuotaRun:
    """What a simulated run against a hidden quota achieved."""

    useful_of_quota: float  # successes over the quota's capacity between first and last
    throttled_share: float  # 429s over all requests
    succeeded: int
    lim: RateLimiter


def quota_run(
    *,
    quota: int = 20,
    window: str = "calendar",
    changes: tuple[tuple[float, int], ...] = (),
    max_rate: float = 60,
    entries: int = 600,
    workers: int = 16,
    latency: tuple[float, float] = (0.0, 0.002),
    jitter: float = 0.002,
    hiccups: float = 0.0,
    random_429: float = 0.0,
    pass_message: bool = True,
    offset: float = 0.0,
    seed: int = 1,
) -> QuotaRun:
    """A discrete-event run of ``entries`` through ``workers`` as the runner does it.

    The server is the simulator's own :class:`Quota` on the fake clock. Each worker takes
    an entry, reserves a slot (a slot voided by a cut is taken anew), sends when it comes
    (plus a wake-up ``jitter``, and with probability ``hiccups`` a 20-40 ms stall), gets the
    answer one latency later and reports it; after a 429 it sleeps the Retry-After (or the
    runner's jittered backoff, if longer) and tries again. The quota's calendar seconds
    start ``offset`` seconds before the run does.
    """
    from batcher.simulator.gateway import Quota, throttled

    rng = random.Random(seed)
    clock = FakeClock()
    lim = limiter(clock, rate=max_rate, proportional_cut=True)
    server = Quota(quota, window=window, changes=changes, clock=lambda: clock.now + offset)  # type: ignore[arg-type]
    events: list[tuple[float, int, str, int, float]] = []
    order = 0
    todo = entries
    ok_times: list[float] = []
    requests = throttled_count = 0

    def at(when: float, kind: str, worker: int, extra: float = 0.0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (when, order, kind, worker, extra))

    for worker in range(workers):
        at(0.0, "take", worker)
    while events:
        when, _, kind, worker, extra = heapq.heappop(events)
        clock.now = when
        if kind == "take":
            if todo == 0:
                continue
            todo -= 1
            at(when, "ready", worker)
        elif kind == "ready":
            delay = lim.reserve()
            stall = rng.uniform(0, jitter)
            if hiccups and rng.random() < hiccups:
                stall += rng.uniform(0.02, 0.04)
            at(when + delay + stall, "send", worker, lim.cuts)
        elif kind == "send":
            if delay_voided := lim.cuts != extra:
                at(when, "ready", worker)
                continue
            del delay_voided
            requests += 1
            retry_after = server.admit()
            if retry_after is None and random_429 and rng.random() < random_429:
                retry_after = 1
            answer_at = when + rng.uniform(*latency)
            if retry_after is None:
                ok_times.append(when)
                at(answer_at, "answered", worker)
            else:
                throttled_count += 1
                at(answer_at, "throttled", worker, retry_after)
        elif kind == "answered":
            lim.on_response(throttled=False)
            at(when, "take", worker)
        else:
            message = throttled(server.limit, int(extra)).error_msg if pass_message else None
            lim.on_response(throttled=True, error_msg=message, retry_after=extra)
            at(when + max(extra, rng.uniform(0, 0.5)), "ready", worker)
    first, last = ok_times[0], ok_times[-1]
    steps = [(0.0, quota), *changes]
    capacity = 0.0
    for i, (start, per_second) in enumerate(steps):
        until = steps[i + 1][0] if i + 1 < len(steps) else math.inf
        lo, hi = max(start, first - ok_times[0]), min(until, last - ok_times[0])
        capacity += max(0.0, hi - lo) * per_second
    return QuotaRun(
        useful_of_quota=(len(ok_times) - 1) / capacity,
        throttled_share=throttled_count / requests,
        succeeded=len(ok_times),
        lim=lim,
    )


KINDS = {
    "calendar": {"quota": 20},
    "sliding": {"quota": 20, "window": "sliding"},
    "drop": {"quota": 30, "changes": ((5.0, 12),)},  # another client starts sharing it
}


@pytest.mark.parametrize(("offset", "seed"), [(0.0, 1), (0.6, 2)])
@pytest.mark.parametrize("workers", [16, 64])
@pytest.mark.parametrize("message", [True, False], ids=["stated", "unstated"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_rate_60_over_a_hidden_quota_uses_it_with_few_429s(
    kind: str, message: bool, workers: int, offset: float, seed: int
) -> None:
    # The measure of issue 13: --rate 60, 600 entries, a hidden quota (in simulated time),
    # its calendar seconds aligned with the run's start or not.
    if not message and offset and kind != "sliding":
        pytest.xfail(
            "known gap: with no limit stated and calendar seconds not aligned with the run, "
            "an estimate a little above the quota can hold with 5-15% of 429s that make no "
            "run and stay under the cut test"
        )
    run = quota_run(
        **KINDS[kind],  # type: ignore[arg-type]
        pass_message=message,
        workers=workers,
        offset=offset,
        seed=seed,
    )
    assert run.succeeded == 600
    assert run.useful_of_quota >= (0.90 if kind == "drop" else 0.95), run
    assert run.throttled_share <= 0.05, run
    assert run.lim.rate <= 60


@pytest.mark.parametrize("kind", ["calendar", "sliding"])
def test_slow_answers_and_stalls_still_use_the_quota(kind: str) -> None:
    run = quota_run(**KINDS[kind], latency=(0.05, 0.3), hiccups=0.05, seed=3)  # type: ignore[arg-type]
    assert run.useful_of_quota >= 0.9, run
    assert run.throttled_share <= 0.05, run


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_429s_on_top_of_a_quota_do_not_drag_the_rate_down(seed: int) -> None:
    # A quota of 20/s and, besides, 10% of requests answered 429 whatever the rate. The
    # useful rate can be at most 90% of the quota; the limiter must not sink far below it.
    run = quota_run(quota=20, random_429=0.1, entries=1200, seed=seed)
    assert run.succeeded == 1200
    assert run.useful_of_quota >= 0.75, run


# --------------------------------------------------------------------------- every attempt


class CountingLimiter(RateLimiter):
    """A real limiter that counts the slots taken and the answers heard."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate=rate)
        self.reserved = 0

    def reserve(self) -> float:
        self.reserved += 1
        return super().reserve()


async def test_every_retry_takes_a_slot_from_the_limiter() -> None:
    # Each entry is answered 503, then 429, then OK: three attempts, every one of them under
    # the limiter (a retry that skipped it would hammer a throttling API), and at its pace.
    from batcher.entry import Entry, Outcome
    from batcher.send.runner import Runner
    from batcher.send.stats import RunOptions

    answers = [
        Outcome(succeeded=False, retryable=True, http_status=503, reason="HTTP 503"),
        Outcome(succeeded=False, retryable=True, throttled=True, http_status=429, reason="429"),
        Outcome(succeeded=True, http_status=200, command_result="EXCUTE_SUCCESS"),
    ]
    sent: dict[str, int] = {}
    times: list[float] = []

    class Client:
        async def execute(self, entry: Entry) -> Outcome:
            times.append(anyio.current_time())
            n = sent[entry.job_id] = sent.get(entry.job_id, 0) + 1
            return answers[n - 1]

    rate = 100.0
    lim = CountingLimiter(rate)
    lim.adaptive = False  # the pace stays the one asked for: the spacing below is exact
    runner = Runner(
        client=Client(),  # type: ignore[arg-type]
        limiter=lim,
        write=lambda line: None,
        run_id="r",
        options=RunOptions(
            concurrency=4, backoff_base=0.001, backoff_cap=0.002, handle_signals=False
        ),
        rng=random.Random(1),
    )
    entries = [Entry(job_id=f"j{i}", command="SUBMITVERIFYING", source=f"m:{i}") for i in range(4)]
    stats = await runner.run(entries)
    assert stats.succeeded == 4 and sum(sent.values()) == 12
    assert lim.reserved == 12 and lim.responses == 12 and lim.throttle_events == 4
    times.sort()
    # 12 slots 10 ms apart span at least 110 ms (the scheduler only ever adds to it).
    assert times[-1] - times[0] >= 11 / rate - 0.002
