"""What ``--resume`` needs from a report: what is done, and what is in doubt since when.

Done: entries whose latest line is ``succeeded`` (not sent again). In doubt: entries an
earlier run may have executed without hearing back — their latest line is ambiguous (the
:class:`~batcher.journal.index.ReportIndex` keeps their earliest moment), or a crash left
an intent for them (see :mod:`.intents`) with no line written since. The runner reads
their job's record, from that moment on, before sending them again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from batcher.entry import key_digest
from batcher.journal.index import ReportIndex
from batcher.journal.intents import InFlight
from batcher.journal.reader import BadLineHandler
from batcher.journal.times import epoch, parse_time


@dataclass(slots=True)
class Resume:
    """``done`` (an index of the report, keyed by :func:`~batcher.entry.key_digest`: ``in``
    says whether an entry is done) and ``doubts`` (digest → since when, UTC)."""

    done: ReportIndex = field(default_factory=lambda: ReportIndex(digest=key_digest))
    doubts: dict[int, datetime] = field(default_factory=dict)


def read_resume(
    open_report: Callable[[], IO[bytes]],
    *,
    inflight: Sequence[InFlight] = (),
    on_bad_line: BadLineHandler | None = None,
) -> Resume:
    """Read the report (``open_report`` gives a binary stream from its start, such as
    :meth:`ReportWriter.reader`) once, for what resuming it needs.

    An intent is settled by a line of its entry finished after it was sent; the few
    intents' latest finishing times are noted in the same pass.
    """
    watched = {key_digest(item.job_id, item.command): item for item in inflight}
    jobs = {item.job_id for item in inflight}
    finished: dict[int, float | None] = {}

    def note(row: int, state: int, line: dict[str, Any]) -> None:
        if line["job_id"] in jobs:
            digest = key_digest(line["job_id"], line["command"])
            if digest in watched:
                finished[digest] = epoch(line.get("finished_at"))

    with open_report() as stream:
        index = ReportIndex.read(
            stream,
            on_bad_line=on_bad_line,
            hook=note if jobs else None,
            digest=key_digest,
            positions=False,
        )
    state = Resume(done=index, doubts=index.doubts())
    for digest, item in watched.items():
        sent = parse_time(item.sent_at)
        last = finished.get(digest)
        if sent is None or digest in index or (last is not None and last >= sent.timestamp()):
            continue
        earlier = state.doubts.get(digest)
        state.doubts[digest] = sent if earlier is None else min(earlier, sent)
    return state
