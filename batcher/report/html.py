"""``batcher report R --html OUT.html``: the report as one page a person would rather look at.

One self-contained file: its styles, its scripts (our own few lines, and uPlot — a small,
maintained, MIT-licensed chart library, vendored in ``_assets/uplot`` with its licence) and
its data are inline, and a Content-Security-Policy forbids every fetch, so opening it needs
no network and reaches none.

It aggregates first: the summary's one pass (:func:`.summary.summarize`) also fills time
buckets (:mod:`._timeline`) and latency histograms, so a million-line report still makes a
page of a few hundred KB that opens at once. Tables are plain HTML (readable without the
charts, and printable). Every text is escaped; no pre-signed upload URL is ever read into
it, and any URL's query string in a reason is cut off, in case a server quoted one.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import math
import os
import re
import tempfile
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from ..errors import UsageError
from ._compact import LogHistogram
from ._reader import BadLineHandler
from ._timeline import Timeline
from ._times import epoch
from .reasons import ReasonGroup
from .summary import Summary, summarize

__all__ = ["build_page", "write_html"]

#: Reason-by-command rows shown (the rest are counted).
MAX_DETAIL_ROWS = 60
#: Failure and skip reasons shown in each table.
MAX_REASONS = 25
#: Latency histogram bars are about this much wider than the next narrower one.
_DISPLAY_RATIO = 1.15
_URL_QUERY = re.compile(r"""(https?://[^\s?#"'<>]*)[?#][^\s"'<>]*""")


def _asset(name: str) -> str:
    return (resources.files("batcher.report") / "_assets" / name).read_text(encoding="utf-8")


def _text(value: Any) -> str:
    """``value`` as HTML text: escaped, URL queries cut (they may be pre-signed)."""
    return html.escape(_URL_QUERY.sub(r"\1?…", str(value)), quote=True)


def write_html(
    report: Path, out: Path, *, force: bool = False, on_bad_line: BadLineHandler | None = None
) -> int:
    """Write the page for ``report`` to ``out`` (atomically; an existing ``out`` only with
    ``force``); return its size in bytes.

    >>> write_html(Path("r.jsonl"), Path("r.html"))  # doctest: +SKIP
    412377
    """
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: no directory {out.parent}")
    data = build_page(report, on_bad_line=on_bad_line).encode()
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    try:
        with open(fd, "wb") as stream:
            stream.write(data)
        if force:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)
            except FileExistsError:
                raise UsageError(f"{out} already exists; add --force to replace it") from None
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return len(data)


def build_page(report: Path, *, on_bad_line: BadLineHandler | None = None) -> str:
    """The page for ``report``, as text."""
    timeline = Timeline()
    summary = summarize(report, on_bad_line=on_bad_line, observe=timeline.add, details=True)
    data = {
        "timeline": _timeline_data(timeline, summary),
        "latency": _latency_data(summary.latency, summary.wait),
        "runs": _run_spans(summary),
    }
    return _page(report, summary, data)


def _timeline_data(timeline: Timeline, summary: Summary) -> dict[str, Any]:
    rows = timeline.rows()
    columns = list(zip(*rows, strict=True)) if rows else [()] * 8
    runs = []
    for record in summary.run_records or ():
        start, end = epoch(record.started_at), epoch(record.finished_at)
        span = summary.runs.get(record.run_id)
        end = end or (span.last if span else None)
        if start is not None:
            runs.append((start, end or start, record.settled_rate, record.rate_limit))

    def rate_at(t: float, which: int) -> float | None:
        for start, end, settled, limit in runs:
            if start - timeline.width <= t <= end:
                value = settled if which == 0 else limit
                return None if value is None or value <= 0 else value
        return None

    times = list(columns[0])
    return {
        "width": timeline.width,
        "t": times,
        "succeeded": list(columns[1]),
        "failed": list(columns[2]),
        "skipped": list(columns[3]),
        "throttled": list(columns[4]),
        "retries": list(columns[5]),
        "api_ms": list(columns[6]),
        "wait_ms": list(columns[7]),
        "settled_rate": [rate_at(t, 0) for t in times],
        "rate_limit": [rate_at(t, 1) for t in times],
    }


def _run_spans(summary: Summary) -> list[dict[str, Any]]:
    """Each run's id and time span (epoch seconds), oldest first."""
    spans = []
    for run_id, run in summary.runs_dict().items():
        record = run["record"] or {}
        start = epoch(run["first_started_at"]) or epoch(record.get("started_at"))
        end = epoch(run["last_finished_at"]) or epoch(record.get("finished_at")) or start
        if start is not None and end is not None:
            spans.append({"id": run_id, "from": start, "to": max(start, end)})
    return spans


def _latency_data(api: LogHistogram, wait: LogHistogram) -> dict[str, list[Any]]:
    """Both histograms on shared, coarser buckets (about 15% wide), every bucket from the
    first to the last there (empty ones as 0), for the chart. Times under 0.01 ms (a wait
    of 0 when the limiter had a token) count in the first bucket."""
    ratio = math.log(_DISPLAY_RATIO)
    floor = math.ceil(math.log(0.01) / ratio)
    counts: dict[int, list[int]] = {}
    for which, histogram in enumerate((api, wait)):
        for _, high, n in histogram.buckets():
            index = max(floor, math.ceil(math.log(max(high, 1e-9)) / ratio - 1e-9))
            counts.setdefault(index, [0, 0])[which] += n
    if not counts:
        return {"ms": [], "api": [], "wait": []}
    indexes = range(min(counts), max(counts) + 1)
    return {
        "ms": [round(_DISPLAY_RATIO**i, 4) for i in indexes],
        "api": [counts.get(i, [0, 0])[0] for i in indexes],
        "wait": [counts.get(i, [0, 0])[1] for i in indexes],
    }


def _json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</``, no ``<!--``)."""
    text = orjson.dumps(data).decode()
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _csp_hash(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def _page(report: Path, s: Summary, data: dict[str, Any]) -> str:
    uplot, page_js = _asset("uplot/uPlot.iife.min.js"), _asset("page.js")
    csp = (
        "default-src 'none'; "
        f"script-src {_csp_hash(uplot)} {_csp_hash(page_js)}; "
        "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    generated = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    name = _text(report.name)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>batcher report: {name}</title>",
        f"<style>{_asset('uplot/uPlot.min.css')}\n{_asset('page.css')}</style>",
        "</head><body>",
        "<header>",
        f"<h1>Report {name}</h1>",
        f'<p class="sub">{s.lines:,} lines, {s.total:,} entries (each counted by its latest '
        f"line) · {_text(s.span.first_started_at or '-')} → "
        f"{_text(s.span.last_finished_at or '-')} UTC</p>",
        _cards(s),
        "</header><main>",
        '<h2 id="charts">Over time</h2>',
        "<noscript><p>The charts need JavaScript; every table below does not.</p></noscript>",
        '<p class="sub"><span id="zoom-note"></span>drag across a chart to zoom in, '
        "double-click to zoom out; each run below has a <em>zoom</em> button. "
        + _zoom_button(s.span.first, s.span.last, "whole report")
        + "</p>",
        '<div class="charts">',
        _chart("chart-outcomes", "Every line is an outcome at its finished_at."),
        _chart(
            "chart-throughput",
            "Entries answered per second; those whose last answer was a 429; extra attempts; "
            "and each run's rate limit and the rate its limiter settled at.",
        ),
        _chart("chart-latency-time", "The API's time per attempt, and the wait before it."),
        _chart("chart-latency", "How long the API took (latest lines, succeeded and failed)."),
        "</div>",
        _failure_sections(s),
        _runs_section(s),
        _bad_lines(s),
        "</main><footer>",
        f"Made by batcher {_text(__version__)} from {_text(report)} at {generated}. The "
        f"report holds every detail: <code>batcher report {name} --status failed</code> "
        f"lists the failures, <code>--export-manifest retry.yaml</code> writes them as a "
        "manifest to run again.",
        "</footer>",
        f'<script type="application/json" id="batcher-data">{_json_for_script(data)}</script>',
        f"<script>{uplot}</script>",
        f"<script>{page_js}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _zoom_button(start: float | None, end: float | None, label: str) -> str:
    if start is None or end is None or end <= start:
        return ""
    return f'<button class="zoom" data-from="{start:.3f}" data-to="{end:.3f}">{label}</button>'


def _cards(s: Summary) -> str:
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
            f'<div class="card {cls}"><div class="n">{n}</div><div class="l">{_text(label)}'
            "</div></div>"
            for cls, n, label in cards
        )
        + "</div>"
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _chart(element: str, note: str) -> str:
    return f'<div class="chart"><div id="{element}"></div><p class="note">{_text(note)}</p></div>'


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
            _text(g.label)
            + (f'<br><span class="more">{_text(g.detail)}</span>' if g.detail else ""),
            f"{g.count:,}",
            f'<div class="bar {css}" style="width:{100 * g.count / top:.1f}%"></div>',
            f'<span class="mono">{_text(g.example_job_id)} {_text(g.example_command)}</span>'
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
        f"<h3>{_text(title)}</h3>"
        + _table(headers, rows).replace("<th></th>", '<th class="bar-cell"></th>')
        + tail
    )


def _failure_sections(s: Summary) -> str:
    out = ['<h2 id="failures">Failures</h2>']
    if not s.status["failed"] and not s.status["skipped"]:
        out.append("<p>No entry failed or was skipped.</p>")
    out.append(_reasons("Failed, by reason", s.failure_reasons, ""))
    out.append(_reasons("Skipped, by reason", s.skip_reasons, "skip"))
    if s.failure_details:
        rows = [
            [
                f'<span class="badge {"fail" if d.status == "failed" else ""}">{_text(d.status)}'
                "</span>",
                _text(d.reason),
                f'<span class="mono">{_text(d.command)}</span>',
                f"{d.count:,}",
                f'<span class="mono">{", ".join(_text(job) for job in d.examples)}</span>',
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
                f'<span class="mono">{_text(command)}</span>',
                *(f"{counts[k]:,}" for k in ("succeeded", "failed", "skipped")),
            ]
            for command, counts in s.by_command.items()
        ]
        headers = [("command", False), ("succeeded", True), ("failed", True), ("skipped", True)]
        out += ["<h3>By command</h3>", _table(headers, rows)]
    return "".join(out)


def _runs_section(s: Summary) -> str:
    runs = s.runs_dict()
    if not runs:
        return ""
    rows = []
    for run_id, run in runs.items():
        record = run["record"] or {}
        start = epoch(record.get("started_at")) or epoch(run["first_started_at"])
        end = epoch(record.get("finished_at")) or epoch(run["last_finished_at"]) or start
        zoom = _zoom_button(start, end, "zoom")
        code = record.get("exit_code")
        status = (
            '<span class="badge warn">not finished</span>'
            if record and record.get("finished_at") is None
            else (
                "-"
                if code is None
                else f'<span class="badge {"ok" if code == 0 else "fail"}">'
                f"exit {_text(code)}</span>"
            )
        )
        manifests = "<br>".join(
            f"{_text(Path(m.get('path', '?')).name)} ({_text(m.get('entries'))} entries, "
            f'sha256 <span class="mono">{_text(str(m.get("sha256") or "-")[:12])}</span>)'
            for m in record.get("manifests") or []
        )
        settled = record.get("settled_rate")
        limit = record.get("rate_limit")
        details = [
            f"batcher {_text(record['version'])}" if record.get("version") else "",
            _text(record.get("endpoint") or ""),
            f"project {_text(record['project_id'])}" if record.get("project_id") else "",
            f"halted: {_text(record['halted_reason'])}" if record.get("halted_reason") else "",
        ]
        rows.append(
            [
                f'<span class="mono">{_text(run_id)}</span> {zoom}',
                status,
                f"{run['lines']:,}",
                f"{_text(run['first_started_at'] or record.get('started_at') or '-')}<br>"
                f"{_text(run['last_finished_at'] or '-')}",
                "-" if run["rate_per_second"] is None else f"{run['rate_per_second']:,.2f}/s",
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
    return f'<h2 id="runs">Runs{_text(source)}</h2>' + _table(headers, rows)


def _bad_lines(s: Summary) -> str:
    if not s.bad_lines_total:
        return ""
    rows = [[f"{n:,}", _text(why)] for n, why in s.bad_lines[:MAX_REASONS]]
    return f"<h2>Unreadable lines skipped: {s.bad_lines_total:,}</h2>" + _table(
        [("line", True), ("why", False)], rows
    )
