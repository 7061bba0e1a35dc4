"""One run, wired together: check → report → (simulator) → session → client → runner.

Also the plan ``--dry-run`` prints: what a run would do, without sending anything.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import anyio
import structlog

from batcher.api import Plan, RunResult
from batcher.config import Options, RunSettings, check_run, project_for_manifests, target
from batcher.entry import Entry, key_digest
from batcher.errors import ReportWriteError, UsageError
from batcher.journal import ReportWriter
from batcher.journal.intents import (
    InFlight,
    InflightSlots,
    inflight_path,
    left_in_flight,
    report_identity,
)
from batcher.journal.lock import check_unlocked, file_id
from batcher.journal.resume import Resume, read_resume
from batcher.observe.events import RunEvents
from batcher.read import Manifests, ManifestSummary
from batcher.redact import Redactor
from batcher.send.client import MetaStudioClient, open_session
from batcher.send.limiter import RateLimiter
from batcher.send.progress import Display, ProgressTicker
from batcher.send.runner import Runner
from batcher.send.stats import RunStats, utc_stamp

#: The manifests' second pass: every entry in order, None for one whose key is in the
#: container (already done: passed over without building it).
EntrySource = Callable[[Container[int]], Iterator[Entry | None]]


def plan_run(
    summary: ManifestSummary,
    settings: RunSettings,
    entries: EntrySource,
    resumed: Path | None,
) -> Plan:
    """What the run would do; with ``resumed`` (the report, under ``--resume``) the entries
    it would not send again and those it would check first."""
    if settings.simulate:
        endpoint: str | None = "an in-process simulator on 127.0.0.1 (throwaway credentials)"
        auth = "AK/SK signing with throwaway simulator keys"
    else:
        endpoint = str(settings.endpoint) if settings.endpoint else None
        auth = settings.credentials.describe() if settings.credentials else "none"
    already_done = in_doubt = 0
    identity = None if resumed is None else file_id(resumed)
    if resumed is not None and identity is not None:
        in_flight, _ = left_in_flight(resumed, report_identity(identity))
        state = read_resume(
            lambda: open(resumed, "rb"),  # noqa: SIM115 - read_resume closes what it reads
            inflight=in_flight,
        )
        for entry in entries(state.done):
            if entry is None:
                already_done += 1
            elif key_digest(entry.job_id, entry.command) in state.doubts:
                in_doubt += 1
    left = summary.total - already_done
    limit = settings.options.limit
    return Plan(
        files=summary.files,
        total=summary.total,
        commands=dict(summary.commands),
        endpoint=endpoint,
        project_id=settings.project_id,
        auth=auth,
        rate=settings.rate,
        read_rate=settings.read_rate,
        rate_source=settings.rate_source,
        read_rate_source=settings.read_rate_source,
        burst=settings.burst,
        concurrency=settings.options.concurrency,
        already_done=already_done,
        in_doubt=in_doubt,
        to_run=left if limit is None else min(limit, left),
        limit=limit,
    )


# One run, wired together: check → report → (simulator) → session → client → runner.
#
# :func:`run_manifests` is :func:`batcher.run_async`'s body: it checks the settings and every
# manifest entry first (nothing is sent when anything is wrong), then :func:`execute` takes
# the report's lock, reads what ``--resume`` needs, keeps the in-flight slots, and runs the
# entries with progress alongside.
log = structlog.get_logger("batcher")


async def run_manifests(
    paths: list[str],
    options: Options,
    *,
    report: Path | None,
    command: str | None,
    resume: bool,
    dry_run: bool,
    progress: Display | bool,
    progress_interval: float | None,
    metrics_file: Path | None = None,
) -> RunResult:
    """Check everything, then run (or, for a dry run, plan) the entries of ``paths``."""
    with Manifests(
        paths, default_command=command, project_id=project_for_manifests(options)
    ) as checked:
        ready = check_run(
            paths,
            options,
            manifests=checked,
            report=report,
            resume=resume,
            dry_run=dry_run,
            metrics_file=metrics_file,
        )
        settings, summary = ready.settings, ready.summary
        if summary.total == 0:
            log.warning(
                "no_entries",
                files=list(summary.files),
                hint="the manifests hold no entries: nothing to do",
            )
        run_id = new_run_id()
        if dry_run:
            if report is not None:
                check_unlocked(report)  # exit 4, as the real run would
            plan = plan_run(summary, settings, checked.entries, report if resume else None)
            return RunResult(run_id=run_id, report=None, plan=plan)
        assert report is not None
        redactor = Redactor(settings.secrets())
        metrics = None
        if metrics_file is not None:
            from batcher.observe.metrics import RunMetrics

            metrics = RunMetrics(
                metrics_file, manifests=list(summary.files), report=report, run_id=run_id,
                rate_limit=settings.rate,
            )  # fmt: skip
        events = RunEvents(
            run_id=run_id, summary=summary, settings=settings, report=report, resume=resume,
            redactor=redactor, metrics=metrics,
        )  # fmt: skip
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            done = await execute(
                checked.entries,
                settings=settings,
                report=report,
                resume=resume,
                run_id=run_id,
                total=summary.total,
                progress=progress,
                progress_interval=progress_interval,
                redactor=redactor,
                manifests=paths,
                observer=events,
            )
    stats = done.stats
    elapsed = (stats.finished or stats.started) - stats.started
    return RunResult(
        run_id=run_id,
        report=report,
        succeeded=stats.succeeded,
        failed=stats.failed,
        skipped=stats.skipped,
        already_done=stats.already_done,
        attempts=stats.attempts,
        throttled=stats.throttled,
        confirmed=stats.confirmed,
        ambiguous=stats.ambiguous,
        checks=stats.checks,
        left_by_limit=stats.left_by_limit,
        elapsed=elapsed,
        rate_limit=settings.rate,
        settled_rate=done.settled_rate,
        # The reason can quote a server's answer, and a server can echo a credential.
        halted_reason=None if stats.halted_reason is None else redactor.text(stats.halted_reason),
    )


def new_run_id() -> str:
    """A run id: when it started (UTC), and six random hex digits.

    >>> len(new_run_id())
    23
    """
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass(frozen=True, slots=True)
class Executed:
    """What :func:`execute` hands back: the counters and the rate the limiter settled at."""

    stats: RunStats
    settled_rate: float


async def execute(
    entries: EntrySource,
    *,
    settings: RunSettings,
    report: Path,
    resume: bool,
    run_id: str,
    total: int,
    progress: Display | bool,
    progress_interval: float | None,
    redactor: Redactor,
    manifests: Sequence[str] = (),
    observer: RunObserver | None = None,
) -> Executed:
    """Run ``entries`` into ``report`` (locked for the whole run); ``observer`` hears of
    the start (after the lock), every few seconds, and the end (before the lock goes)."""
    with ReportWriter.open(report, resume=resume, redactor=redactor, manifests=manifests) as writer:
        slots_path = inflight_path(report)
        identity = report_identity(writer.identity)
        in_flight, stray = (
            left_in_flight(report, identity, created=writer.created) if resume else ([], [])
        )
        for path in stray:
            log.warning(
                "resume_inflight_under_another_name", file=str(path),
                hint="a crashed run of this report left it under an earlier name: its "
                "entries are checked first too",
            )  # fmt: skip
        state = read_resume(writer.reader, inflight=in_flight) if resume else Resume()
        if state.doubts:
            log.info(
                "resume_in_doubt",
                entries=len(state.doubts),
                hint="their job's record is read before they are sent again",
            )
        try:
            slots = InflightSlots.open(
                slots_path,
                slots=settings.options.concurrency,
                carried=state.carried,
                report=identity,
                run=run_id,
                since_size=writer.started_size,
            )
        except OSError as error:
            writer.discard_if_unused()
            raise UsageError(
                f"cannot write {slots_path}: {error.strerror or error}; nothing was sent"
            ) from None
        for path in stray:  # their doubts are in this run's slot file now
            with contextlib.suppress(OSError):
                path.unlink()
        project = settings.project_id

        def note_sent(slot: int, entry: Entry, sent_at: datetime) -> None:
            try:
                slots.note(
                    slot,
                    InFlight(
                        entry.job_id, entry.command, entry.project_id or project,
                        utc_stamp(sent_at),
                    ),
                )  # fmt: skip
            except OSError as error:
                cause = f"cannot write {slots_path}: {error.strerror or error}"
                raise ReportWriteError(
                    f"{cause}; the run stops. Every line written before this is in the "
                    "report: fix the cause, then continue with the same command plus --resume",
                    cause=cause,
                ) from None

        # The API counts commands and reads (Show after a lost answer) on separate quotas:
        # each has its own bucket, adapting to its own 429s.
        limiter = RateLimiter(rate=settings.rate, burst=settings.burst)
        read_limiter = RateLimiter(rate=settings.read_rate)
        stats = RunStats(total=total)
        try:
            async with (
                target(settings) as (url, credentials),
                open_session(
                    concurrency=settings.options.concurrency, timeout=settings.timeout
                ) as session,
            ):
                client = MetaStudioClient(
                    session,
                    endpoint=url,
                    project_id=project,
                    credentials=credentials,
                    app_user_id=settings.app_user_id,
                    timeout=settings.timeout,
                    redactor=redactor,
                )
                runner = Runner(
                    client=client,
                    limiter=limiter,
                    read_limiter=read_limiter,
                    write=writer.write,
                    run_id=run_id,
                    project_id=project,
                    options=settings.options,
                    # No done_keys: entries(state.done) passes over the done ones already,
                    # so the runner need not digest every entry again to find none.
                    doubts=state.doubts,
                    note_sent=note_sent,
                    stats=stats,
                )
                if observer is not None:
                    observer.started(stats, writer)
                async with anyio.create_task_group() as group:
                    if progress is not False:
                        display = None if progress is True else progress
                        ticker = ProgressTicker(
                            stats, limiter, display=display, interval=progress_interval
                        )
                        group.start_soon(ticker.run)
                    if observer is not None:
                        group.start_soon(_observe, observer, stats, limiter)
                    await runner.run(entries(state.done))
                    group.cancel_scope.cancel()
                # Every line is written: make sure the report's name still leads to them
                # before the in-flight record of what was sent is cleared.
                writer.check()
        except BaseException as error:
            failure = _write_failure(error)
            if failure is not None and writer.moved:
                failure += _keep_in_doubt(writer, slots)
            slots.close()
            if not slots.used:  # refused before anything was sent: leave nothing behind
                slots_path.unlink(missing_ok=True)
                writer.discard_if_unused()
            if failure is None:
                raise
            if observer is not None:  # the run record and the metrics say how it ended
                with contextlib.suppress(Exception):
                    observer.finished(stats, limiter.rate)
            # The writer's own words (they name the report, the cause and --resume).
            raise ReportWriteError(failure) from None
        # Every entry taken on has its line: nothing is in flight any more, but for
        # entries still in doubt that this run did not reach (--limit, a halt).
        unreached = [
            item for item in state.carried
            if key_digest(item.job_id, item.command) not in runner.doubts_lined
        ]  # fmt: skip
        try:
            slots.clear(keep=unreached)
        except OSError as error:  # the old file stands: its settled entries have lines
            log.warning("inflight_not_cleared", path=str(slots_path), reason=error.strerror)
            unreached = state.carried
        slots.close()
        if not unreached:
            slots_path.unlink(missing_ok=True)
        if observer is not None:
            observer.finished(stats, limiter.rate)
    return Executed(stats, limiter.rate)


def _keep_in_doubt(writer: ReportWriter, slots: InflightSlots) -> str:
    """After the report was replaced, moved or deleted mid-run: the entries whose lines the
    file now at its path lacks go into the in-flight file, so --resume reads their job's
    record before sending any of them again. Returns what to add to the message."""
    lines = writer.lines_missing_at_path()
    items = [
        InFlight(
            str(line.get("job_id")), str(line.get("command")), line.get("project_id"),
            str(line.get("started_at") or line.get("finished_at") or ""),
        )
        for line in lines
        if line.get("job_id") and line.get("command")
    ]  # fmt: skip
    if not items:
        return ""
    try:
        slots.carry(items)
    except OSError as error:
        return (
            f"; {len(items)} lines this run wrote are not in the file now at {writer.path}, "
            f"and {slots.path} could not record them ({error.strerror}): read them from "
            "the file this run wrote, if it still exists, before resuming"
        )
    return (
        f"; {len(items)} lines this run wrote are not in the file now at {writer.path}: "
        "their entries are kept in doubt, and --resume reads each job's record before "
        "sending it again"
    )


class RunObserver(Protocol):
    """Hears of a run's start, of its progress every few seconds, and of its end."""

    def started(self, stats: RunStats, writer: ReportWriter) -> None: ...

    def tick(self, stats: RunStats, settled_rate: float) -> None: ...

    def finished(self, stats: RunStats, settled_rate: float) -> None: ...


#: How often an observer hears of the run's progress (the metrics file is rewritten).
OBSERVE_SECONDS = 5.0


async def _observe(observer: RunObserver, stats: RunStats, limiter: RateLimiter) -> None:
    while True:
        await anyio.sleep(OBSERVE_SECONDS)
        observer.tick(stats, limiter.rate)


def _write_failure(error: BaseException) -> str | None:
    """Why the report (or its in-flight slots) could not be written, if that is what
    stopped the run."""
    if isinstance(error, BaseExceptionGroup):
        for leaf in error.exceptions:
            found = _write_failure(leaf)
            if found is not None:
                return found
        return None
    if isinstance(error, ReportWriteError):
        return str(error)
    return None
