"""SIGINT and SIGTERM during a run: the first halts it (requests in flight get the grace
period), a second one — or the end of the grace period — cuts them short."""

from __future__ import annotations

import signal
import threading
from typing import Protocol

import anyio
import anyio.abc
import structlog

from batcher.send.stats import RunStats

log = structlog.get_logger("batcher.runner")


class Stoppable(Protocol):
    stats: RunStats

    @property
    def grace_period(self) -> float: ...

    def halt(self, reason: str) -> None: ...

    def hard_stop(self) -> None: ...


async def watch_signals(run: Stoppable, group: anyio.abc.TaskGroup) -> None:
    """Turn SIGINT/SIGTERM into a halt, then a hard stop, until cancelled."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be installed from the main thread
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if run.stats.interrupted:
                log.warning("second_signal", signal=name, action="cutting requests short")
                run.hard_stop()
                continue
            run.stats.interrupted = True
            run.halt(f"interrupted by {name}")
            group.start_soon(_grace_timer, run)


async def _grace_timer(run: Stoppable) -> None:
    await anyio.sleep(run.grace_period)
    if run.stats.in_flight:
        log.warning("grace_period_over", in_flight=run.stats.in_flight)
    run.hard_stop()
