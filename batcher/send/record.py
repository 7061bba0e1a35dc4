"""A job's record (the Show answer) read for one question: did this command take effect?

After an attempt whose answer was lost, the job's own record is the only witness. A
command that writes an operation-log entry took effect if such an entry (by the user) is
dated at or after the attempt was sent; if the log has none, it did not (yet). A command
known by the state it leads to took effect if the job is in that state and changed at or
after the attempt. Anything else cannot be told from the record. Times are compared on the
server's clock: the send time is moved by the offset seen in the Show answer's ``Date``
header, less a margin for that header's one-second resolution and the network.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from batcher.journal.times import parse_time
from batcher.send.vocabulary import Trace

#: How far apart the server's clock and ours may be when nothing measured it.
UNMEASURED_SKEW = timedelta(minutes=2)
#: The margin when the offset was measured from a ``Date`` header (1 s resolution, the
#: time the answer took to arrive, and the gap between the gateway's and the service's
#: clocks).
MEASURED_MARGIN = timedelta(seconds=5)


class Verdict(enum.Enum):
    TOOK_EFFECT = "took effect"
    DID_NOT = "did not take effect"
    UNKNOWN = "cannot tell"
    #: The record could not be read now (a server error, a timeout, throttling past the
    #: read's retries): it may tell later, so nothing is sent on a guess.
    UNAVAILABLE = "not readable now"


@dataclass(frozen=True, slots=True)
class Finding:
    """What the record says, the evidence (``confirmed_by``), and why, in words."""

    verdict: Verdict
    detail: str
    evidence: str | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    log_type: str
    operate_time: datetime | None
    operate_user: str | None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The parts of a Show answer that tell what happened to a job."""

    job_id: str | None
    state: str | None
    last_update_time: datetime | None
    #: None when the answer had no ``operation_logs`` list at all.
    logs: tuple[LogEntry, ...] | None

    @classmethod
    def from_show(cls, data: dict[str, Any]) -> JobRecord:
        """Read a Show answer, tolerating missing or oddly typed fields.

        >>> JobRecord.from_show({"state": "AUTO_VERIFYING", "operation_logs": [
        ...     {"log_type": "USER_VERIFYING_SUBMITTED", "operate_time": "2026-11-25T08:00:00Z",
        ...      "operate_user": "USER"}]}).logs[0].operate_time.isoformat()
        '2026-11-25T08:00:00+00:00'
        """
        raw_logs = data.get("operation_logs")
        logs: tuple[LogEntry, ...] | None = None
        if isinstance(raw_logs, list):
            logs = tuple(
                LogEntry(
                    log_type=str(item.get("log_type")),
                    operate_time=parse_time(item.get("operate_time")),
                    operate_user=_text(item.get("operate_user")),
                )
                for item in raw_logs
                if isinstance(item, dict) and item.get("log_type") is not None
            )
        return cls(
            job_id=_text(data.get("job_id")),
            state=_text(data.get("state")),
            last_update_time=parse_time(data.get("last_update_time")),
            logs=logs,
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Window:
    """Where the attempt's trace can be on the server's clock. An entry at or after ``sure``
    is the attempt's (nothing earlier can be); one from ``earliest`` on, but before
    ``sure``, may be the attempt's or an earlier action's: the record cannot tell."""

    earliest: datetime
    sure: datetime


def server_window(sent_at: datetime, *, server_date: str | None, received_at: datetime) -> Window:
    """The :class:`Window` of an attempt sent at ``sent_at`` (our clock), from the ``Date``
    header of a Show answer received at ``received_at``.

    Measured, the attempt's time on the server's clock is known to a few seconds (less
    :data:`MEASURED_MARGIN`); the service that writes the log may still lag the gateway's
    ``Date``, so an entry up to :data:`UNMEASURED_SKEW` before cannot be told apart. Not
    measured (no ``Date``), the clocks may be :data:`UNMEASURED_SKEW` apart either way.

    >>> sent = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
    >>> w = server_window(sent, server_date="Wed, 25 Nov 2026 08:00:40 GMT",
    ...                   received_at=sent + timedelta(seconds=10))
    >>> w.earliest.isoformat(), w.sure.isoformat()
    ('2026-11-25T07:58:25+00:00', '2026-11-25T08:00:25+00:00')
    >>> w = server_window(sent, server_date="Wed, 25 Nov 2026 08:00:40 -0000",
    ...                   received_at=sent + timedelta(seconds=10))
    >>> w.sure.isoformat()  # -0000 is UTC, whatever the machine's time zone
    '2026-11-25T08:00:25+00:00'
    >>> w = server_window(sent, server_date=None, received_at=sent)
    >>> w.earliest.isoformat(), w.sure.isoformat()
    ('2026-11-25T07:58:00+00:00', '2026-11-25T08:02:00+00:00')
    """
    offset: timedelta | None = None
    if server_date:
        try:
            dated = parsedate_to_datetime(server_date)
        except (TypeError, ValueError):
            dated = None
        if dated is not None:
            # "-0000" (and no zone at all) is UTC in an HTTP date, not the local time.
            dated = dated.replace(tzinfo=UTC) if dated.tzinfo is None else dated
            offset = dated.astimezone(UTC) - received_at
    if offset is None:
        return Window(sent_at - UNMEASURED_SKEW, sent_at + UNMEASURED_SKEW)
    since = sent_at + offset - MEASURED_MARGIN
    return Window(since - UNMEASURED_SKEW, since)


def judge(trace: Trace, record: JobRecord, *, window: Window) -> Finding:
    """Did the command with ``trace`` take effect in the attempt's ``window``?

    >>> from batcher.send.vocabulary import trace_of
    >>> record = JobRecord.from_show({"state": "AUTO_VERIFYING", "operation_logs": [
    ...     {"log_type": "USER_VERIFYING_SUBMITTED", "operate_time": "2026-11-25T08:00:03Z",
    ...      "operate_user": "USER"}]})
    >>> at = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
    >>> def measured(since):  # as from a Date header
    ...     return Window(since - UNMEASURED_SKEW, since)
    >>> judge(trace_of("SUBMITVERIFYING"), record, window=measured(at)).verdict
    <Verdict.TOOK_EFFECT: 'took effect'>
    >>> judge(trace_of("SUBMITVERIFYING"), record,
    ...       window=measured(at + timedelta(minutes=10))).verdict
    <Verdict.DID_NOT: 'did not take effect'>
    >>> judge(trace_of("SUBMITVERIFYING"), record,
    ...       window=measured(at + timedelta(seconds=10))).verdict  # a log clock lagging?
    <Verdict.UNKNOWN: 'cannot tell'>
    >>> judge(trace_of("CONFIRM_MULTIPART_UPLOADED"), record, window=measured(at)).verdict
    <Verdict.UNKNOWN: 'cannot tell'>
    """
    earliest, sure = window.earliest, window.sure
    when = earliest.isoformat(timespec="seconds")
    if trace.log_types:
        if record.logs is None:
            return Finding(Verdict.UNKNOWN, "the job's record has no operation log to read")
        times = sorted(
            entry.operate_time
            for entry in record.logs
            if entry.log_type in trace.log_types
            and entry.operate_time is not None
            and entry.operate_time >= earliest
            and entry.operate_user in (None, "USER")
        )
        types = "/".join(sorted(trace.log_types))
        if times and times[-1] >= sure:
            stamp = next(t for t in times if t >= sure).isoformat(timespec="seconds")
            return Finding(
                Verdict.TOOK_EFFECT,
                f"the job's operation log has {types} at {stamp}",
                evidence="operation_log",
            )
        if times:
            stamp = times[-1].isoformat(timespec="seconds")
            return Finding(
                Verdict.UNKNOWN,
                f"the job's operation log has {types} at {stamp}, too close to the attempt "
                f"(from {sure.isoformat(timespec='seconds')} on the server's clock) to tell "
                "whether it is this attempt's or an earlier action's",
            )
        return Finding(Verdict.DID_NOT, f"the job's operation log has no {types} since {when}")
    if trace.leads_to:
        changed = record.last_update_time
        if record.state in trace.leads_to and changed is not None and changed >= sure:
            stamp = changed.isoformat(timespec="seconds")
            return Finding(
                Verdict.TOOK_EFFECT,
                f"the job is in {record.state}, which only this command leads to, since {stamp}",
                evidence="state",
            )
        return Finding(Verdict.UNKNOWN, f"the job is in {record.state or 'an unknown state'}")
    return Finding(Verdict.UNKNOWN, "the command leaves no trace in the job's record")
