"""The summary's one pass over a report: the latest line of each entry, in a few bytes.

A million-line report must be summarised in seconds and in bounded memory, so the pass is
one tight loop with no call per line that it can avoid:

* each entry is found by a 64-bit hash of its key in an open-addressing table (Python's
  own string hash: nothing here outlives the process);
* what a summary counts of a line (status, retryable, confirmed, ambiguous, command,
  failure group, attempts, HTTP status) is kept as the id of its *signature*, the tuple of
  those fields as written: a million lines make a few dozen distinct signatures, so one
  dict lookup replaces checking and storing eight fields per line. Signatures are checked
  and normalised once each, at the end (:meth:`LatestRows.kinds`). Should a report hold
  more than :data:`MAX_SIGNATURES` distinct ones, each row's normalised kind is packed into
  one integer instead, and the pass goes on that way;
* durations and line numbers go to typed arrays, grown a chunk at a time.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batcher.entry import STATUSES, local_key_digest
from batcher.journal.compact import Interner
from batcher.journal.reader import BadLineHandler, reading, torn_or_bad, unusable
from batcher.journal.times import RunSpan
from batcher.review.reasons import ReasonGroups

#: Distinct signatures kept before rows switch to packed kinds (ids fit 16 bits).
MAX_SIGNATURES = 1 << 16
STATUS_CODE: dict[str, int] = {status: code for code, status in enumerate(STATUSES)}
SUCCEEDED, FAILED, SKIPPED = (STATUS_CODE[status] for status in STATUSES)
RETRYABLE, CONFIRMED, AMBIGUOUS = 1, 2, 4
NO_GROUP = -1
#: A duration that is not there (no number written, or the line was skipped).
MISSING = -math.inf

#: A row's kind: (status code, flags, command index, group, attempts, HTTP status).
Kind = tuple[int, int, int, int, int, int]
#: Keys here are Python's own string hash (SipHash, 64 bits): several times faster than
#: :func:`batcher.entry.key_digest`, and safe because they never leave this process (one
#: read of one report); digests that are compared across processes use ``keys``.
_CHUNK = 1 << 16
_NUMBERS = (float, int)
_PLAIN = (str, int, bool)


def _small(value: Any) -> int:
    return value if value.__class__ is int and 0 <= value <= 0xFFFF else 0


def _pack(kind: Kind) -> int:
    code, flags, command, group, attempts, http = kind
    return code | flags << 2 | command << 5 | (group + 1) << 16 | attempts << 27 | http << 43


def _unpack(packed: int) -> Kind:
    return (
        packed & 3,
        packed >> 2 & 7,
        packed >> 5 & 0x7FF,
        (packed >> 16 & 0x7FF) - 1,
        packed >> 27 & 0xFFFF,
        packed >> 43 & 0xFFFF,
    )


class LatestRows:
    """The latest line of each entry: a row per entry, its kind, durations, line number."""

    def __init__(self, capacity: int, commands: Interner) -> None:
        # Slot i holds a key hash at 2i (0 = empty) and its row at 2i + 1: one cache line
        # for both, in a table too big for the cache.
        self.slots = array("Q", [0]) * (2 * capacity)
        self.count = 0
        self.kind = array("H")  # signature id, or (packed: "Q") the row's packed kind
        # Durations of the latest line; MISSING when not measured, or when that line was
        # skipped (never sent: its durations would only dilute the latency).
        self.duration = array("d")
        self.wait = array("d")
        self.lineno = array("I")
        self.signatures: dict[tuple[Any, ...], int] = {}
        self.signature_list: list[tuple[Any, ...]] = []
        self.packed = False
        self._commands = commands
        self._command_index: dict[str, int] = {}

    def new_row(self, slot: int, key: int) -> int:
        """Add a row for ``key`` at ``slot`` (an even index, found empty); return it."""
        row = self.count
        self.count += 1
        self.slots[slot], self.slots[slot + 1] = key, row
        if row == len(self.kind):
            for column in (self.kind, self.duration, self.wait, self.lineno):
                column.extend(array(column.typecode, [0]) * _CHUNK)
        if self.count * 4 > len(self.slots):  # at most half full
            self._grow()
        return row

    def finish(self) -> None:
        """After the pass: drop the key table and the rows past the last one used."""
        self.slots = array("Q")
        for column in (self.kind, self.duration, self.wait, self.lineno):
            del column[self.count :]

    def _grow(self) -> None:
        old = self.slots
        slots = self.slots = array("Q", [0]) * (2 * len(old))
        mask = len(slots) - 2  # even indexes only
        for i in range(0, len(old), 2):
            key = old[i]
            if key:
                slot = (key << 1) & mask
                while slots[slot]:
                    slot = (slot + 2) & mask
                slots[slot], slots[slot + 1] = key, old[i + 1]

    def new_signature(self, signature: tuple[Any, ...]) -> int:
        """The id of a signature not seen yet (or, once there are too many, switch to
        packed kinds and return the signature's packed kind)."""
        if self.packed:
            return _pack(self.normalise(signature))
        if len(self.signature_list) >= MAX_SIGNATURES:
            self._switch_to_packed()
            return _pack(self.normalise(signature))
        index = self.signatures[signature] = len(self.signature_list)
        self.signature_list.append(signature)
        return index

    def _switch_to_packed(self) -> None:
        kinds = [_pack(self.normalise(signature)) for signature in self.signature_list]
        packed = array("Q", [0]) * len(self.kind)
        for row in range(self.count):
            packed[row] = kinds[self.kind[row]]
        self.kind = packed
        self.signatures.clear()
        self.signature_list.clear()
        self.packed = True

    def normalise(self, signature: tuple[Any, ...]) -> Kind:
        status, retryable, confirmed_by, ambiguous, command, group, attempts, http = signature
        index = self._command_index.get(command)
        if index is None:
            index = self._command_index[command] = self._commands(command)
        flags = (
            (RETRYABLE if retryable is True else 0)
            | (CONFIRMED if confirmed_by else 0)
            | (AMBIGUOUS if ambiguous is True else 0)
        )
        return (STATUS_CODE[status], flags, index, group, _small(attempts), _small(http))

    def row_kind(self, row: int) -> Kind:
        value = self.kind[row]
        return _unpack(value) if self.packed else self.normalise(self.signature_list[value])

    def kinds(self) -> dict[Kind, int]:
        """How many rows there are of each kind."""
        counts: dict[Kind, int] = {}
        for value, n in Counter(self.kind).items():
            kind = _unpack(value) if self.packed else self.normalise(self.signature_list[value])
            counts[kind] = counts.get(kind, 0) + n
        return counts

    def failures(self, examples: int) -> dict[tuple[int, int, int], tuple[int, list[int]]]:
        """Failed and skipped rows by (status code, group, command index): how many, and the
        line numbers of up to ``examples`` of them."""
        counts: dict[tuple[int, int, int], int] = {}
        lines: dict[tuple[int, int, int], list[int]] = {}
        if self.packed:
            keys: list[tuple[int, int, int] | None] = []
            for value in self.kind:
                code, _, command, group, _, _ = _unpack(value)
                keys.append(None if code == SUCCEEDED else (code, group, command))
            key_of = keys
            values: Iterable[int] = range(self.count)
        else:
            key_of = []
            for signature in self.signature_list:
                code, _, command, group, _, _ = self.normalise(signature)
                key_of.append(None if code == SUCCEEDED else (code, group, command))
            values = self.kind
        for row, value in enumerate(values):
            key = key_of[value]
            if key is None:
                continue
            counts[key] = counts.get(key, 0) + 1
            chosen = lines.setdefault(key, [])
            if len(chosen) < examples:
                chosen.append(self.lineno[row])
        return {key: (n, lines[key]) for key, n in counts.items()}


@dataclass(slots=True)
class ScanResult:
    lines: int
    rows: LatestRows
    runs: dict[str, RunSpan] = field(default_factory=dict)


def scan(
    path: Path,
    *,
    commands: Interner,
    groups: dict[int, ReasonGroups],
    runs: Interner,
    on_bad_line: BadLineHandler,
    observe: Callable[[dict[str, Any]], None] | None,
) -> ScanResult:
    """Read every line of the report once; keep the latest line of each entry."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    rows = LatestRows(_capacity_for(size), commands)
    run_spans: list[RunSpan] = []
    # Per run, the earliest and latest of the writer's own stamps, compared as text
    # (the rest go through RunSpan.add).
    firsts: list[str] = []
    lasts: list[str] = []
    run_index: dict[Any, int] = {}
    last_run_id: Any = None
    last_run = -1
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    statuses, numbers, text = STATUS_CODE, _NUMBERS, str
    signatures = rows.signatures
    slots = rows.slots
    mask = len(slots) - 2  # even indexes only
    kinds, durations, waits, linenos = rows.kind, rows.duration, rows.wait, rows.lineno
    lines = 0
    with reading(path) as stream:
        for lineno, raw in enumerate(stream, start=1):
            try:
                line = loads(raw)
            except decode_error:
                if raw.strip():
                    on_bad_line(lineno, torn_or_bad(raw, "not valid JSON"))
                continue
            if not (
                line.__class__ is dict
                and (job_id := line.get("job_id")).__class__ is text
                and (command := line.get("command")).__class__ is text
                and (status := line.get("status")).__class__ is text
                and status in statuses
            ):
                on_bad_line(lineno, torn_or_bad(raw, unusable(line) or "not a report line"))
                continue
            lines += 1
            get = line.get
            key = local_key_digest(job_id, command)
            slot = (key << 1) & mask
            found = slots[slot]
            while found and found != key:
                slot = (slot + 2) & mask
                found = slots[slot]
            if found:
                row = slots[slot + 1]
            else:
                row = rows.new_row(slot, key)
                slots = rows.slots
                mask = len(slots) - 2
                kinds, durations, waits, linenos = rows.kind, rows.duration, rows.wait, rows.lineno
            signature: tuple[Any, ...] = (
                status,
                get("retryable"),
                get("confirmed_by"),
                get("ambiguous"),
                command,
                NO_GROUP if status == "succeeded" else groups[statuses[status]].add(line, row),
                get("attempts"),
                get("http_status"),
            )
            try:
                kind = signatures.get(signature) if not rows.packed else None
            except TypeError:  # a field holds a list or an object: as if it were absent
                signature = tuple(
                    v if v.__class__ in (text, int, bool) else None for v in signature
                )
                kind = signatures.get(signature) if not rows.packed else None
            if kind is None:
                kind = rows.new_signature(signature)
                kinds = rows.kind
            kinds[row] = kind
            if status == "skipped":
                durations[row] = waits[row] = MISSING
            else:
                value = get("duration_ms")
                durations[row] = value if value.__class__ in numbers else MISSING
                value = get("wait_ms")
                waits[row] = value if value.__class__ in numbers else MISSING
            linenos[row] = lineno

            run_id = get("run_id")
            found_run: int | None = last_run
            if run_id != last_run_id or run_id.__class__ is not text:
                found_run = (
                    run_index.get(run_id) if run_id.__class__ is text or run_id is None else None
                )
            if found_run is None:
                run = runs(run_id if isinstance(run_id, str) and run_id else "(none)")
                if run == len(run_spans):
                    run_spans.append(RunSpan())
                    firsts.append("~")  # after every stamp
                    lasts.append("")
                if run_id.__class__ is text or run_id is None:
                    run_index[run_id] = run
            else:
                run = found_run
            last_run_id, last_run = run_id, run
            started, finished = get("started_at"), get("finished_at")
            if (
                started.__class__ is text
                and finished.__class__ is text
                and len(started) == len(finished) == 24
                and started[23] == finished[23] == "Z"
            ):
                if started < firsts[run]:
                    firsts[run] = started
                if finished > lasts[run]:
                    lasts[run] = finished
                run_spans[run].lines += 1
            else:
                run_spans[run].add(started, finished)
            if observe is not None:
                observe(line)
    rows.finish()
    for span, first, last in zip(run_spans, firsts, lasts, strict=True):
        span.merge(RunSpan(0, first if first != "~" else None, last or None))
    names = ["(other)" if name is None else name for name in runs.names]
    return ScanResult(lines, rows, dict(zip(names, run_spans, strict=True)))


def _capacity_for(size: int) -> int:
    """Table slots (a power of two) for a report of ``size`` bytes: one entry per ~700 bytes
    (the writer's lines are 450-700) fits at most half full, without growing; at most 4M
    slots (64 MB) up front."""
    wanted = max(1024, min(2 * size // 700, 1 << 22))
    return 1 << (wanted - 1).bit_length()
