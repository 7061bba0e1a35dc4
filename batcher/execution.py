"""One run, wired together: report → (simulator) → session → client → limiter → runner.

:func:`batcher.run_async` checks everything first and then calls :func:`execute` with the
checked manifests: it takes the report's lock, reads what ``--resume`` needs, keeps the
in-flight slots, and runs the entries with progress alongside.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
import structlog
from yarl import URL

from .engine import ProgressTicker, RateLimiter, Runner, RunStats
from .engine.progress import Display
from .engine.stats import utc_stamp
from .entry import Entry
from .errors import ReportWriteError
from .metastudio.client import MetaStudioClient, open_session
from .metastudio.credentials import AkSkCredentials, Credentials
from .redact import Redactor
from .report import ReportWriter
from .report.inflight import InFlight, InflightSlots, inflight_path, read_inflight
from .report.resume import ResumeState, resume_state
from .settings import RunSettings

log = structlog.get_logger("batcher")


@dataclass(frozen=True, slots=True)
class Executed:
    """What :func:`execute` hands back: the counters and the rate the limiter settled at."""

    stats: RunStats
    settled_rate: float


async def execute(
    entries: Iterable[Entry],
    *,
    settings: RunSettings,
    report: Path,
    resume: bool,
    run_id: str,
    total: int,
    progress: Display | bool,
    progress_interval: float | None,
    redactor: Redactor,
) -> Executed:
    """Run ``entries`` into ``report`` (locked for the whole run)."""
    with ReportWriter.open(report, resume=resume, redactor=redactor) as writer:
        slots_path = inflight_path(report)
        state = (
            resume_state(report, inflight=read_inflight(slots_path)) if resume else ResumeState()
        )
        if state.doubts:
            log.info(
                "resume_in_doubt",
                entries=len(state.doubts),
                hint="their job's record is read before they are sent again",
            )
        slots = InflightSlots.open(slots_path, slots=settings.options.concurrency)
        project = settings.project_id

        def note_sent(slot: int, entry: Entry, sent_at: datetime) -> None:
            slots.note(
                slot,
                InFlight(
                    entry.job_id, entry.command, entry.project_id or project, utc_stamp(sent_at)
                ),
            )

        limiter = RateLimiter(rate=settings.rate, burst=settings.burst)
        stats = RunStats(total=total)
        try:
            async with (
                _target(settings) as (url, credentials),
                open_session(
                    credentials, concurrency=settings.options.concurrency, timeout=settings.timeout
                ) as session,
            ):
                client = MetaStudioClient(
                    session,
                    endpoint=url,
                    project_id=project,
                    app_user_id=settings.app_user_id,
                    timeout=settings.timeout,
                    redactor=redactor,
                )
                runner = Runner(
                    client=client,
                    limiter=limiter,
                    write=writer.write,
                    run_id=run_id,
                    project_id=project,
                    options=settings.options,
                    done_keys=state.done,
                    doubts=state.doubts,
                    note_sent=note_sent,
                    stats=stats,
                )
                async with anyio.create_task_group() as group:
                    if progress is not False:
                        display = None if progress is True else progress
                        ticker = ProgressTicker(
                            stats, limiter, display=display, interval=progress_interval
                        )
                        group.start_soon(ticker.run)
                    await runner.run(entries)
                    group.cancel_scope.cancel()
        except BaseException as error:
            failure = _write_failure(error)
            slots.close()
            if failure is None:
                raise
            raise ReportWriteError(
                f"cannot write report {report}: {failure}; the run stopped at once. Every "
                "entry finished before this is in the report; fix the cause, then continue "
                "with the same command plus --resume (entries that were in flight are "
                "checked against their job's record first)"
            ) from None
        # Every entry taken on has its line: nothing is in flight any more.
        slots.clear()
        slots.close()
        slots_path.unlink(missing_ok=True)
    return Executed(stats, limiter.rate)


def _write_failure(error: BaseException) -> str | None:
    """The OS error behind a failed report write, if that is what ``error`` is."""
    if isinstance(error, BaseExceptionGroup):
        for leaf in error.exceptions:
            found = _write_failure(leaf)
            if found is not None:
                return found
        return None
    if isinstance(error, ReportWriteError):
        return str(error)
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return None


@contextlib.asynccontextmanager
async def _target(settings: RunSettings) -> AsyncIterator[tuple[URL, Credentials]]:
    """The endpoint and credentials to use: the real ones, or a throwaway simulator."""
    if not settings.simulate:
        assert settings.endpoint is not None and settings.credentials is not None
        yield settings.endpoint, settings.credentials
        return
    from .simulator import SimulatorConfig, run_simulator

    # Throwaway keys, so the demo exercises real signing end to end.
    credentials = AkSkCredentials(
        ak="SIM" + secrets.token_hex(8).upper(), sk=secrets.token_urlsafe(24)
    )
    config = SimulatorConfig(credentials={credentials.ak: credentials.sk}, log_requests=False)
    async with run_simulator(config) as simulator:
        log.info("simulator_started", url=str(simulator.url))
        yield URL(str(simulator.url)), credentials
