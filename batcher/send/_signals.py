"""SIGINT and SIGTERM during a run: the first halts it (requests in flight get the grace
period), a second one — or the end of the grace period — cuts them short."""

from __future__ import annotations

import signal
import threading

import anyio
import anyio.abc
import structlog

from batcher.send.attempts import Sender

log = structlog.get_logger("batcher.runner")


async def watch_signals(run: Sender, grace_period: float, group: anyio.abc.TaskGroup) -> None:
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
            group.start_soon(_grace_timer, run, grace_period)


async def _grace_timer(run: Sender, grace_period: float) -> None:
    await anyio.sleep(grace_period)
    if run.stats.in_flight:
        log.warning("grace_period_over", in_flight=run.stats.in_flight)
    run.hard_stop()
