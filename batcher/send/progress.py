"""Progress: what a run has done so far, as a snapshot, at a steady interval.

The engine does not draw anything. :class:`ProgressTicker` takes a :class:`Snapshot` of the
run's counters every ``interval`` seconds and hands it to a display (the CLI's live view on
a terminal), or, without one, logs it as a ``progress`` event (cron, pipes, files).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass

import anyio
import structlog

from batcher.send.limiter import RateLimiter
from batcher.send.stats import RunStats

log = structlog.get_logger("batcher.progress")

#: Receives a snapshot at every tick (and a last one when the run ends).
Display = Callable[["Snapshot"], None]

#: The "current" rate is measured over this many seconds.
RECENT_SECONDS = 5.0


def format_duration(seconds: float) -> str:
    """``3725`` → ``'1h02m'``; short and stable in width.

    >>> format_duration(75)
    '1m15s'
    """
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The run so far: counts, the pace, and what is left."""

    done: int
    total: int | None
    succeeded: int
    failed: int
    skipped: int
    in_flight: int
    #: Entries finished per second since the start, and over the last few seconds.
    rate: float
    eta_s: float | None
    #: The rate limiter's effective (settled) rate; 0 = unlimited; None without a limiter.
    limit: float | None
    elapsed_s: float = 0.0
    recent_rate: float | None = None
    attempts: int = 0
    retries: int = 0
    throttled: int = 0
    confirmed: int = 0
    ambiguous: int = 0
    already_done: int = 0


#: The counters a snapshot takes from :class:`RunStats` as they are.
_COUNTS = (
    *("done", "total", "succeeded", "failed", "skipped", "in_flight", "attempts", "retries"),
    *("throttled", "confirmed", "ambiguous", "already_done"),
)


def snapshot(
    stats: RunStats, limiter: RateLimiter | None = None, *, recent_rate: float | None = None
) -> Snapshot:
    """The counters of ``stats`` now, with the rate and the time left at that rate."""
    elapsed = max(1e-9, anyio.current_time() - stats.started)
    rate = stats.finished_entries / elapsed
    remaining = None if stats.total is None else max(0, stats.total - stats.done)
    pace = recent_rate if recent_rate else rate
    eta = remaining / pace if remaining is not None and pace > 0 else None
    return Snapshot(
        rate=round(rate, 2),
        eta_s=None if eta is None else round(eta, 1),
        limit=None if limiter is None else round(limiter.rate, 2),
        elapsed_s=round(elapsed, 1),
        recent_rate=None if recent_rate is None else round(recent_rate, 2),
        **{name: getattr(stats, name) for name in _COUNTS},
    )


class ProgressTicker:
    """Hands a :class:`Snapshot` to ``display`` every ``interval`` seconds until cancelled;
    without a display, logs it as a ``progress`` event instead."""

    def __init__(
        self,
        stats: RunStats,
        limiter: RateLimiter | None = None,
        *,
        display: Display | None = None,
        interval: float | None = None,
    ) -> None:
        self._stats = stats
        self._limiter = limiter
        self._display = display
        self.interval = interval if interval is not None else (0.25 if display else 10.0)
        self._history: deque[tuple[float, int]] = deque()

    def _recent_rate(self) -> float | None:
        now, finished = anyio.current_time(), self._stats.finished_entries
        history = self._history
        history.append((now, finished))
        while len(history) > 2 and now - history[1][0] >= RECENT_SECONDS:
            history.popleft()
        then, before = history[0]
        return (finished - before) / (now - then) if now - then > 0.5 else None

    def snapshot(self) -> Snapshot:
        return snapshot(self._stats, self._limiter, recent_rate=self._recent_rate())

    async def run(self) -> None:
        try:
            while True:
                await anyio.sleep(self.interval)
                self.tick()
        finally:
            if self._display is not None:
                self._display(self.snapshot())

    def tick(self) -> None:
        if self._display is not None:
            self._display(self.snapshot())
        else:
            log.info("progress", **asdict(self.snapshot()))
