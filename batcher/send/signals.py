"""SIGINT and SIGTERM, from a command's start to its end, one policy throughout.

Before a run takes them over (manifests read and checked, the report locked, a resume
read) the first one raises KeyboardInterrupt where the code is: the command ends at once
(exit 3, nothing sent), however long the validation would still take. During the run the
first one halts it (requests in flight get the grace period) and a second one cuts them
short. Any more, and any once the run's outcome is being settled, are ignored: the exit
code in the run record is the one the process ends with.

The handlers are Python's, installed once for the whole command and never swapped for the
default in between (an event loop's own handlers put SIG_DFL back when they go, and a
signal then killed the process with 143 after its record said 3). While a run watches,
a signal is forwarded into its event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the policy is installed by every command: it must import cheaply
    import anyio.abc

    from batcher.send.stats import RunStats

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stoppable(Protocol):
    """What a run offers the watcher: its counters, a halt and a hard stop."""

    stats: RunStats

    def halt(self, reason: str) -> None: ...

    def hard_stop(self) -> None: ...


class _Policy:
    """What a signal does now: go to the run watching (``deliver``), raise (``raising``,
    once), or nothing."""

    def __init__(self) -> None:
        self.installed = False
        self.raising = True
        self.deliver: Callable[[int], object] | None = None

    def handle(self, signum: int, frame: object) -> None:
        deliver = self.deliver
        if deliver is not None:
            deliver(signum)
        elif self.raising:
            self.raising = False  # a storm of them must not interrupt the cleanup
            raise KeyboardInterrupt


_POLICY = _Policy()


@contextlib.contextmanager
def signals_handled(*, keep: bool = False) -> Iterator[None]:
    """Hold SIGINT/SIGTERM to the policy above for the block (from the main thread only;
    a nested block changes nothing). A signal the caller ignores (``nohup``, a background
    job) stays ignored. ``keep``: the process exits after the block, so the signals stay
    ignored rather than getting their old handlers back (a default SIGTERM handler then
    would turn the exit code already decided into 143)."""
    if _POLICY.installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for signum in _SIGNALS:
        previous = signal.getsignal(signum)
        if previous is not signal.SIG_IGN:
            saved[signum] = previous
            signal.signal(signum, _POLICY.handle)
    _POLICY.installed, _POLICY.raising, _POLICY.deliver = True, True, None
    try:
        yield
    finally:
        _POLICY.installed, _POLICY.deliver = False, None
        for signum, previous in saved.items():
            signal.signal(signum, signal.SIG_IGN if keep else previous)


async def watch_signals(
    run: Stoppable,
    grace_period: float,
    group: anyio.abc.TaskGroup,
    *,
    task_status: anyio.abc.TaskStatus[None] | None = None,
) -> None:
    """Turn SIGINT/SIGTERM into a halt, then a hard stop, until cancelled (the run is over;
    from then on signals are ignored). Without the policy installed (not the main thread),
    signals are not the run's to handle."""
    if not _POLICY.installed:
        if task_status is not None:
            task_status.started()
        return
    import asyncio

    import anyio

    loop = asyncio.get_running_loop()
    seen = 0

    def on_signal(signum: int) -> None:
        nonlocal seen
        seen += 1
        name = signal.Signals(signum).name
        if seen == 1:
            run.stats.interrupted = True
            run.halt(f"interrupted by {name}")
            group.start_soon(_grace_timer, run, grace_period)
            return
        if seen == 2:
            _log().warning("second_signal", signal=name, action="cutting requests short")
        run.hard_stop()

    _POLICY.deliver = lambda signum: loop.call_soon_threadsafe(on_signal, signum)
    if task_status is not None:
        task_status.started()
    try:
        await anyio.sleep_forever()
    finally:
        _POLICY.deliver, _POLICY.raising = None, False


async def _grace_timer(run: Stoppable, grace_period: float) -> None:
    import anyio

    await anyio.sleep(grace_period)
    if run.stats.in_flight:
        _log().warning("grace_period_over", in_flight=run.stats.in_flight)
    run.hard_stop()


def _log() -> Any:
    import structlog

    return structlog.get_logger("batcher.runner")
