"""The one index of a report: the latest line of each entry, found in one streaming pass.

A report may hold several lines for one entry (a failed line, then after ``--resume`` a
succeeded one); the LATEST line per ``(job_id, command)`` is the entry's state. Resume,
the summary, selections and export all read a report through :class:`ReportIndex`, which
parses every line whole (orjson: no field order is assumed), checks only its key and
status, and keeps per entry a few numbers in typed arrays: where its latest line is, its
status and flags, and since when it is in doubt. A reader that needs more of each line
passes a ``hook``, called with every readable line and the entry's row.

Doubt keeps its earliest moment: an entry whose latest line is ambiguous (it may have
executed without an answer saying so) is in doubt since the earliest ``doubt_since`` or
``started_at`` of the ambiguous lines that led to it, however many runs wrote them; a
skipped line (nothing sent) leaves the doubt as it was; a line that settles the entry
(succeeded, or a failure known not to have executed) ends it.
"""

from __future__ import annotations

import math
import os
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from batcher.entry import STATUSES, local_key_digest
from batcher.journal.reader import BadLineHandler, reading, torn_or_bad, unusable, warn_bad_line
from batcher.journal.times import epoch

__all__ = [
    "AMBIGUOUS",
    "CONFIRMED",
    "FAILED",
    "RETRYABLE",
    "SKIPPED",
    "STATUS_CODE",
    "SUCCEEDED",
    "Ambiguous",
    "LineHook",
    "ReportIndex",
]

#: A status as a small int (its place in :data:`~batcher.entry.STATUSES`).
STATUS_CODE: dict[str, int] = {status: code for code, status in enumerate(STATUSES)}
SUCCEEDED, FAILED, SKIPPED = (STATUS_CODE[status] for status in STATUSES)
#: Flags above the two status bits of :attr:`ReportIndex.state`.
RETRYABLE, CONFIRMED, AMBIGUOUS = 4, 8, 16
_NO_DOUBT = math.nan

#: Called with ``(row, state, line)`` for every readable line, after the index took it in:
#: ``row`` is its entry's (new rows count up from 0), ``state`` the entry's status | flags.
LineHook = Callable[[int, int, dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """An entry in doubt: since when it may have executed (None when no line says)."""

    started_at: datetime | None


class ReportIndex:
    """The latest line of each entry of a report, keyed by a digest of its key.

    ``digest`` is :func:`~batcher.entry.local_key_digest` unless the caller compares with
    digests made elsewhere (resume passes :func:`~batcher.entry.key_digest`, which the
    manifest reader uses).

    >>> index = ReportIndex()
    >>> index.record("j1", "C", "succeeded"); index.record("j1", "C", "failed")
    >>> index.record("j2", "C", "succeeded")
    >>> index.record("j3", "C", "failed", ambiguous=True, started_at="2026-11-24T13:00:00Z")
    >>> index.record("j3", "C", "failed", ambiguous=True, started_at="2026-11-24T14:00:00Z")
    >>> local_key_digest("j1", "C") in index, local_key_digest("j2", "C") in index, len(index)
    (False, True, 1)
    >>> index.ambiguous(local_key_digest("j3", "C")).started_at.isoformat()
    '2026-11-24T13:00:00+00:00'
    """

    __slots__ = (
        "_digest",
        "_mask",
        "_slots",
        "ambiguous_count",
        "count",
        "done",
        "doubt",
        "lineno",
        "lines",
        "offset",
        "state",
    )  # fmt: skip

    def __init__(
        self, capacity: int = 1024, digest: Callable[[str, str], int] = local_key_digest
    ) -> None:
        # Slot i holds a key digest at 2i (0 = empty) and its row at 2i + 1.
        self._slots = array("Q", [0]) * (2 * max(2, 1 << (capacity - 1).bit_length()))
        self._mask = len(self._slots) - 2
        self._digest = digest
        #: Entries (rows), readable lines, entries done, entries in doubt.
        self.count = self.lines = self.done = self.ambiguous_count = 0
        #: Per row: the latest line's number and byte offset, its status code | flags, and
        #: since when (epoch seconds) the entry is in doubt (NaN: it is not).
        self.lineno = array("I")
        self.offset = array("Q")
        self.state = array("B")
        self.doubt = array("d")

    @classmethod
    def read(
        cls,
        source: Path | IO[bytes],
        *,
        on_bad_line: BadLineHandler | None = None,
        hook: LineHook | None = None,
        digest: Callable[[str, str], int] = local_key_digest,
        missing_ok: bool = False,
    ) -> ReportIndex:
        """Index a report: a path, or a binary stream from its start (such as
        :meth:`ReportWriter.reader() <batcher.journal.ReportWriter.reader>`). Unreadable
        lines go to ``on_bad_line`` (default: a warning in the log); a missing report is
        empty with ``missing_ok``, else :class:`~batcher.journal.ReportReadError`."""
        if isinstance(source, Path):
            if missing_ok and not source.exists():
                return cls(digest=digest)
            with reading(source) as stream:
                return cls._read(stream, on_bad_line, hook, digest)
        return cls._read(source, on_bad_line, hook, digest)

    @classmethod
    def _read(
        cls,
        stream: IO[bytes],
        on_bad_line: BadLineHandler | None,
        hook: LineHook | None,
        digest: Callable[[str, str], int],
    ) -> ReportIndex:
        try:
            size = os.fstat(stream.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            size = 0
        # Room for one entry per ~600 bytes (the writer's lines are 450-700) without growing.
        index = cls(max(1024, min(2 * size // 600, 1 << 22)), digest)
        bad = on_bad_line or warn_bad_line
        loads, decode_error, add = orjson.loads, orjson.JSONDecodeError, index._add
        offset = 0
        for lineno, raw in enumerate(stream, start=1):
            start, offset = offset, offset + len(raw)
            try:
                line = loads(raw)
            except decode_error:
                if raw.strip():
                    bad(lineno, torn_or_bad(raw, "not valid JSON"))
                continue
            why = unusable(line)
            if why is not None:
                bad(lineno, torn_or_bad(raw, why))
                continue
            row = add(line, lineno, start)
            if hook is not None:
                hook(row, index.state[row], line)
        return index

    def record(
        self,
        job_id: str,
        command: str,
        status: str,
        *,
        ambiguous: bool = False,
        started_at: str | None = None,
    ) -> None:
        """Take in one line given by its fields (what :meth:`read` does per line)."""
        line = {"job_id": job_id, "command": command, "status": status}
        self._add({**line, "ambiguous": ambiguous, "started_at": started_at}, 0, 0)

    def _add(self, line: dict[str, Any], lineno: int, offset: int) -> int:
        """Take in a line whose key and status were checked; return its entry's row."""
        self.lines += 1
        get = line.get
        code = STATUS_CODE[line["status"]]
        ambiguous = get("ambiguous") is True and code != SUCCEEDED
        state = (
            code
            | (RETRYABLE if get("retryable") is True else 0)
            | (CONFIRMED if get("confirmed_by") else 0)
            | (AMBIGUOUS if ambiguous else 0)
        )
        key = self._digest(line["job_id"], line["command"]) or 1
        slots, mask = self._slots, self._mask
        slot = (key << 1) & mask
        found = slots[slot]
        while found and found != key:
            slot = (slot + 2) & mask
            found = slots[slot]
        if found:
            row = slots[slot + 1]
            before = self.state[row]
            doubt = self.doubt[row]
            self.done -= before & 3 == SUCCEEDED
            self.ambiguous_count -= bool(before & AMBIGUOUS)
        else:
            row = self._new_row(slot, key)
            doubt = _NO_DOUBT
        if ambiguous:
            doubt = _earliest(doubt, get("doubt_since"), get("started_at"))
        elif code != SKIPPED:  # a skipped line sent nothing: a doubt stands
            doubt = _NO_DOUBT
        if code == SKIPPED and doubt == doubt and not ambiguous:
            state |= AMBIGUOUS  # still in doubt from an earlier line
        self.lineno[row], self.offset[row], self.state[row], self.doubt[row] = (
            lineno, offset, state, doubt,
        )  # fmt: skip
        self.done += code == SUCCEEDED
        self.ambiguous_count += bool(state & AMBIGUOUS)
        return row

    def _new_row(self, slot: int, key: int) -> int:
        row = self.count
        self.count += 1
        self._slots[slot], self._slots[slot + 1] = key, row
        for column in (self.lineno, self.offset, self.state):
            column.append(0)
        self.doubt.append(_NO_DOUBT)
        if self.count * 4 > len(self._slots):  # at most half full
            self._grow()
        return row

    def _grow(self) -> None:
        old = self._slots
        slots = self._slots = array("Q", [0]) * (2 * len(old))
        mask = self._mask = len(slots) - 2
        for i in range(0, len(old), 2):
            key = old[i]
            if key:
                slot = (key << 1) & mask
                while slots[slot]:
                    slot = (slot + 2) & mask
                slots[slot], slots[slot + 1] = key, old[i + 1]

    def row(self, digest: int) -> int | None:
        """The row of the entry with this key digest, or None if the report has none."""
        key = digest or 1
        slots, mask = self._slots, self._mask
        slot = (key << 1) & mask
        while slots[slot]:
            if slots[slot] == key:
                return slots[slot + 1]
            slot = (slot + 2) & mask
        return None

    def __contains__(self, digest: object) -> bool:
        """Whether the entry with this key digest is done (its latest line succeeded)."""
        row = self.row(digest) if isinstance(digest, int) else None
        return row is not None and self.state[row] & 3 == SUCCEEDED

    def ambiguous(self, digest: int) -> Ambiguous | None:
        """The entry's doubt (since when it may have executed), or None if it has none."""
        row = self.row(digest)
        if row is None or not self.state[row] & AMBIGUOUS:
            return None
        when = self.doubt[row]
        return Ambiguous(None if math.isnan(when) else datetime.fromtimestamp(when, UTC))

    def ambiguous_keys(self) -> Iterator[int]:
        """The digests of the entries in doubt."""
        slots, state = self._slots, self.state
        for i in range(0, len(slots), 2):
            if slots[i] and state[slots[i + 1]] & AMBIGUOUS:
                yield slots[i]

    def doubts(self) -> dict[int, datetime]:
        """Entries in doubt whose earliest moment is known: digest → that moment (UTC)."""
        found = {}
        for digest in self.ambiguous_keys():
            doubt = self.ambiguous(digest)
            if doubt is not None and doubt.started_at is not None:
                found[digest] = doubt.started_at
        return found

    @property
    def entries(self) -> int:
        """Distinct entries in the report."""
        return self.count

    def __len__(self) -> int:
        """Entries done."""
        return self.done

    def __bool__(self) -> bool:
        """True when resuming has anything to skip or to check."""
        return self.done > 0 or self.ambiguous_count > 0


def _earliest(doubt: float, *stamps: Any) -> float:
    """The earliest of ``doubt`` (NaN: none yet) and the times among ``stamps``."""
    for stamp in stamps:
        when = epoch(stamp)
        if when is not None and not when >= doubt:  # NaN compares false: any time wins
            doubt = when
    return doubt
