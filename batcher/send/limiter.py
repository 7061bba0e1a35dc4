"""The rate limiter every attempt passes: a token bucket that adapts to the API's 429s.

:class:`RateLimiter` is the one object the runner sees. It joins two ideas, each in its own
module: the bucket that spaces calls (:mod:`._bucket`) and the adaptation that moves the
bucket's rate on evidence from the API's answers (:mod:`._adapt`). "Unlimited" (rate 0) is a
rate like any other here: its reservations never wait, and the first throttling cuts it to
what was observed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import structlog

from batcher.send._adapt import Adaptation
from batcher.send._adapt_settings import AdaptSettings, stated_limit
from batcher.send._bucket import TokenBucket

log = structlog.get_logger("batcher.limiter")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """A token bucket of ``rate`` per second with ``burst`` capacity; ``rate=0`` = unlimited.

    >>> limiter = RateLimiter(rate=10, burst=1)
    >>> limiter.reserve()   # seconds to wait for the slot just taken
    0.0
    >>> limiter.on_response(throttled=False)   # after every answer from the API
    >>> limiter.rate
    10
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: int = 1,
        adaptive: bool = True,
        settings: AdaptSettings | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        self._bucket = TokenBucket(rate=rate, burst=burst)
        self._adapt = Adaptation(settings or AdaptSettings(), max_rate=rate, now=clock())
        self.max_rate = rate  # the configured rate: 0 = unlimited until the API pushes back
        self.burst = burst
        self.adaptive = adaptive
        self._clock = clock
        self._sleep = sleep
        self.throttle_events = 0  # every 429 reported
        self.responses = 0  # every answer reported
        self.cuts = 0
        # A short memory of calls, to pick a starting rate when an unlimited run is throttled.
        self._window_start = clock()
        self._window_count = 0
        self._last_window_rate = 0.0

    @property
    def rate(self) -> float:
        """The effective rate now (0 = unlimited)."""
        return self._bucket.rate

    def reserve(self) -> float:
        """Take the next slot; return how long to wait for it (0 = go now)."""
        now = self._clock()
        self._count_call(now)
        if self.adaptive:
            self._bucket.rate = self._adapt.recover(now=now, rate=self._bucket.rate)
        return self._bucket.reserve(now=now)

    async def wait(self, delay: float) -> None:
        """Sleep ``delay`` (from :meth:`reserve`) until the slot is due.

        A slot taken before a cut is void when its caller wakes: it takes a new one, spaced
        at the new rate (so the cut never lets a burst of old-rate slots through).
        """
        while delay > 0:
            cuts = self.cuts
            await self._sleep(delay)
            if self.cuts == cuts:
                return
            delay = self.reserve()

    async def acquire(self) -> None:
        """Wait until the next call may go out (:meth:`reserve`, then :meth:`wait`)."""
        await self.wait(self.reserve())

    def on_response(
        self, *, throttled: bool, error_msg: str | None = None, retry_after: float | None = None
    ) -> None:
        """The API answered (429 or anything else): add it to the evidence.

        Only real answers belong here; connection errors and timeouts say nothing about
        the API's quota. For a 429, pass its ``error_msg`` (a gateway's states its limit,
        e.g. ``limit:20,time:1 second``) and its ``retry_after`` in seconds, when known.
        """
        self.responses += 1
        if throttled:
            self.throttle_events += 1
        if not self.adaptive:
            return
        now = self._clock()
        cut = self._adapt.observe(
            throttled=throttled,
            now=now,
            rate=self._bucket.rate,
            observed_rate=self._observed_rate(now),
            stated=stated_limit(error_msg) if throttled else None,
            retry_after=retry_after,
        )
        if cut is None:
            return
        self._bucket.rate = cut.rate
        self.cuts += 1
        # Slots handed out at the old rate are void: callers asleep on one take a new slot
        # when they wake (see ``wait``), so the cut acts at once instead of after a queue's
        # worth of old-rate calls (64 workers queue ~3 s of them near a quota). Answers that
        # arrive in the next moment are to calls sent at the old rate: the next sample
        # starts after them.
        due = self._bucket.void_queue(now=now)
        if cut.resume_at is not None and cut.resume_at > due:
            due = self._bucket.hold_until(min(cut.resume_at, now + 1.1))
        self._adapt.cut_takes_effect_at(due)
        log.debug(
            "rate_decreased", rate=round(cut.rate, 2), throttled_share=round(cut.throttled_share, 3)
        )

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
