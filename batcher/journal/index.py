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
from collections.abc import Callable, Iterable, Iterator
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
_CHUNK = 1 << 16

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
    manifest reader uses). ``positions`` keeps each latest line's number and offset
    (selections and summaries re-read lines; resume does not).

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
        "_digest", "_keys", "_mask", "_rows", "ambiguous_count", "count", "done", "doubt",
        "lineno", "lines", "offset", "positions", "state",
    )  # fmt: skip

    def __init__(
        self,
        capacity: int = 1024,
        digest: Callable[[str, str], int] = local_key_digest,
        *,
        positions: bool = True,
    ) -> None:
        # Open addressing, linear probing, at most 2/3 full: a key digest (0 = empty slot)
        # and its row, 12 bytes a slot.
        size = 1 << max(2, (capacity * 3 // 2).bit_length())
        self._keys = array("Q", [0]) * size
        self._rows = array("I", [0]) * size
        self._mask = size - 1
        self._digest = digest
        self.positions = positions
        #: Entries (rows), readable lines, entries done, entries in doubt.
        self.count = self.lines = self.done = self.ambiguous_count = 0
        #: Per row: the latest line's status code | flags; with ``positions`` its number
        #: and byte offset. Since when (epoch seconds, NaN: unknown) each row in doubt is.
        self.state = array("B")
        self.lineno = array("I")
        self.offset = array("Q")
        self.doubt: dict[int, float] = {}

    @classmethod
    def read(
        cls,
        source: Path | IO[bytes],
        *,
        on_bad_line: BadLineHandler | None = None,
        hook: LineHook | None = None,
        digest: Callable[[str, str], int] = local_key_digest,
        positions: bool = True,
        missing_ok: bool = False,
    ) -> ReportIndex:
        """Index a report: a path, or a binary stream from its start (such as
        :meth:`ReportWriter.reader() <batcher.journal.ReportWriter.reader>`). Unreadable
        lines go to ``on_bad_line`` (default: a warning in the log); a missing report is
        empty with ``missing_ok``, else :class:`~batcher.journal.ReportReadError`."""
        if isinstance(source, Path):
            if missing_ok and not source.exists():
                return cls(digest=digest, positions=positions)
            with reading(source) as stream:
                return cls.read(stream, on_bad_line=on_bad_line, hook=hook, digest=digest,
                                positions=positions)  # fmt: skip
        try:
            size = os.fstat(source.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            size = 0
        # Room for one entry per ~600 bytes (the writer's lines are 450-700) without growing.
        index = cls(max(1024, min(size // 600, 1 << 22)), digest, positions=positions)
        index.take(source, on_bad_line=on_bad_line or warn_bad_line, hook=hook)
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
        """Take in one line given by its fields (as :meth:`read` takes each line)."""
        line = {"job_id": job_id, "command": command, "status": status,
                "ambiguous": ambiguous, "started_at": started_at}  # fmt: skip
        self.take([orjson.dumps(line) + b"\n"], on_bad_line=warn_bad_line)

    def take(
        self,
        stream: Iterable[bytes],
        *,
        on_bad_line: BadLineHandler,
        hook: LineHook | None = None,
    ) -> None:
        """Take in lines (bytes, each with its newline), the later ones winning."""
        loads, decode_error, codes, text = orjson.loads, orjson.JSONDecodeError, STATUS_CODE, str
        digest_of, positions = self._digest, self.positions
        keys, rows, mask = self._keys, self._rows, self._mask
        state_of, lineno_of, offset_of, doubt_of = self.state, self.lineno, self.offset, self.doubt
        lines = done = in_doubt = offset = 0
        for lineno, raw in enumerate(stream, start=1):
            start, offset = offset, offset + len(raw)
            try:
                line = loads(raw)
            except decode_error:
                if raw.strip():
                    on_bad_line(lineno, torn_or_bad(raw, "not valid JSON"))
                continue
            # The checks of unusable(), inlined for the common case: this runs per line.
            if not (
                line.__class__ is dict
                and (job_id := line.get("job_id")).__class__ is text
                and (command := line.get("command")).__class__ is text
                and (code := codes.get(line.get("status"))) is not None  # type: ignore[arg-type]
            ):
                on_bad_line(lineno, torn_or_bad(raw, unusable(line) or "not a report line"))
                continue
            lines += 1
            get = line.get
            state = code | (RETRYABLE if get("retryable") is True else 0)
            state |= CONFIRMED if get("confirmed_by") else 0
            ambiguous = code != SUCCEEDED and get("ambiguous") is True
            key = digest_of(job_id, command) or 1
            slot = key & mask
            found = keys[slot]
            while found and found != key:
                slot = (slot + 1) & mask
                found = keys[slot]
            if found:
                row = rows[slot]
                before = state_of[row]
                done -= before & 3 == SUCCEEDED
                in_doubt -= before & AMBIGUOUS != 0
            else:
                row = self._new_row(slot, key)
                keys, rows, mask = self._keys, self._rows, self._mask
            if ambiguous or doubt_of:
                state = self._doubt(row, state, ambiguous, line)
            state_of[row] = state
            if positions:
                lineno_of[row], offset_of[row] = lineno, start
            done += code == SUCCEEDED
            in_doubt += state & AMBIGUOUS != 0
            if hook is not None:
                hook(row, state, line)
        self.lines += lines
        self.done += done
        self.ambiguous_count += in_doubt
        for column in (self.state, self.lineno, self.offset):  # the rows used, no more
            del column[self.count :]

    def _new_row(self, slot: int, key: int) -> int:
        row = self.count
        self.count = row + 1
        self._keys[slot], self._rows[slot] = key, row
        if row == len(self.state):  # room for more rows, a chunk at a time
            for column in (self.state, self.lineno, self.offset)[: 3 if self.positions else 1]:
                column.extend(array(column.typecode, [0]) * _CHUNK)
        if row * 3 >= 2 * len(self._keys):
            self._grow()
        return row

    def _doubt(self, row: int, state: int, ambiguous: bool, line: dict[str, Any]) -> int:
        """The entry's state with its doubt: an ambiguous line starts it or moves it to an
        earlier moment, a skipped line (nothing sent) leaves it, any other line ends it."""
        if ambiguous:
            since = self.doubt.get(row, _NO_DOUBT)
            self.doubt[row] = _earliest(since, line.get("doubt_since"), line.get("started_at"))
            return state | AMBIGUOUS
        if state & 3 != SKIPPED:
            self.doubt.pop(row, None)
        elif row in self.doubt:
            return state | AMBIGUOUS
        return state

    def _grow(self) -> None:
        old = zip(self._keys, self._rows, strict=True)
        size = 2 * len(self._keys)
        keys = self._keys = array("Q", [0]) * size
        rows = self._rows = array("I", [0]) * size
        mask = self._mask = size - 1
        for key, row in old:
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot], rows[slot] = key, row

    def row(self, digest: int) -> int | None:
        """The row of the entry with this key digest, or None if the report has none."""
        key = digest or 1
        keys, mask = self._keys, self._mask
        slot = key & mask
        while keys[slot]:
            if keys[slot] == key:
                return self._rows[slot]
            slot = (slot + 1) & mask
        return None

    def __contains__(self, digest: object) -> bool:
        """Whether the entry with this key digest is done (its latest line succeeded)."""
        if digest.__class__ is not int:
            return False
        # row(), inlined: a resumed run asks this once per manifest entry.
        key, keys, mask = digest or 1, self._keys, self._mask
        slot = key & mask
        while found := keys[slot]:
            if found == key:
                return self.state[self._rows[slot]] & 3 == SUCCEEDED
            slot = (slot + 1) & mask
        return False

    def ambiguous(self, digest: int) -> Ambiguous | None:
        """The entry's doubt (since when it may have executed), or None if it has none."""
        row = self.row(digest)
        if row is None or not self.state[row] & AMBIGUOUS:
            return None
        when = self.doubt.get(row, _NO_DOUBT)
        return Ambiguous(None if math.isnan(when) else datetime.fromtimestamp(when, UTC))

    def ambiguous_keys(self) -> Iterator[int]:
        """The digests of the entries in doubt."""
        if not self.ambiguous_count:
            return
        state = self.state
        for key, row in zip(self._keys, self._rows, strict=True):
            if key and state[row] & AMBIGUOUS:
                yield key

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
