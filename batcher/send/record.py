"""A job's record (the Show answer) read for one question: did this command take effect?

A command known by the entry it writes took effect if such an entry is surely the attempt's,
and did not if every one surely predates it; one known by the state it leads to took effect
if the job is in it since surely after the attempt; nothing else can be told. "Surely" is
judged on bounds of the record's clock against ours (:class:`Offset`, measured by
:class:`Clocks`): where nothing bounds it, no entry is surely before or after the attempt.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from batcher.journal.times import parse_time
from batcher.send.vocabulary import Trace

#: The record's times are written in whole seconds (``2020-07-30T10:43:17Z``), truncated
#: or rounded: a stamp may stand for any moment this far either side.
RESOLUTION = timedelta(seconds=1)
#: Assumption (the documentation is silent): the service that writes the record and the
#: gateway that dates the answer keep clocks at most this far apart.
MAX_CLOCK_GAP = timedelta(minutes=5)
#: The margin on a ``Date`` header: its 1 s resolution and the time the answer took.
DATE_MARGIN = timedelta(seconds=5)
#: Assumption: nobody else gives the same job the same command in the moments just before
#: batcher's attempt. An entry surely no earlier than this before the attempt is its own.
SAME_MOMENT = timedelta(seconds=5)
#: Measurements older than this are dropped (a clock may have been set meanwhile).
MEASURE_LIFETIME_S = 600.0


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
class Stamped:
    """An operation log's ``log_type`` or a comment's ``comment_type``, when, and who."""

    kind: str
    at: datetime | None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The parts of a Show answer that tell what happened to a job."""

    job_id: str | None
    state: str | None
    last_update_time: datetime | None
    #: None when the answer had no ``operation_logs`` (``comment_logs``) list at all.
    logs: tuple[Stamped, ...] | None
    comments: tuple[Stamped, ...] | None = None

    @classmethod
    def from_show(cls, data: dict[str, Any]) -> JobRecord:
        """Read a Show answer, tolerating missing or oddly typed fields.

        >>> JobRecord.from_show({"state": "AUTO_VERIFYING", "operation_logs": [
        ...     {"log_type": "USER_VERIFYING_SUBMITTED", "operate_time": "2026-11-25T08:00:00Z",
        ...      "operate_user": "USER"}]}).logs[0].at.isoformat()
        '2026-11-25T08:00:00+00:00'
        """
        return cls(
            job_id=_text(data.get("job_id")),
            state=_text(data.get("state")),
            last_update_time=parse_time(data.get("last_update_time")),
            logs=_stamped(data.get("operation_logs"), "log_type", "operate_user"),
            comments=_stamped(data.get("comment_logs"), "comment_type", "operate_user"),
        )

    @property
    def newest(self) -> datetime | None:
        """The latest time in the operation log: it happened before the answer was sent."""
        times = [entry.at for entry in self.logs or () if entry.at is not None]
        return max(times) if times else None


def _stamped(raw: Any, kind: str, by: str) -> tuple[Stamped, ...] | None:
    if not isinstance(raw, list):
        return None
    return tuple(
        Stamped(str(item[kind]), parse_time(item.get("operate_time")), _text(item.get(by)))
        for item in raw
        if isinstance(item, dict) and item.get(kind) is not None
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Offset:
    """Bounds on the record's clock minus ours; None where nothing bounds it."""

    low: timedelta | None = None
    high: timedelta | None = None

    def or_else(self, other: Offset) -> Offset:
        """These bounds when both are measured; else narrowed by ``other``'s (assumed), or
        these alone where the two contradict.

        >>> measured = Offset(timedelta(seconds=-400), timedelta(seconds=-398))
        >>> measured.or_else(Offset(timedelta(seconds=-5), timedelta(seconds=5))) == measured
        True
        >>> Offset(timedelta(seconds=-90)).or_else(Offset(timedelta(seconds=-5), None)).low
        datetime.timedelta(days=-1, seconds=86395)
        """
        if self.low is not None and self.high is not None:
            return self
        low = max((b for b in (self.low, other.low) if b is not None), default=None)
        high = min((b for b in (self.high, other.high) if b is not None), default=None)
        if low is not None and high is not None and low > high:
            return self
        return Offset(low, high)

    def before(self, stamp: datetime, since: datetime) -> bool:
        """Whether ``stamp`` (the record's clock) is surely before ``since`` (ours)."""
        return self.low is not None and stamp + RESOLUTION - self.low < since

    def after(self, stamp: datetime, since: datetime) -> bool:
        """Whether ``stamp`` is surely no earlier than :data:`SAME_MOMENT` before ``since``."""
        return self.high is not None and stamp - RESOLUTION - self.high >= since - SAME_MOMENT


def date_offset(server_date: str | None, received_at: datetime) -> Offset:
    """What an answer's ``Date`` header says of the record's clock: the gateway's, to
    within :data:`DATE_MARGIN`, and the record's within :data:`MAX_CLOCK_GAP` of that.

    >>> got = datetime(2026, 11, 25, 8, 0, 10, tzinfo=UTC)
    >>> o = date_offset("Wed, 25 Nov 2026 08:00:40 -0000", got)  # -0000 is UTC
    >>> o.low.total_seconds(), o.high.total_seconds()
    (-275.0, 335.0)
    >>> date_offset(None, got)
    Offset(low=None, high=None)
    """
    if not server_date:
        return Offset()
    try:
        dated = parsedate_to_datetime(server_date)
    except (TypeError, ValueError):
        return Offset()
    # "-0000" (and no zone at all) is UTC in an HTTP date, not the local time.
    dated = dated.replace(tzinfo=UTC) if dated.tzinfo is None else dated
    gateway = dated.astimezone(UTC) - received_at
    return Offset(gateway - DATE_MARGIN - MAX_CLOCK_GAP, gateway + DATE_MARGIN + MAX_CLOCK_GAP)


class Clocks:
    """The record's clock against ours, as this run measured it (one service, one clock).

    Any entry in a record was written before the answer came: that bounds the offset from
    below. An entry of a command batcher sent and saw succeed was written after it was
    sent: that bounds it from above.

    >>> clocks = Clocks()
    >>> at = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
    >>> clocks.note_caused(at + timedelta(seconds=31), sent_at=at)
    >>> clocks.note_newest(at + timedelta(seconds=31), received_at=at + timedelta(seconds=2))
    >>> o = clocks.offset()
    >>> o.low.total_seconds(), o.high.total_seconds()
    (28.0, 32.0)
    """

    def __init__(self) -> None:
        self._low: tuple[timedelta, float] | None = None
        self._high: tuple[timedelta, float] | None = None

    def offset(self) -> Offset:
        now = time.monotonic()
        low, high = (
            None if m is None or now - m[1] > MEASURE_LIFETIME_S else m[0]
            for m in (self._low, self._high)
        )
        return Offset(low, high)

    def note_newest(self, stamp: datetime, *, received_at: datetime) -> None:
        low = stamp - RESOLUTION - received_at
        known = self.offset()
        if known.high is not None and low > known.high:
            self._high = None  # a clock was set: what was measured no longer holds
        if known.low is None or low >= known.low:
            self._low = (low, time.monotonic())

    def note_caused(self, stamp: datetime, *, sent_at: datetime) -> None:
        high = stamp + RESOLUTION - sent_at
        known = self.offset()
        if known.low is not None and high < known.low:
            return  # the entry predates the command: not its entry (not written yet?)
        if known.high is None or high <= known.high:
            self._high = (high, time.monotonic())


def judge(trace: Trace, record: JobRecord, *, since: datetime, offset: Offset) -> Finding:
    """Did the command with ``trace``, sent at ``since`` (our clock), take effect?

    >>> from batcher.send.vocabulary import trace_of
    >>> record = JobRecord.from_show({"state": "AUTO_VERIFYING", "operation_logs": [
    ...     {"log_type": "USER_VERIFYING_SUBMITTED", "operate_time": "2026-11-25T08:00:03Z",
    ...      "operate_user": "USER"}]})
    >>> at = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
    >>> exact = Offset(timedelta(seconds=-1), timedelta(seconds=1))
    >>> judge(trace_of("SUBMITVERIFYING"), record, since=at, offset=exact).verdict
    <Verdict.TOOK_EFFECT: 'took effect'>
    >>> judge(trace_of("SUBMITVERIFYING"), record, since=at + timedelta(minutes=10),
    ...       offset=exact).verdict  # the job may have been moved again, its entry to come
    <Verdict.UNKNOWN: 'cannot tell'>
    >>> judge(trace_of("SUBMITVERIFYING"), record, since=at, offset=Offset()).verdict
    <Verdict.UNKNOWN: 'cannot tell'>
    >>> judge(trace_of("CONFIRM_MULTIPART_UPLOADED"), record, since=at, offset=exact).verdict
    <Verdict.UNKNOWN: 'cannot tell'>
    """
    if trace.comment_types and record.comments:
        mine = [c for c in record.comments if c.kind in trace.comment_types]
        found = _placed(mine, "comment log", "comment_logs", since, offset)
        if found is not None:
            return found
    if trace.log_types:
        if record.logs is None:
            return Finding(Verdict.UNKNOWN, "the job's record has no operation log to read")
        mine = [e for e in record.logs if e.kind in trace.log_types and e.by in (None, "USER")]
        found = _placed(mine, "operation log", "operation_log", since, offset)
        if found is not None:
            return found
        types = "/".join(sorted(trace.log_types))
        silent = f"the job's operation log has no {types} from {_stamp(since)} (our clock) on"
        if trace.sent_in and record.state not in trace.sent_in:
            # Where the job was before the attempt is not known: it may have left for
            # this state by the attempt, its log entry still to come.
            return Finding(
                Verdict.UNKNOWN, f"{silent}, but the job is in {record.state or 'no state'}, "
                "where the command may have moved it",
            )  # fmt: skip
        return Finding(Verdict.DID_NOT, silent)
    if trace.leads_to and record.state in trace.leads_to:
        changed = record.last_update_time
        if changed is not None and offset.after(changed, since):
            return Finding(
                Verdict.TOOK_EFFECT,
                f"the job is in {record.state}, which only this command leads to, "
                f"since {_stamp(changed)}",
                evidence="state",
            )
        return Finding(
            Verdict.UNKNOWN,
            f"the job is in {record.state}, but not surely since the attempt (last update "
            f"{'unknown' if changed is None else _stamp(changed)}; {_bounds(offset)})",
        )
    if trace.readable:
        return Finding(Verdict.UNKNOWN, f"the job is in {record.state or 'an unknown state'}")
    return Finding(Verdict.UNKNOWN, "the command leaves no trace in the job's record")


def _placed(
    entries: list[Stamped], where: str, evidence: str, since: datetime, offset: Offset
) -> Finding | None:
    """The finding from the dated ``entries`` the command writes; None if none of them can
    be the attempt's."""
    times = sorted(e.at for e in entries if e.at is not None and not offset.before(e.at, since))
    if not times:
        return None
    sure = [t for t in times if offset.after(t, since)]
    if sure:
        return Finding(
            Verdict.TOOK_EFFECT,
            f"the job's {where} has {entries[0].kind} at {_stamp(sure[0])}",
            evidence=evidence,
        )
    return Finding(
        Verdict.UNKNOWN,
        f"the job's {where} has {entries[0].kind} at {_stamp(times[-1])}, too close to the "
        f"attempt ({_stamp(since)}, our clock) for the clocks as measured "
        f"({_bounds(offset)}) to tell whether it is the attempt's or an earlier action's",
    )


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _bounds(offset: Offset) -> str:
    def side(bound: timedelta | None) -> str:
        return "?" if bound is None else f"{bound.total_seconds():+.0f}s"

    return f"the record's clock {side(offset.low)}..{side(offset.high)} from ours"
