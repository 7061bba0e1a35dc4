"""The report table fits the terminal: reasons are cut to its width, not to 60 characters."""

from __future__ import annotations

import json
from pathlib import Path

from batcher.review.summary import summarize
from batcher.review.text import render_text

REASON = (
    "timed out after 30s waiting for the API; the job's record shows no trace of the command "
    "yet: it may have executed (ambiguous), so it is not sent again before a record check"
)


def _report(tmp_path: Path) -> Path:
    path = tmp_path / "r.jsonl"
    line = {
        "job_id": "j1",
        "command": "SUBMITVERIFYING",
        "status": "failed",
        "reason": REASON,
        "started_at": "2026-11-24T13:00:00.000Z",
        "finished_at": "2026-11-24T13:00:30.000Z",
    }
    path.write_text(json.dumps(line) + "\n")
    return path


def test_a_wide_terminal_shows_what_a_60_column_cut_hid(tmp_path: Path) -> None:
    text = render_text(summarize(_report(tmp_path)), width=160)
    row = next(line for line in text.splitlines() if line.startswith("timed out"))
    assert "it may have executed" in row
    assert len(row) <= 160


def test_a_narrow_terminal_cuts_the_reason_to_fit(tmp_path: Path) -> None:
    text = render_text(summarize(_report(tmp_path)), width=80)
    row = next(line for line in text.splitlines() if line.startswith("timed out"))
    assert len(row) <= 80 and "…" in row


def test_piped_output_is_never_cut(tmp_path: Path) -> None:
    assert " ".join(REASON.split()) in render_text(summarize(_report(tmp_path)))
