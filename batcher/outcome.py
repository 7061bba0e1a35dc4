"""What happened to an entry: the client's :class:`Outcome` and the report's :class:`ReportLine`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .entry import CommentData

Status = Literal["succeeded", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one HTTP attempt, mapped from the API's answer.

    ``retryable`` says a later attempt may succeed (429, 5xx, network errors);
    ``auth_refused`` says every further request would fail too (401/403).
    """

    succeeded: bool
    reason: str | None = None
    retryable: bool = False
    auth_refused: bool = False
    http_status: int | None = None
    error_code: str | None = None
    error_msg: str | None = None
    command_result: str | None = None
    failed_msg: str | None = None
    request_id: str | None = None
    retry_after: float | None = None
    attachment_upload_url: list[str] | None = None
    multipart_data: list[dict[str, Any]] | None = None
    throttled: bool = False


class ReportLine(BaseModel):
    """One line of the JSONL report: the entry's request fields and its final outcome."""

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
