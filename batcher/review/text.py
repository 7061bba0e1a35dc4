"""The report summary as aligned plain text, for people (``batcher report``'s table)."""

from __future__ import annotations

import re
from typing import Any

from batcher.entry import STATUSES
from batcher.review.compact import LogHistogram
from batcher.review.reasons import ReasonGroup, beyond_cap, capped
from batcher.review.summary import Summary

#: Control characters but the newline: a server's text must not drive the terminal (clear
#: it, retitle it, draw fake lines) when a report is shown.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    r"""``text`` with every control character but the newline shown as an escape.

    >>> terminal_safe("bad\x1b[2Jjob\nnext")
    'bad\\x1b[2Jjob\nnext'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


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
    shown = capped(groups, top)
    rows = [
        [
            _clip(g.label if not g.detail else f"{g.label} {g.detail}"),
            f"{g.count:,}",
            f"{g.example_job_id} {g.example_command}" if g.example_job_id else "-",
        ]
        for g in shown
    ]
    more = beyond_cap(groups, top)
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
    out += ["", "Lost answers (latest lines)"]
    out += _table(
        ["outcome", "entries"],
        [
            ["succeeded, confirmed from the job's record", f"{s.confirmed:,}"],
            ["failed, ambiguous (may have executed)", f"{s.ambiguous:,}"],
        ],
        right={1},
    )

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

    out += ["", "Latency in ms: the API's time (latest lines, succeeded and failed; within ~1%)"]
    out += _histogram(s.latency)
    out += ["", "Wait for the rate limiter in ms, before the first attempt (same lines)"]
    out += _histogram(s.wait)

    out += [
        "",
        f"Time span  {s.span.first_started_at or '-'} → {s.span.last_finished_at or '-'}"
        f"  ({_duration(s.span.seconds())}; {s.lines:,} lines at {_rate(s.span.rate())})",
    ]
    out += _runs(s)

    if s.bad_lines_total:
        out += ["", f"Unreadable lines skipped: {s.bad_lines_total:,}"]
        shown = capped(s.bad_lines, top)
        out += [f"  line {n}: {why}" for n, why in shown]
        if s.bad_lines_total > len(shown):
            out.append(f"  … {s.bad_lines_total - len(shown):,} more")
    return "\n".join(out) + "\n"


def _histogram(h: LogHistogram) -> list[str]:
    return _table(
        ["count", "mean", "p50", "p90", "p99", "max"],
        [
            [
                f"{h.count:,}",
                _ms(h.total / h.count if h.count else None),
                _ms(h.quantile(0.5)),
                _ms(h.quantile(0.9)),
                _ms(h.quantile(0.99)),
                _ms(h.max),
            ]
        ],
        right={0, 1, 2, 3, 4, 5},
    )


def _runs(s: Summary) -> list[str]:
    runs = s.runs_dict()
    if not runs:
        return []
    source = "from the lines" if s.run_records is None else "from the run record and the lines"
    rows = []
    for run_id, run in runs.items():
        record: dict[str, Any] | None = run["record"]
        rows.append(
            [
                run_id,
                f"{run['lines']:,}",
                run["first_started_at"] or (record or {}).get("started_at") or "-",
                run["last_finished_at"] or "-",
                _rate(run["rate_per_second"]),
                *(_run_record_cells(record) if s.run_records is not None else []),
            ]
        )
    headers = ["run_id", "lines", "first started", "last finished", "rate"]
    if s.run_records is not None:
        headers += ["exit", "finished", "version", "manifests"]
    out = ["", f"Runs ({source})", *_table(headers, rows, {1, 4})]
    for run_id, run in runs.items():
        record = run["record"]
        if record and record.get("halted_reason"):
            out.append(f"  {run_id} halted: {_clip(str(record['halted_reason']), 100)}")
    return out


def _run_record_cells(record: dict[str, Any] | None) -> list[str]:
    if record is None:
        return ["-", "(no record)", "-", "-"]
    code = record.get("exit_code")
    finished = record.get("finished_at") or "(not finished: running or crashed)"
    manifests = ", ".join(
        f"{m['path'].rsplit('/', 1)[-1]} ({m['entries']:,})"
        if isinstance(m.get("entries"), int)
        else m["path"].rsplit("/", 1)[-1]
        for m in record.get("manifests") or []
    )
    return [
        "-" if code is None else str(code),
        finished,
        record.get("version") or "-",
        manifests or "-",
    ]
