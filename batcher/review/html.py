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
import hashlib
import math
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from batcher import __version__
from batcher.errors import UsageError
from batcher.journal.atomic import new_file
from batcher.journal.reader import BadLineHandler
from batcher.journal.times import epoch
from batcher.review._html_sections import (
    bad_lines,
    cards,
    chart,
    failure_sections,
    runs_section,
    text,
    zoom_button,
)
from batcher.review._timeline import Timeline
from batcher.review.compact import LogHistogram
from batcher.review.summary import Summary, summarize

__all__ = ["build_page", "write_html"]

#: Latency histogram bars are about this much wider than the next narrower one.
_DISPLAY_RATIO = 1.15


def _asset(name: str) -> str:
    return (resources.files("batcher.review") / "_assets" / name).read_text(encoding="utf-8")


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
    with new_file(out, force=force) as stream:
        stream.write(data)
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
    name = text(report.name)
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
        f"line) · {text(s.span.first_started_at or '-')} → "
        f"{text(s.span.last_finished_at or '-')} UTC</p>",
        cards(s),
        "</header><main>",
        '<h2 id="charts">Over time</h2>',
        "<noscript><p>The charts need JavaScript; every table below does not.</p></noscript>",
        '<p class="sub"><span id="zoom-note"></span>drag across a chart to zoom in, '
        "double-click to zoom out; each run below has a <em>zoom</em> button. "
        + zoom_button(s.span.first, s.span.last, "whole report")
        + "</p>",
        '<div class="charts">',
        chart("chart-outcomes", "Every line is an outcome at its finished_at."),
        chart(
            "chart-throughput",
            "Entries answered per second; those whose last answer was a 429; extra attempts; "
            "and each run's rate limit and the rate its limiter settled at.",
        ),
        chart("chart-latency-time", "The API's time per attempt, and the wait before it."),
        chart("chart-latency", "How long the API took (latest lines, succeeded and failed)."),
        "</div>",
        failure_sections(s),
        runs_section(s),
        bad_lines(s),
        "</main><footer>",
        f"Made by batcher {text(__version__)} from {text(report)} at {generated}. The "
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
