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

from .jobs import Trace

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
    #: The log has the command's entry only a little before the attempt (on the server's
    #: clock, less the margin): the service's clock may run behind the gateway's, so it may
    #: be this attempt's. Sending again on a guess could run the command twice.
    TOO_CLOSE = "too close to tell"


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


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (``2020-07-30T10:43:17Z``, fractions and offsets too), in UTC.

    >>> parse_time("2020-07-30T10:43:17.5+08:00").isoformat()
    '2020-07-30T02:43:17.500000+00:00'
    >>> parse_time("yesterday") is None
    True
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:  # no offset given: the API speaks UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def server_since(sent_at: datetime, *, server_date: str | None, received_at: datetime) -> datetime:
    """The earliest server time the attempt sent at ``sent_at`` (our clock) can bear.

    ``server_date`` is the ``Date`` header of an answer received at ``received_at``.

    >>> sent = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
    >>> server_since(sent, server_date="Wed, 25 Nov 2026 08:00:40 GMT",
    ...              received_at=sent + timedelta(seconds=10)).isoformat()
    '2026-11-25T08:00:25+00:00'
    """
    offset: timedelta | None = None
    if server_date:
        try:
            offset = parsedate_to_datetime(server_date).astimezone(UTC) - received_at
        except (TypeError, ValueError):
            offset = None
    if offset is None:
        return sent_at - UNMEASURED_SKEW
    return sent_at + offset - MEASURED_MARGIN


def _latest_before(
    logs: tuple[LogEntry, ...], log_types: frozenset[str], since: datetime
) -> datetime | None:
    """The latest time a user's entry of ``log_types`` was logged before ``since``."""
    times = [
        entry.operate_time
        for entry in logs
        if entry.log_type in log_types
        and entry.operate_time is not None
        and entry.operate_time < since
        and entry.operate_user in (None, "USER")
    ]
    return max(times, default=None)


def judge(trace: Trace, record: JobRecord, *, since: datetime) -> Finding:
    """Did the command with ``trace`` take effect at or after ``since`` (server time)?

    >>> from .jobs import trace_of
    >>> record = JobRecord.from_show({"state": "AUTO_VERIFYING", "operation_logs": [
    ...     {"log_type": "USER_VERIFYING_SUBMITTED", "operate_time": "2026-11-25T08:00:03Z",
    ...      "operate_user": "USER"}]})
    >>> since = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
    >>> judge(trace_of("SUBMITVERIFYING"), record, since=since).verdict
    <Verdict.TOOK_EFFECT: 'took effect'>
    >>> judge(trace_of("SUBMITVERIFYING"), record, since=since + timedelta(minutes=10)).verdict
    <Verdict.DID_NOT: 'did not take effect'>
    >>> judge(trace_of("SUBMITVERIFYING"), record, since=since + timedelta(seconds=10)).verdict
    <Verdict.TOO_CLOSE: 'too close to tell'>
    >>> judge(trace_of("CONFIRM_MULTIPART_UPLOADED"), record, since=since).verdict
    <Verdict.UNKNOWN: 'cannot tell'>
    """
    when = since.isoformat(timespec="seconds")
    if trace.log_types:
        if record.logs is None:
            return Finding(Verdict.UNKNOWN, "the job's record has no operation log to read")
        for entry in record.logs:
            if (
                entry.log_type in trace.log_types
                and entry.operate_time is not None
                and entry.operate_time >= since
                and entry.operate_user in (None, "USER")
            ):
                stamp = entry.operate_time.isoformat(timespec="seconds")
                return Finding(
                    Verdict.TOOK_EFFECT,
                    f"the job's operation log has {entry.log_type} at {stamp}",
                    evidence="operation_log",
                )
        types = "/".join(sorted(trace.log_types))
        near = _latest_before(record.logs, trace.log_types, since)
        if near is not None and near >= since - UNMEASURED_SKEW:
            stamp = near.isoformat(timespec="seconds")
            return Finding(
                Verdict.TOO_CLOSE,
                f"the job's operation log has {types} at {stamp}, shortly before the attempt "
                f"({when} on the server's clock): it may be this attempt's",
            )
        return Finding(Verdict.DID_NOT, f"the job's operation log has no {types} since {when}")
    if trace.leads_to:
        if (
            record.state in trace.leads_to
            and record.last_update_time is not None
            and record.last_update_time >= since
        ):
            stamp = record.last_update_time.isoformat(timespec="seconds")
            return Finding(
                Verdict.TOOK_EFFECT,
                f"the job is in {record.state}, which only this command leads to, since {stamp}",
                evidence="state",
            )
        return Finding(Verdict.UNKNOWN, f"the job is in {record.state or 'an unknown state'}")
    return Finding(Verdict.UNKNOWN, "the command leaves no trace in the job's record")
