"""Rate limiting: a token bucket every attempt passes through, and AIMD adaptation to 429s.

The bucket is kept as a *theoretical arrival time* (GCRA): each ``acquire`` reserves the
next slot and sleeps exactly until it, so callers are served in arrival order with one
timer each, and nothing polls. ``burst`` slots may be used at once after an idle spell.

Adaptation: a 429 cuts the effective rate multiplicatively (at most once per cool-down, so
one burst of 429s from the same second counts once); calls that go through raise it back
additively, never above the configured rate.
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
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.max_rate = rate  # 0 = unlimited until the API pushes back
        self.burst = burst
        self.adaptive = adaptive
        self._decrease = decrease_factor
        self._increase = increase_per_second
        self._min_rate = min_rate
        self._clock = clock
        self._sleep = sleep
        self._rate = rate  # the effective rate; 0 = unlimited
        self._tat = -math.inf  # theoretical arrival time of the next call
        self._last_cut = -math.inf
        self._cut_effective_at = -math.inf
        self._last_raise = clock()
        self.throttle_events = 0
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
        """Wait until the next call may go out."""
        delay = self.reserve()
        if delay > 0:
            await self._sleep(delay)

    # ---------------------------------------------------------------- adaptation

    def on_throttled(self) -> None:
        """The API answered 429: slow down (once per cool-down period)."""
        self.throttle_events += 1
        if not self.adaptive:
            return
        now = self._clock()
        cooldown = max(1.0, 2 * self._interval())
        # Also wait until the slots reserved before the last cut have gone out: 429s for
        # them say nothing about the new rate, and cutting on them again overshoots.
        if now - self._last_cut < cooldown or now < self._cut_effective_at:
            return
        current = self._rate if self._rate > 0 else max(self._observed_rate(now), 1.0)
        new_rate = max(self._min_rate, current * self._decrease)
        self._set_rate(new_rate, now)
        self._last_cut = now
        self._cut_effective_at = max(self._tat, now)
        self._last_raise = now
        log.debug("rate_decreased", rate=round(new_rate, 2))

    def _recover(self, now: float) -> None:
        ceiling = self.max_rate if self.max_rate > 0 else math.inf
        if self._rate <= 0 or self._rate >= ceiling:
            return
        # Hold still for a moment after a cut, so the cut can take effect.
        if now - self._last_cut < 1.0:
            self._last_raise = now
            return
        step = self._increase
        if step is None:
            step = max(0.5, 0.02 * (self.max_rate if self.max_rate > 0 else self._rate))
        # Count from the end of the hold even when no call came during it.
        since = max(self._last_raise, self._last_cut + 1.0)
        raised = min(ceiling, self._rate + step * (now - since))
        self._last_raise = now
        self._set_rate(raised, now)

    def _set_rate(self, rate: float, now: float) -> None:
        # Slots already handed out are promises to callers now asleep: keep them, and
        # space only later reservations at the new rate.
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
