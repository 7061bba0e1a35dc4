"""One line of the report: its schema (:class:`ReportLine`) and the one place lines are made.

A line carries the entry's request fields and its final outcome. The runner writes
thousands a second, so lines are made as plain dicts (:func:`line_from_outcome`,
:func:`skipped_line`) and serialised without a model; readers that need whole, checked
lines validate them with :class:`ReportLine`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..entry import CommentData, Entry
from ..outcome import Outcome, Status

__all__ = ["FIELDS", "ReportLine", "line_from_outcome", "skipped_line"]


class ReportLine(BaseModel):
    """One line of the JSONL report, as readers see it (unknown fields are ignored).

    >>> line = ReportLine.model_validate_json('{"job_id": "j", "command": "C", "status": "failed"}')
    >>> line.key, line.attempts
    (('j', 'C'), 0)
    """

    model_config = ConfigDict(extra="ignore")

    job_id: str
    command: str
    status: Status
    reason: str | None = None
    retryable: bool = False
    http_status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    command_result: str | None = None
    failed_msg: str | None = None
    request_id: str | None = None
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    duration_ms: float | None = None
    source: str | None = None
    run_id: str | None = None
    attachment_upload_url: list[str] | None = None
    multipart_data: list[dict[str, Any]] | None = None
    command_message: str | None = None
    operation_reason: str | None = None
    comment_data: CommentData | None = None
    app_user_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.job_id, self.command)


#: The fields of a line, in the order they are written.
FIELDS: tuple[str, ...] = tuple(ReportLine.model_fields)


def _request_fields(entry: Entry) -> dict[str, Any]:
    comment = entry.comment_data
    return {
        "command_message": entry.command_message,
        "operation_reason": entry.operation_reason,
        "comment_data": None if comment is None else comment.model_dump(mode="json"),
        "app_user_id": entry.app_user_id,
    }


def line_from_outcome(
    entry: Entry,
    outcome: Outcome,
    *,
    run_id: str,
    attempts: int,
    started_at: str,
    finished_at: str,
    duration_ms: float | None,
    note: str = "",
) -> dict[str, Any]:
    """The line for an entry that was attempted: ``outcome`` is its last attempt's.

    ``note`` is added to the reason of a failure (e.g. " (gave up after 5 attempts)").

    >>> entry = Entry(job_id="j", command="SUBMITVERIFYING", source="m.csv:2")
    >>> line = line_from_outcome(entry, Outcome(succeeded=False, reason="HTTP 400"),
    ...                          run_id="r", attempts=1, started_at="t0", finished_at="t1",
    ...                          duration_ms=3.0, note=" (not retried)")
    >>> line["status"], line["reason"], line["retryable"]
    ('failed', 'HTTP 400 (not retried)', False)
    """
    succeeded = outcome.succeeded
    status: Status = "succeeded" if succeeded else "failed"
    return {
        "job_id": entry.job_id,
        "command": entry.command,
        "status": status,
        "reason": None if succeeded else (outcome.reason or "failed") + note,
        "retryable": (not succeeded) and outcome.retryable,
        "http_status": outcome.http_status,
        "error_code": outcome.error_code,
        "error_msg": outcome.error_msg,
        "command_result": outcome.command_result,
        "failed_msg": outcome.failed_msg,
        "request_id": outcome.request_id,
        "attempts": attempts,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_ms": duration_ms,
        "source": entry.source,
        "run_id": run_id,
        "attachment_upload_url": outcome.attachment_upload_url,
        "multipart_data": outcome.multipart_data,
        **_request_fields(entry),
    }


def skipped_line(entry: Entry, reason: str, *, run_id: str, at: str) -> dict[str, Any]:
    """The line for an entry that was not attempted, and why.

    >>> line = skipped_line(Entry(job_id="j", command="SUBMITVERIFYING"), "halted",
    ...                     run_id="r", at="t")
    >>> line["status"], line["attempts"], line["reason"]
    ('skipped', 0, 'halted')
    """
    return {
        "job_id": entry.job_id,
        "command": entry.command,
        "status": "skipped",
        "reason": reason,
        "retryable": False,
        "http_status": None,
        "error_code": None,
        "error_msg": None,
        "command_result": None,
        "failed_msg": None,
        "request_id": None,
        "attempts": 0,
        "started_at": at,
        "finished_at": at,
        "duration_ms": 0.0,
        "source": entry.source,
        "run_id": run_id,
        "attachment_upload_url": None,
        "multipart_data": None,
        **_request_fields(entry),
    }
