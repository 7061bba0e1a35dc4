"""Progress: a live bar on a TTY, a log line at a steady interval otherwise (cron)."""

from __future__ import annotations

import sys
from typing import TextIO

import anyio
import structlog

from .limiter import RateLimiter
from .runner import RunStats

log = structlog.get_logger("batcher.progress")


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


class Progress:
    """Renders :class:`RunStats` periodically until cancelled.

    The bar is redrawn in place with a carriage return; nothing is written when
    ``enabled`` is false.
    """

    def __init__(
        self,
        stats: RunStats,
        limiter: RateLimiter | None = None,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float | None = None,
        enabled: bool = True,
    ) -> None:
        self._stats = stats
        self._limiter = limiter
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._interval = interval if interval is not None else (0.25 if self._tty else 10.0)
        self._enabled = enabled
        self._drawn = False

    def snapshot(self) -> dict[str, float | int | None]:
        s = self._stats
        elapsed = max(1e-9, anyio.current_time() - s.started)
        rate = s.finished_entries / elapsed
        remaining = None if s.total is None else max(0, s.total - s.done)
        eta = remaining / rate if remaining is not None and rate > 0 else None
        return {
            "done": s.done, "total": s.total, "succeeded": s.succeeded, "failed": s.failed,
            "skipped": s.skipped, "in_flight": s.in_flight, "rate": round(rate, 2),
            "eta_s": None if eta is None else round(eta, 1),
            "limit": None if self._limiter is None else round(self._limiter.rate, 2),
        }

    def render_bar(self, width: int = 24) -> str:
        snap = self.snapshot()
        total, done = snap["total"], int(snap["done"] or 0)
        if total:
            filled = int(width * min(1.0, done / int(total)))
            bar = "[" + "#" * filled + "." * (width - filled) + "]"
            count = f"{done}/{total}"
        else:
            bar, count = "", f"{done}"
        eta = "" if snap["eta_s"] is None else f" ETA {format_duration(float(snap['eta_s']))}"
        return (
            f"{bar} {count} ok {snap['succeeded']} failed {snap['failed']} "
            f"skipped {snap['skipped']} | {snap['rate']:.1f}/s{eta}"
        ).strip()

    async def run(self) -> None:
        if not self._enabled:
            return
        try:
            while True:
                await anyio.sleep(self._interval)
                self.tick()
        finally:
            self.clear()

    def tick(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[2K" + self.render_bar())
            self._stream.flush()
            self._drawn = True
        else:
            log.info("progress", **self.snapshot())

    def clear(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False
