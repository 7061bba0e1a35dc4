"""A status result as people and programs read it: a table, JSON, CSV; the metrics file."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from batcher.review.text import fit, table, terminal_safe
from batcher.send.progress import format_duration
from batcher.status.check import StatusResult
from batcher.status.fetch import JobView, by_state
from batcher.status.flows import FAILED_REVIEW

#: Stuck jobs and failure groups listed in the table (JSON and CSV list them all).
TOP = 20
#: The CSV's columns: one row per job shown.
CSV_COLUMNS = (
    "job_id",
    "project_id",
    "state",
    "last_update_time",
    "in_state_seconds",
    "stuck",
    "error_code",
    "log_description",
    "reason",
)


def _stamp(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_groups(result: StatusResult) -> list[dict[str, Any]]:
    """Failed reviews grouped by their latest log entry's error code and description."""
    groups: dict[tuple[str, str | None, str | None], list[str]] = {}
    for v in result.shown:
        if v.state in FAILED_REVIEW:
            groups.setdefault((v.state, v.error_code, v.log_description), []).append(v.job_id)
    rows = [
        {"state": s, "error_code": c, "log_description": d, "jobs": len(ids), "examples": ids[:3]}
        for (s, c, d), ids in groups.items()
    ]
    return sorted(rows, key=lambda row: -row["jobs"])


def _job(result: StatusResult, view: JobView) -> dict[str, Any]:
    since = result.in_state_for(view)
    return {
        "job_id": view.job_id,
        "project_id": view.project_id,
        "state": view.state,
        "last_update_time": view.last_update_time,
        "in_state_seconds": None if since is None else round(since, 1),
        "stuck": result.is_stuck(view),
        "error_code": view.error_code,
        "log_description": view.log_description,
        "reason": view.reason,
    }


def to_dict(result: StatusResult) -> dict[str, Any]:
    """The ``--format json`` document."""
    wait = result.wait
    return {
        "source": result.source,
        "read_at": _stamp(result.read_at),
        "reads": result.reads,
        "jobs": len(result.jobs),
        "shown": len(result.shown),
        "by_state": by_state(result.shown),
        "stuck_after_seconds": result.stuck_after,
        "stuck": [v.job_id for v in result.stuck()],
        "failed_reviews": failure_groups(result),
        "wait": None
        if wait is None
        else {
            **wait.outcome(),
            "until": list(wait.wanted),
            "timed_out": wait.timed_out,
            "passes": wait.passes,
        },
        "exit_code": result.exit_code,
        "job_states": [_job(result, v) for v in result.shown],
    }


def render_json(result: StatusResult) -> str:
    return orjson.dumps(to_dict(result), option=orjson.OPT_INDENT_2).decode() + "\n"


def render_csv(result: StatusResult) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_job(result, view) for view in result.shown)
    return out.getvalue()


def render_table(result: StatusResult, *, width: int | None = None) -> str:
    """The histogram of states, the stuck jobs, the failed reviews, how a wait ended."""
    counts = by_state(result.shown)
    top = max(counts.values(), default=1)
    bars = [[s, f"{n:,}", "█" * max(1, round(30 * n / top))] for s, n in counts.items()]
    lines = [
        f"{len(result.shown):,} jobs ({result.source}), read at {_stamp(result.read_at)} in "
        f"{result.reads:,} reads",
        "",
        *table(["state", "jobs", ""], bars, right={1}),
    ]
    stuck = result.stuck()
    if stuck and result.stuck_after is not None:
        lines += [
            "",
            f"In one state longer than {format_duration(result.stuck_after)}: "
            f"{len(stuck):,} jobs (longest first)",
        ]
        aged = [(v, result.in_state_for(v) or 0.0) for v in stuck[:TOP]]
        rows = [[v.job_id, v.state, v.last_update_time or "-", format_duration(a)] for v, a in aged]
        lines += table(["job_id", "state", "since", "for"], rows, right={3})
        lines += [f"… {len(stuck) - TOP:,} more (--format csv lists them all)"] * (len(stuck) > TOP)
    groups = failure_groups(result)
    if groups:
        headers = ["state", "error_code", "log_description", "jobs", "examples"]
        rows = [
            [*(g[k] or "-" for k in headers[:3]), f"{g['jobs']:,}", " ".join(g["examples"])]
            for g in groups[:TOP]
        ]
        lines += ["", "Failed reviews, by the latest log entry"]
        lines += table(headers, fit(headers, rows, width, column=2), right={3})
    lines += _wait_lines(result)
    return "\n".join(terminal_safe(line) for line in lines) + "\n"


def _wait_lines(result: StatusResult) -> list[str]:
    wait = result.wait
    if wait is None:
        return []
    outcome = wait.outcome()
    lines = [
        "",
        f"Waited for {','.join(wait.wanted)} ({wait.passes} looks): "
        f"{outcome['reached']:,} of {len(wait.views):,} jobs reached it",
    ]
    for key, said, when in (
        ("cannot_reach", "cannot reach it without someone acting", True),
        ("elsewhere", "still elsewhere at the timeout", wait.timed_out),
    ):
        if outcome[key] and when:
            lines.append(f"  {said}: " + ", ".join(f"{s} {n:,}" for s, n in outcome[key].items()))
    return lines


def page_states(result: StatusResult) -> dict[str, Any]:
    """The states for a report's page (:func:`batcher.review.html.build_page`)."""
    rows = [[state, f"{n:,}"] for state, n in by_state(result.jobs).items()]
    return {"read_at": _stamp(result.read_at), "jobs": len(result.jobs), "rows": rows}


def write_metrics(result: StatusResult, path: Path) -> None:
    """The state counts as Prometheus gauges, written atomically (textfile collector)."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry, source, stuck = CollectorRegistry(), Path(result.source).name, result.stuck()
    jobs = Gauge(
        "batcher_status_jobs",
        "Jobs by state, as status read them.",
        ["source", "state"],
        registry=registry,
    )
    for state, count in by_state(result.shown).items():
        jobs.labels(source, state).set(count)
    for name, doc, value in (
        ("batcher_status_stuck", "Jobs in one state longer than --stuck-after.", len(stuck)),
        ("batcher_status_read_timestamp_seconds", "When the states were read.", result.read_at),
    ):
        Gauge(name, doc, ["source"], registry=registry).labels(source).set(value)
    write_to_textfile(str(path), registry)
