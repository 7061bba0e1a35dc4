"""One run, wired together: settings → (simulator) → session → client → limiter → runner.

The CLI turns flags into :class:`RunSettings`; tests and other programs can call
:func:`run_batch` directly.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

import anyio
import structlog
from yarl import URL

from .auth import AkSkCredentials, Credentials
from .client import CommandClient, open_session
from .entry import Entry
from .limiter import RateLimiter
from .outcome import ReportLine
from .progress import Progress
from .runner import Runner, RunOptions, RunStats

log = structlog.get_logger("batcher.run")

SIMULATED_PROJECT_ID = "simulated-project"


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything a run needs besides the entries and the report."""

    credentials: Credentials | None
    endpoint: URL | None  # None with ``simulate``: the in-process simulator's URL
    project_id: str | None
    app_user_id: str | None = None
    rate: float = 10.0
    burst: int = 1
    timeout: float = 30.0
    simulate: bool = False
    progress: bool = True
    progress_stream: TextIO | None = None
    options: RunOptions = field(default_factory=RunOptions)


@contextlib.asynccontextmanager
async def _target(settings: RunSettings) -> AsyncIterator[tuple[URL, Credentials]]:
    """The endpoint and credentials to use: the real ones, or a throwaway simulator."""
    if not settings.simulate:
        assert settings.endpoint is not None and settings.credentials is not None
        yield settings.endpoint, settings.credentials
        return
    from .simulator import SimulatorConfig, run_simulator

    # Throwaway keys, so the demo exercises real signing end to end.
    credentials = AkSkCredentials(ak="SIM" + secrets.token_hex(8).upper(),
                                  sk=secrets.token_urlsafe(24))
    config = SimulatorConfig(credentials={credentials.ak: credentials.sk}, log_requests=False)
    async with run_simulator(config) as simulator:
        log.info("simulator_started", url=str(simulator.url))
        yield URL(str(simulator.url)), credentials


async def run_batch(
    entries: Iterable[Entry],
    *,
    settings: RunSettings,
    write: Callable[[ReportLine], None],
    run_id: str,
    done_keys: set[int] | None = None,
    total: int | None = None,
) -> tuple[RunStats, float]:
    """Run ``entries``, writing one report line each; return the stats and the settled rate.

    >>> stats, rate = anyio.run(run_batch, entries, ...)   # doctest: +SKIP
    """
    limiter = RateLimiter(rate=settings.rate, burst=settings.burst)
    stats = RunStats(total=total)
    async with _target(settings) as (endpoint, credentials):
        session = open_session(
            credentials, concurrency=settings.options.concurrency, timeout=settings.timeout
        )
        async with session:
            client = CommandClient(
                session, endpoint=endpoint, project_id=settings.project_id,
                app_user_id=settings.app_user_id, timeout=settings.timeout,
            )
            runner = Runner(
                client=client, limiter=limiter, write=write, run_id=run_id,
                options=settings.options, done_keys=done_keys, stats=stats,
            )
            progress = Progress(
                stats, limiter, stream=settings.progress_stream or sys.stderr,
                enabled=settings.progress,
            )
            async with anyio.create_task_group() as group:
                group.start_soon(progress.run)
                await runner.run(entries)
                group.cancel_scope.cancel()
    return stats, limiter.rate

