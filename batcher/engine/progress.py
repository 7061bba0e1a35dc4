"""Progress: what a run has done so far, as a snapshot, at a steady interval.

The engine does not draw anything. :class:`ProgressTicker` takes a :class:`Snapshot` of the
run's counters every ``interval`` seconds and hands it to a display (the CLI's bar on a
terminal), or, without one, logs it as a ``progress`` event (cron, pipes, files).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import anyio
import structlog

from .limiter import RateLimiter
from .stats import RunStats

log = structlog.get_logger("batcher.progress")

#: Receives a snapshot at every tick (and a last one when the run ends).
Display = Callable[["Snapshot"], None]


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
    #: Entries finished per second since the start.
    rate: float
    eta_s: float | None
    #: The rate limiter's effective rate (None without a limiter).
    limit: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def snapshot(stats: RunStats, limiter: RateLimiter | None = None) -> Snapshot:
    """The counters of ``stats`` now, with the rate and the time left at that rate."""
    elapsed = max(1e-9, anyio.current_time() - stats.started)
    rate = stats.finished_entries / elapsed
    remaining = None if stats.total is None else max(0, stats.total - stats.done)
    eta = remaining / rate if remaining is not None and rate > 0 else None
    return Snapshot(
        done=stats.done,
        total=stats.total,
        succeeded=stats.succeeded,
        failed=stats.failed,
        skipped=stats.skipped,
        in_flight=stats.in_flight,
        rate=round(rate, 2),
        eta_s=None if eta is None else round(eta, 1),
        limit=None if limiter is None else round(limiter.rate, 2),
    )


class ProgressTicker:
    """Hands a :class:`Snapshot` to ``display`` every ``interval`` seconds until cancelled;
    without a display, logs it as a ``progress`` event instead.

    >>> ticker = ProgressTicker(RunStats(total=10), interval=10.0)
    >>> # async with anyio.create_task_group() as group: group.start_soon(ticker.run)
    """

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

    def snapshot(self) -> Snapshot:
        return snapshot(self._stats, self._limiter)

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
            log.info("progress", **self.snapshot().as_dict())
