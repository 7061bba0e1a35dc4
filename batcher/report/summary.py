"""The streaming summary of a report: entries by status, failure reasons, latency, runs.

Entries count by their LATEST line per ``(job_id, command)`` (see :mod:`.selection`).
Reports can run to millions of lines, so nothing here keeps whole lines: per entry we keep a
few numbers in typed arrays (see :mod:`batcher.compact`), and the rare example that needs a
line itself is re-read from the file. :mod:`.render` renders the result.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..keys import KeyTable, key_digest
from ..outcome import STATUSES
from ._compact import Interner, LogHistogram
from ._reader import BadLineHandler, iter_report, warn_bad_line
from .line import ReportLine
from .reasons import OTHER, ReasonGroup, ReasonGroups, beyond_cap, capped
from .selection import STATUS_CODE

_SUCCEEDED, _FAILED, _SKIPPED = (STATUS_CODE[status] for status in STATUSES)

#: Distinct failure groups (and commands, runs) kept apart; the rest share an "other" bucket.
MAX_GROUPS = 1000
#: Bad lines remembered with their line number (all are counted).
MAX_BAD_LINES = 100
_NO_GROUP = -1


@dataclass(slots=True)
class RunSpan:
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

    ``to_dict()`` is the ``--format json`` document; :func:`.render.render_text` the table.
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
    span: RunSpan = field(default_factory=RunSpan)
    runs: dict[str, RunSpan] = field(default_factory=dict)
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
            "failure_reasons": [g.to_dict() for g in capped(self.failure_reasons, top)],
            "failure_reasons_more": beyond_cap(self.failure_reasons, top),
            "skip_reasons": [g.to_dict() for g in capped(self.skip_reasons, top)],
            "skip_reasons_more": beyond_cap(self.skip_reasons, top),
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
            "runs": {run: span.to_dict() for run, span in self.runs.items()},
            "bad_lines": [{"line": n, "reason": why} for n, why in self.bad_lines],
            "bad_lines_total": self.bad_lines_total,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class _Entries:
    """The latest line of each entry, as a row of small numbers in parallel arrays."""

    def __init__(self) -> None:
        self.row_of = KeyTable()
        self.status = array("b")
        self.retryable = array("b")
        self.command = array("H")
        self.group = array("h")  # index into the status's ReasonGroups, or _NO_GROUP
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
    commands = Interner(MAX_GROUPS)
    groups = {_FAILED: ReasonGroups(MAX_GROUPS), _SKIPPED: ReasonGroups(MAX_GROUPS)}
    runs = Interner(MAX_GROUPS)
    run_spans: list[RunSpan] = []

    def bad_line(lineno: int, why: str) -> None:
        summary.bad_lines_total += 1
        if len(summary.bad_lines) < MAX_BAD_LINES:
            summary.bad_lines.append((lineno, why))
        (on_bad_line or warn_bad_line)(lineno, why)

    for lineno, line in iter_report(path, on_bad_line=bad_line):
        summary.lines += 1
        row = entries.row(key_digest(line.job_id, line.command))
        code = STATUS_CODE[line.status]
        entries.status[row] = code
        entries.retryable[row] = line.retryable
        entries.command[row] = commands(line.command)
        entries.group[row] = groups[code].add(line, row) if code != _SUCCEEDED else _NO_GROUP
        entries.attempts[row] = min(max(line.attempts, 0), 0xFFFF)
        http = line.http_status or 0
        entries.http[row] = http if 0 < http <= 0xFFFF else 0
        entries.duration[row] = math.nan if line.duration_ms is None else line.duration_ms
        entries.lineno[row] = lineno

        run = runs(line.run_id or "(none)")
        if run == len(run_spans):
            run_spans.append(RunSpan())
        _add_times(run_spans[run], line)

    summary.runs = {
        (OTHER if name is None else name): span
        for name, span in zip(runs.names, run_spans, strict=True)
    }
    summary.span = _whole_span(run_spans)
    reasons = _tally(summary, entries, commands, groups)
    _fix_stale_examples(path, reasons, entries, groups)
    return summary


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _add_times(span: RunSpan, line: ReportLine) -> None:
    span.lines += 1
    started = _parse_time(line.started_at)
    if started is not None and (span._first is None or started < span._first):
        span._first, span.first_started_at = started, line.started_at
    finished = _parse_time(line.finished_at)
    if finished is not None and (span._last is None or finished > span._last):
        span._last, span.last_finished_at = finished, line.finished_at


def _whole_span(runs: list[RunSpan]) -> RunSpan:
    span = RunSpan(lines=sum(run.lines for run in runs))
    for run in runs:
        if run._first is not None and (span._first is None or run._first < span._first):
            span._first, span.first_started_at = run._first, run.first_started_at
        if run._last is not None and (span._last is None or run._last > span._last):
            span._last, span.last_finished_at = run._last, run.last_finished_at
    return span


def _tally(
    summary: Summary, entries: _Entries, commands: Interner, groups: dict[int, ReasonGroups]
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
        (OTHER if commands.names[c] is None else commands.names[c]): dict(
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
    groups: dict[int, ReasonGroups],
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
    for lineno, line in iter_report(path, wanted=wanted.__contains__):
        reasons[wanted[lineno]].example_job_id = line.job_id
        reasons[wanted[lineno]].example_command = line.command
