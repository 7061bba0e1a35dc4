"""After an answer that does not prove a refusal: ask the job's record (Show) whether the
command took effect, and let :mod:`batcher.send.record` judge. Sending it again blindly could
run it twice, or turn "it worked but we did not hear" into a false "refused"."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Protocol

import anyio
import structlog

from batcher.entry import Entry
from batcher.send.client import Reply
from batcher.send.reads import Pacer
from batcher.send.record import Clocks, Finding, JobRecord, Offset, Verdict, date_offset, judge
from batcher.send.vocabulary import trace_of

log = structlog.get_logger("batcher.confirm")


class RecordSource(Protocol):
    async def show_job(
        self, job_id: str, *, project_id: str | None = None, app_user_id: str | None = None
    ) -> Reply: ...


class Confirmer:
    """Reads a job's record (through the pacer) and judges one command against it.

    Commands seen to succeed are offered with :meth:`witness`: when no bound from above on
    the record's clock is measured, the record of the latest is read to measure one (its
    entry was written after it was sent).
    """

    def __init__(self, source: RecordSource, pacer: Pacer) -> None:
        self._source = source
        self._pacer = pacer
        self.clocks = Clocks()
        self._witnesses: deque[tuple[Entry, datetime]] = deque(maxlen=4)
        self._witnessed: anyio.Event | None = None
        #: Show calls made.
        self.checks = 0

    @property
    def unmeasured(self) -> bool:
        """Whether nothing bounds the record's clock from above yet (see :class:`Clocks`)."""
        return self.clocks.offset().high is None

    @property
    def can_measure(self) -> bool:
        """Whether a command seen to succeed is at hand to measure the clock on."""
        return bool(self._witnesses)

    def witness(self, entry: Entry, sent_at: datetime) -> None:
        """``entry``'s command, sent at ``sent_at``, was answered with success."""
        if trace_of(entry.command, entry.command_message).log_types:
            self._witnesses.append((entry, sent_at))
            if self._witnessed is not None:
                self._witnessed.set()
                self._witnessed = None

    async def witnessed(self) -> None:
        """Wait until a command is next seen to succeed."""
        if self._witnessed is None:
            self._witnessed = anyio.Event()
        await self._witnessed.wait()

    async def check(self, entry: Entry, *, since: datetime) -> Finding:
        """Did ``entry``'s command take effect at or after ``since`` (our clock, UTC)?"""
        trace = trace_of(entry.command, entry.command_message)
        if not trace.readable:
            return Finding(Verdict.UNKNOWN, "the command leaves no trace in the job's record")
        record, offset, failed = await self._read(entry)
        if record is None:
            finding = failed
        elif record.job_id not in (None, entry.job_id):
            finding = Finding(Verdict.UNKNOWN, "Show answered about another job")
        else:
            finding = judge(trace, record, since=since, offset=self.clocks.offset().or_else(offset))
            if finding.verdict is Verdict.UNKNOWN and self.unmeasured and await self._calibrate():
                offset = self.clocks.offset().or_else(offset)
                finding = judge(trace, record, since=since, offset=offset)
        log.info(
            "outcome_checked",
            job_id=entry.job_id,
            command=entry.command,
            verdict=finding.verdict.value,
            detail=finding.detail,
        )
        return finding

    async def _read(self, entry: Entry) -> tuple[JobRecord | None, Offset, Finding]:
        """The job's record and what its answer's ``Date`` says of the clocks, or why not."""
        self.checks += 1
        reply = await self._pacer.read(
            lambda: self._source.show_job(
                entry.job_id, project_id=entry.project_id, app_user_id=entry.app_user_id
            ),
            refusal_halts=False,
        )
        received_at = datetime.now(UTC)
        outcome = reply.outcome
        if not outcome.succeeded or reply.data is None:
            why = f"the job's record could not be read ({outcome.reason or 'no answer'})"
            # Refused (no access to Show, no such job): it will not tell later either.
            # Anything else (5xx, a timeout, throttling, a halt) may pass.
            status = outcome.http_status or 0
            lasting = outcome.auth_refused or (400 <= status < 500 and status not in (408, 429))
            return None, Offset(), Finding(Verdict.UNKNOWN if lasting else Verdict.UNAVAILABLE, why)
        record = JobRecord.from_show(reply.data)
        prior = date_offset(reply.server_date, received_at)
        newest = record.newest
        # Assumption: the log is stamped by one clock and never ahead of it; an entry dated
        # past what the Date header allows is not believed as a measurement.
        if newest is not None and (prior.high is None or newest - received_at <= prior.high):
            self.clocks.note_newest(newest, received_at=received_at)
        return record, prior, Finding(Verdict.UNKNOWN, "")

    async def _calibrate(self) -> bool:
        """Measure the record's clock from above on the latest command seen to succeed;
        whether there was one to measure it on."""
        if not self._witnesses:
            return False
        entry, sent_at = self._witnesses.pop()
        record, _, _ = await self._read(entry)
        types = trace_of(entry.command, entry.command_message).log_types
        times = [e.at for e in (record and record.logs) or () if e.kind in types and e.at]
        if times:
            self.clocks.note_caused(max(times), sent_at=sent_at)
        low, high = self.clocks.offset().low, self.clocks.offset().high
        log.info(
            "record_clock_measured",
            job_id=entry.job_id,
            command=entry.command,
            low_s=None if low is None else low.total_seconds(),
            high_s=None if high is None else high.total_seconds(),
        )
        return True
