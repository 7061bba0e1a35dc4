"""One run, wired together: check → report → (simulator) → session → client → runner.

Also what a run hands back (:class:`RunResult`), and the plan ``--dry-run`` prints
(:class:`Plan`): what a run would do, without sending anything.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import anyio
import structlog

from batcher.config import RunConfig, check_run, client_for, project_for_manifests
from batcher.entry import Entry, key_digest
from batcher.errors import ReportWriteError, UsageError, exit_code_for
from batcher.journal import ReportWriter
from batcher.journal.intents import (
    Fingerprint,
    InFlight,
    IntentFile,
    check_state_dir,
    left_in_flight,
    state_dir,
)
from batcher.journal.lock import check_unlocked
from batcher.journal.reader import open_report
from batcher.journal.resume import Resume, read_resume
from batcher.journal.runs import refuse_other_manifests
from batcher.journal.witnesses import recent_successes
from batcher.observe.events import RunEvents
from batcher.read import Manifests, ManifestSummary
from batcher.redact import Redactor
from batcher.send.limiter import RateLimiter
from batcher.send.progress import Display, ProgressTicker
from batcher.send.runner import Runner
from batcher.send.signals import signals_handled
from batcher.send.stats import RunStats
from batcher.send.vocabulary import trace_of


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run would do: the entries per command, where they go, and at what pace."""

    files: tuple[str, ...]
    total: int
    commands: dict[str, int]
    endpoint: str | None
    #: Entries per project they go to (see :attr:`ManifestSummary.projects`).
    projects: dict[str | None, int]
    auth: str
    rate: float
    burst: int
    concurrency: int
    #: The reads' pace (Show after a lost answer), and where each rate came from.
    read_rate: float = 0.0
    rate_source: str = ""
    read_rate_source: str = ""
    #: With ``resume``: entries an earlier run finished, and those it may have executed
    #: without hearing back (their job's record is read first).
    already_done: int = 0
    in_doubt: int = 0
    #: Entries the run would send (``limit`` caps them), and the limit.
    to_run: int = 0
    limit: int | None = None

    @property
    def expected_seconds(self) -> float | None:
        """At least this long at ``rate`` (one attempt per entry); None when unlimited."""
        return self.to_run / self.rate if self.rate > 0 else None


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run did. ``exit_code`` is the one the ``batcher`` command exits with.

    >>> RunResult(run_id="r", report=None, succeeded=3).exit_code
    0
    """

    run_id: str
    report: Path | None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    #: Entries not sent because an earlier run of the report had them succeed (``resume``).
    already_done: int = 0
    attempts: int = 0
    #: Requests the API answered 429.
    throttled: int = 0
    #: Entries decided from the job's record after a lost answer, failures left in doubt
    #: (``ambiguous``), and the Show requests made to decide them.
    confirmed: int = 0
    ambiguous: int = 0
    checks: int = 0
    #: True when ``limit`` stopped the run with entries left for ``resume``.
    left_by_limit: bool = False
    elapsed: float = 0.0
    #: The rate asked for (0 = unlimited) and the rate the limiter ended at.
    rate_limit: float = 0.0
    settled_rate: float = 0.0
    #: Why the run stopped early (401/403, a failure threshold, a signal), else None.
    halted_reason: str | None = None
    #: A dry run's plan (nothing was sent); None for real runs.
    plan: Plan | None = None

    @property
    def exit_code(self) -> int:
        return exit_code_for(
            halted=self.halted_reason is not None, failed=self.failed, skipped=self.skipped
        )

    @property
    def entries_per_second(self) -> float | None:
        """Entries attempted (succeeded or failed) per second; skipped lines are not work."""
        attempted = self.succeeded + self.failed
        return attempted / self.elapsed if self.elapsed > 0 else None


log = structlog.get_logger("batcher")

#: The manifests' second pass: every entry in order, None for one whose key is in the
#: container (already done: passed over without building it).
EntrySource = Callable[[Container[int]], Iterator[Entry | None]]


def plan_run(
    summary: ManifestSummary,
    config: RunConfig,
    entries: EntrySource,
    resumed: Path | None,
) -> Plan:
    """What the run would do; with ``resumed`` (the report, under ``--resume``) the entries
    it would not send again and those it would check first."""
    if config.simulate:
        endpoint: str | None = "an in-process simulator on 127.0.0.1 (throwaway credentials)"
        auth = "AK/SK signing with throwaway simulator keys"
    else:
        endpoint = str(config.url) if config.url else None
        auth = config.credentials.describe() if config.credentials else "none"
    already_done = in_doubt = 0
    if resumed is not None and resumed.exists():
        if not config.allow_other_manifest:
            refuse_other_manifests(resumed, summary.sha256)
        with open_report(resumed) as stream:
            size = os.fstat(stream.fileno()).st_size
            in_flight = left_in_flight(stream, size, summary.sha256)
        state = read_resume(lambda: open_report(resumed), inflight=in_flight)
        for entry in entries(state.done):
            if entry is None:
                already_done += 1
            elif key_digest(entry.job_id, entry.command) in state.doubts:
                in_doubt += 1
    left = summary.total - already_done
    limit = config.limit
    return Plan(
        files=summary.files,
        total=summary.total,
        commands=dict(summary.commands),
        endpoint=endpoint,
        projects=dict(summary.projects),
        auth=auth,
        rate=config.paces[0],
        read_rate=config.paces[1],
        rate_source=config.rate_source,
        read_rate_source=config.read_rate_source,
        burst=config.burst,
        concurrency=config.concurrency,
        already_done=already_done,
        in_doubt=in_doubt,
        to_run=left if limit is None else min(limit, left),
        limit=limit,
    )


async def run_manifests(paths: list[str], config: RunConfig, progress: Display | bool) -> RunResult:
    """Check everything, then run (or, for a dry run, plan) the entries of ``paths``:
    :func:`batcher.run_async`'s body. The settings and every manifest entry are checked
    first (nothing is sent when anything is wrong); then :func:`execute` takes the report's
    lock, reads what ``--resume`` needs, keeps the in-flight slots, and runs the entries."""
    project = project_for_manifests(config)
    # With handle_signals, a signal ends the checking at once, or halts the run.
    policy = signals_handled() if config.handle_signals else contextlib.nullcontext()
    with policy, Manifests(paths, default_command=config.command, project_id=project) as checked:
        config, summary = check_run(config, paths, checked)
        if summary.total == 0:
            log.warning(
                "no_entries",
                files=list(summary.files),
                hint="the manifests hold no entries: nothing to do",
            )
        run_id = new_run_id()
        report = config.report
        if config.dry_run:
            if report is not None:
                check_unlocked(report)  # exit 4, as the real run would
                check_state_dir()  # exit 2, as the real run would before sending
            resumed = report if config.resume else None
            plan = plan_run(summary, config, checked.entries, resumed)
            return RunResult(run_id=run_id, report=None, plan=plan)
        assert report is not None
        redactor = Redactor(config.secrets())
        metrics = None
        if config.metrics_file is not None:
            from batcher.observe.metrics import RunMetrics

            metrics = RunMetrics(
                config.metrics_file, manifests=list(summary.files), report=report,
                run_id=run_id, rate_limit=config.paces[0],
            )  # fmt: skip
        events = RunEvents(
            run_id=run_id, summary=summary, config=config, redactor=redactor, metrics=metrics
        )
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            done = await execute(
                checked.entries,
                config=config,
                run_id=run_id,
                total=summary.total,
                progress=progress,
                redactor=redactor,
                manifests=paths,
                manifest_digests=summary.sha256,
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
        rate_limit=config.paces[0],
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
    config: RunConfig,
    run_id: str,
    total: int,
    progress: Display | bool,
    redactor: Redactor,
    manifests: Sequence[str] = (),
    manifest_digests: Sequence[str | None] = (),
    observer: RunObserver | None = None,
) -> Executed:
    """Run ``entries`` into the report (locked for the whole run); ``observer`` hears of
    the start (after the lock), every few seconds, and the end (before the lock goes)."""
    report, resume = config.report, config.resume
    assert report is not None
    with ReportWriter.open(report, resume=resume, redactor=redactor, manifests=manifests) as writer:
        state, slots = _open_journal(writer, config, run_id, manifest_digests)
        limiter = RateLimiter(rate=config.paces[0], burst=config.burst)
        stats = RunStats(total=total)
        run = _Run(config, run_id, writer, slots, state, limiter, stats, redactor, observer)
        try:
            await run.send(entries, progress)
        except BaseException as error:
            failure = _write_failure(error)
            if failure is not None and writer.moved:
                failure += _keep_in_doubt(writer, slots)
            slots.close()
            if not slots.used:  # refused before anything was sent: leave nothing behind
                slots.remove()
                writer.discard_if_unused()
            if failure is None:
                raise
            if observer is not None:  # the run record and the metrics say how it ended
                with contextlib.suppress(Exception):
                    observer.finished(stats, limiter.rate)
            # The writer's own words (they name the report, the cause and --resume).
            raise ReportWriteError(failure) from None
        # Every entry taken on has its line: nothing of this run is in flight any more
        # (entries in doubt it did not reach keep the intent files that put them there).
        slots.remove()
        if observer is not None:
            observer.finished(stats, limiter.rate)
    return Executed(stats, limiter.rate)


def _open_journal(
    writer: ReportWriter, config: RunConfig, run_id: str, manifests: Sequence[str | None]
) -> tuple[Resume, IntentFile]:
    """What ``--resume`` needs of the report (the intents of every run of it, found by its
    content wherever they were written), and this run's own intent file. A resume onto a
    report of other manifests is refused unless ``allow_other_manifest``."""
    if config.resume and not config.allow_other_manifest:
        try:
            refuse_other_manifests(writer.path, manifests)
        except UsageError:
            writer.discard_if_unused()
            raise
    with writer.reader() as stream:
        mark = Fingerprint.of(stream, writer.started_size)
        in_flight = left_in_flight(stream, writer.started_size, manifests) if config.resume else []
    state = read_resume(writer.reader, inflight=in_flight) if config.resume else Resume()
    if state.doubts:
        log.info(
            "resume_in_doubt",
            entries=len(state.doubts),
            hint="their job's record is read before they are sent again",
        )
    try:
        slots = IntentFile.create(
            state_dir(), run_id, mark, manifests=manifests, slots=config.concurrency
        )
    except UsageError:
        writer.discard_if_unused()
        raise
    return state, slots


@dataclass(slots=True)
class _Run:
    """The pieces of one run that sending needs, put together once."""

    config: RunConfig
    run_id: str
    writer: ReportWriter
    slots: IntentFile
    state: Resume
    limiter: RateLimiter
    stats: RunStats
    redactor: Redactor
    observer: RunObserver | None

    async def send(self, entries: EntrySource, progress: Display | bool) -> Runner:
        """Open the target and the session, and run every entry (progress alongside)."""
        config, project = self.config, self.config.project_id
        async with client_for(
            config, concurrency=config.concurrency, redactor=self.redactor
        ) as client:
            runner = Runner(
                client=client,
                limiter=self.limiter,
                # The API counts commands and reads (Show after a lost answer) on separate
                # quotas: each has its own bucket, adapting to its own 429s.
                read_limiter=RateLimiter(rate=config.paces[1]),
                write=self.writer.write,
                run_id=self.run_id,
                project_id=project,
                options=config.runner(),
                # No done_keys: entries(state.done) passes over the done ones already,
                # so the runner need not digest every entry again to find none.
                doubts=self.state.doubts,
                note_sent=self.slots.sent,  # down into the journal: no detour up here
                stats=self.stats,
                witnesses=recent_successes(self.writer.reader, wanted=_leaves_a_log)
                if self.state.doubts
                else (),
            )
            if self.observer is not None:
                self.observer.started(self.stats, self.writer)
            async with anyio.create_task_group() as group:
                if progress is not False:
                    display = None if progress is True else progress
                    ticker = ProgressTicker(
                        self.stats, self.limiter, display=display, interval=config.progress_interval
                    )
                    group.start_soon(ticker.run)
                if self.observer is not None:
                    group.start_soon(_observe, self.observer, self.stats, self.limiter)
                await runner.run(entries(self.state.done))
                group.cancel_scope.cancel()
            # Every line is written: make sure the report's name still leads to them
            # before the in-flight record of what was sent is cleared.
            self.writer.check()
        return runner


def _keep_in_doubt(writer: ReportWriter, slots: IntentFile) -> str:
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


def _leaves_a_log(command: str, command_message: str | None) -> bool:
    return bool(trace_of(command, command_message).log_types)
