"""One entry's life: attempts under the limiter, retries, and the truth after a lost answer.

Per attempt: wait for the limiter's slot, send, give the answer to the limiter as evidence,
then decide. An answer settles it (success, or a refusal); an answer worth another try is
retried by the retry rule; an attempt whose answer was lost (``Outcome.ambiguous``) may
have executed, so before a state-changing command is sent again the job's record is read
(:class:`~batcher.send.confirm.Confirmer`):

* it took effect → ``succeeded``, ``confirmed_by`` the evidence, and the job's later
  commands run;
* it surely did not → send it again;
* the record cannot tell → send it again, and if that is refused, ``failed`` with
  ``ambiguous: true`` and a reason that says the first attempt may have executed.

A refusal after a lost answer is checked against the record once more (the first attempt
may have executed after all, just late): only a refusal the record does not contradict
ends ``failed``. Read-only commands (``GET_*``) are simply retried.
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
from batcher.send.vocabulary import trace_of

#: Durations are measured on the monotonic clock (the event loop's own is ~10x dearer to
#: read through anyio, and they agree).
_clock = time.monotonic

LOST_NOTE = " (an earlier attempt's answer was lost: it may have executed)"
ERRED_NOTE = (
    " (an earlier attempt answered with a server error, which can come after the command "
    "ran: it may have executed)"
)


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
    #: When the first attempt whose answer was lost went out (None: no answer was lost).
    doubt_since: datetime | None = None
    #: When the first attempt answered by a server error (5xx) went out: the service may
    #: have run the command before failing, so a later refusal is checked in the record.
    erred_since: datetime | None = None
    #: Whether a retry after such a server error was refused: the erring attempt may be
    #: what the service refuses it for.
    refused_after_error: bool = False
    #: The last word of the job's record, if it was read.
    finding: Finding | None = None
    note: str = ""
    #: Why nothing was sent at all (the line is ``skipped``), when it was not a halt.
    skip_reason: str | None = None

    @property
    def since(self) -> datetime | None:
        """Where to look in the job's record from: the first attempt that may have run
        without its answer saying so (lost, or a server error)."""
        times = [t for t in (self.doubt_since, self.erred_since) if t is not None]
        return min(times) if times else None

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
        """A failure whose earlier attempt may have executed, as far as anyone can tell."""
        if self.succeeded or (self.doubt_since is None and not self.refused_after_error):
            return False
        return self.finding is None or self.finding.verdict is not Verdict.DID_NOT


async def run_entry(
    services: Services, entry: Entry, slot: int, *, doubt_since: datetime | None = None
) -> Attempts:
    """Attempt ``entry`` until it is settled; ``doubt_since`` is set when an earlier run
    may already have executed it (``--resume`` after a lost answer or a crash)."""
    trace = trace_of(entry.command, entry.command_message)
    checkable = not trace.read_only and trace.readable
    result = Attempts(doubt_since=None if trace.read_only else doubt_since)
    pacer = services.pacer
    if result.doubt_since is not None and checkable:
        result.finding = await services.confirmer.check(entry, since=result.doubt_since)
        if result.succeeded:
            return result
        if _unreadable(result.finding):
            result.skip_reason = f"not sent: {result.finding.detail}"
            return result
    checked_last = result.finding is not None
    while True:
        if services.halted:
            if result.count:
                result.note = f" (not retried: {services.halt_note()})"
            break
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
                services.note_sent(entry, slot, min(result.doubt_since or sent_at, sent_at))
        outcome = await services.send(entry, slot)
        result.api_s += _clock() - began
        result.outcome = outcome
        result.count += 1
        pacer.note(outcome)
        result.throttled += outcome.throttled
        checked_last = False
        if outcome.succeeded:
            return result  # the usual case: nothing more to decide
        erred = (outcome.http_status or 0) >= 500 and not trace.read_only
        if erred and result.erred_since is None:
            result.erred_since = sent_at
        why = pacer.halts(outcome)
        if why is not None:
            services.halt(why)
            break
        if outcome.ambiguous and not trace.read_only:
            if result.doubt_since is None:
                result.doubt_since = sent_at
            result.finding = None  # this attempt may have executed since the last look
            if checkable and not services.hard_stopped:
                result.finding = await _look(services, entry, result)
                checked_last = True
                if result.succeeded:
                    break
                if _unreadable(result.finding):
                    # Sending again on a guess could run the command twice: stop here, in
                    # doubt; --resume reads the record again.
                    result.note = " (not sent again: the job's record could not be read)"
                    break
        elif not (outcome.retryable or outcome.ambiguous):
            break  # a refusal (after a lost answer, the record gets the last word below)
        if services.hard_stopped:
            break
        if not await pacer.backoff(outcome, attempts=result.count, throttled=result.throttled):
            if not services.halted:
                result.note = f" (gave up after {result.count} attempts)"
            break
    if not result.succeeded and result.erred_since is not None:
        result.refused_after_error = _refused(result.outcome)
    if (
        not result.succeeded
        and (result.doubt_since is not None or result.refused_after_error)
        and checkable
        and not checked_last
        and not services.hard_stopped
    ):
        # After a lost answer the record decides; after a server error, a refusal of the
        # retry may mean the erring attempt ran after all.
        result.finding = await services.confirmer.check(entry, since=_look_from(result))
    if result.ambiguous:
        result.note += LOST_NOTE if result.doubt_since is not None else ERRED_NOTE
    return result


async def _look(services: Services, entry: Entry, result: Attempts) -> Finding | None:
    """Read the record after a lost answer. After a timeout, a "did not" is trusted only
    once the request has had as long again as its timeout to arrive and run (it may still
    be queued or running on the server): then the record is read once more. None: that
    wait was cut short, so nothing can be said."""
    finding = await services.confirmer.check(entry, since=_look_from(result))
    settle = services.settle_seconds
    still_running = result.outcome is not None and result.outcome.still_running
    if finding.verdict is not Verdict.DID_NOT or not settle or not still_running:
        return finding
    if not await services.wait(lambda: anyio.sleep(settle)) or services.hard_stopped:
        return None
    return await services.confirmer.check(entry, since=_look_from(result))


def _unreadable(finding: Finding | None) -> bool:
    return finding is not None and finding.verdict is Verdict.UNAVAILABLE


def _look_from(result: Attempts) -> datetime:
    """:attr:`Attempts.since`, known to be set (an answer was lost or erred)."""
    since = result.since
    assert since is not None
    return since


def _refused(outcome: Outcome | None) -> bool:
    """A refusal by the service itself (EXCUTE_FAILED, or a 4xx other than 429)."""
    if outcome is None or outcome.succeeded or outcome.retryable:
        return False
    status = outcome.http_status or 0
    return status == 200 or (400 <= status < 500 and status != 429 and not outcome.auth_refused)
