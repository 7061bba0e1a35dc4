"""The runner: N workers, one rate limiter, per-job ordering, halting and signals.

Shape (anyio structured concurrency)::

    manifest iterator ◀──pull── N workers ──▶ limiter ──▶ client ──▶ report line

* Memory is bounded by the concurrency: each worker reads the next entry only when it is
  free (one event-loop thread, so no lock and no hand-off per entry), and only a bounded
  number of entries are held back, queued behind a job that is busy.
* Several commands for one job run one at a time, in manifest order: a job's later entries
  wait in its chain and the worker that finishes one runs the next. When one fails, the
  rest are ``skipped`` with a reason that names it.
* One entry's attempts — retries, and the job's record read after a lost answer — are
  :mod:`.attempts`' business; every line is written and counted by :mod:`.recorder`.
* Halting (401/403, a TLS failure, failure thresholds, SIGINT/SIGTERM, a report that cannot
  be written) stops new attempts at once, lets requests in flight finish, and gives every
  entry not attempted a ``skipped`` line.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Awaitable, Callable, Container, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Protocol

import anyio
import anyio.lowlevel
import structlog

from batcher.entry import Entry, Outcome, job_digest, key_digest
from batcher.errors import ReportWriteError
from batcher.send._signals import watch_signals
from batcher.send.attempts import Attempts, run_entry
from batcher.send.client import Reply
from batcher.send.confirm import Confirmer, StoppableRecords
from batcher.send.limiter import RateLimiter
from batcher.send.reads import Pacer
from batcher.send.recorder import Recorder, WriteLine
from batcher.send.stats import RunOptions, RunStats, threshold_crossed, utc_stamp

log = structlog.get_logger("batcher.runner")

#: Called with (worker slot, entry, when) just before an entry's first request goes out.
NoteSent = Callable[[int, Entry, datetime], None]

__all__ = ["Executor", "RunOptions", "RunStats", "Runner", "WriteLine", "utc_stamp"]


class Executor(Protocol):
    async def execute(self, entry: Entry) -> Outcome: ...

    async def show_job(
        self, job_id: str, *, project_id: str | None = None, app_user_id: str | None = None
    ) -> Reply: ...


class Runner:
    """Runs entries through a client under a limiter, writing one report line per entry.

    ``done_keys`` holds the entries (:func:`~batcher.entry.key_digest`) an earlier run of the
    report finished; ``doubts`` maps entries an earlier run may have executed without
    hearing back to when that attempt was sent: their job's record is read first.

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
        doubts: Mapping[int, datetime] | None = None,
        note_sent: NoteSent | None = None,
        stats: RunStats | None = None,
        rng: random.Random | None = None,
        read_limiter: RateLimiter | None = None,
    ) -> None:
        self._client = client
        self._options = options
        self._done_keys = done_keys if done_keys else None
        self._note_sent = note_sent
        self.stats = stats or RunStats()
        self._recorder = Recorder(
            write,
            run_id=run_id,
            project_id=project_id,  # for entries whose manifest names none
            stats=self.stats,
            doubts=doubts,
            on_write_error=self._write_failed,
        )
        self.pacer = Pacer(
            limiter,
            options.retry,
            rng=rng,
            wait=self.wait,
            halted=lambda: self.halted,
            on_halt=self.halt,
            counts=self.stats,
            read_limiter=read_limiter,
        )
        # Jobs with a command running; the deque holds their later commands, in order.
        self._chains: dict[int, deque[Entry]] = {}
        # Failed jobs by key: (command, source) only, kept small since failures can be many.
        self._failed_jobs: dict[int, tuple[str, str]] = {}
        self._waiting = 0
        self._room: anyio.Event | None = None
        self._started = 0  # entries taken on (for --limit)
        # Scopes to cancel: waits stop on a halt, requests only on a hard stop.
        self._wait_scopes: set[anyio.CancelScope] = set()
        self._request_scopes: set[anyio.CancelScope] = set()
        self._hard_stopped = False
        self.confirmer = Confirmer(StoppableRecords(client, self._request_scopes), self.pacer)
        self._feed: Iterator[Entry | None] = iter(())

    # ------------------------------------------------------------------ public

    async def run(self, entries: Iterable[Entry | None]) -> RunStats:
        """Run ``entries`` (None stands for one already done, passed over unbuilt)."""
        self.stats.started = anyio.current_time()
        self._room = anyio.Event()
        self._feed = iter(entries)
        try:
            async with anyio.create_task_group() as outer:
                if self._options.handle_signals:
                    outer.start_soon(watch_signals, self, outer)
                async with anyio.create_task_group() as work:
                    for slot in range(self._options.concurrency):
                        work.start_soon(self._worker, slot)
                outer.cancel_scope.cancel()
        finally:  # a run stopped by a report that cannot be written ends here too
            self.stats.finished = anyio.current_time()
            self.stats.checks = self.confirmer.checks
        return self.stats

    @property
    def halted(self) -> bool:
        return self.stats.halted_reason is not None

    @property
    def hard_stopped(self) -> bool:
        return self._hard_stopped

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

    @property
    def settle_seconds(self) -> float:
        return self._options.settle

    @property
    def grace_period(self) -> float:
        return self._options.grace_period

    def halt_note(self) -> str:
        return f"run halted: {self.stats.halted_reason or 'the run was halted'}"

    # ------------------------------------------------------------------ feeding workers

    def _limit_reached(self) -> bool:
        limit = self._options.limit
        return limit is not None and self._started >= limit

    def _is_done(self, entry: Entry) -> bool:
        done = self._done_keys
        return done is not None and key_digest(entry.job_id, entry.command) in done

    async def _any_left(self) -> bool:
        """Whether the manifests hold an entry not yet done (what --limit leaves); the done
        ones passed on the way are counted."""
        for entry in self._feed:
            if entry is not None and not self._is_done(entry):
                return True
            self.stats.already_done += 1
            if self.stats.already_done % 4096 == 0:
                await anyio.lowlevel.checkpoint()  # a long tail of done entries: let others run
        return False

    async def _next_entry(self) -> tuple[Entry, int] | None:
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
            if self._limit_reached() and not self.halted:
                # Each worker that gets here reads on for one entry left: the last ones may
                # find none, which must not undo what an earlier one found.
                if await self._any_left():
                    self.stats.left_by_limit = True
                return None
            try:
                entry = next(self._feed)
            except StopIteration:
                return None
            if entry is None or self._is_done(entry):
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
            return entry, job

    # ------------------------------------------------------------------ workers

    async def _worker(self, slot: int) -> None:
        while (taken := await self._next_entry()) is not None:
            entry: Entry | None
            entry, job = taken
            while entry is not None:
                succeeded = await self._process(entry, slot)
                chain = self._chains[job]
                if not succeeded:
                    reason = self._halt_reason() if self.halted else self._failed(job, entry)
                    while chain:
                        self._skip(chain.popleft(), reason)
                        self._release_waiting()
                if chain and self._limit_reached() and not self.halted:
                    self.stats.left_by_limit = True  # the rest waits for --resume
                    self._waiting -= len(chain)
                    chain.clear()
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

    async def _process(self, entry: Entry, slot: int) -> bool:
        if self.halted:
            self._skip(entry, self._halt_reason())
            return False
        self._started += 1
        result = await run_entry(self, entry, slot, doubt_since=self._recorder.doubt_of(entry))
        if result.outcome is None and result.confirmed_by is None:
            # Halted before the first attempt, or an entry in doubt whose record cannot
            # be read now.
            self._skip(entry, result.skip_reason or self._halt_reason())
            return False
        return self._record(entry, result)

    # ------------------------------------------------------------------ services for attempts

    async def wait(self, waiter: Callable[[], Awaitable[object]]) -> bool:
        """Run a wait that a halt may cut short; True if it completed."""
        if self.halted:
            return False  # a wait begun after the halt has nothing to wait for
        with anyio.CancelScope() as scope:
            self._wait_scopes.add(scope)
            try:
                await waiter()
            finally:
                self._wait_scopes.discard(scope)
        return not scope.cancelled_caught

    async def send(self, entry: Entry, slot: int) -> Outcome:
        """One request for ``entry``'s command; a hard stop cuts it short."""
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
                ambiguous=True,
                reason="interrupted while the request was in flight: it may or may not have "
                "been executed",
            )
        return outcome

    def note_sent(self, entry: Entry, slot: int, sent_at: datetime) -> None:
        if self._note_sent is not None:
            self._note_sent(slot, entry, sent_at)

    # ------------------------------------------------------------------ recording

    def _record(self, entry: Entry, result: Attempts) -> bool:
        """Write the entry's line and count it; return whether it succeeded."""
        succeeded = self._recorder.record(entry, result)
        if not succeeded:
            self._check_thresholds()
        return succeeded

    def _skip(self, entry: Entry, reason: str) -> None:
        self._recorder.skip(entry, reason)

    def _write_failed(self, error: BaseException) -> None:
        # Nothing more can be recorded: stop everything, requests in flight included. The
        # events name the cause; what to do is said once, when the run ends.
        cause = error.cause if isinstance(error, ReportWriteError) else str(error)
        self.halt(f"the report cannot be written ({cause})")
        self.hard_stop()

    @property
    def doubts_lined(self) -> set[int]:
        """Entries in doubt that have a line in this run (decided, or skipped in doubt)."""
        return self._recorder.doubts_lined

    def _halt_reason(self) -> str:
        why = self.stats.halted_reason or "the run was halted"
        return f"not attempted: the run was halted ({why})"

    def _check_thresholds(self) -> None:
        crossed = threshold_crossed(self._options, self.stats)
        if crossed is not None:
            self.halt(crossed)


def _job_key(entry: Entry) -> int:
    return job_digest(entry.job_id, entry.project_id)
