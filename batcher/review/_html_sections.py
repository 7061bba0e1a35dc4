"""The HTML page's sections: cards, tables of reasons and runs, unreadable lines.

Every text that reaches the page passes :func:`text`: escaped, and any URL's query string
cut off (a server may have quoted a pre-signed one).
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from batcher.journal.times import epoch
from batcher.review.reasons import ReasonGroup
from batcher.review.summary import Summary, sent_rate

#: Reason-by-command rows shown (the rest are counted).
MAX_DETAIL_ROWS = 60
#: Failure and skip reasons shown in each table.
MAX_REASONS = 25
_URL_QUERY = re.compile(r"""(https?://[^\s?#"'<>]*)[?#][^\s"'<>]*""")


def text(value: Any) -> str:
    """``value`` as HTML text: escaped, URL queries cut (they may be pre-signed)."""
    return html.escape(_URL_QUERY.sub(r"\1?…", str(value)), quote=True)


def zoom_button(start: float | None, end: float | None, label: str) -> str:
    if start is None or end is None or end <= start:
        return ""
    return f'<button class="zoom" data-from="{start:.3f}" data-to="{end:.3f}">{label}</button>'


def cards(s: Summary) -> str:
    cards = [
        ("", f"{s.total:,}", "entries"),
        ("ok", f"{s.status['succeeded']:,}", "succeeded"),
        ("fail", f"{s.status['failed']:,}", f"failed ({s.retryable_failed:,} retryable)"),
        ("skip", f"{s.status['skipped']:,}", "skipped"),
        ("ok", f"{s.confirmed:,}", "confirmed from the job's record"),
        ("warn", f"{s.ambiguous:,}", "ambiguous (may have executed)"),
        ("", _ms(s.latency.quantile(0.5)), "API p50 ms"),
        ("", _ms(s.latency.quantile(0.99)), "API p99 ms"),
        ("", _ms(s.wait.quantile(0.5)), "wait p50 ms"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card {cls}"><div class="n">{n}</div><div class="l">{text(label)}'
            "</div></div>"
            for cls, n, label in cards
        )
        + "</div>"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def chart(element: str, note: str) -> str:
    return f'<div class="chart"><div id="{element}"></div><p class="note">{text(note)}</p></div>'


def _table(headers: list[tuple[str, bool]], rows: list[list[str]]) -> str:
    """``headers``: (title, numeric); ``rows``: cells already escaped."""
    head = "".join(f'<th class="n">{t}</th>' if n else f"<th>{t}</th>" for t, n in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{cell}</td>' if numeric else f"<td>{cell}</td>"
            for cell, (_, numeric) in zip(row, headers, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _reasons(title: str, groups: list[ReasonGroup], css: str) -> str:
    if not groups:
        return ""
    top = max(g.count for g in groups)
    rows = [
        [
            text(g.label) + (f'<br><span class="more">{text(g.detail)}</span>' if g.detail else ""),
            f"{g.count:,}",
            f'<div class="bar {css}" style="width:{100 * g.count / top:.1f}%"></div>',
            f'<span class="mono">{text(g.example_job_id)} {text(g.example_command)}</span>'
            if g.example_job_id
            else "-",
        ]
        for g in groups[:MAX_REASONS]
    ]
    more = groups[MAX_REASONS:]
    tail = (
        f'<p class="more">… {len(more):,} more reasons ({sum(g.count for g in more):,} entries)</p>'
        if more
        else ""
    )
    headers = [("reason", False), ("entries", True), ("", False), ("example", False)]
    return (
        f"<h3>{text(title)}</h3>"
        + _table(headers, rows).replace("<th></th>", '<th class="bar-cell"></th>')
        + tail
    )


def failure_sections(s: Summary) -> str:
    out = ['<h2 id="failures">Failures</h2>']
    if not s.status["failed"] and not s.status["skipped"]:
        out.append("<p>No entry failed or was skipped.</p>")
    out.append(_reasons("Failed, by reason", s.failure_reasons, ""))
    out.append(_reasons("Skipped, by reason", s.skip_reasons, "skip"))
    if s.failure_details:
        rows = [
            [
                f'<span class="badge {"fail" if d.status == "failed" else ""}">{text(d.status)}'
                "</span>",
                text(d.reason),
                f'<span class="mono">{text(d.command)}</span>',
                f"{d.count:,}",
                f'<span class="mono">{", ".join(text(job) for job in d.examples)}</span>',
            ]
            for d in s.failure_details[:MAX_DETAIL_ROWS]
        ]
        headers = [
            ("status", False),
            ("reason", False),
            ("command", False),
            ("entries", True),
            ("example jobs", False),
        ]
        out += ["<h3>By reason and command</h3>", _table(headers, rows)]
        if len(s.failure_details) > MAX_DETAIL_ROWS:
            rest = s.failure_details[MAX_DETAIL_ROWS:]
            out.append(
                f'<p class="more">… {len(rest):,} more ({sum(d.count for d in rest):,} entries)</p>'
            )
    if s.by_command:
        rows = [
            [
                f'<span class="mono">{text(command)}</span>',
                *(f"{counts[k]:,}" for k in ("succeeded", "failed", "skipped")),
            ]
            for command, counts in s.by_command.items()
        ]
        headers = [("command", False), ("succeeded", True), ("failed", True), ("skipped", True)]
        out += ["<h3>By command</h3>", _table(headers, rows)]
    return "".join(out)


def runs_section(s: Summary) -> str:
    runs = s.runs_dict()
    if not runs:
        return ""
    rows = []
    for run_id, run in runs.items():
        record = run["record"] or {}
        start = epoch(record.get("started_at")) or epoch(run["first_started_at"])
        end = epoch(record.get("finished_at")) or epoch(run["last_finished_at"]) or start
        zoom = zoom_button(start, end, "zoom")
        code = record.get("exit_code")
        status = (
            '<span class="badge warn">not finished</span>'
            if record and record.get("finished_at") is None
            else (
                "-"
                if code is None
                else f'<span class="badge {"ok" if code == 0 else "fail"}">exit {text(code)}</span>'
            )
        )
        manifests = "<br>".join(
            f"{text(Path(m.get('path', '?')).name)} ({text(m.get('entries'))} entries, "
            f'sha256 <span class="mono">{text(str(m.get("sha256") or "-")[:12])}</span>)'
            for m in record.get("manifests") or []
        )
        settled = record.get("settled_rate")
        limit = record.get("rate_limit")
        details = [
            f"batcher {text(record['version'])}" if record.get("version") else "",
            text(record.get("endpoint") or ""),
            f"project {text(record['project_id'])}" if record.get("project_id") else "",
            f"halted: {text(record['halted_reason'])}" if record.get("halted_reason") else "",
        ]
        rows.append(
            [
                f'<span class="mono">{text(run_id)}</span> {zoom}',
                status,
                f"{run['lines']:,}",
                f"{text(run['first_started_at'] or record.get('started_at') or '-')}<br>"
                f"{text(run['last_finished_at'] or '-')}",
                "-" if sent_rate(run) is None else f"{sent_rate(run):,.2f}/s",
                "-" if settled is None else f"{settled:,.2f}/s",
                "-" if limit is None else ("unlimited" if limit == 0 else f"{limit:,.2f}/s"),
                manifests or "-",
                "<br>".join(d for d in details if d) or "-",
            ]
        )
    headers = [
        ("run", False),
        ("result", False),
        ("lines", True),
        ("first started / last finished (UTC)", False),
        ("rate", True),
        ("settled", True),
        ("limit", True),
        ("manifests", False),
        ("", False),
    ]
    source = (
        "" if s.run_records is not None else " (no run record beside the report: from its lines)"
    )
    return f'<h2 id="runs">Runs{text(source)}</h2>' + _table(headers, rows)


def bad_lines(s: Summary) -> str:
    if not s.bad_lines_total:
        return ""
    rows = [[f"{n:,}", text(why)] for n, why in s.bad_lines[:MAX_REASONS]]
    return f"<h2>Unreadable lines skipped: {s.bad_lines_total:,}</h2>" + _table(
        [("line", True), ("why", False)], rows
    )
