"""The runner: N workers, one rate limiter, retries, per-job ordering, halting and signals.

Shape (anyio structured concurrency)::

    manifest iterator ◀──pull── N workers ──▶ limiter ──▶ client ──▶ report line

* Memory is bounded by the concurrency: each worker reads the next entry only when it is
  free (one event-loop thread, so no lock and no hand-off per entry), and only a bounded
  number of entries are held back, queued behind a job that is busy.
* Several commands for one job run one at a time, in manifest order: a job's later entries
  wait in its chain and the worker that finishes one runs the next. When one fails, the
  rest are ``skipped`` with a reason that names it.
* Halting (401/403, failure thresholds, SIGINT/SIGTERM) stops new attempts at once, lets
  requests in flight finish, and gives every entry not attempted a ``skipped`` line.
"""

from __future__ import annotations

import functools
import random
import signal
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Container, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import structlog

from ..entry import Entry
from ..keys import job_digest, key_digest
from ..outcome import Outcome
from ..report.line import line_from_outcome, skipped_line
from .limiter import RateLimiter
from .retry import RetryPolicy, next_delay

log = structlog.get_logger("batcher.runner")

#: Where report lines go (see :mod:`batcher.report.line`); the report writer's ``write``.
WriteLine = Callable[[dict[str, Any]], None]


class Executor(Protocol):
    async def execute(self, entry: Entry) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How a run behaves; the CLI builds this from flags."""

    concurrency: int = 16
    max_attempts: int = 5
    #: 429s do not use up ``max_attempts`` (they were not executed), up to this many in all.
    max_throttled_attempts: int = 50
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_failures: int | None = None
    max_failure_rate: float | None = None
    #: The failure rate is judged only after this many entries have finished.
    failure_rate_min_sample: int = 50
    grace_period: float = 10.0
    handle_signals: bool = True
    #: How many entries may wait behind busy jobs before the producer pauses.
    max_waiting: int = 1024

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            max_throttled_attempts=self.max_throttled_attempts,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
        )


@dataclass(slots=True)
class RunStats:
    """Counters the runner keeps; progress and the summary read them."""

    total: int | None = None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    already_done: int = 0
    attempts: int = 0
    throttled: int = 0
    in_flight: int = 0
    started: float = 0.0
    finished: float | None = None
    halted_reason: str | None = None
    interrupted: bool = False

    @property
    def finished_entries(self) -> int:
        return self.succeeded + self.failed + self.skipped

    @property
    def done(self) -> int:
        return self.finished_entries + self.already_done


def utc_stamp(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    # isoformat is C code and truncates to milliseconds, as ``microsecond // 1000`` did.
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class Runner:
    """Runs entries through a client under a limiter, writing one report line per entry.

    >>> runner = Runner(client=client, limiter=RateLimiter(rate=10), write=report.write,
    ...                 run_id="r1", options=RunOptions())          # doctest: +SKIP
    >>> stats = await runner.run(manifests.entries())               # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        client: Executor,
        limiter: RateLimiter,
        write: WriteLine,
        run_id: str,
        options: RunOptions,
        project_id: str | None = None,
        done_keys: Container[int] | None = None,
        stats: RunStats | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._limiter = limiter
        self._write = write
        self._run_id = run_id
        self._project_id = project_id  # for entries whose manifest names none
        self._options = options
        self._retry = options.retry
        self._done_keys = done_keys if done_keys else None
        self.stats = stats or RunStats()
        self._rng = rng or random.Random()
        # Jobs with a command running; the deque holds their later commands, in order.
        self._chains: dict[int, deque[Entry]] = {}
        # Failed jobs by key: (command, source) only, kept small since failures can be many.
        self._failed_jobs: dict[int, tuple[str, str]] = {}
        self._waiting = 0
        self._room: anyio.Event | None = None
        # Scopes to cancel: waits stop on a halt, requests only on a hard stop.
        self._wait_scopes: set[anyio.CancelScope] = set()
        self._request_scopes: set[anyio.CancelScope] = set()
        self._hard_stopped = False
        self._feed: Iterator[Entry] = iter(())

    # ------------------------------------------------------------------ public

    async def run(self, entries: Iterable[Entry]) -> RunStats:
        self.stats.started = anyio.current_time()
        self._room = anyio.Event()
        self._feed = iter(entries)
        async with anyio.create_task_group() as outer:
            if self._options.handle_signals:
                outer.start_soon(self._watch_signals, outer)
            async with anyio.create_task_group() as work:
                for _ in range(self._options.concurrency):
                    work.start_soon(self._worker)
            outer.cancel_scope.cancel()
        self.stats.finished = anyio.current_time()
        return self.stats

    @property
    def halted(self) -> bool:
        return self.stats.halted_reason is not None

    def halt(self, reason: str) -> None:
        """Stop new attempts; requests in flight finish; the rest are skipped with ``reason``."""
        if self.halted:
            return
        self.stats.halted_reason = reason
        log.warning("run_halted", reason=reason, in_flight=self.stats.in_flight)
        for scope in list(self._wait_scopes):
            scope.cancel()
        if self._room is not None:
            self._room.set()

    def hard_stop(self) -> None:
        """Cut requests in flight short (a second signal, or the grace period ran out)."""
        self._hard_stopped = True
        for scope in list(self._request_scopes) + list(self._wait_scopes):
            scope.cancel()

    # ------------------------------------------------------------------ feeding workers

    async def _next_entry(self) -> Entry | None:
        """The next entry a worker may start; None once the manifests are exhausted.

        Workers pull from the manifest iterator themselves (one event-loop thread, so no
        lock is needed): no stream and no task switch per entry. Entries of a busy job wait
        in its chain; while too many wait, the worker waits for room before reading on.
        """
        passed = 0
        while True:
            passed += 1
            if passed % 256 == 0:
                await anyio.lowlevel.checkpoint()  # a long run of skipped entries: let others in
            while self._waiting >= self._options.max_waiting and not self.halted:
                if self._room is None or self._room.is_set():
                    self._room = anyio.Event()
                await self._room.wait()
            entry = next(self._feed, None)
            if entry is None:
                return None
            if self._done_keys is not None and (
                key_digest(entry.job_id, entry.command) in self._done_keys
            ):
                self.stats.already_done += 1
                continue
            if self.halted:
                self._skip(entry, self._halt_reason())
                continue
            job = _job_key(entry)
            if job in self._failed_jobs:
                self._skip(entry, self._failed_reason(job))
                continue
            chain = self._chains.get(job)
            if chain is not None:
                chain.append(entry)
                self._waiting += 1
                continue
            self._chains[job] = deque()
            return entry

    # ------------------------------------------------------------------ workers

    async def _worker(self) -> None:
        while (first := await self._next_entry()) is not None:
            entry: Entry | None = first
            while entry is not None:
                job = _job_key(entry)
                succeeded = await self._process(entry)
                chain = self._chains[job]
                if not succeeded:
                    reason = self._halt_reason() if self.halted else self._failed(job, entry)
                    while chain:
                        self._skip(chain.popleft(), reason)
                        self._release_waiting()
                if chain:
                    entry = chain.popleft()
                    self._release_waiting()
                else:
                    del self._chains[job]
                    entry = None

    def _failed(self, job: int, entry: Entry) -> str:
        """Remember a job's failure, so its later commands (read now or later) are skipped."""
        self._failed_jobs[job] = (entry.command, entry.source)
        return self._failed_reason(job)

    def _failed_reason(self, job: int) -> str:
        command, source = self._failed_jobs[job]
        return f"not attempted: the job's earlier command {command} ({source}) did not succeed"

    def _release_waiting(self) -> None:
        self._waiting -= 1
        if self._waiting < self._options.max_waiting and self._room is not None:
            self._room.set()

    async def _process(self, entry: Entry) -> bool:
        if self.halted:
            self._skip(entry, self._halt_reason())
            return False
        started_wall = datetime.now(UTC)
        started = anyio.current_time()
        attempts = throttled = 0
        outcome: Outcome | None = None
        note = ""
        while True:
            if self.halted:
                note = f" (not retried: {self._halt_reason(prefix=False)})"
                break
            delay = self._limiter.reserve()
            if delay > 0 and not await self._wait(functools.partial(self._limiter.wait, delay)):
                continue  # halted while waiting for the limiter: handled at the loop top
            outcome = await self._attempt(entry)
            attempts += 1
            if outcome.http_status is not None:  # an answer: evidence for the limiter
                self._limiter.on_response(throttled=outcome.throttled)
            if outcome.throttled:
                throttled += 1
                self.stats.throttled += 1
            if outcome.auth_refused:
                self.halt(f"authentication refused by the API: {outcome.reason}")
                break
            if outcome.succeeded or not outcome.retryable or self._hard_stopped:
                break
            backoff = next_delay(
                self._retry, outcome, attempts=attempts, throttled=throttled, draw=self._rng.uniform
            )
            if backoff is None:
                note = f" (gave up after {attempts} attempts)"
                break
            log.debug(
                "retrying",
                job_id=entry.job_id,
                command=entry.command,
                attempt=attempts,
                delay=round(backoff, 3),
                reason=outcome.reason,
            )
            await self._wait(functools.partial(anyio.sleep, backoff))

        if outcome is None:  # halted before the first attempt went out
            self._skip(entry, self._halt_reason())
            return False
        self._record(entry, outcome, attempts, started_wall, started, note)
        return outcome.succeeded

    async def _wait(self, waiter: Callable[[], Awaitable[object]]) -> bool:
        """Run a wait that a halt may cut short; True if it completed."""
        with anyio.CancelScope() as scope:
            self._wait_scopes.add(scope)
            try:
                await waiter()
            finally:
                self._wait_scopes.discard(scope)
        return not scope.cancelled_caught

    async def _attempt(self, entry: Entry) -> Outcome:
        self.stats.attempts += 1
        self.stats.in_flight += 1
        outcome: Outcome | None = None
        try:
            with anyio.CancelScope() as scope:
                self._request_scopes.add(scope)
                try:
                    outcome = await self._client.execute(entry)
                finally:
                    self._request_scopes.discard(scope)
        finally:
            self.stats.in_flight -= 1
        if outcome is None:
            return Outcome(
                succeeded=False,
                retryable=True,
                reason="interrupted while the request was in flight: it may or may not have "
                "been executed",
            )
        return outcome

    # ------------------------------------------------------------------ recording

    def _record(
        self,
        entry: Entry,
        outcome: Outcome,
        attempts: int,
        started_wall: datetime,
        started: float,
        note: str,
    ) -> None:
        self._write(
            line_from_outcome(
                entry,
                outcome,
                run_id=self._run_id,
                attempts=attempts,
                started_at=utc_stamp(started_wall),
                finished_at=utc_stamp(),
                duration_ms=round((anyio.current_time() - started) * 1000, 3),
                project_id=self._project_id,
                note=note,
            )
        )
        if outcome.succeeded:
            self.stats.succeeded += 1
        else:
            self.stats.failed += 1
            log.info(
                "entry_failed",
                job_id=entry.job_id,
                command=entry.command,
                source=entry.source,
                reason=(outcome.reason or "failed") + note,
                attempts=attempts,
            )
            self._check_thresholds()

    def _skip(self, entry: Entry, reason: str) -> None:
        self._write(
            skipped_line(
                entry, reason, run_id=self._run_id, at=utc_stamp(), project_id=self._project_id
            )
        )
        self.stats.skipped += 1

    def _halt_reason(self, *, prefix: bool = True) -> str:
        why = self.stats.halted_reason or "the run was halted"
        return f"not attempted: the run was halted ({why})" if prefix else f"run halted: {why}"

    def _check_thresholds(self) -> None:
        opts, stats = self._options, self.stats
        if opts.max_failures is not None and stats.failed >= opts.max_failures:
            self.halt(f"{stats.failed} entries failed, reaching --max-failures {opts.max_failures}")
            return
        finished = stats.succeeded + stats.failed
        if (
            opts.max_failure_rate is not None
            and finished >= opts.failure_rate_min_sample
            and stats.failed / finished > opts.max_failure_rate
        ):
            self.halt(
                f"failure rate {stats.failed / finished:.1%} over {finished} entries is above "
                f"--max-failure-rate {opts.max_failure_rate:g}"
            )

    # ------------------------------------------------------------------ signals

    async def _watch_signals(self, group: anyio.abc.TaskGroup) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if self.stats.interrupted:
                    log.warning("second_signal", signal=name, action="cutting requests short")
                    self.hard_stop()
                    continue
                self.stats.interrupted = True
                self.halt(f"interrupted by {name}")
                group.start_soon(self._grace_timer)

    async def _grace_timer(self) -> None:
        await anyio.sleep(self._options.grace_period)
        if self.stats.in_flight:
            log.warning("grace_period_over", in_flight=self.stats.in_flight)
        self.hard_stop()


def _job_key(entry: Entry) -> int:
    return job_digest(entry.job_id, entry.project_id)
