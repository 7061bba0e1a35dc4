"""One entry's life: attempts under the limiter, retries, and the truth after an answer that
does not prove a refusal.

Per attempt: wait for the limiter's slot, send, give the answer to the limiter as evidence,
then decide. A success settles it, and so does a refusal (``EXCUTE_FAILED``, a 4xx); a 429
or 408 is retried by the retry rule. Any other answer (``Outcome.ambiguous``: lost, timed
out, a 5xx, a body the API does not send) may follow the command's execution, so before a
state-changing command is sent again the job's record is read
(:class:`~batcher.send.confirm.Confirmer`):

* it took effect → ``succeeded``, ``confirmed_by`` the evidence, and the job's later
  commands run;
* it surely did not → send it again;
* the record cannot tell, or the command leaves no trace in it → not sent again (that could
  run it twice: some commands are accepted again): ``failed`` with ``ambiguous: true``, not
  ``retryable``, and a reason that says it may have executed; ``--resume`` reads the record
  again.

A refusal after such an answer is checked against the record once more (the first attempt
may have executed after all, just late): only a refusal the record does not contradict
ends a plain ``failed``. Read-only commands (``GET_*``) are simply retried.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import anyio

from batcher.entry import Entry, Outcome
from batcher.send.confirm import Confirmer
from batcher.send.reads import Pacer
from batcher.send.record import Finding, Verdict
from batcher.send.vocabulary import Trace, trace_of

#: Durations are measured on the monotonic clock (the event loop's own is ~10x dearer to
#: read through anyio, and they agree).
_clock = time.monotonic

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


class Services(Protocol):
    """What an entry's attempts need from the runner."""

    pacer: Pacer
    confirmer: Confirmer

    @property
    def halted(self) -> bool: ...

    @property
    def hard_stopped(self) -> bool: ...

    def halt(self, reason: str) -> None: ...

    def halt_note(self) -> str: ...

    async def send(self, entry: Entry, slot: int) -> Outcome: ...

    def note_sent(self, entry: Entry, slot: int, sent_at: datetime) -> None: ...

    async def wait(self, waiter: Callable[[], Awaitable[object]]) -> bool: ...

    @property
    def settle_seconds(self) -> float:
        """How long a request whose answer was lost may still take to arrive and run."""
        ...

    @property
    def others_in_flight(self) -> bool:
        """Whether other entries' commands are on their way (one may succeed soon)."""
        ...


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
    def ambiguous(self) -> bool:
        """A failure whose attempt may have executed, as far as anyone can tell."""
        if self.succeeded or self.doubt_since is None:
            return False
        return self.finding is None or self.finding.verdict is not Verdict.DID_NOT


async def run_entry(
    services: Services, entry: Entry, slot: int, *, doubt_since: datetime | None = None
) -> Attempts:
    """Attempt ``entry`` until it is settled; ``doubt_since`` is set when an earlier run
    may already have executed it (``--resume`` after such an answer or a crash)."""
    trace = trace_of(entry.command, entry.command_message)
    result = Attempts(doubt_since=None if trace.read_only else doubt_since)
    if result.doubt_since is not None:
        result.finding = await _look(services, entry, result, trace)
        if result.succeeded:
            return result
        if result.finding is None or result.finding.verdict is not Verdict.DID_NOT:
            return _stopped_in_doubt(services, result, "not sent")
    checked_last = await _attempt(services, entry, slot, result, trace)
    if (
        not result.succeeded
        and result.doubt_since is not None
        and trace.readable
        and not checked_last
        and not services.hard_stopped
    ):
        # The record decides: a refusal of a later attempt may mean the doubtful one ran.
        result.finding = await _look(services, entry, result, trace)
    if result.ambiguous:
        result.note += result.doubt_note
    return result


async def _attempt(
    services: Services, entry: Entry, slot: int, result: Attempts, trace: Trace
) -> bool:
    """Send until settled; return whether the record was read after the last attempt."""
    pacer = services.pacer
    while True:
        if services.halted:
            if result.count:
                result.note = f" (not retried: {services.halt_note()})"
            return False
        waited_from = _clock()
        if not await pacer.slot():
            continue  # halted while waiting for the limiter: handled at the loop top
        sent_at = datetime.now(UTC)
        if result.count == 0:
            result.wait_s = _clock() - waited_from
            result.first_sent = sent_at
            if not trace.read_only:
                # An attempt already in doubt keeps its earlier time: a crash now must not
                # make the next check look only after this attempt.
                services.note_sent(entry, slot, min(result.doubt_since or sent_at, sent_at))
        began = _clock()
        outcome = await services.send(entry, slot)
        result.api_s += _clock() - began
        result.outcome = outcome
        result.count += 1
        pacer.note(outcome)
        result.throttled += outcome.throttled
        if outcome.succeeded:
            services.confirmer.witness(entry, sent_at)
            return False  # the usual case: nothing more to decide
        why = pacer.halts(outcome)
        if why is not None:
            services.halt(why)
            return False
        if outcome.ambiguous and not trace.read_only:
            if result.doubt_since is None:
                result.doubt_since = sent_at
                result.doubt_note = _doubt_note(outcome)
            if services.hard_stopped:
                result.finding = None  # this attempt may have executed since the last look
                return False
            result.finding = await _look(services, entry, result, trace)
            if _clocks_in_the_way(services, result) and await _witnessed(services):
                result.finding = await _look(services, entry, result, trace)
            if result.succeeded:
                return True
            if result.finding is None or result.finding.verdict is not Verdict.DID_NOT:
                # Sending again on a guess could run the command twice: stop here, in
                # doubt; --resume reads the record again.
                _stopped_in_doubt(services, result, "not sent again")
                return True
        elif not (outcome.retryable or outcome.ambiguous):
            return False  # a refusal (after a doubt, the record gets the last word)
        if services.hard_stopped:
            return False
        if not await pacer.backoff(outcome, attempts=result.count, throttled=result.throttled):
            if not services.halted:
                result.note = f" (gave up after {result.count} attempts)"
            return False


def _stopped_in_doubt(services: Services, result: Attempts, what: str) -> Attempts:
    """Stop without sending: say why. An entry in doubt from an earlier run is deferred when
    only the clocks were in the way (a command seen to succeed later in the run can measure
    them); its doubt is on record meanwhile, in the report or the in-flight file."""
    detail = NO_TRACE if result.finding is None else result.finding.detail
    if result.count:
        result.note = f" ({what}: {detail})"
    else:
        result.skip_reason = f"{what}: {detail}"
        result.defer = _clocks_in_the_way(services, result)
    return result


def _clocks_in_the_way(services: Services, result: Attempts) -> bool:
    finding = result.finding
    unknown = finding is not None and finding.verdict is Verdict.UNKNOWN
    return unknown and services.confirmer.unmeasured


async def _witnessed(services: Services) -> bool:
    """Wait, a while, for a command in flight elsewhere to succeed; whether one did. (This
    attempt's doubt is only in this worker's in-flight slot: it cannot wait elsewhere.)"""
    if not services.others_in_flight:
        return False

    async def next_witness() -> None:
        with anyio.move_on_after(WITNESS_WAIT_S):
            # Not past the last command in flight: once none is, none can succeed.
            while services.others_in_flight and not services.confirmer.can_measure:
                with anyio.move_on_after(0.1):
                    await services.confirmer.witnessed()

    return await services.wait(next_witness) and services.confirmer.can_measure


async def _look(services: Services, entry: Entry, result: Attempts, trace: Trace) -> Finding | None:
    """Read the record from the first doubtful attempt. A "did not" is trusted only once the
    latest attempt has had as long again as its timeout to arrive, run and be logged: then
    the record is read once more. Assumption (the reference does not say the log is written
    with the command): an entry may show a while after the effect, so the first look's
    silence proves nothing. None: the record cannot be read for this command, or that wait
    was cut short."""
    since = result.doubt_since
    if not trace.readable or since is None:
        return None
    finding = await services.confirmer.check(entry, since=since)
    # This run's latest attempt has just been answered; an earlier run's, at ``since``.
    settle = services.settle_seconds
    if result.outcome is None:
        settle -= (datetime.now(UTC) - since).total_seconds()
    if finding.verdict is not Verdict.DID_NOT or settle <= 0:
        return finding
    if not await services.wait(lambda: anyio.sleep(settle)) or services.hard_stopped:
        return Finding(
            Verdict.UNKNOWN, "the wait for the attempt to show in the record was cut short"
        )
    return await services.confirmer.check(entry, since=since)
