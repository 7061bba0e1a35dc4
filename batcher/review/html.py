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
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import orjson
from markupsafe import Markup

from batcher.errors import UsageError
from batcher.journal.atomic import new_file
from batcher.journal.reader import BadLineHandler
from batcher.journal.times import epoch
from batcher.observe.version import version
from batcher.review._timeline import Timeline
from batcher.review.compact import LogHistogram
from batcher.review.summary import Summary, sent_rate, summarize

__all__ = ["build_page", "write_html"]

#: Latency histogram bars are about this much wider than the next narrower one.
_DISPLAY_RATIO = 1.15
#: Reason-by-command rows shown (the rest are counted).
MAX_DETAIL_ROWS = 60
#: Failure and skip reasons shown in each table.
MAX_REASONS = 25
_URL_QUERY = re.compile(r"""(https?://[^\s?#"'<>]*)[?#][^\s"'<>]*""")


def _asset(name: str) -> str:
    return (resources.files("batcher.review") / "_assets" / name).read_text(encoding="utf-8")


def write_html(
    report: Path,
    out: Path,
    *,
    force: bool = False,
    on_bad_line: BadLineHandler | None = None,
    states: dict[str, Any] | None = None,
) -> int:
    """Write the page for ``report`` to ``out`` (atomically; an existing ``out`` only with
    ``force``); return its size in bytes.

    >>> write_html(Path("r.jsonl"), Path("r.html"))  # doctest: +SKIP
    412377
    """
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: no directory {out.parent}")
    data = build_page(report, on_bad_line=on_bad_line, states=states).encode()
    with new_file(out, force=force) as stream:
        stream.write(data)
    return len(data)


def build_page(
    report: Path,
    *,
    on_bad_line: BadLineHandler | None = None,
    states: dict[str, Any] | None = None,
) -> str:
    """The page for ``report``, as text; ``states`` (``read_at``, ``jobs``, ``rows`` of
    state and count: :func:`batcher.status` read at the time) adds where the jobs are now."""
    timeline = Timeline()
    summary = summarize(report, on_bad_line=on_bad_line, observe=timeline.add, details=True)
    runs = _runs(summary)
    data = {
        "timeline": _timeline_data(timeline, summary),
        "latency": _latency_data(summary.latency, summary.wait),
        "runs": [
            {"id": r["id"], "from": r["start"], "to": r["end"]}
            for r in runs
            if r["start"] is not None
        ],
    }
    return _page(report, summary, data, runs, states)


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
    names = ("t", "succeeded", "failed", "skipped", "throttled", "retries", "api_ms", "wait_ms")
    return {
        "width": timeline.width,
        **{name: list(column) for name, column in zip(names, columns, strict=True)},
        "settled_rate": [rate_at(t, 0) for t in times],
        "rate_limit": [rate_at(t, 1) for t in times],
    }


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


def _finalize(value: Any) -> Any:
    """Every value the template prints, before autoescaping: a URL's query string cut off
    (a server may have quoted a pre-signed one). Our own assets (marked safe) pass as they
    are."""
    if value is None or isinstance(value, Markup):
        return "" if value is None else value
    return _URL_QUERY.sub(r"\1?…", str(value))


def _ours(text: str) -> Markup:
    """Our own assets, and the JSON made safe for a script element: the only text the page
    takes unescaped."""
    return Markup(text)  # noqa: S704 - vendored files and _json_for_script's output only


def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=True, finalize=_finalize, undefined=jinja2.StrictUndefined)
    return env.from_string(_asset("page.html.j2"))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _rate(value: float | None, *, zero: str = "0.00/s") -> str:
    return "-" if value is None else (zero if value == 0 else f"{value:,.2f}/s")


def _runs(s: Summary) -> list[dict[str, Any]]:
    """Each run as the page shows it, oldest first; its span (epoch seconds) from its lines
    where they have times, else from its run record."""
    out = []
    for run_id, run in s.runs_dict().items():
        record = run["record"] or {}
        start = epoch(run["first_started_at"]) or epoch(record.get("started_at"))
        end = epoch(run["last_finished_at"]) or epoch(record.get("finished_at")) or start
        details = [
            f"batcher {record['version']}" if record.get("version") else "",
            record.get("endpoint") or "",
            f"project {record['project_id']}" if record.get("project_id") else "",
            f"halted: {record['halted_reason']}" if record.get("halted_reason") else "",
        ]
        out.append(
            {
                "id": run_id,
                "start": start,
                "end": None if end is None else max(end, start or end),
                "unfinished": bool(record) and record.get("finished_at") is None,
                "code": record.get("exit_code"),
                "lines": run["lines"],
                "first": run["first_started_at"] or record.get("started_at") or "-",
                "last": run["last_finished_at"] or "-",
                "rate": _rate(sent_rate(run)),
                "settled": _rate(record.get("settled_rate")),
                "limit": _rate(record.get("rate_limit"), zero="unlimited"),
                "manifests": [
                    (
                        Path(m.get("path", "?")).name,
                        m.get("entries"),
                        str(m.get("sha256") or "-")[:12],
                    )
                    for m in record.get("manifests") or []
                ],
                "details": [d for d in details if d],
            }
        )
    return out


def _page(
    report: Path,
    s: Summary,
    data: dict[str, Any],
    runs: list[dict[str, Any]],
    states: dict[str, Any] | None,
) -> str:
    uplot, page_js = _asset("uplot/uPlot.iife.min.js"), _asset("page.js")
    csp = (
        "default-src 'none'; "
        f"script-src {_csp_hash(uplot)} {_csp_hash(page_js)}; "
        "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
    )
    by_command = [
        [c, *(f"{n[k]:,}" for k in ("succeeded", "failed", "skipped"))]
        for c, n in s.by_command.items()
    ]
    return (
        _template().render(
            s=s,
            name=report.name,
            report=str(report),
            csp=_ours(csp),
            version=version(),
            generated=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            css=_ours(_asset("uplot/uPlot.min.css") + "\n" + _asset("page.css")),
            uplot=_ours(uplot),
            page_js=_ours(page_js),
            data_json=_ours(_json_for_script(data)),
            ms=_ms,
            by_command=by_command,
            runs=runs,
            bad_lines=[[f"{n:,}", why] for n, why in s.bad_lines[:MAX_REASONS]],
            max_reasons=MAX_REASONS,
            max_details=MAX_DETAIL_ROWS,
            states=states,
        )
        + "\n"
    )
