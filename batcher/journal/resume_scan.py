"""What ``--resume`` needs from a report, read in one fast pass in little memory.

For each entry (by :func:`~batcher.entry.key_digest`) its LATEST line decides: ``succeeded``
means done (not sent again); ``failed`` with ``ambiguous: true`` means its first attempt may
have executed, so the runner checks the job's record before sending it again, from that
line's ``started_at``; anything else is sent again.

A million-line report is read in about two seconds, in about 20 MB: a line in the layout of
batcher's own writer is recognised from its first bytes (its key and status lead the line,
unescaped) and its last (``"ambiguous":true}`` or not); only the rare ambiguous line, and
lines of another layout or broken ones, are parsed whole.
Per entry the state keeps 9 bytes in an open-addressing table (digest, code); ambiguous
entries also keep their ``started_at`` in a second, small one.
"""

from __future__ import annotations

import math
import os
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from batcher.entry import KeyTable, bytes_digest, key_digest
from batcher.journal.reader import BadLineHandler, reading, torn_or_bad, unusable, warn_bad_line

__all__ = ["Ambiguous", "ResumeState"]

_OTHER, _DONE, _AMBIGUOUS = 0, 1, 2

#: A line as batcher writes it: ``{"job_id":"…","command":"…","status":"…"`` first, with
#: no escapes in the key (a job id is ``[A-Za-z0-9_-]``, a command printable ASCII).
_FAST = re.compile(
    rb'\{"job_id":"([A-Za-z0-9_-]{1,64})",'
    rb'"command":"([\x20\x21\x23-\x5b\x5d-\x7e]{1,64})",'
    rb'"status":"(succeeded|failed|skipped)"'
)
#: How the writer ends an ambiguous line (``ambiguous`` is the schema's last field); such a
#: line is parsed whole, for its ``started_at``.
_AMBIGUOUS_TAIL = b'"ambiguous":true}\n'


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """An entry whose latest line is a failure that may have executed (``ambiguous: true``)."""

    #: When its first attempt was sent (the line's ``started_at``), or None if unknown.
    started_at: datetime | None


class ResumeState:
    """Entries whose latest line succeeded, and those whose latest line is ambiguous.

    >>> state = ResumeState()
    >>> state.record("j1", "C", "succeeded"); state.record("j1", "C", "failed")
    >>> state.record("j2", "C", "succeeded")
    >>> state.record("j3", "C", "failed", ambiguous=True, started_at="2026-11-24T13:00:00Z")
    >>> key_digest("j1", "C") in state, key_digest("j2", "C") in state, len(state)
    (False, True, 1)
    >>> state.ambiguous(key_digest("j3", "C")).started_at.isoformat()
    '2026-11-24T13:00:00+00:00'
    >>> state.ambiguous(key_digest("j2", "C")) is None, state.ambiguous_count
    (True, 1)
    """

    __slots__ = ("_amb", "_amb_rows", "_amb_time", "_codes", "_done", "_keys", "_mask", "_size")

    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(capacity)
        self._done = 0
        self._amb = 0
        self._amb_rows = KeyTable()  # digest -> row in _amb_time (kept when superseded)
        self._amb_time = array("d")  # epoch seconds of started_at, NaN = unknown

    def _alloc(self, capacity: int) -> None:
        self._mask = capacity - 1  # a power of two
        self._keys = array("Q", [0]) * capacity  # 0 = empty slot
        self._codes = array("B", [0]) * capacity
        self._size = 0

    @classmethod
    def read(
        cls, source: Path | IO[bytes], *, on_bad_line: BadLineHandler | None = None
    ) -> ResumeState:
        """Read a report (a path, or a binary stream such as
        :meth:`ReportWriter.reader() <batcher.journal.ReportWriter.reader>`).

        A missing report has nothing done (``--resume`` on a first run simply starts it).
        Unreadable lines go to ``on_bad_line`` (default: a warning in the log).
        """
        if isinstance(source, Path):
            if not source.exists():
                return cls()
            with reading(source) as stream:
                state = cls(_capacity_for(os.fstat(stream.fileno()).st_size))
                state._read(stream, on_bad_line or warn_bad_line)
            return state
        try:
            size = os.fstat(source.fileno()).st_size
        except (OSError, AttributeError, ValueError):
            size = 0
        state = cls(_capacity_for(size))
        state._read(source, on_bad_line or warn_bad_line)
        return state

    def _read(self, stream: IO[bytes], on_bad_line: BadLineHandler) -> None:
        fast, ambiguous_tail = _FAST.match, _AMBIGUOUS_TAIL
        keys, codes, mask = self._keys, self._codes, self._mask
        for lineno, raw in enumerate(stream, start=1):
            found = fast(raw)
            if found is None or not raw.endswith(b"}\n") or raw.endswith(ambiguous_tail):
                if raw.strip():
                    self._slow(lineno, raw, on_bad_line)
                    keys, codes, mask = self._keys, self._codes, self._mask
                continue
            job, command, status = found.group(1, 2, 3)
            digest = bytes_digest(job + b"\x00" + command) or 1  # key_digest, from bytes
            code = _DONE if status == b"succeeded" else _OTHER
            skipped = status == b"skipped"
            # An open-addressing insert, inlined: this loop runs once per line.
            slot = digest & mask
            member = keys[slot]
            while member and member != digest:
                slot = (slot + 1) & mask
                member = keys[slot]
            if member:
                before = codes[slot]
                if skipped and before == _AMBIGUOUS:
                    continue  # nothing was sent: the earlier doubt stands
                self._done += (code == _DONE) - (before == _DONE)
                self._amb -= before == _AMBIGUOUS
                codes[slot] = code
                continue
            keys[slot] = digest
            codes[slot] = code
            self._done += code == _DONE
            self._size += 1
            if self._size * 2 > mask:
                self._grow()
                keys, codes, mask = self._keys, self._codes, self._mask

    def _slow(self, lineno: int, raw: bytes, on_bad_line: BadLineHandler) -> None:
        """A line parsed whole: another layout, an ambiguous line, or a bad one."""
        try:
            record: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            on_bad_line(lineno, torn_or_bad(raw, "not valid JSON"))
            return
        why = unusable(record)
        if why is not None:
            on_bad_line(lineno, torn_or_bad(raw, why))
            return
        self.record(
            record["job_id"],
            record["command"],
            record["status"],
            ambiguous=record.get("ambiguous") is True,
            started_at=record.get("started_at"),
        )

    def record(
        self,
        job_id: str,
        command: str,
        status: str,
        *,
        ambiguous: bool = False,
        started_at: str | None = None,
    ) -> None:
        """Note a line; the latest line of an entry wins."""
        digest = key_digest(job_id, command) or 1
        code = _DONE if status == "succeeded" else _OTHER
        if status == "skipped" and not ambiguous and self._code(digest) == _AMBIGUOUS:
            return  # nothing was sent: the earlier doubt stands
        if ambiguous and status in ("failed", "skipped"):
            code = _AMBIGUOUS
            row = self._amb_rows.setdefault(digest, len(self._amb_time))
            when = _epoch(started_at)
            if row == len(self._amb_time):
                self._amb_time.append(when)
            else:
                self._amb_time[row] = when
        slot = self._slot(digest)
        if self._keys[slot] == digest:
            before = self._codes[slot]
            self._done += (code == _DONE) - (before == _DONE)
            self._amb += (code == _AMBIGUOUS) - (before == _AMBIGUOUS)
            self._codes[slot] = code
            return
        self._keys[slot] = digest
        self._codes[slot] = code
        self._done += code == _DONE
        self._amb += code == _AMBIGUOUS
        self._size += 1
        if self._size * 2 > self._mask:
            self._grow()

    def _slot(self, digest: int) -> int:
        keys, mask = self._keys, self._mask
        slot = digest & mask
        while keys[slot] and keys[slot] != digest:
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        old = zip(self._keys, self._codes, strict=True)
        self._alloc((self._mask + 1) * 2)
        keys, codes, mask = self._keys, self._codes, self._mask
        for digest, code in old:
            if digest:
                slot = digest & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = digest
                codes[slot] = code
                self._size += 1

    def _code(self, digest: int) -> int:
        digest = digest or 1
        slot = self._slot(digest)
        return self._codes[slot] if self._keys[slot] == digest else _OTHER

    def __contains__(self, digest: object) -> bool:
        """Whether the entry with this key digest is done (its latest line succeeded)."""
        return isinstance(digest, int) and self._code(digest) == _DONE

    def ambiguous(self, digest: int) -> Ambiguous | None:
        """The entry's ambiguous latest line (when its first attempt was sent), or None."""
        if self._code(digest) != _AMBIGUOUS:
            return None
        row = self._amb_rows.get(digest or 1)
        when = math.nan if row is None else self._amb_time[row]
        return Ambiguous(None if math.isnan(when) else datetime.fromtimestamp(when, UTC))

    def ambiguous_keys(self) -> Iterator[int]:
        """The digests of the entries whose latest line is ambiguous."""
        for digest, code in zip(self._keys, self._codes, strict=True):
            if code == _AMBIGUOUS:
                yield digest

    @property
    def ambiguous_count(self) -> int:
        """Entries whose latest line is ambiguous."""
        return self._amb

    @property
    def entries(self) -> int:
        """Distinct entries seen in the report."""
        return self._size

    def __len__(self) -> int:
        """Entries done."""
        return self._done

    def __bool__(self) -> bool:
        """True when resuming has anything to skip or to check."""
        return self._done > 0 or self._amb > 0


def _capacity_for(size: int) -> int:
    """A table size for a report of ``size`` bytes: room for one entry per ~700 bytes (a
    line of the writer is 450-700) without growing, and at most 4M slots (36 MB) up front."""
    wanted = max(1024, min(2 * size // 700, 1 << 22))
    return 1 << (wanted - 1).bit_length()


def _epoch(value: str | None) -> float:
    if not isinstance(value, str):
        return math.nan
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return math.nan
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
