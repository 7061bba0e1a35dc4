"""One entry's life: attempts under the limiter, retries, and the truth after an answer that
does not prove a refusal.

A success or a refusal settles an entry; a 429 or 408 is retried. Any other answer
(``Outcome.ambiguous``) may follow the command's execution, so before a state-changing
command is sent again the job's record is read (:class:`~batcher.send.confirm.Confirmer`):
took effect → ``succeeded`` with ``confirmed_by``; surely did not → sent again; cannot tell
→ not sent again (some commands are accepted twice): ``failed``, ``ambiguous``, not
``retryable``. A later refusal is checked against the record once more, the first attempt
having perhaps run late. Read-only commands (``GET_*``) are simply retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import anyio
import structlog

from batcher.entry import Entry, Outcome
from batcher.send.client import Reply
from batcher.send.confirm import Confirmer, RecordSource
from batcher.send.limiter import RateLimiter
from batcher.send.reads import Pacer
from batcher.send.record import Finding, Verdict
from batcher.send.stats import RunOptions, RunStats
from batcher.send.vocabulary import Trace, trace_of

log = structlog.get_logger("batcher.runner")

#: Durations are measured on the monotonic clock (the event loop's own is dearer to read
#: through anyio, and they agree).
_clock = time.monotonic

#: Called with (worker slot, entry, when) just before an entry's first request goes out.
NoteSent = Callable[[int, Entry, datetime], None]

LOST_NOTE = " (an attempt's answer was lost: it may have executed)"


def _doubt_note(outcome: Outcome) -> str:
    status = outcome.http_status
    if status is None:
        return LOST_NOTE
    if status >= 500:
        return (
            f" (an attempt was answered HTTP {status}, a server error, which can come after "
            "the command ran: it may have executed)"
        )
    return (
        f" (an attempt's answer, HTTP {status}, does not say it was refused: it may have executed)"
    )


NO_TRACE = "the command leaves no trace in the job's record to tell whether it ran"
#: How long an entry in doubt before the record's clock was measured waits for a command
#: in flight elsewhere to succeed and measure it.
WITNESS_WAIT_S = 10.0

_T = TypeVar("_T")


class Executor(RecordSource, Protocol):
    async def execute(self, entry: Entry) -> Outcome: ...


class Sender:
    """What attempts go through: the client, the pacer, the job's record, and the run's halt
    (waits end on a halt; requests and record reads only on a hard stop). The runner owns
    one and passes it down; nothing here calls back up."""

    def __init__(
        self,
        client: Executor,
        limiter: RateLimiter,
        options: RunOptions,
        stats: RunStats,
        *,
        note_sent: NoteSent | None = None,
        rng: random.Random | None = None,
        read_limiter: RateLimiter | None = None,
    ) -> None:
        self._client = client
        self.stats = stats
        self.settle_seconds = options.settle
        self._note_sent = note_sent
        self._wait_scopes: set[anyio.CancelScope] = set()
        self._request_scopes: set[anyio.CancelScope] = set()
        self.hard_stopped = False
        self.pacer = Pacer(
            limiter,
            options.retry,
            rng=rng,
            wait=self.wait,
            halted=lambda: self.halted,
            on_halt=self.halt,
            counts=stats,
            read_limiter=read_limiter,
        )
        self.confirmer = Confirmer(self, self.pacer)

    @property
    def halted(self) -> bool:
        return self.stats.halted_reason is not None

    @property
    def others_in_flight(self) -> bool:
        """Whether commands are on their way (one may succeed soon)."""
        return self.stats.in_flight > 0

    def halt(self, reason: str) -> None:
        """Stop new attempts; requests in flight finish."""
        if self.halted:
            return
        self.stats.halted_reason = reason
        log.warning("run_halted", reason=reason, in_flight=self.stats.in_flight)
        for scope in list(self._wait_scopes):
            scope.cancel()

    def hard_stop(self) -> None:
        """Cut requests in flight short (a second signal, or the grace period ran out)."""
        self.hard_stopped = True
        for scope in list(self._request_scopes) + list(self._wait_scopes):
            scope.cancel()

    def halt_note(self) -> str:
        return f"run halted: {self.stats.halted_reason or 'the run was halted'}"

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

    async def send(self, entry: Entry) -> Outcome:
        """One request for ``entry``'s command; a hard stop cuts it short."""
        self.stats.attempts += 1
        self.stats.in_flight += 1
        try:
            outcome = await self._until_hard_stop(lambda: self._client.execute(entry))
        finally:
            self.stats.in_flight -= 1
        if outcome is not None:
            return outcome
        return Outcome(
            succeeded=False,
            retryable=True,
            ambiguous=True,
            reason="interrupted while the request was in flight: it may or may not have "
            "been executed",
        )

    async def show_job(
        self, job_id: str, *, project_id: str | None = None, app_user_id: str | None = None
    ) -> Reply:
        """The job's record, read as a command is sent: a hard stop cuts it short."""
        reply = await self._until_hard_stop(
            lambda: self._client.show_job(job_id, project_id=project_id, app_user_id=app_user_id)
        )
        if reply is not None:
            return reply
        return Reply(Outcome(succeeded=False, reason="interrupted by a hard stop"))

    async def _until_hard_stop(self, call: Callable[[], Awaitable[_T]]) -> _T | None:
        with anyio.CancelScope() as scope:
            self._request_scopes.add(scope)
            try:
                return await call()
            finally:
                self._request_scopes.discard(scope)
        return None

    def note_sent(self, entry: Entry, slot: int, sent_at: datetime) -> None:
        if self._note_sent is not None:
            self._note_sent(slot, entry, sent_at)


@dataclass(slots=True)
class Attempts:
    """What one entry's attempts came to: the last answer and everything the line says."""

    outcome: Outcome | None = None
    count: int = 0
    throttled: int = 0
    #: When the first attempt went out (after the limiter), and the wait before it.
    first_sent: datetime | None = None
    wait_s: float | None = None
    #: Time spent in requests: the API's time, not the limiter's or the backoff's.
    api_s: float = 0.0
    #: When the first attempt that may have executed unheard went out (None: none did).
    doubt_since: datetime | None = None
    #: How the line says so, from the first such answer.
    doubt_note: str = LOST_NOTE
    #: The last word of the job's record, if it was read.
    finding: Finding | None = None
    note: str = ""
    #: Why nothing was sent at all (the line is ``skipped``), when it was not a halt.
    skip_reason: str | None = None
    #: Nothing was sent because the record could not be judged before this run measured
    #: its clock: worth another look once commands have been seen to succeed.
    defer: bool = False

    @property
    def confirmed_by(self) -> str | None:
        finding = self.finding
        if finding is not None and finding.verdict is Verdict.TOOK_EFFECT:
            return finding.evidence
        return None

    @property
    def succeeded(self) -> bool:
        return self.confirmed_by is not None or (
            self.outcome is not None and self.outcome.succeeded
        )

    @property
    def cleared(self) -> bool:
        """Whether the record says the command did not take effect."""
        return self.finding is not None and self.finding.verdict is Verdict.DID_NOT

    @property
    def ambiguous(self) -> bool:
        """A failure whose attempt may have executed, as far as anyone can tell."""
        return not self.succeeded and self.doubt_since is not None and not self.cleared


async def run_entry(
    sender: Sender, entry: Entry, slot: int, *, doubt_since: datetime | None = None
) -> Attempts:
    """Attempt ``entry`` until it is settled; ``doubt_since`` is set when an earlier run
    may already have executed it (``--resume`` after such an answer or a crash)."""
    trace = trace_of(entry.command, entry.command_message)
    result = Attempts(doubt_since=None if trace.read_only else doubt_since)
    if result.doubt_since is not None:
        result.finding = await _look(sender, entry, result, trace)
        if result.succeeded:
            return result
        if not result.cleared:
            return _stopped_in_doubt(sender, result, "not sent")
    checked_last = await _attempt(sender, entry, slot, result, trace)
    if (
        not result.succeeded
        and result.doubt_since is not None
        and trace.readable
        and not checked_last
        and not sender.hard_stopped
    ):
        # The record decides: a refusal of a later attempt may mean the doubtful one ran.
        result.finding = await _look(sender, entry, result, trace)
    if result.ambiguous:
        result.note += result.doubt_note
    return result


async def _attempt(sender: Sender, entry: Entry, slot: int, result: Attempts, trace: Trace) -> bool:
    """Send until settled; return whether the record was read after the last attempt."""
    pacer = sender.pacer
    while True:
        if sender.halted:
            if result.count:
                result.note = f" (not retried: {sender.halt_note()})"
            return False
        waited_from = _clock() if result.count == 0 else 0.0
        if not await pacer.slot():
            continue  # halted while waiting for the limiter: handled at the loop top
        # One reading ends the wait and starts the request's time (a run takes several
        # per attempt; each is CPU on the hot path).
        began = _clock()
        sent_at = datetime.now(UTC)
        if result.count == 0:
            result.wait_s = began - waited_from
            result.first_sent = sent_at
            if not trace.read_only:
                # An attempt already in doubt keeps its earlier time: a crash now must not
                # make the next check look only after this attempt.
                sender.note_sent(entry, slot, min(result.doubt_since or sent_at, sent_at))
        outcome = await sender.send(entry)
        result.api_s += _clock() - began
        result.outcome = outcome
        result.count += 1
        pacer.note(outcome)
        result.throttled += outcome.throttled
        if outcome.succeeded:
            sender.confirmer.witness(entry, sent_at)
            return False  # the usual case: nothing more to decide
        why = pacer.halts(outcome)
        if why is not None:
            sender.halt(why)
            return False
        if outcome.ambiguous and not trace.read_only:
            settled = await _after_doubt(sender, entry, result, trace, sent_at)
            if settled is not None:
                return settled
        elif not (outcome.retryable or outcome.ambiguous):
            return False  # a refusal (after a doubt, the record gets the last word)
        if sender.hard_stopped:
            return False
        if not await pacer.backoff(outcome, attempts=result.count, throttled=result.throttled):
            if not sender.halted:
                result.note = f" (gave up after {result.count} attempts)"
            return False


async def _after_doubt(
    sender: Sender, entry: Entry, result: Attempts, trace: Trace, sent_at: datetime
) -> bool | None:
    """After an answer that may follow execution: None to send again (the record says it
    did not run); else stop, returning whether the record was read after this attempt."""
    assert result.outcome is not None
    if result.doubt_since is None:
        result.doubt_since = sent_at
        result.doubt_note = _doubt_note(result.outcome)
    if sender.hard_stopped:
        result.finding = None  # this attempt may have executed since the last look
        return False
    result.finding = await _look(sender, entry, result, trace)
    if _clocks_in_the_way(sender, result) and await _witnessed(sender):
        result.finding = await _look(sender, entry, result, trace)
    if result.succeeded:
        return True
    if result.cleared:
        return None
    # Sending again on a guess could run the command twice: stop here, in doubt; --resume
    # reads the record again.
    _stopped_in_doubt(sender, result, "not sent again")
    return True


def _stopped_in_doubt(sender: Sender, result: Attempts, what: str) -> Attempts:
    """Stop without sending: say why. An entry in doubt from an earlier run is deferred when
    only the clocks were in the way (a command seen to succeed later in the run can measure
    them); its doubt is on record meanwhile, in the report or the in-flight file."""
    detail = NO_TRACE if result.finding is None else result.finding.detail
    if result.count:
        result.note = f" ({what}: {detail})"
    else:
        result.skip_reason = f"{what}: {detail}"
        result.defer = _clocks_in_the_way(sender, result)
    return result


def _clocks_in_the_way(sender: Sender, result: Attempts) -> bool:
    finding = result.finding
    unknown = finding is not None and finding.verdict is Verdict.UNKNOWN
    return unknown and sender.confirmer.unmeasured


async def _witnessed(sender: Sender) -> bool:
    """Wait, a while, for a command in flight elsewhere to succeed; whether one did. (This
    attempt's doubt is only in this worker's in-flight slot: it cannot wait elsewhere.)"""
    if not sender.others_in_flight:
        return False

    async def next_witness() -> None:
        with anyio.move_on_after(WITNESS_WAIT_S):
            # Not past the last command in flight: once none is, none can succeed.
            while sender.others_in_flight and not sender.confirmer.can_measure:
                with anyio.move_on_after(0.1):
                    await sender.confirmer.witnessed()

    return await sender.wait(next_witness) and sender.confirmer.can_measure


async def _look(sender: Sender, entry: Entry, result: Attempts, trace: Trace) -> Finding | None:
    """Read the record from the first doubtful attempt. A "did not" is trusted only once the
    latest attempt has had as long again as its timeout to arrive, run and be logged: then
    the record is read once more. Assumption (the reference does not say the log is written
    with the command): an entry may show a while after the effect, so the first look's
    silence proves nothing. None: the record cannot be read for this command, or that wait
    was cut short."""
    since = result.doubt_since
    if not trace.readable or since is None:
        return None
    finding = await sender.confirmer.check(entry, since=since)
    # This run's latest attempt has just been answered; an earlier run's, at ``since``.
    settle = sender.settle_seconds
    if result.outcome is None:
        settle -= (datetime.now(UTC) - since).total_seconds()
    if finding.verdict is not Verdict.DID_NOT or settle <= 0:
        return finding
    if not await sender.wait(lambda: anyio.sleep(settle)) or sender.hard_stopped:
        return Finding(
            Verdict.UNKNOWN, "the wait for the attempt to show in the record was cut short"
        )
    return await sender.confirmer.check(entry, since=since)
