"""A halted run's rate counts the entries it sent, not the skipped lines it wrote at once."""

from __future__ import annotations

import json
from pathlib import Path

from batcher.journal.runs import runs_path
from batcher.review.summary import sent_rate, summarize
from batcher.review.text import render_text


def _line(i: int, status: str, second: int) -> str:
    stamp = f"2026-11-24T13:00:{second:02d}.000Z"
    return (
        json.dumps(
            {
                "job_id": f"j{i}",
                "command": "SUBMITVERIFYING",
                "status": status,
                "started_at": stamp,
                "finished_at": stamp,
                "run_id": "r1",
            }
        )
        + "\n"
    )


def test_the_runs_rate_leaves_skipped_lines_out(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    sent = [_line(i, "succeeded", i) for i in range(11)]  # 11 entries over 10 s
    skipped = [_line(100 + i, "skipped", 10) for i in range(700)]  # the halt, at once
    report.write_text("".join(sent + skipped))
    record = {
        "run_id": "r1",
        "version": "0.2.0",
        "started_at": "2026-11-24T13:00:00.000Z",
        "finished_at": "2026-11-24T13:00:10.000Z",
        "exit_code": 3,
        "counts": {"succeeded": 11, "failed": 0, "skipped": 700},
    }
    runs_path(report).write_text(json.dumps(record) + "\n")
    run = summarize(report).runs_dict()["r1"]
    assert run["sent"] == 11
    assert sent_rate(run) == 1.1
    assert run["rate_per_second"] > 70  # every line: what the table used to show
    assert "1.10/s" in render_text(summarize(report))
