"""The HTML page, without a browser: self-contained, escaped, no secrets, small; and the
time buckets behind its charts. (tests/review/test_html_browser.py opens it in chromium.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from report_lines import THROTTLED, report_line, resumed_lines, write_report

from batcher.journal import ReportWriter, RunRecord, finish_run, start_run
from batcher.review._timeline import MAX_BUCKETS, Timeline
from batcher.review.html import build_page, write_html

SIGNED = "https://obs.example.com/bucket/video.mp4?X-Amz-Signature=0ddba11deadbeef"
HOSTILE = '<script>alert("pwned")</script><img src=x onerror=alert(1)>'


def stamp(second: float) -> str:
    when = datetime(2026, 11, 24, 13, tzinfo=UTC) + timedelta(seconds=second)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def busy_report(path: Path, count: int = 3000) -> Path:
    """A run over ``count`` seconds-ish with every kind of outcome, hostile text and
    pre-signed URLs; then a run record beside it."""
    lines: list[dict[str, Any]] = list(resumed_lines())
    for i in range(count):
        at = i / 7
        kind = i % 10
        fields: dict[str, Any] = {
            "started_at": stamp(at),
            "finished_at": stamp(at + 0.05),
            "duration_ms": 20.0 + i % 50,
            "wait_ms": float(i % 13),
            "run_id": "r3",
        }
        if kind == 0:
            fields.update(THROTTLED)
        elif kind == 1:
            fields.update(status="failed", reason=HOSTILE, failed_msg=f"see {SIGNED}")
        elif kind == 2:
            fields.update(status="failed", ambiguous=True, reason="may have executed")
        elif kind == 3:
            fields.update(confirmed_by="operation_log", attempts=2)
        else:
            fields.update(attachment_upload_url=[SIGNED])
        lines.append(report_line(f"job-{i:05d}", "GET_MULTIPART_UPLOADED", **fields))
    write_report(path, lines)
    with ReportWriter.open(path, resume=True) as writer:
        record = RunRecord(
            run_id="r3",
            version="0.2.0",
            started_at=stamp(0),
            endpoint=HOSTILE,
            rate_limit=8.0,
            options={"rate": 8.0},
        )
        start_run(writer, record)
        record.finished_at, record.exit_code, record.settled_rate = stamp(count / 7), 1, 6.5
        finish_run(writer, record)
    return path


@pytest.fixture
def page(tmp_path: Path) -> str:
    return build_page(busy_report(tmp_path / "r.jsonl"))


def test_self_contained_no_fetch_possible(page: str) -> None:
    assert page.startswith("<!doctype html>")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert (
        csp
        and "default-src 'none'" in csp.group(1)
        and "'unsafe-inline'" not in csp.group(1).split("script-src")[1].split(";")[0]
    )
    tags = re.findall(r"<(script|link|img|iframe|object|embed|audio|video|source)\b[^>]*>", page)
    assert set(tags) == {"script"}
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link\b", page)
    assert "@import" not in page and "url(" not in page.split("<script")[0]


def test_everything_is_escaped_and_no_signed_url_leaks(page: str) -> None:
    assert "0ddba11deadbeef" not in page and "X-Amz-Signature" not in page
    assert HOSTILE not in page
    # markupsafe spells the quote &#34; where html.escape spelled it &quot;: both escape it.
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in page
    data = re.search(r'<script type="application/json" id="batcher-data">(.*?)</script>', page)
    assert data is not None and "</" not in data.group(1)
    json.loads(data.group(1))


def test_the_page_has_the_numbers(page: str) -> None:
    for text in ("Failed, by reason", "Skipped, by reason", "By reason and command",
                 "By command", "Runs", "APIGW.0308", "confirmed from the job", "ambiguous",
                 "exit 1", "6.50/s", "job-00000"):  # fmt: skip
        assert text in page, text


def test_a_big_report_makes_a_small_page(tmp_path: Path) -> None:
    path = busy_report(tmp_path / "r.jsonl", count=40_000)
    size = write_html(path, tmp_path / "r.html")
    assert size < 1_000_000
    data = re.search(r'id="batcher-data">(.*?)</script>', (tmp_path / "r.html").read_text()).group(
        1
    )  # type: ignore[union-attr]
    timeline = json.loads(data)["timeline"]
    assert len(timeline["t"]) <= MAX_BUCKETS + 2 * len(timeline["t"]) // 3


def test_timeline_buckets_widen_and_keep_every_count() -> None:
    timeline = Timeline()
    total = 0
    for i in range(50_000):
        status = ("succeeded", "failed", "skipped")[i % 3]
        timeline.add({"status": status, "finished_at": stamp(i * 0.9), "attempts": 1 + i % 2})
        total += 1
    rows = timeline.rows()
    assert timeline.width > 1
    assert len([r for r in rows if sum(r[1:4])]) <= MAX_BUCKETS
    assert sum(sum(r[1:4]) for r in rows) == total
    assert sum(r[5] for r in rows) == 25_000  # retries
    starts = [r[0] for r in rows]
    assert starts == sorted(starts) and all(s % timeline.width == 0 for s in starts)


def test_lines_without_a_time_are_left_out_of_the_timeline() -> None:
    timeline = Timeline()
    timeline.add({"status": "skipped", "finished_at": None})
    timeline.add({"status": "skipped", "finished_at": "yesterday"})
    assert timeline.rows() == []


def test_the_page_can_show_the_states_read_when_it_was_made(tmp_path: Path) -> None:
    states = {
        "read_at": "2026-11-24T14:00:00Z",
        "jobs": 3,
        "rows": [["TRAINING", "2"], [HOSTILE, "1"]],
    }
    page = build_page(busy_report(tmp_path / "r.jsonl", count=20), states=states)
    assert "Job states now" in page and "2026-11-24T14:00:00Z" in page
    assert "<td>TRAINING</td>" in page
    assert HOSTILE not in page  # a server's text is escaped here too
    assert "Job states now" not in build_page(busy_report(tmp_path / "s.jsonl", count=20))
