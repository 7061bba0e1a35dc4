"""Rate limiting: a token bucket every attempt passes through, and AIMD adaptation to 429s.

The bucket is kept as a *theoretical arrival time* (GCRA): each ``acquire`` reserves the
next slot and sleeps exactly until it, so callers are served in arrival order with one
timer each, and nothing polls. ``burst`` slots may be used at once after an idle spell.

Adaptation decides on evidence, not on single 429s. Some APIs answer a share of requests
429 at random, whatever the rate; cutting on each of them (even once per second) drives
the rate down to a crawl while sending slower helps nothing. So the runner reports *every*
answer (``on_response``), and the limiter looks at them in consecutive *samples* of at
least ``window`` answers spanning at least ``min_window_seconds``. A sample whose share of
429s is above ``throttle_threshold`` cuts the effective rate (x0.7 at most, or straight to
what got through); one at or below it changes nothing. Once a cut has found a quota, probing
above it is judged against the smaller ``probe_threshold``. Between cuts the rate recovers
additively, never above the configured rate.

Why these numbers:

* Samples do not overlap, so every decision is an independent test with a known
  false-alarm rate: with 10% random 429s, P(more than 25% of 20 answers) = P(>= 6) ~ 1.1%,
  i.e. one needless cut every ~90 samples, which the additive recovery undoes in seconds.
  Against a quota the share of 429s at rate r is (r - quota) / r, so the rate saws between
  about 0.7x and 1.4x the quota; in the fake-clock model 12-16% of requests are throttled.
* A sample also lasts at least a second, so at high rates it holds hundreds of answers and
  the noise all but vanishes (false alarms per *second* stay bounded whatever the rate),
  and 429s from one calendar second of a per-second quota count once.
* At low rates a sample takes longer: with a quota of 2/s and ``--rate 6`` a decision
  needs 20 answers, about 4-7 s each. That is slow but acceptable: Retry-After (honoured
  per request by the runner) keeps every individual call correct meanwhile.
* After a cut, answers to slots reserved at the old rate say nothing about the new one:
  the next sample only starts once those slots have gone out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import anyio
import structlog

log = structlog.get_logger("batcher.limiter")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """A token bucket of ``rate`` per second with ``burst`` capacity; ``rate=0`` = unlimited.

    >>> limiter = RateLimiter(rate=10, burst=1)
    >>> # await limiter.acquire()   # at most 10 calls a second pass this line
    >>> # limiter.on_response(throttled=False)   # after every answer from the API
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int = 1,
        adaptive: bool = True,
        decrease_factor: float = 0.7,
        increase_per_second: float | None = None,
        min_rate: float = 0.5,
        window: int = 20,
        min_window_seconds: float = 1.0,
        throttle_threshold: float = 0.25,
        probe_threshold: float = 0.15,
        recovery_fraction: float = 0.03,
        drain_seconds: float = 0.5,
        proportional_cut: bool = True,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        if window < 1:
            raise ValueError("window must be >= 1")
        self._proportional_cut = proportional_cut
        self.max_rate = rate  # 0 = unlimited until the API pushes back
        self.burst = burst
        self.adaptive = adaptive
        self.window = window
        self.min_window_seconds = min_window_seconds
        self.throttle_threshold = throttle_threshold
        self.probe_threshold = probe_threshold
        # What got through in the sample that last cut the rate: under a quota, the quota.
        self._quota_estimate: float | None = None
        self._decrease = decrease_factor
        self._recovery_fraction = recovery_fraction
        self._drain = drain_seconds
        self._holding = False  # after a cut, until a sample at the new rate comes back clean
        self._after_cut = rate  # the rate the last cut set: sizes the recovery step
        self._increase = increase_per_second
        self._min_rate = min_rate
        self._clock = clock
        self._sleep = sleep
        self._rate = rate  # the effective rate; 0 = unlimited
        self._tat = -math.inf  # theoretical arrival time of the next call
        self._last_cut = -math.inf
        self._cut_effective_at = -math.inf
        self._last_raise = clock()
        self.throttle_events = 0  # every 429 reported
        self.responses = 0  # every answer reported
        self.cuts = 0
        # The current sample of answers: when it started, how many, how many were 429.
        self._sample_start: float | None = None
        self._sample_total = 0
        self._sample_throttled = 0
        # A short memory of calls, to pick a starting rate when an unlimited run is throttled.
        self._window_start = clock()
        self._window_count = 0
        self._last_window_rate = 0.0

    @property
    def rate(self) -> float:
        """The effective rate now (0 = unlimited)."""
        return self._rate

    def _interval(self) -> float:
        return 1.0 / self._rate if self._rate > 0 else 0.0

    def reserve(self) -> float:
        """Take the next slot; return how long to wait for it (0 = go now)."""
        now = self._clock()
        self._count_call(now)
        self._recover(now)
        if self._rate <= 0:
            return 0.0
        interval = self._interval()
        tat = max(self._tat, now)
        allowed_at = tat - (self.burst - 1) * interval
        self._tat = tat + interval
        return max(0.0, allowed_at - now)

    async def acquire(self) -> None:
        """Wait until the next call may go out.

        A slot taken before a cut is void when its caller wakes: it takes a new one, spaced
        at the new rate (so the cut never lets a burst of old-rate slots through).
        """
        while True:
            cuts = self.cuts
            delay = self.reserve()
            if delay > 0:
                await self._sleep(delay)
            if self.cuts == cuts or delay <= 0:
                return

    # ---------------------------------------------------------------- adaptation

    def on_response(self, *, throttled: bool) -> None:
        """The API answered (429 or anything else): add it to the evidence.

        Only real answers belong here; connection errors and timeouts say nothing about
        the API's quota.
        """
        self.responses += 1
        if throttled:
            self.throttle_events += 1
        if not self.adaptive:
            return
        now = self._clock()
        if now < self._cut_effective_at + self._drain:
            return  # an answer to a slot reserved at the old rate: no evidence about the new
        if self._sample_start is None:
            self._sample_start = now
        self._sample_total += 1
        self._sample_throttled += throttled
        if (
            self._sample_total < self.window
            or now - self._sample_start < self.min_window_seconds
        ):
            return
        share = self._sample_throttled / self._sample_total
        passed_per_second = (self._sample_total - self._sample_throttled) / max(
            now - self._sample_start, 1e-9
        )
        self._reset_sample()
        if share > self._threshold():
            self._cut(now, share, passed_per_second)
        elif self._holding:
            self._holding = False
            self._last_raise = now

    def _threshold(self) -> float:
        """The share of 429s that calls for a cut.

        Above a quota already found, 429s are expected evidence rather than noise, so a
        smaller share counts: probing past the quota stops at ~1.18x it instead of ~1.33x,
        which roughly halves the share of throttled requests under a quota. Below it (and
        before any cut) random 429s must not cut, so the threshold stays high there.
        """
        estimate = self._quota_estimate
        if estimate is not None and self._rate > estimate:
            return self.probe_threshold
        return self.throttle_threshold

    def on_throttled(self) -> None:
        """The API answered 429 (same as ``on_response(throttled=True)``)."""
        self.on_response(throttled=True)

    def _reset_sample(self) -> None:
        self._sample_start = None
        self._sample_total = 0
        self._sample_throttled = 0

    def _cut(self, now: float, share: float, passed_per_second: float) -> None:
        current = self._rate if self._rate > 0 else max(self._observed_rate(now), 1.0)
        # Under a quota, what got through in the sample *is* the quota: go (just under) there
        # in one step rather than in several x0.7 steps that each cost a second of 429s.
        # Random 429s never reach the threshold, so this does not fire on them.
        # Never below 0.3x in one step: a sample's pass rate can undercount (idle workers).
        new_rate = current * self._decrease
        if self._proportional_cut:
            new_rate = min(new_rate, max(0.95 * passed_per_second, 0.3 * current))
        new_rate = max(self._min_rate, new_rate)
        self._quota_estimate = passed_per_second
        self._set_rate(new_rate, now)
        self.cuts += 1
        self._after_cut = new_rate
        self._last_cut = now
        # Slots handed out at the old rate are void: callers asleep on one take a new slot
        # when they wake (see ``acquire``), so the cut acts at once instead of after a
        # queue's worth of old-rate calls (64 workers queue ~3 s of them near a quota).
        self._tat = min(self._tat, now + 1.0 / new_rate)
        # Answers that arrive in the next moment are to calls sent at the old rate: the next
        # sample starts after them.
        self._cut_effective_at = max(self._tat, now)
        self._last_raise = now
        self._holding = True
        log.debug("rate_decreased", rate=round(new_rate, 2), throttled_share=round(share, 3))

    def _recover(self, now: float) -> None:
        ceiling = self.max_rate if self.max_rate > 0 else math.inf
        if self._rate <= 0 or self._rate >= ceiling:
            return
        # Hold still after a cut until a sample at the new rate has come back clean: the
        # evidence first, then the probing (else at low rates, where a sample takes several
        # seconds, the rate climbs back before the cut is ever judged).
        if now - self._last_cut < 1.0 or self._holding:
            self._last_raise = now
            return
        step = self._increase
        if step is None:
            # Additive: a fixed step per second, sized from the rate the last cut set (not
            # from --rate, which may be far above the quota the rate now hovers at).
            step = max(0.5, self._recovery_fraction * self._after_cut)
        # Count from the end of the hold even when no call came during it.
        since = max(self._last_raise, self._last_cut + 1.0)
        raised = min(ceiling, self._rate + step * (now - since))
        self._last_raise = now
        self._set_rate(raised, now)

    def _set_rate(self, rate: float, now: float) -> None:
        # Later reservations are spaced at the new rate; a raise keeps the slots handed out.
        self._rate = rate

    def _observed_rate(self, now: float) -> float:
        """Calls per second lately: the last full second, or the current one so far."""
        partial = self._window_count / max(now - self._window_start, 0.25)
        return max(self._last_window_rate, partial)

    def _count_call(self, now: float) -> None:
        if now - self._window_start >= 1.0:
            elapsed = now - self._window_start
            self._last_window_rate = self._window_count / elapsed
            self._window_start = now
            self._window_count = 0
        self._window_count += 1
