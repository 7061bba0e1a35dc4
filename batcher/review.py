"""Read a report back: a streaming summary, and the latest line of each entry.

A report may hold several lines for one entry (a failed line, then after ``--resume`` a
succeeded one); the LATEST line per ``(job_id, command)`` is the entry's state. Reports can
run to millions of lines, so nothing here keeps whole lines: per entry we keep a few numbers
in typed arrays, indexed through a dict of 64-bit key digests, and anything that needs the
lines themselves (examples, listings, exports) re-reads the file a second time.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from .outcome import ReportLine, Status
from .report import BadLineHandler, iter_report, key_digest

log = structlog.get_logger("batcher.review")

STATUSES: tuple[Status, ...] = ("succeeded", "failed", "skipped")
_CODE: dict[str, int] = {status: code for code, status in enumerate(STATUSES)}
_SUCCEEDED, _FAILED, _SKIPPED = 0, 1, 2

#: Distinct failure groups (and commands, runs) kept apart; the rest share an "other" bucket.
MAX_GROUPS = 1000
#: Bad lines remembered with their line number (all are counted).
MAX_BAD_LINES = 100
_OTHER = "(other)"
_NO_GROUP = -1


# -- percentiles in fixed memory ------------------------------------------------------------


class LogHistogram:
    """Quantiles of non-negative numbers in fixed memory, within ``relative_error`` of exact.

    A log-bucketed histogram (the DDSketch idea): bucket ``i`` counts the values in
    ``(gamma**(i-1), gamma**i]`` and answers with the bucket's midpoint, so every answer is
    within ``relative_error`` of the exact nearest-rank value. Durations from 1 µs to a day
    need under 2,000 buckets, however many values are added.

    >>> h = LogHistogram()
    >>> for v in range(1, 101):
    ...     h.add(float(v))
    >>> abs(h.quantile(0.9) - 90) <= 0.9
    True
    """

    def __init__(self, relative_error: float = 0.01) -> None:
        self._gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self._zeros = 0  # values too small to have a logarithm worth keeping
        self.count = 0
        self.total = 0.0
        self.max: float | None = None

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if self.max is None or value > self.max:
            self.max = value
        if value < 1e-9:
            self._zeros += 1
            return
        index = math.ceil(math.log(value) / self._log_gamma)
        self._buckets[index] = self._buckets.get(index, 0) + 1

    def quantile(self, q: float) -> float | None:
        """The nearest-rank ``q`` quantile (``0 < q <= 1``), or None when empty."""
        if not self.count:
            return None
        # round() keeps 0.9 * 10 from becoming rank 10 through float noise.
        rank = max(1, math.ceil(round(q * self.count, 9)))
        seen = self._zeros
        if rank <= seen:
            return 0.0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if seen >= rank:
                estimate = 2 * self._gamma**index / (self._gamma + 1)
                return min(estimate, self.max) if self.max is not None else estimate
        return self.max


# -- the summary ----------------------------------------------------------------------------


@dataclass(slots=True)
class ReasonGroup:
    """Entries whose latest line failed (or was skipped) for the same reason."""

    kind: str  #: "error_code", "failed_msg", "reason" or "other"
    label: str
    detail: str | None  #: the error_msg that came with an error_code
    count: int
    example_job_id: str | None
    example_command: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.label,
            "detail": self.detail,
            "count": self.count,
            "example_job_id": self.example_job_id,
            "example_command": self.example_command,
        }


@dataclass(slots=True)
class RunStats:
    """Every line a run wrote (not only latest ones): how many, and over what time."""

    lines: int = 0
    first_started_at: str | None = None
    last_finished_at: str | None = None
    _first: datetime | None = None
    _last: datetime | None = None

    def seconds(self) -> float | None:
        if self._first is None or self._last is None:
            return None
        return max(0.0, (self._last - self._first).total_seconds())

    def rate(self) -> float | None:
        seconds = self.seconds()
        return self.lines / seconds if seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "first_started_at": self.first_started_at,
            "last_finished_at": self.last_finished_at,
            "seconds": _round(self.seconds()),
            "rate_per_second": _round(self.rate()),
        }


@dataclass(slots=True)
class Summary:
    """What a report says, entry by entry (latest line per key) and run by run.

    ``to_dict()`` is the ``--format json`` document; :func:`render_text` the table.
    """

    path: str
    lines: int = 0
    status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    retryable_failed: int = 0
    by_command: dict[str, dict[str, int]] = field(default_factory=dict)
    failure_reasons: list[ReasonGroup] = field(default_factory=list)
    skip_reasons: list[ReasonGroup] = field(default_factory=list)
    http_status: dict[str, int] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    latency: LogHistogram = field(default_factory=LogHistogram)
    span: RunStats = field(default_factory=RunStats)
    runs: dict[str, RunStats] = field(default_factory=dict)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    bad_lines_total: int = 0

    @property
    def total(self) -> int:
        return sum(self.status.values())

    def to_dict(self, *, top: int = 20) -> dict[str, Any]:
        """The summary as one JSON-ready dict; ``top`` caps the reason lists (0 = all).

        >>> Summary(path="r.jsonl").to_dict()["failed"]
        0
        """
        latency = self.latency
        return {
            "report": self.path,
            "basis": "latest line per (job_id, command); attempts, http_status and "
            "latency_ms count latest lines only; span and runs count every line",
            "lines": self.lines,
            "total": self.total,
            **self.status,
            "retryable_failed": self.retryable_failed,
            "by_command": self.by_command,
            "failure_reasons": [g.to_dict() for g in _top(self.failure_reasons, top)],
            "failure_reasons_more": _more(self.failure_reasons, top),
            "skip_reasons": [g.to_dict() for g in _top(self.skip_reasons, top)],
            "skip_reasons_more": _more(self.skip_reasons, top),
            "http_status": self.http_status,
            "attempts": {str(k): v for k, v in self.attempts.items()},
            "latency_ms": {
                "count": latency.count,
                "mean": _round(latency.total / latency.count if latency.count else None),
                "p50": _round(latency.quantile(0.50)),
                "p90": _round(latency.quantile(0.90)),
                "p99": _round(latency.quantile(0.99)),
                "max": _round(latency.max),
            },
            "span": {
                "first_started_at": self.span.first_started_at,
                "last_finished_at": self.span.last_finished_at,
                "seconds": _round(self.span.seconds()),
            },
            "rate_per_second": _round(self.span.rate()),
            "runs": {run: stats.to_dict() for run, stats in self.runs.items()},
            "bad_lines": [{"line": n, "reason": why} for n, why in self.bad_lines],
            "bad_lines_total": self.bad_lines_total,
        }


def _top(groups: list[ReasonGroup], top: int) -> list[ReasonGroup]:
    return groups if top <= 0 else groups[:top]


def _more(groups: list[ReasonGroup], top: int) -> dict[str, int]:
    rest = [] if top <= 0 else groups[top:]
    return {"groups": len(rest), "entries": sum(g.count for g in rest)}


def _top_bad(bad: list[tuple[int, str]], top: int) -> list[tuple[int, str]]:
    return bad if top <= 0 else bad[:top]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


#: A manifest location in a reason, e.g. " (jobs.yaml:12)": one per entry, so it would
#: split every skip ("the job's earlier command X (jobs.yaml:12) did not succeed") apart.
_SOURCE_RE = re.compile(r" \([^()\s]+:\d+\)")


def failure_group(line: ReportLine) -> tuple[str, str]:
    """How a failed or skipped line is grouped: its error_code, else failed_msg, else reason.

    A reason loses any ``(file:line)`` it quotes, so skips group by cause, not by entry.

    >>> failure_group(ReportLine(job_id="j", command="C", status="failed", error_code="X.1"))
    ('error_code', 'X.1')
    >>> failure_group(ReportLine(job_id="j", command="C", status="skipped",
    ...                          reason="earlier command A (jobs.csv:7) did not succeed"))
    ('reason', 'earlier command A did not succeed')
    """
    if line.error_code:
        return "error_code", line.error_code
    if line.failed_msg:
        return "failed_msg", line.failed_msg
    if line.reason:
        return "reason", _SOURCE_RE.sub("", line.reason)
    return "reason", "(no reason given)"


class _Interner:
    """Strings to small ints, at most ``cap`` of them; the rest share one "other" index."""

    def __init__(self, cap: int | None = None) -> None:
        self._index: dict[Any, int] = {}
        self.names: list[Any] = []
        self._cap = MAX_GROUPS if cap is None else cap
        self._other: int | None = None

    def __call__(self, name: Any) -> int:
        index = self._index.get(name)
        if index is None:
            if len(self.names) >= self._cap:
                if self._other is None:
                    self._other = len(self.names)
                    self.names.append(None)  # marks the overflow bucket
                return self._other
            index = self._index[name] = len(self.names)
            self.names.append(name)
        return index


@dataclass(slots=True)
class _GroupInfo:
    detail: str | None = None
    example_job_id: str | None = None
    example_command: str | None = None
    example_row: int = -1


class _Groups:
    """Failure groups of one status: interned labels plus one example entry each."""

    def __init__(self) -> None:
        self.intern = _Interner()
        self.info: list[_GroupInfo] = []

    def add(self, line: ReportLine, row: int) -> int:
        kind_label = failure_group(line)
        index = self.intern(kind_label)
        while len(self.info) <= index:
            self.info.append(_GroupInfo())
        info = self.info[index]
        if info.detail is None and kind_label[0] == "error_code":
            info.detail = line.error_msg
        # The latest line of a group is the example most likely to still be the latest
        # line of its entry at the end; stale examples are fixed up after the pass.
        info.example_job_id, info.example_command, info.example_row = (
            line.job_id,
            line.command,
            row,
        )
        return index

    def label(self, index: int) -> tuple[str, str]:
        name = self.intern.names[index]
        return ("other", _OTHER) if name is None else name


class KeyTable:
    """Key digest (see :func:`batcher.report.key_digest`) to row number, in typed arrays.

    A dict of 64-bit ints costs ~130 bytes per key (two int objects plus its table); this
    open-addressing table (linear probing, at most half full) costs 24-48 bytes per key,
    which is what lets a report of millions of entries be read in bounded memory.

    >>> table = KeyTable()
    >>> table.setdefault(key_digest("job-1", "CONFIRM_ACCEPT"), 0)
    0
    >>> table.setdefault(key_digest("job-1", "CONFIRM_ACCEPT"), 1), len(table)
    (0, 1)
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._mask = capacity - 1  # capacity is a power of two
        self._keys = array("Q", bytes(8 * capacity))  # 0 = empty slot
        self._rows = array("I", bytes(4 * capacity))  # rows < 2**32
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def setdefault(self, digest: int, row: int) -> int:
        """The row stored for ``digest``; if there is none, store ``row`` and return it."""
        digest = digest or 1  # 0 marks an empty slot (a 2**-64 chance of merging two keys)
        keys, mask = self._keys, self._mask
        slot = digest & mask
        while True:
            found = keys[slot]
            if found == digest:
                return self._rows[slot]
            if found == 0:
                break
            slot = (slot + 1) & mask
        keys[slot] = digest
        self._rows[slot] = row
        self._size += 1
        if self._size * 2 > mask:
            self._grow()
        return row

    def _grow(self) -> None:
        old = zip(self._keys, self._rows, strict=True)
        self._alloc((self._mask + 1) * 2)
        for digest, row in old:
            if digest:
                self.setdefault(digest, row)


class _Entries:
    """The latest line of each entry, as a row of small numbers in parallel arrays."""

    def __init__(self) -> None:
        self.row_of = KeyTable()
        self.status = array("b")
        self.retryable = array("b")
        self.command = array("H")
        self.group = array("h")  # index into the status's _Groups, or _NO_GROUP
        self.attempts = array("H")
        self.http = array("H")  # 0 = no HTTP answer
        self.duration = array("d")  # NaN = not measured
        self.lineno = array("Q")

    def __len__(self) -> int:
        return len(self.status)

    def row(self, digest: int) -> int:
        row = self.row_of.setdefault(digest, len(self.status))
        if row == len(self.status):
            for column in (
                self.status, self.retryable, self.command, self.group,
                self.attempts, self.http, self.lineno,
            ):  # fmt: skip
                column.append(0)
            self.duration.append(math.nan)
        return row


def summarize(
    path: Path,
    *,
    on_bad_line: BadLineHandler | None = None,
) -> Summary:
    """Summarise a report in one streaming pass (plus a rare second one for examples).

    Entries count by their latest line; attempts, HTTP statuses and latency count latest
    lines only; the time span and per-run numbers count every line. Lines that cannot be
    read are skipped, remembered in ``bad_lines`` and passed to ``on_bad_line`` (default:
    a structlog warning).

    >>> summary = summarize(Path("out.jsonl"))  # doctest: +SKIP
    >>> summary.status["failed"], summary.latency.quantile(0.99)  # doctest: +SKIP
    (3, 812.4)
    """
    summary = Summary(path=str(path))
    entries = _Entries()
    commands = _Interner()
    groups = {_FAILED: _Groups(), _SKIPPED: _Groups()}
    runs = _Interner()
    run_stats: list[RunStats] = []

    def bad_line(lineno: int, why: str) -> None:
        summary.bad_lines_total += 1
        if len(summary.bad_lines) < MAX_BAD_LINES:
            summary.bad_lines.append((lineno, why))
        (on_bad_line or _warn_bad_line)(lineno, why)

    for lineno, line in iter_report(path, on_bad_line=bad_line):
        summary.lines += 1
        row = entries.row(key_digest(line.job_id, line.command))
        code = _CODE[line.status]
        entries.status[row] = code
        entries.retryable[row] = line.retryable
        entries.command[row] = commands(line.command)
        entries.group[row] = groups[code].add(line, row) if code != _SUCCEEDED else _NO_GROUP
        entries.attempts[row] = min(max(line.attempts, 0), 0xFFFF)
        entries.http[row] = line.http_status if 0 < (line.http_status or 0) <= 0xFFFF else 0
        entries.duration[row] = math.nan if line.duration_ms is None else line.duration_ms
        entries.lineno[row] = lineno

        run = runs(line.run_id or "(none)")
        if run == len(run_stats):
            run_stats.append(RunStats())
        _add_times(run_stats[run], line)

    summary.runs = {
        (_OTHER if name is None else name): stats
        for name, stats in zip(runs.names, run_stats, strict=True)
    }
    summary.span = _whole_span(run_stats)
    reasons = _tally(summary, entries, commands, groups)
    _fix_stale_examples(path, reasons, entries, groups)
    return summary


def _warn_bad_line(lineno: int, why: str) -> None:
    log.warning("report_line_skipped", line=lineno, reason=why)


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _add_times(stats: RunStats, line: ReportLine) -> None:
    stats.lines += 1
    started = _parse_time(line.started_at)
    if started is not None and (stats._first is None or started < stats._first):
        stats._first, stats.first_started_at = started, line.started_at
    finished = _parse_time(line.finished_at)
    if finished is not None and (stats._last is None or finished > stats._last):
        stats._last, stats.last_finished_at = finished, line.finished_at


def _whole_span(runs: list[RunStats]) -> RunStats:
    span = RunStats(lines=sum(run.lines for run in runs))
    for run in runs:
        if run._first is not None and (span._first is None or run._first < span._first):
            span._first, span.first_started_at = run._first, run.first_started_at
        if run._last is not None and (span._last is None or run._last > span._last):
            span._last, span.last_finished_at = run._last, run.last_finished_at
    return span


def _tally(
    summary: Summary, entries: _Entries, commands: _Interner, groups: dict[int, _Groups]
) -> dict[tuple[int, int], ReasonGroup]:
    """Count the latest rows: statuses, per command, per group, HTTP, attempts, latency."""
    by_command: dict[int, list[int]] = {}
    group_counts: dict[tuple[int, int], int] = {}
    status_counts = [0, 0, 0]
    http: dict[int, int] = {}
    attempts: dict[int, int] = {}
    for code, retryable, command, group, tries, status, duration in zip(
        entries.status, entries.retryable, entries.command, entries.group,
        entries.attempts, entries.http, entries.duration, strict=True,
    ):  # fmt: skip
        status_counts[code] += 1
        by_command.setdefault(command, [0, 0, 0])[code] += 1
        if group != _NO_GROUP:
            group_counts[code, group] = group_counts.get((code, group), 0) + 1
        if code == _FAILED and retryable:
            summary.retryable_failed += 1
        http[status] = http.get(status, 0) + 1
        attempts[tries] = attempts.get(tries, 0) + 1
        # Skipped entries were never sent: their durations would only dilute the latency.
        if code != _SKIPPED and not math.isnan(duration):
            summary.latency.add(max(duration, 0.0))

    summary.status = dict(zip(STATUSES, status_counts, strict=True))
    summary.by_command = {
        (_OTHER if commands.names[c] is None else commands.names[c]): dict(
            zip(STATUSES, counts, strict=True)
        )
        for c, counts in sorted(
            by_command.items(), key=lambda item: (-sum(item[1]), str(commands.names[item[0]]))
        )
    }
    summary.http_status = {
        ("none" if status == 0 else str(status)): count for status, count in sorted(http.items())
    }
    summary.attempts = dict(sorted(attempts.items()))
    reasons: dict[tuple[int, int], ReasonGroup] = {}
    for (code, group), count in group_counts.items():
        kind, label = groups[code].label(group)
        info = groups[code].info[group]
        reasons[code, group] = ReasonGroup(
            kind=kind,
            label=label,
            detail=info.detail,
            count=count,
            example_job_id=info.example_job_id,
            example_command=info.example_command,
        )
    summary.failure_reasons = _most_frequent(reasons, _FAILED)
    summary.skip_reasons = _most_frequent(reasons, _SKIPPED)
    return reasons


def _most_frequent(reasons: dict[tuple[int, int], ReasonGroup], code: int) -> list[ReasonGroup]:
    chosen = [g for (c, _), g in reasons.items() if c == code]
    return sorted(chosen, key=lambda g: (-g.count, g.kind, g.label))


def _fix_stale_examples(
    path: Path,
    reasons: dict[tuple[int, int], ReasonGroup],
    entries: _Entries,
    groups: dict[int, _Groups],
) -> None:
    """Replace examples whose entry's latest line later moved to another status or group.

    Rare (a resumed report where the example entry was retried and others of its group
    were not), so it costs a second read only when it happens.
    """
    stale: dict[tuple[int, int], int] = {}  # (status, group) -> a row now in it, or -1
    for key in reasons:
        row = groups[key[0]].info[key[1]].example_row
        if entries.status[row] != key[0] or entries.group[row] != key[1]:
            stale[key] = -1
    if not stale:
        return
    for row, key in enumerate(zip(entries.status, entries.group, strict=True)):
        if stale.get(key) == -1:
            stale[key] = row
    wanted = {entries.lineno[row]: key for key, row in stale.items()}
    for lineno, line in read_lines(path, lambda n: n in wanted):
        reasons[wanted[lineno]].example_job_id = line.job_id
        reasons[wanted[lineno]].example_command = line.command


# -- the latest lines themselves ------------------------------------------------------------


def read_lines(path: Path, wanted: Callable[[int], bool]) -> Iterator[tuple[int, ReportLine]]:
    """Re-read ``path``, parsing only the lines whose number ``wanted`` accepts.

    Line numbers count as in :func:`batcher.report.iter_report`. A wanted line that no
    longer parses (the file changed under us) is skipped with a warning.
    """
    with open(path, "rb") as stream:
        for lineno, raw in enumerate(stream, start=1):
            if not wanted(lineno):
                continue
            try:
                yield lineno, ReportLine.model_validate_json(raw)
            except ValidationError:
                log.warning("report_line_changed", line=lineno)


class Selection:
    """The latest line of each entry whose status is selected, found in two passes.

    Pass 1 (on construction) keeps one packed int per entry (line number, status,
    retryable) and marks the selected line numbers in a bitmap; iterating re-reads the
    file and yields exactly those lines, in report order.

    >>> failed = Selection(Path("out.jsonl"), statuses={"failed"})  # doctest: +SKIP
    >>> failed.count, [line.job_id for line in failed][:2]  # doctest: +SKIP
    (2, ['job-7', 'job-9'])
    """

    def __init__(
        self,
        path: Path,
        *,
        statuses: Iterable[str] = ("failed", "skipped"),
        retryable_only: bool = False,
        on_bad_line: BadLineHandler | None = None,
    ) -> None:
        self.path = path
        self.statuses = frozenset(statuses)
        unknown = self.statuses - set(STATUSES)
        if unknown:
            raise ValueError(f"unknown status {sorted(unknown)}")
        self.retryable_only = retryable_only
        self.by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.count = 0
        self.job_id_width = len("job_id")
        self.command_width = len("command")
        self._bitmap = self._pass_one(on_bad_line or _warn_bad_line)

    def _selected(self, code: int, retryable: bool) -> bool:
        if self.retryable_only:
            return code == _FAILED and retryable and "failed" in self.statuses
        return STATUSES[code] in self.statuses

    def _pass_one(self, on_bad_line: BadLineHandler) -> bytearray:
        rows = KeyTable()
        latest = array("Q")  # per entry: lineno << 3 | status << 1 | retryable
        last_lineno = 0
        for lineno, line in iter_report(self.path, on_bad_line=on_bad_line):
            row = rows.setdefault(key_digest(line.job_id, line.command), len(latest))
            packed = lineno << 3 | _CODE[line.status] << 1 | line.retryable
            if row == len(latest):
                latest.append(packed)
            else:
                latest[row] = packed
            last_lineno = lineno
            self.job_id_width = max(self.job_id_width, len(line.job_id))
            self.command_width = max(self.command_width, len(line.command))
        bitmap = bytearray(last_lineno // 8 + 1)
        for packed in latest:
            code, retryable = packed >> 1 & 3, bool(packed & 1)
            if self._selected(code, retryable):
                lineno = packed >> 3
                bitmap[lineno >> 3] |= 1 << (lineno & 7)
                self.by_status[STATUSES[code]] += 1
                self.count += 1
        return bitmap

    def _wanted(self, lineno: int) -> bool:
        index = lineno >> 3
        return index < len(self._bitmap) and bool(self._bitmap[index] >> (lineno & 7) & 1)

    def __iter__(self) -> Iterator[ReportLine]:
        for _, line in read_lines(self.path, self._wanted):
            yield line

    def numbered(self) -> Iterator[tuple[int, ReportLine]]:
        """Like iterating, with each line's number in the report."""
        return read_lines(self.path, self._wanted)


# -- rendering ------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [fmt(headers), *(fmt(row) for row in rows)]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _clip(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}h {minutes}m {secs:.0f}s"
    return f"{minutes}m {secs:.1f}s" if minutes else f"{secs:.1f}s"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}/s"


def _reason_section(title: str, groups: list[ReasonGroup], top: int) -> list[str]:
    if not groups:
        return []
    shown = _top(groups, top)
    rows = [
        [
            _clip(g.label if not g.detail else f"{g.label} {g.detail}"),
            f"{g.count:,}",
            f"{g.example_job_id} {g.example_command}" if g.example_job_id else "-",
        ]
        for g in shown
    ]
    more = _more(groups, top)
    lines = ["", f"{title} (most frequent first)"]
    lines += _table(["reason", "entries", "example"], rows, right={1})
    if more["groups"]:
        lines.append(f"… {more['groups']:,} more reasons ({more['entries']:,} entries)")
    return lines


def render_text(summary: Summary, *, top: int = 20) -> str:
    """The summary as aligned plain text, for people.

    >>> print(render_text(Summary(path="r.jsonl")).splitlines()[0])
    Report r.jsonl: 0 lines, 0 entries
    """
    s = summary
    out = [
        f"Report {s.path}: {s.lines:,} lines, {s.total:,} entries",
        "(each entry counts by its latest line; attempts, HTTP and latency count latest "
        "lines only; time span and runs count every line)",
        "",
    ]
    status_rows = [[name, f"{s.status[name]:,}"] for name in STATUSES]
    status_rows[1][0] += f" (retryable {s.retryable_failed:,})" if s.retryable_failed else ""
    out += _table(["status", "entries"], [*status_rows, ["total", f"{s.total:,}"]], right={1})

    if s.by_command:
        out += ["", "By command"]
        rows = [
            [command, *(f"{counts[name]:,}" for name in STATUSES)]
            for command, counts in s.by_command.items()
        ]
        out += _table(["command", *STATUSES], rows, right={1, 2, 3})

    out += _reason_section("Failure reasons", s.failure_reasons, top)
    out += _reason_section("Skip reasons", s.skip_reasons, top)

    if s.http_status:
        out += ["", "HTTP status (latest lines)"]
        out += _table(
            ["status", "entries"], [[k, f"{v:,}"] for k, v in s.http_status.items()], right={1}
        )
    if s.attempts:
        out += ["", "Attempts (latest lines)"]
        out += _table(
            ["attempts", "entries"],
            [[str(k), f"{v:,}"] for k, v in s.attempts.items()],
            right={0, 1},
        )

    lat = s.latency
    out += ["", "Latency in ms (latest lines, succeeded and failed; within ~1%)"]
    out += _table(
        ["count", "mean", "p50", "p90", "p99", "max"],
        [
            [
                f"{lat.count:,}",
                _ms(lat.total / lat.count if lat.count else None),
                _ms(lat.quantile(0.5)),
                _ms(lat.quantile(0.9)),
                _ms(lat.quantile(0.99)),
                _ms(lat.max),
            ]
        ],
        right={0, 1, 2, 3, 4, 5},
    )

    out += [
        "",
        f"Time span  {s.span.first_started_at or '-'} → {s.span.last_finished_at or '-'}"
        f"  ({_duration(s.span.seconds())}; {s.lines:,} lines at {_rate(s.span.rate())})",
    ]
    if s.runs:
        out += ["", "Runs"]
        rows = [
            [
                run,
                f"{st.lines:,}",
                st.first_started_at or "-",
                st.last_finished_at or "-",
                _rate(st.rate()),
            ]
            for run, st in s.runs.items()
        ]
        out += _table(["run_id", "lines", "first started", "last finished", "rate"], rows, {1, 4})

    if s.bad_lines_total:
        out += ["", f"Unreadable lines skipped: {s.bad_lines_total:,}"]
        shown = _top_bad(s.bad_lines, top)
        out += [f"  line {n}: {why}" for n, why in shown]
        if s.bad_lines_total > len(shown):
            out.append(f"  … {s.bad_lines_total - len(shown):,} more")
    return "\n".join(out) + "\n"
