"""Progress output: a bar on a TTY, steady log lines elsewhere."""

from __future__ import annotations

import io
import json

import anyio
import structlog

from batcher import logs
from batcher.limiter import RateLimiter
from batcher.progress import Progress, format_duration
from batcher.runner import RunStats


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 59, 75, 3600, 3725)] == [
        "0s", "59s", "1m15s", "1h00m", "1h02m"
    ]


async def test_bar_shows_counts_rate_and_eta() -> None:
    stats = RunStats(total=100, succeeded=40, failed=8, skipped=2, already_done=0)
    stats.started = anyio.current_time() - 10  # 50 entries in 10 s: 5/s, 50 left: ETA 10s
    stream = FakeTTY()
    progress = Progress(stats, RateLimiter(rate=20), stream=stream)
    progress.tick()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[2K[")
    assert "50/100" in text and "ok 40 failed 8 skipped 2" in text
    assert "5.0/s" in text and "ETA 10s" in text
    progress.clear()
    assert stream.getvalue().endswith("\r\x1b[2K")


async def test_not_a_tty_logs_progress_lines_at_the_interval() -> None:
    out = io.StringIO()
    logs.configure(fmt="json", stream=out)
    try:
        stats = RunStats(total=10, succeeded=3)
        stats.started = anyio.current_time()
        stream = io.StringIO()  # not a TTY: nothing is drawn on it
        progress = Progress(stats, stream=stream, interval=0.05)
        with anyio.move_on_after(0.28):
            await progress.run()
        assert stream.getvalue() == ""
        events = [json.loads(line) for line in out.getvalue().splitlines()]
        ticks = [e for e in events if e["event"] == "progress"]
        assert len(ticks) >= 1  # a steady interval; the exact count depends on the machine
        assert ticks[0]["done"] == 3 and ticks[0]["total"] == 10
    finally:
        structlog.reset_defaults()


async def test_disabled_progress_writes_nothing() -> None:
    stream = FakeTTY()
    progress = Progress(RunStats(total=1), stream=stream, interval=0.01, enabled=False)
    with anyio.move_on_after(0.05):
        await progress.run()
    assert stream.getvalue() == ""
