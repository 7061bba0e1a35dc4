"""Commands an earlier run of the report saw succeed, to measure the job record's clock.

A resumed run reads the records of the entries left in doubt before it sends anything, so
it has no command of its own yet whose entry bounds the record's clock from above (see
:class:`batcher.send.record.Clocks`). The last lines of the report do: a command answered
with success on its first attempt wrote its entry after that attempt's ``started_at``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import IO

import orjson

from batcher.entry import Entry
from batcher.journal.times import parse_time

#: How much of the report's end is read: its latest lines are enough, and the newest.
TAIL_BYTES = 256 * 1024


def recent_successes(
    open_report: Callable[[], IO[bytes]], *, wanted: Callable[[str, str | None], bool]
) -> list[tuple[Entry, datetime]]:
    """The latest lines, oldest first, that succeeded on their first attempt by their answer
    (not from the record) for a command ``wanted(command, command_message)``, each with
    when it was sent.

    >>> raw = (b'{"job_id":"j1","command":"SUBMITVERIFYING","status":"succeeded",'
    ...        b'"attempts":1,"confirmed_by":null,"started_at":"2026-11-25T08:00:00.000Z"}\\n')
    >>> [(e.job_id, t.isoformat()) for e, t in recent_successes(lambda: io.BytesIO(raw),
    ...                                                        wanted=lambda c, m: True)]
    [('j1', '2026-11-25T08:00:00+00:00')]
    """
    with open_report() as stream:
        stream.seek(0, io.SEEK_END)
        size = stream.tell()
        stream.seek(max(0, size - TAIL_BYTES))
        tail = stream.read(TAIL_BYTES)
    lines = tail.split(b"\n")
    if size > TAIL_BYTES:
        lines = lines[1:]  # begun before the tail
    found: list[tuple[Entry, datetime]] = []
    for raw in lines:
        if b'"succeeded"' not in raw:
            continue
        witness = _witness(raw, wanted)
        if witness is not None:
            found.append(witness)
    return found


def _witness(
    raw: bytes, wanted: Callable[[str, str | None], bool]
) -> tuple[Entry, datetime] | None:
    try:
        line = orjson.loads(raw)
        if not (
            isinstance(line, dict)
            and line.get("status") == "succeeded"
            and line.get("attempts") == 1
            and line.get("confirmed_by") is None
            and wanted(line["command"], line.get("command_message"))
        ):
            return None
        sent = parse_time(line.get("started_at"))
        entry = Entry(
            job_id=line["job_id"],
            command=line["command"],
            command_message=line.get("command_message"),
            app_user_id=line.get("app_user_id"),
            project_id=line.get("project_id"),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None  # a torn or foreign line: not a witness
    return None if sent is None else (entry, sent)
