"""The streaming summary of a report: entries by status, failure reasons, latency, runs.

Entries count by their LATEST line per ``(job_id, command)``, found by the report's one
index (:mod:`batcher.journal.index`). Reports can run to millions of lines, so nothing
here keeps whole lines: per entry the kind of its latest line (status, flags, command,
failure group, attempts, HTTP status: a few dozen distinct kinds in a million lines, each
kept once) and its durations are kept in typed arrays, and the rare example that needs a
line itself is re-read from the file. The runs come from the run record sidecar
(:mod:`batcher.journal.runs`) where there is one, joined with what the lines say.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batcher.entry import STATUSES
from batcher.journal.index import (
    AMBIGUOUS,
    CONFIRMED,
    FAILED,
    RETRYABLE,
    SKIPPED,
    SUCCEEDED,
    ReportIndex,
)
from batcher.journal.reader import BadLineHandler, iter_report, warn_bad_line
from batcher.journal.runs import RunRecord, read_runs
from batcher.journal.times import epoch
from batcher.review.compact import Interner, LogHistogram, RunSpan, round3
from batcher.review.reasons import OTHER, ReasonGroup, ReasonGroups, beyond_cap, capped

#: Called with every readable line (a dict), e.g. to draw the HTML page's time series.
Observer = Callable[[dict[str, Any]], None]

NO_GROUP = -1
#: A duration that is not there (no number written, or the line was skipped).
MISSING = -math.inf
#: A latest line's kind: (status code, flags, command index, group, attempts, HTTP status).
Kind = tuple[int, int, int, int, int, int]
_FLAGS = RETRYABLE | CONFIRMED | AMBIGUOUS


def _small(value: Any) -> int:
    return value if value.__class__ is int and 0 <= value <= 0xFFFF else 0


def _duration(value: Any) -> float:
    return value if value.__class__ in (float, int) else MISSING


class LatestRows:
    """Per entry (a row of the report's index), the kind of its latest line and its
    durations; every line also counts toward its run's span."""

    def __init__(self, commands: Interner, groups: dict[int, ReasonGroups], runs: Interner):
        self.kind = array("I")
        self.duration = array("d")
        self.wait = array("d")
        self.lineno = array("I")
        self.kinds_list: list[Kind] = []
        self._kind_ids: dict[Kind, int] = {}
        self._commands, self._groups, self._runs = commands, groups, runs
        self._command_index: dict[Any, int] = {}
        self.spans: list[RunSpan] = []
        # Lines of one run come together: the last one's span, found without a lookup.
        self._last_run_id: Any = None
        self._last_span = RunSpan()

    @property
    def count(self) -> int:
        return len(self.kind)

    def add(self, row: int, state: int, line: dict[str, Any]) -> None:
        """Take in a line, the latest of its entry's so far (``state``: the index's)."""
        get = line.get
        command = line["command"]
        index = self._command_index.get(command)
        if index is None:
            index = self._command_index[command] = self._commands(command)
        code = state & 3
        group = NO_GROUP if code == SUCCEEDED else self._groups[code].add(line, row)
        kind = (code, state & _FLAGS, index, group, _small(get("attempts")),
                _small(get("http_status")))  # fmt: skip
        kind_id = self._kind_ids.get(kind)
        if kind_id is None:
            kind_id = self._kind_ids[kind] = len(self.kinds_list)
            self.kinds_list.append(kind)
        skipped = code == SKIPPED  # never sent: its durations would dilute the latency
        duration = MISSING if skipped else _duration(get("duration_ms"))
        wait = MISSING if skipped else _duration(get("wait_ms"))
        if row == len(self.kind):
            self.kind.append(kind_id)
            self.duration.append(duration)
            self.wait.append(wait)
        else:
            self.kind[row], self.duration[row], self.wait[row] = kind_id, duration, wait
        run_id = get("run_id")
        if run_id != self._last_run_id or run_id.__class__ is not str:
            run = self._runs(run_id if isinstance(run_id, str) and run_id else "(none)")
            if run == len(self.spans):
                self.spans.append(RunSpan())
            self._last_run_id, self._last_span = run_id, self.spans[run]
        self._last_span.add(get("started_at"), get("finished_at"))

    def row_kind(self, row: int) -> Kind:
        return self.kinds_list[self.kind[row]]

    def kinds(self) -> dict[Kind, int]:
        """How many rows there are of each kind."""
        return {self.kinds_list[i]: n for i, n in Counter(self.kind).items()}

    def failures(self, examples: int) -> dict[tuple[int, int, int], tuple[int, list[int]]]:
        """Failed and skipped rows by (status code, group, command index): how many, and the
        line numbers of up to ``examples`` of them."""
        found: dict[tuple[int, int, int], tuple[int, list[int]]] = {}
        for row, kind_id in enumerate(self.kind):
            code, _, command, group, _, _ = self.kinds_list[kind_id]
            if code == SUCCEEDED:
                continue
            count, lines = found.get((code, group, command), (0, []))
            if len(lines) < examples:
                lines.append(self.lineno[row])
            found[code, group, command] = (count + 1, lines)
        return found

    def runs(self) -> dict[str, RunSpan]:
        names = ["(other)" if name is None else name for name in self._runs.names]
        return dict(zip(names, self.spans, strict=True))


__all__ = [
    "MAX_BAD_LINES",
    "MAX_GROUPS",
    "FailureDetail",
    "Observer",
    "RunSpan",
    "Summary",
    "sent_rate",
    "summarize",
]

#: Distinct failure groups (and commands, runs) kept apart; the rest share an "other" bucket.
MAX_GROUPS = 1000
#: Bad lines remembered with their line number (all are counted).
MAX_BAD_LINES = 100


@dataclass(slots=True)
class FailureDetail:
    """Entries whose latest line failed (or was skipped) for one reason, in one command."""

    status: str
    kind: str
    reason: str
    detail: str | None
    command: str
    count: int
    examples: list[str] = field(default_factory=list)  #: job ids

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(slots=True)
class Summary:
    """What a report says, entry by entry (latest line per key) and run by run.

    ``to_dict()`` is the ``--format json`` document; :func:`.render.render_text` the table.
    """

    path: str
    lines: int = 0
    status: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    retryable_failed: int = 0
    #: Latest lines decided from the job's record after a lost answer (``confirmed_by``).
    confirmed: int = 0
    #: Latest lines in doubt (``ambiguous``): failed after an attempt that may have
    #: executed, or skipped while an earlier run's attempt of theirs may have.
    ambiguous: int = 0
    by_command: dict[str, dict[str, int]] = field(default_factory=dict)
    failure_reasons: list[ReasonGroup] = field(default_factory=list)
    skip_reasons: list[ReasonGroup] = field(default_factory=list)
    http_status: dict[str, int] = field(default_factory=dict)
    attempts: dict[int, int] = field(default_factory=dict)
    #: The API's time (``duration_ms``) of the latest lines that were sent.
    latency: LogHistogram = field(default_factory=LogHistogram)
    #: Time waiting for the rate limiter before the first attempt (``wait_ms``).
    wait: LogHistogram = field(default_factory=LogHistogram)
    span: RunSpan = field(default_factory=RunSpan)
    runs: dict[str, RunSpan] = field(default_factory=dict)
    #: The run records of the report's sidecar, oldest first; None when it has none.
    run_records: list[RunRecord] | None = None
    #: With ``details=True``: failed and skipped entries by reason and command, with
    #: example jobs, most frequent first.
    failure_details: list[FailureDetail] = field(default_factory=list)
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
        return {
            "report": self.path,
            "basis": "latest line per (job_id, command); attempts, http_status and "
            "latency_ms count latest lines only; span and runs count every line",
            "lines": self.lines,
            "total": self.total,
            **self.status,
            "retryable_failed": self.retryable_failed,
            "confirmed": self.confirmed,
            "ambiguous": self.ambiguous,
            "by_command": self.by_command,
            "failure_reasons": [g.to_dict() for g in capped(self.failure_reasons, top)],
            "failure_reasons_more": beyond_cap(self.failure_reasons, top),
            "skip_reasons": [g.to_dict() for g in capped(self.skip_reasons, top)],
            "skip_reasons_more": beyond_cap(self.skip_reasons, top),
            "http_status": self.http_status,
            "attempts": {str(k): v for k, v in self.attempts.items()},
            "latency_ms": _figures(self.latency),
            "wait_ms": _figures(self.wait),
            "span": {
                "first_started_at": self.span.first_started_at,
                "last_finished_at": self.span.last_finished_at,
                "seconds": round3(self.span.seconds()),
            },
            "rate_per_second": round3(self.span.rate()),
            "runs": self.runs_dict(),
            "runs_from": "lines" if self.run_records is None else "run record and lines",
            "bad_lines": [{"line": n, "reason": why} for n, why in self.bad_lines],
            "bad_lines_total": self.bad_lines_total,
        }

    def runs_dict(self) -> dict[str, dict[str, Any]]:
        """Every run: what its lines say (lines, span, rate), joined by run id with its run
        record (version, endpoint, manifests, options, exit code...) where there is one."""
        records = {record.run_id: record for record in self.run_records or ()}
        runs: dict[str, dict[str, Any]] = {}
        for record in self.run_records or ():
            span = self.runs.get(record.run_id, RunSpan())
            runs[record.run_id] = {
                **span.to_dict(),
                **_sent(span, record),
                "record": record.to_dict(),
            }
        for run_id, span in self.runs.items():
            if run_id not in records:
                runs[run_id] = {**span.to_dict(), **_sent(span, None), "record": None}

        def started(item: tuple[str, dict[str, Any]]) -> float:
            record = item[1]["record"] or {}
            when = epoch(record.get("started_at")) or epoch(item[1]["first_started_at"])
            return math.inf if when is None else when

        return dict(sorted(runs.items(), key=started))


def _sent(span: RunSpan, record: RunRecord | None) -> dict[str, Any]:
    """The entries a run sent, and at what rate: its lines but the skipped ones, which were
    never sent (a halt writes hundreds at once). Known from the run record's counts; None
    without one."""
    skipped = (record.counts if record is not None else {}).get("skipped")
    if not isinstance(skipped, int):
        return {"sent": None, "sent_per_second": None}
    sent = max(0, span.lines - skipped)
    seconds = span.seconds()
    return {"sent": sent, "sent_per_second": round3(sent / seconds) if seconds else None}


def sent_rate(run: dict[str, Any]) -> float | None:
    """A run's rate of entries sent (skipped lines apart); without a run record, of lines."""
    value = run.get("sent_per_second")
    return run["rate_per_second"] if value is None else float(value)


def _figures(histogram: LogHistogram) -> dict[str, float | int | None]:
    count = histogram.count
    return {
        "count": count,
        "mean": round3(histogram.total / count if count else None),
        "p50": round3(histogram.quantile(0.50)),
        "p90": round3(histogram.quantile(0.90)),
        "p99": round3(histogram.quantile(0.99)),
        "max": round3(histogram.max),
    }


def summarize(
    path: Path,
    *,
    on_bad_line: BadLineHandler | None = None,
    observe: Observer | None = None,
    details: bool = False,
) -> Summary:
    """Summarise a report in one streaming pass (plus a rare second one for examples).

    Entries count by their latest line; attempts, HTTP statuses, latency and the
    confirmed and ambiguous counts count latest lines only; the time span and per-run
    numbers count every line. Lines that cannot be read are skipped, remembered in
    ``bad_lines`` and passed to ``on_bad_line`` (default: a structlog warning).
    ``observe`` is called with every readable line (a dict) as it is read. ``details``
    also fills ``failure_details`` (reason by command, with up to 3 example jobs each; a
    second, quick read of the report for the examples).

    >>> summary = summarize(Path("out.jsonl"))  # doctest: +SKIP
    >>> summary.status["failed"], summary.latency.quantile(0.99)  # doctest: +SKIP
    (3, 812.4)
    """
    summary = Summary(path=str(path))
    commands = Interner(MAX_GROUPS)
    groups = {FAILED: ReasonGroups(MAX_GROUPS), SKIPPED: ReasonGroups(MAX_GROUPS)}

    def bad_line(lineno: int, why: str) -> None:
        summary.bad_lines_total += 1
        if len(summary.bad_lines) < MAX_BAD_LINES:
            summary.bad_lines.append((lineno, why))
        (on_bad_line or warn_bad_line)(lineno, why)

    rows = LatestRows(commands, groups, Interner(MAX_GROUPS))

    def hook(row: int, state: int, line: dict[str, Any]) -> None:
        rows.add(row, state, line)
        if observe is not None:
            observe(line)

    index = ReportIndex.read(path, on_bad_line=bad_line, hook=hook if observe else rows.add)
    rows.lineno = index.lineno
    summary.lines = index.lines
    summary.runs = rows.runs()
    for span in summary.runs.values():
        summary.span.merge(span)
    summary.run_records = read_runs(path, on_bad_line=bad_line)
    reasons = _tally(summary, rows, commands, groups)
    _fix_stale_examples(path, reasons, rows, groups)
    if details:
        summary.failure_details = _details(path, rows, commands, groups)
    return summary


def _details(
    path: Path, entries: LatestRows, commands: Interner, groups: dict[int, ReasonGroups]
) -> list[FailureDetail]:
    found = entries.failures(examples=3)
    wanted = {lineno for _, lines in found.values() for lineno in lines}
    job_at: dict[int, str] = {}
    if wanted:
        for lineno, line in iter_report(path, wanted=wanted.__contains__, on_bad_line=_quiet):
            job_at[lineno] = line.job_id
    out = []
    for (code, group, command), (count, lines) in found.items():
        kind, label = groups[code].label(group)
        name = commands.names[command]
        out.append(
            FailureDetail(
                status=STATUSES[code],
                kind=kind,
                reason=label,
                detail=groups[code].info[group].detail,
                command=OTHER if name is None else name,
                count=count,
                examples=[job_at[n] for n in lines if n in job_at],
            )
        )
    return sorted(out, key=lambda d: (-d.count, d.status, d.reason, d.command))


def _quiet(lineno: int, why: str) -> None:
    """Bad lines were counted in the first pass already."""


def _tally(
    summary: Summary, entries: LatestRows, commands: Interner, groups: dict[int, ReasonGroups]
) -> dict[tuple[int, int], ReasonGroup]:
    """Count the latest rows: statuses, per command, per group, HTTP, attempts, latency."""
    by_command: dict[int, list[int]] = {}
    group_counts: dict[tuple[int, int], int] = {}
    status_counts = [0, 0, 0]
    http: dict[int, int] = {}
    attempts: dict[int, int] = {}
    for (code, flags, command, group, tries, status), n in entries.kinds().items():
        status_counts[code] += n
        by_command.setdefault(command, [0, 0, 0])[code] += n
        if group != NO_GROUP:
            group_counts[code, group] = group_counts.get((code, group), 0) + n
        if code == FAILED and flags & RETRYABLE:
            summary.retryable_failed += n
        if code == SUCCEEDED and flags & CONFIRMED:
            summary.confirmed += n
        if flags & AMBIGUOUS:  # failed, or skipped while still in doubt
            summary.ambiguous += n
        http[status] = http.get(status, 0) + n
        attempts[tries] = attempts.get(tries, 0) + n
    # Skipped entries were never sent: their durations are MISSING, left out.
    summary.latency.add_many(entries.duration, missing=MISSING)
    summary.wait.add_many(entries.wait, missing=MISSING)

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
    summary.failure_reasons = _most_frequent(reasons, FAILED)
    summary.skip_reasons = _most_frequent(reasons, SKIPPED)
    return reasons


def _most_frequent(reasons: dict[tuple[int, int], ReasonGroup], code: int) -> list[ReasonGroup]:
    chosen = [g for (c, _), g in reasons.items() if c == code]
    return sorted(chosen, key=lambda g: (-g.count, g.kind, g.label))


def _fix_stale_examples(
    path: Path,
    reasons: dict[tuple[int, int], ReasonGroup],
    entries: LatestRows,
    groups: dict[int, ReasonGroups],
) -> None:
    """Replace examples whose entry's latest line later moved to another status or group.

    Rare (a resumed report where the example entry was retried and others of its group
    were not), so it costs a second read only when it happens.
    """
    stale: dict[tuple[int, int], int] = {}  # (status, group) -> a row now in it, or -1
    for key in reasons:
        kind = entries.row_kind(groups[key[0]].info[key[1]].example_row)
        if (kind[0], kind[3]) != key:
            stale[key] = -1
    if not stale:
        return
    for row in range(entries.count):
        kind = entries.row_kind(row)
        if stale.get((kind[0], kind[3])) == -1:
            stale[kind[0], kind[3]] = row
    wanted = {entries.lineno[row]: key for key, row in stale.items()}
    for lineno, line in iter_report(path, wanted=wanted.__contains__):
        reasons[wanted[lineno]].example_job_id = line.job_id
        reasons[wanted[lineno]].example_command = line.command
