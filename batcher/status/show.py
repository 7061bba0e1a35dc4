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
    for view in result.shown:
        if view.state in FAILED_REVIEW:
            key = (view.state, view.error_code, view.log_description)
            groups.setdefault(key, []).append(view.job_id)
    rows = [
        {
            "state": s,
            "error_code": code,
            "log_description": text,
            "jobs": len(ids),
            "examples": ids[:3],
        }
        for (s, code, text), ids in groups.items()
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
        "stuck": result.stuck_after is not None
        and since is not None
        and since > result.stuck_after,
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
    """One row per job shown."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_job(result, view) for view in result.shown)
    return out.getvalue()


def render_table(result: StatusResult, *, width: int | None = None) -> str:
    """The histogram of states, the stuck jobs, the failed reviews, how a wait ended."""
    counts = by_state(result.shown)
    top = max(counts.values(), default=1)
    lines = [
        f"{len(result.shown):,} jobs ({terminal_safe(result.source)}), read at "
        f"{_stamp(result.read_at)} in {result.reads:,} reads",
        "",
        *table(
            ["state", "jobs", ""],
            [[s, f"{n:,}", "█" * max(1, round(30 * n / top))] for s, n in counts.items()],
            right={1},
        ),
    ]
    stuck = result.stuck()
    if stuck:
        assert result.stuck_after is not None
        lines += [
            "",
            f"In one state longer than {format_duration(result.stuck_after)}: "
            f"{len(stuck):,} jobs (longest first)",
        ]
        rows = [
            [
                v.job_id,
                v.state,
                v.last_update_time or "-",
                format_duration(result.in_state_for(v) or 0.0),
            ]
            for v in stuck[:TOP]
        ]
        lines += table(["job_id", "state", "since", "for"], rows, right={3})
        lines += [f"… {len(stuck) - TOP:,} more (--format csv lists them all)"] * (len(stuck) > TOP)
    groups = failure_groups(result)
    if groups:
        lines += ["", "Failed reviews, by the latest log entry"]
        rows = [
            [
                g["state"],
                g["error_code"] or "-",
                g["log_description"] or "-",
                f"{g['jobs']:,}",
                " ".join(g["examples"]),
            ]
            for g in groups[:TOP]
        ]
        headers = ["state", "error_code", "log_description", "jobs", "examples"]
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
    for key, said in (
        ("cannot_reach", "cannot reach it without someone acting"),
        ("elsewhere", "still elsewhere at the timeout"),
    ):
        if outcome[key] and (key == "cannot_reach" or wait.timed_out):
            lines.append(f"  {said}: " + ", ".join(f"{s} {n:,}" for s, n in outcome[key].items()))
    return lines


def page_states(result: StatusResult) -> dict[str, Any]:
    """The states for a report's page (:func:`batcher.review.html.build_page`)."""
    return {
        "read_at": _stamp(result.read_at),
        "jobs": len(result.jobs),
        "rows": [[state, f"{n:,}"] for state, n in by_state(result.jobs).items()],
    }


def write_metrics(result: StatusResult, path: Path) -> None:
    """The state counts as Prometheus gauges, written atomically (textfile collector)."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    labels = {"source": Path(result.source).name}
    jobs = Gauge(
        "batcher_status_jobs",
        "Jobs by state, as status read them.",
        [*labels, "state"],
        registry=registry,
    )
    for state, count in by_state(result.shown).items():
        jobs.labels(**labels, state=state).set(count)
    stuck = Gauge(
        "batcher_status_stuck",
        "Jobs in one state longer than --stuck-after.",
        list(labels),
        registry=registry,
    )
    stuck.labels(**labels).set(len(result.stuck()))
    read = Gauge(
        "batcher_status_read_timestamp_seconds",
        "When the states were read.",
        list(labels),
        registry=registry,
    )
    read.labels(**labels).set(result.read_at)
    write_to_textfile(str(path), registry)
