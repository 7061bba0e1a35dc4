"""Report lines for tests: one as the writer makes it, a whole report, a resumed one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

THROTTLED = {
    "status": "failed",
    "reason": "HTTP 429: throttled",
    "retryable": True,
    "http_status": 429,
    "error_code": "APIGW.0308",
    "error_msg": "The throttling threshold has been reached",
    "attempts": 5,
}


def report_line(job_id: str, command: str = "SUBMITVERIFYING", **fields: Any) -> dict[str, Any]:
    """A report line as the writer produces it; ``fields`` override the defaults."""
    line: dict[str, Any] = {
        "job_id": job_id,
        "command": command,
        "status": "succeeded",
        "reason": None,
        "retryable": False,
        "http_status": 200,
        "error_code": None,
        "error_msg": None,
        "command_result": "EXCUTE_SUCCESS",
        "failed_msg": None,
        "request_id": f"req-{job_id}",
        "attempts": 1,
        "started_at": "2026-11-24T13:00:00.000Z",
        "finished_at": "2026-11-24T13:00:01.000Z",
        "duration_ms": 10.0,
        "source": "jobs.yaml:2",
        "run_id": "r1",
        "attachment_upload_url": None,
        "multipart_data": None,
        "command_message": None,
        "operation_reason": None,
        "comment_data": None,
        "app_user_id": None,
    }
    line.update(fields)
    return line


def write_report(path: Path, lines: list[dict[str, Any] | str], *, torn: str | None = None) -> Path:
    """Write ``lines`` (dicts as JSON, strings verbatim), then ``torn`` without a newline."""
    with open(path, "w", encoding="utf-8") as stream:
        for line in lines:
            text = line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)
            stream.write(text + "\n")
        if torn is not None:
            stream.write(torn)
    return path


def at(second: int, *, hour: int = 13) -> str:
    return f"2026-11-24T{hour:02d}:00:{second:02d}.000Z"


def resumed_lines() -> list[dict[str, Any]]:
    """Run r1 (8 lines), then a resume r2 (3 lines) that retries three failed entries.

    Latest per key: job-1 S ok, job-2 S ok (after a 429), job-3 S failed 400, job-3 CA
    skipped, job-4 CA failed (EXCUTE_FAILED), job-5 S failed (network), job-6 CA failed 429,
    job-7 S failed 429.
    """
    r1 = [
        report_line("job-1", duration_ms=10.0),
        report_line("job-2", **THROTTLED, duration_ms=100.0),
        report_line(
            "job-3",
            status="failed",
            reason="HTTP 400",
            http_status=400,
            error_code="MSS.00000003",
            error_msg="Invalid parameter",
            duration_ms=20.0,
        ),
        report_line(
            "job-3",
            "CONFIRM_ACCEPT",
            status="skipped",
            reason="SUBMITVERIFYING failed for this job",
            http_status=None,
            command_result=None,
            attempts=0,
            duration_ms=0.0,  # never sent: must not count in the latency
        ),
        report_line(
            "job-4",
            "CONFIRM_ACCEPT",
            status="failed",
            reason="the API answered EXCUTE_FAILED",
            command_result="EXCUTE_FAILED",
            failed_msg="job state does not allow this command",
            duration_ms=30.0,
        ),
        report_line(
            "job-5",
            status="failed",
            reason="connection reset",
            retryable=True,
            http_status=None,
            command_result=None,
            attempts=5,
            duration_ms=40.0,
        ),
        report_line("job-6", "CONFIRM_ACCEPT", **THROTTLED, duration_ms=50.0),
        report_line("job-7", **THROTTLED, duration_ms=90.0),
    ]
    for second, line in enumerate(r1):
        line.update(started_at=at(second), finished_at=at(second + 1), run_id="r1")
    r2 = [
        report_line("job-2", attempts=2, duration_ms=60.0),
        report_line("job-6", "CONFIRM_ACCEPT", **THROTTLED, duration_ms=70.0),
        report_line(
            "job-5",
            status="failed",
            reason="connection reset",
            retryable=True,
            http_status=None,
            command_result=None,
            attempts=3,
            duration_ms=80.0,
        ),
    ]
    for second, line in enumerate(r2):
        line.update(started_at=at(second, hour=14), finished_at=at(second + 1, hour=14))
        line["run_id"] = "r2"
    return r1 + r2
