"""The runner: N workers, one rate limiter, per-job ordering, halting and signals.

* Each worker reads the next entry only when it is free (one event-loop thread: no lock, no
  hand-off), and only a bounded number wait behind a busy job: memory follows concurrency.
* A job's commands run one at a time, in manifest order; when one fails, the rest are
  ``skipped`` with a reason that names it.
* An entry's attempts are :mod:`.attempts`' business, its line :mod:`.recorder`'s. An entry
  an earlier run left in doubt that cannot be judged before this run has measured the
  record's clock is taken again at the end.
* A halt (401/403, TLS, thresholds, signals, a report that cannot be written) stops new
  attempts, lets requests in flight finish, and gives every entry left a ``skipped`` line.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Container, Iterable, Iterator, Mapping
from datetime import datetime

import anyio
import anyio.lowlevel

from batcher.entry import Entry, job_digest, key_digest
from batcher.errors import ReportWriteError
from batcher.send.attempts import Executor, NoteSent, Sender, run_entry
from batcher.send.limiter import RateLimiter
from batcher.send.recorder import Recorder, WriteLine
from batcher.send.signals import watch_signals
from batcher.send.stats import RunOptions, RunStats, threshold_crossed

__all__ = ["RunOptions", "RunStats", "Runner"]


class Runner:
    """Runs entries through a client under a limiter, writing one report line per entry.

    ``done_keys`` holds the entries (:func:`~batcher.entry.key_digest`) an earlier run of the
    report finished; ``doubts`` maps entries an earlier run may have executed without
    hearing back to when that attempt was sent: their job's record is read first.
    ``witnesses`` are commands an earlier run saw succeed, and when they were sent: their
    records measure the record's clock before this run has any of its own.
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
        witnesses: Iterable[tuple[Entry, datetime]] = (),
        read_limiter: RateLimiter | None = None,
    ) -> None:
        self._options = options
        self._done_keys = done_keys if done_keys else None
        self.stats = stats or RunStats()
        self._sender = Sender(
            client, limiter, options, self.stats,
            note_sent=note_sent, rng=rng, read_limiter=read_limiter,
        )  # fmt: skip
        self.confirmer = self._sender.confirmer
        self._recorder = Recorder(
            write,
            run_id=run_id,
            project_id=project_id,  # for entries whose manifest names none
            stats=self.stats,
            doubts=doubts,
            on_write_error=self._write_failed,
        )
        # Jobs with a command running; the deque holds their later commands, in order.
        self._chains: dict[int, deque[Entry]] = {}
        # Failed jobs by key: (command, source) only, kept small since failures can be many.
        self._failed_jobs: dict[int, tuple[str, str]] = {}
        self._waiting = 0
        self._room: anyio.Event | None = None
        self._started = 0  # entries taken on (for --limit)
        for entry, sent_at in witnesses:
            self.confirmer.witness(entry, sent_at)
        self._feed: Iterator[Entry | None] = iter(())
        # Entries in doubt whose record could not be judged before this run measured the
        # record's clock: they are taken again once the manifests are exhausted.
        self._deferred: deque[tuple[Entry, int]] = deque()

    # ------------------------------------------------------------------ public

    async def run(self, entries: Iterable[Entry | None]) -> RunStats:
        """Run ``entries`` (None stands for one already done, passed over unbuilt)."""
        self.stats.started = anyio.current_time()
        self._room = anyio.Event()
        self._feed = iter(entries)
        try:
            async with anyio.create_task_group() as outer:
                if self._options.handle_signals:
                    # before any is sent
                    await outer.start(
                        watch_signals, self._sender, self._options.grace_period, outer
                    )
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
        return self._sender.halted

    def halt(self, reason: str) -> None:
        """Stop new attempts; requests in flight finish; the rest are skipped with ``reason``."""
        self._sender.halt(reason)

    def hard_stop(self) -> None:
        self._sender.hard_stop()

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

    async def _next_entry(self) -> tuple[Entry, int, bool] | None:
        """The next entry a worker may start (the worker reads the manifests itself); None
        once they are exhausted. While too many wait behind busy jobs, it waits for room."""
        passed = 0
        while True:
            passed += 1
            if passed % 256 == 0:
                await anyio.lowlevel.checkpoint()  # a long run of skipped entries: let others in
            while self._waiting >= self._options.max_waiting and not self.halted:
                if self._room is None or self._room.is_set():
                    self._room = anyio.Event()
                await self._sender.wait(self._room.wait)  # a halt ends the wait
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
                self._recorder.skip(entry, self._halt_reason())
                continue
            job = _job_key(entry)
            if job in self._failed_jobs:
                self._recorder.skip(entry, self._failed_reason(job))
                continue
            chain = self._chains.get(job)
            if chain is not None:
                chain.append(entry)
                self._waiting += 1
                continue
            self._chains[job] = deque()
            return entry, job, False

    # ------------------------------------------------------------------ workers

    async def _worker(self, slot: int) -> None:
        while (taken := await self._next_entry() or self._take_deferred()) is not None:
            entry: Entry | None
            entry, job, retaken = taken
            while entry is not None:
                succeeded = await self._process(entry, slot, job, retaken=retaken)
                retaken = False
                if succeeded is None:  # deferred: the job's chain waits with it
                    break
                chain = self._chains[job]
                if not succeeded:
                    reason = self._halt_reason() if self.halted else self._failed(job, entry)
                    while chain:
                        self._recorder.skip(chain.popleft(), reason)
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

    def _take_deferred(self) -> tuple[Entry, int, bool] | None:
        return (*self._deferred.popleft(), True) if self._deferred else None

    async def _process(self, entry: Entry, slot: int, job: int, *, retaken: bool) -> bool | None:
        """Run the entry and write its line: whether it succeeded, or None when it waits
        for the end of the run (see :attr:`Attempts.defer`)."""
        if self.halted:
            self._recorder.skip(entry, self._halt_reason())
            return False
        self._started += not retaken
        doubt_since = self._recorder.doubt_of(entry)
        result = await run_entry(self._sender, entry, slot, doubt_since=doubt_since)
        if result.defer and not retaken and not self.halted:
            self._deferred.append((entry, job))
            # No line yet: should the run end before its turn comes, its doubt is kept.
            self.doubts_lined.discard(key_digest(entry.job_id, entry.command))
            return None
        if result.outcome is None and result.confirmed_by is None:
            # Halted before the first attempt, or an entry in doubt whose record cannot
            # be read now.
            self._recorder.skip(entry, result.skip_reason or self._halt_reason())
            return False
        if self._recorder.record(entry, result):
            return True
        crossed = threshold_crossed(self._options, self.stats)
        if crossed is not None:
            self.halt(crossed)
        return False

    def _write_failed(self, error: BaseException) -> None:
        # Nothing more can be recorded: stop everything, requests in flight included. The
        # events name the cause; what to do is said once, when the run ends.
        cause = error.cause if isinstance(error, ReportWriteError) else str(error)
        self._sender.halt(f"the report cannot be written ({cause})")
        self._sender.hard_stop()

    @property
    def doubts_lined(self) -> set[int]:
        """Entries in doubt that have a line in this run (decided, or skipped in doubt)."""
        return self._recorder.doubts_lined

    def _halt_reason(self) -> str:
        why = self.stats.halted_reason or "the run was halted"
        return f"not attempted: the run was halted ({why})"


def _job_key(entry: Entry) -> int:
    return job_digest(entry.job_id, entry.project_id)
