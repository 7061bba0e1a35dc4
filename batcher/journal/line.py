"""One line of the report: its schema (:class:`ReportLine`) and the one place lines are made.

A line carries the entry's request fields and its final outcome. The runner writes
thousands a second, so lines are made as plain dicts (:func:`line_from_outcome`,
:func:`skipped_line`) and serialised without a model; readers that need whole, checked
lines validate them with :class:`ReportLine`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from batcher.entry import CommentData, Entry, Outcome, Status

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
    #: The project the command went to (the manifest's, or the run's).
    project_id: str | None = None
    #: Time spent waiting for the rate limiter before the first attempt was sent.
    wait_ms: float | None = None
    #: Set when the outcome was decided from the job's own record (e.g. ``"operation_log"``)
    #: after an attempt whose answer was lost, not from an answer.
    confirmed_by: str | None = None
    #: A failure whose earlier attempt may have executed (its answer was lost and the job's
    #: record could not tell).
    ambiguous: bool = False
    #: On an ambiguous line: the earliest moment the entry may have executed, over every run
    #: that left it in doubt (lines written before this field have only ``started_at``).
    doubt_since: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.job_id, self.command)


#: The fields of a line, in the order they are written.
FIELDS: tuple[str, ...] = tuple(ReportLine.model_fields)


def _request_fields(entry: Entry, project_id: str | None) -> dict[str, Any]:
    comment = entry.comment_data
    return {
        "command_message": entry.command_message,
        "operation_reason": entry.operation_reason,
        "comment_data": None if comment is None else comment.as_dict(),
        "app_user_id": entry.app_user_id,
        "project_id": entry.project_id or project_id,
    }


def line_from_outcome(
    entry: Entry,
    outcome: Outcome,
    *,
    run_id: str,
    attempts: int,
    started_at: str | None,
    finished_at: str,
    duration_ms: float | None,
    wait_ms: float | None = None,
    project_id: str | None = None,
    note: str = "",
    confirmed_by: str | None = None,
    ambiguous: bool = False,
    doubt_since: str | None = None,
) -> dict[str, Any]:
    """The line for an entry that was attempted: ``outcome`` is its last attempt's.

    ``note`` is added to the reason of a failure (e.g. " (gave up after 5 attempts)");
    ``project_id`` is the run's, for entries whose manifest named none; ``doubt_since``
    (kept on an ambiguous line only) the earliest moment it may have executed.

    >>> entry = Entry(job_id="j", command="SUBMITVERIFYING", source="m.csv:2")
    >>> line = line_from_outcome(entry, Outcome(succeeded=False, reason="HTTP 400"),
    ...                          run_id="r", attempts=1, started_at="t0", finished_at="t1",
    ...                          duration_ms=3.0, note=" (not retried)", project_id="p")
    >>> line["status"], line["reason"], line["retryable"], line["project_id"]
    ('failed', 'HTTP 400 (not retried)', False, 'p')
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
        **_request_fields(entry, project_id),
        "wait_ms": wait_ms,
        "confirmed_by": confirmed_by,
        "ambiguous": ambiguous and not succeeded,
        "doubt_since": doubt_since if ambiguous and not succeeded else None,
    }


def skipped_line(
    entry: Entry,
    reason: str,
    *,
    run_id: str,
    at: str,
    project_id: str | None = None,
    doubt_since: str | None = None,
) -> dict[str, Any]:
    """The line for an entry that was not attempted, and why. Nothing was sent, so it has
    no ``started_at``, ``duration_ms`` or ``wait_ms``; ``finished_at`` is when this run
    decided it. An entry an earlier run may have executed without hearing back
    (``doubt_since``: the earliest moment it may have) stays in doubt: ``ambiguous: true``
    and ``doubt_since``, so the next ``--resume`` still reads its job's record from then.

    >>> line = skipped_line(Entry(job_id="j", command="SUBMITVERIFYING"), "halted",
    ...                     run_id="r", at="t")
    >>> line["status"], line["attempts"], line["reason"], line["duration_ms"]
    ('skipped', 0, 'halted', None)
    """
    line = line_from_outcome(
        entry, Outcome(succeeded=False, reason=reason), run_id=run_id, attempts=0,
        started_at=None, finished_at=at, duration_ms=None, project_id=project_id,
        ambiguous=doubt_since is not None, doubt_since=doubt_since,
    )  # fmt: skip
    line["status"] = "skipped"
    return line
