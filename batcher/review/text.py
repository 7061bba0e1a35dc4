"""The report summary as aligned plain text, for people (``batcher report``'s table)."""

from __future__ import annotations

import re
from typing import Any

from batcher.entry import STATUSES
from batcher.review.compact import LogHistogram
from batcher.review.reasons import ReasonGroup, beyond_cap, capped
from batcher.review.summary import Summary, sent_rate

#: Control characters but the newline: a server's text must not drive the terminal (clear
#: it, retitle it, draw fake lines) when a report is shown.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    r"""``text`` with every control character but the newline shown as an escape.

    >>> terminal_safe("bad\x1b[2Jjob\nnext")
    'bad\\x1b[2Jjob\nnext'
    """
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Aligned columns (those in ``right`` to the right), two spaces apart."""
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


#: Reasons are cut no shorter than this, however narrow the terminal.
MIN_REASON = 30


def fit(
    headers: list[str], rows: list[list[str]], width: int | None, *, column: int = 0
) -> list[list[str]]:
    """``rows`` with whitespace in ``column`` collapsed, and its cells cut (…) so that the
    :func:`table` of ``headers`` and ``rows`` fits ``width`` characters (None: never cut;
    the other columns are kept whole).

    >>> fit(["reason", "n"], [["HTTP 500:   may have executed", "12"]], None)
    [['HTTP 500: may have executed', '12']]
    >>> cut = fit(["reason", "n"], [["a reason " * 10, "12"]], 50)[0][0]
    >>> len(cut), cut[-2:]
    (46, ' …')
    """
    rows = [[*r[:column], " ".join(r[column].split()), *r[column + 1 :]] for r in rows]
    if width is None or not rows:
        return rows
    others = sum(
        max(len(headers[i]), *(len(r[i]) for r in rows)) + 2
        for i in range(len(headers))
        if i != column
    )
    room = max(MIN_REASON, width - others)
    return [
        [
            *r[:column],
            r[column] if len(r[column]) <= room else r[column][: room - 1] + "…",
            *r[column + 1 :],
        ]
        for r in rows
    ]


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


def _reason_section(
    title: str, groups: list[ReasonGroup], top: int, width: int | None
) -> list[str]:
    if not groups:
        return []
    shown = capped(groups, top)
    rows = [
        [
            g.label if not g.detail else f"{g.label} {g.detail}",
            f"{g.count:,}",
            f"{g.example_job_id} {g.example_command}" if g.example_job_id else "-",
        ]
        for g in shown
    ]
    more = beyond_cap(groups, top)
    lines = ["", f"{title} (most frequent first)"]
    headers = ["reason", "entries", "example"]
    lines += table(headers, fit(headers, rows, width), right={1})
    if more["groups"]:
        lines.append(f"… {more['groups']:,} more reasons ({more['entries']:,} entries)")
    return lines


def render_text(summary: Summary, *, top: int = 20, width: int | None = None) -> str:
    """The summary as aligned plain text, for people; reasons cut to fit ``width``
    columns (a terminal's), never cut without one.

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
    out += table(["status", "entries"], [*status_rows, ["total", f"{s.total:,}"]], right={1})
    lost = [
        ["succeeded, confirmed from the job's record", f"{s.confirmed:,}"],
        ["failed, ambiguous (may have executed)", f"{s.ambiguous:,}"],
    ]
    out += _section("Lost answers (latest lines)", ["outcome", "entries"], lost, {1})
    by_command = [[c, *(f"{n[name]:,}" for name in STATUSES)] for c, n in s.by_command.items()]
    out += _section("By command", ["command", *STATUSES], by_command, {1, 2, 3})
    out += _reason_section("Failure reasons", s.failure_reasons, top, width)
    out += _reason_section("Skip reasons", s.skip_reasons, top, width)
    http = [[k, f"{v:,}"] for k, v in s.http_status.items()]
    out += _section("HTTP status (latest lines)", ["status", "entries"], http, {1})
    tries = [[str(k), f"{v:,}"] for k, v in s.attempts.items()]
    out += _section("Attempts (latest lines)", ["attempts", "entries"], tries, {0, 1})
    out += ["", "Latency in ms: the API's time (latest lines, succeeded and failed; within ~1%)"]
    out += _histogram(s.latency)
    out += ["", "Wait for the rate limiter in ms, before the first attempt (same lines)"]
    out += _histogram(s.wait)

    out += [
        "",
        f"Time span  {s.span.first_started_at or '-'} → {s.span.last_finished_at or '-'}"
        f"  ({_duration(s.span.seconds())}; {s.lines:,} lines at {_rate(s.span.rate())})",
    ]
    out += _runs(s, width)

    if s.bad_lines_total:
        out += ["", f"Unreadable lines skipped: {s.bad_lines_total:,}"]
        shown = capped(s.bad_lines, top)
        out += [f"  line {n}: {why}" for n, why in shown]
        if s.bad_lines_total > len(shown):
            out.append(f"  … {s.bad_lines_total - len(shown):,} more")
    return "\n".join(out) + "\n"


def _section(title: str, headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """A titled table after a blank line; nothing when there are no rows."""
    return ["", title, *table(headers, rows, right)] if rows else []


def _histogram(h: LogHistogram) -> list[str]:
    return table(
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


def _runs(s: Summary, width: int | None) -> list[str]:
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
                _rate(sent_rate(run)),
                *(_run_record_cells(record) if s.run_records is not None else []),
            ]
        )
    headers = ["run_id", "lines", "first started", "last finished", "rate"]
    if s.run_records is not None:
        headers += ["exit", "finished", "version", "manifests"]
    out = ["", f"Runs ({source})", *table(headers, rows, {1, 4})]
    for run_id, run in runs.items():
        record = run["record"]
        if record and record.get("halted_reason"):
            prefix = f"  {run_id} halted: "
            why = fit(
                [prefix],
                [[str(record["halted_reason"])]],
                None if width is None else width - len(prefix) + 2,
            )
            out.append(prefix + why[0][0])
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
