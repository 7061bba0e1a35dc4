"""What ``--resume`` needs from a report: what is done, and what is in doubt.

Done: entries whose latest line is ``succeeded`` (not sent again). In doubt: entries an
earlier run may have executed without hearing back — their latest line says
``ambiguous: true``, or a crash left them in the in-flight slots (see :mod:`.inflight`) with
no line written since — and when that attempt went out. The runner reads their job's
record before sending them again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

import orjson

from batcher.entry import key_digest
from batcher.journal.intents import InFlight
from batcher.journal.reader import BadLineHandler
from batcher.journal.resume_scan import ResumeState


@dataclass(slots=True)
class Resume:
    """``done`` (digests of finished entries) and ``doubts`` (digest → when sent, UTC);
    ``carried`` the in-flight slots still in doubt, which the next slot file keeps until
    those entries have a line."""

    done: ResumeState = field(default_factory=ResumeState)
    doubts: dict[int, datetime] = field(default_factory=dict)
    carried: list[InFlight] = field(default_factory=list)


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


def read_resume(
    open_report: Callable[[], IO[bytes]],
    *,
    inflight: Sequence[InFlight] = (),
    on_bad_line: BadLineHandler | None = None,
) -> Resume:
    """Read the report (``open_report`` gives a fresh binary stream from its start, such as
    :meth:`ReportWriter.reader`) for what resuming it needs.

    The in-flight slots of a crashed run are checked against the report with one more
    scan, only for their few keys and only when there are any.
    """
    done = ResumeState.read(open_report(), on_bad_line=on_bad_line)
    state = Resume(done=done)
    if done.ambiguous_count:
        for digest in done.ambiguous_keys():
            ambiguous = done.ambiguous(digest)
            if ambiguous is not None and ambiguous.started_at is not None:
                state.doubts[digest] = ambiguous.started_at
    watched = {
        key_digest(item.job_id, item.command): item
        for item in inflight
        if key_digest(item.job_id, item.command) not in done
    }
    if watched:
        latest = _latest_finish(open_report(), watched)
        for digest, item in watched.items():
            sent = parse_stamp(item.sent_at)
            finished = latest.get(digest)
            # A line written after the slot was: that attempt was settled and recorded.
            if sent is not None and (finished is None or finished < sent):
                earlier = state.doubts.get(digest)
                state.doubts[digest] = sent if earlier is None else min(earlier, sent)
                state.carried.append(item)
    return state


def _latest_finish(stream: IO[bytes], watched: dict[int, InFlight]) -> dict[int, datetime | None]:
    """When the latest line of each watched entry finished (a cheap pre-filter on the job
    ids keeps this scan to a plain read of the file)."""
    needles = {item.job_id.encode() for item in watched.values()}
    latest: dict[int, datetime | None] = {}
    with stream:
        for raw in stream:
            if not any(needle in raw for needle in needles):
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            job_id, command = record.get("job_id"), record.get("command")
            if isinstance(job_id, str) and isinstance(command, str):
                digest = key_digest(job_id, command)
                if digest in watched:
                    latest[digest] = parse_stamp(record.get("finished_at"))
    return latest
