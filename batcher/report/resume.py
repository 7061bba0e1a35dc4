"""What ``--resume`` needs from a report: what is done, and what is in doubt.

Done: entries whose latest line is ``succeeded`` (not sent again). In doubt: entries an
earlier run may have executed without hearing back — their latest line says
``ambiguous: true``, or a crash left them in the in-flight slots (see :mod:`.inflight`) with
no line written since — and when that attempt went out. The runner reads their job's
record before sending them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..keys import key_digest
from ._reader import BadLineHandler, CompletedKeys, iter_records
from .inflight import InFlight


@dataclass(slots=True)
class ResumeState:
    """``done`` (digests of finished entries) and ``doubts`` (digest → when sent, UTC)."""

    done: CompletedKeys = field(default_factory=CompletedKeys)
    doubts: dict[int, datetime] = field(default_factory=dict)


def parse_stamp(value: object) -> datetime | None:
    """A report time (``2026-11-25T08:00:00.123Z``) as an aware UTC datetime.

    >>> parse_stamp("2026-11-25T08:00:00.123Z").isoformat()
    '2026-11-25T08:00:00.123000+00:00'
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resume_state(
    report: Path,
    *,
    inflight: Sequence[InFlight] = (),
    on_bad_line: BadLineHandler | None = None,
) -> ResumeState:
    """Read ``report`` once for what resuming it needs; a missing report has nothing.

    >>> resume_state(Path("no-such-report.jsonl")).doubts
    {}
    """
    state = ResumeState()
    watched = {key_digest(item.job_id, item.command): item for item in inflight}
    latest_finish: dict[int, datetime | None] = {}
    if report.exists():
        for _, record in iter_records(report, on_bad_line=on_bad_line):
            job_id, command, status = record["job_id"], record["command"], record["status"]
            state.done.record(job_id, command, status)
            digest = key_digest(job_id, command)
            if record.get("ambiguous") is True and status == "failed":
                since = parse_stamp(record.get("started_at")) or parse_stamp(
                    record.get("finished_at")
                )
                if since is not None:
                    state.doubts[digest] = since
            else:
                state.doubts.pop(digest, None)
            if digest in watched:
                latest_finish[digest] = parse_stamp(record.get("finished_at"))
    for digest, item in watched.items():
        sent = parse_stamp(item.sent_at)
        if sent is None or digest in state.done:
            continue
        finished = latest_finish.get(digest)
        # A line written after the slot was: that attempt was settled (and recorded).
        if finished is None or finished < sent:
            earlier = state.doubts.get(digest)
            state.doubts[digest] = sent if earlier is None else min(earlier, sent)
    return state
