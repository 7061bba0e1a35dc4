"""A training job as MetaStudio records it: its state, attributes and operation log.

The shapes are the API's (``TrainingJobBasicInfo`` for List, the Show answer for one job,
``OperationLogInfo`` and ``CommentLogInfo``); times are RFC 3339 in UTC with milliseconds
(``2026-11-25T08:00:00.123Z``). A job lives per ``(project_id, job_id)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from batcher.send.vocabulary import JOB_STATES

#: Where a training job stands: the API's own state names, every one of them (the one list,
#: :data:`~batcher.send.vocabulary.JOB_STATES`, as an enum).
JobState = StrEnum("JobState", [(name, name) for name in JOB_STATES])  # type: ignore[misc]
NEW: JobState = JobState("WAIT_FILE_UPLOAD")  #: where a job starts


def stamp(moment: datetime) -> datetime:
    """``moment`` in UTC, cut to whole milliseconds (what :func:`rfc3339` renders).

    Times are stored as they are shown, so a filter given a time it was shown compares equal.

    >>> stamp(datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC)).microsecond
    123000
    """
    utc = moment.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def rfc3339(moment: datetime) -> str:
    """The API's time format, in UTC with milliseconds.

    >>> rfc3339(datetime(2026, 11, 25, 8, 0, tzinfo=UTC))
    '2026-11-25T08:00:00.000Z'
    """
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One ``operation_logs`` entry (``OperationLogInfo``)."""

    operate_time: datetime
    log_type: str
    operate_user: str  #: USER, ADMIN or SYSTEM
    log_description: str
    error_code: str | None = None
    redo_reasons: tuple[str, ...] = ()

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "operate_time": rfc3339(self.operate_time),
            "log_type": self.log_type,
            "log_description": self.log_description,
            "operate_user": self.operate_user,
        }
        if self.error_code is not None:
            body["error_code"] = self.error_code
        if self.redo_reasons:
            body["redo_reasons"] = list(self.redo_reasons)
        return body


@dataclass(frozen=True, slots=True)
class CommentEntry:
    """One ``comment_logs`` entry (``CommentLogInfo``)."""

    operate_time: datetime
    comment_type: str  #: USER_REJECT, USER_COMMENT or ADMIN_COMMENT
    comment_title: str | None = None
    comment_message: str | None = None
    attachment_names: tuple[str, ...] = ()


def obs_url(*parts: str, expires: int, salt: str = "") -> str:
    """A fake pre-signed OBS URL of ``parts`` (folders, then the file's name), valid until
    ``expires``: sensitive, like the real ones, as it carries a signature."""
    path = "/".join(quote(part, safe="") for part in parts)
    signature = hashlib.sha256(f"{path}/{expires}/{salt}".encode()).hexdigest()[:40]
    return (
        f"https://obs.example.invalid/{path}?AccessKeyId=SIMULATOR&Expires={expires}"
        f"&Signature={signature}"
    )


#: Show's download URLs, each present once the job has what it points at.
_DOWNLOADS: tuple[tuple[str, str, str], ...] = (
    # (field, the job attribute that must be true, the file's name)
    ("training_video_download_url", "video_confirmed", "training-video.mp4"),
    ("grant_file_download_url", "authorization_letter_confirmed", "authorization-letter.pdf"),
    ("action_video_download_url", "action_video_confirmed", "action-video.mp4"),
    ("verify_video_download_url", "asset_id", "verify-video.mp4"),
)


@dataclass(slots=True)
class Job:
    """One training job: what List and Show answer, and what commands change."""

    project_id: str
    job_id: str
    create_time: datetime
    last_update_time: datetime
    state: JobState = NEW
    name: str | None = None
    batch_name: str | None = None
    tags: list[str] = field(default_factory=list)
    asset_id: str | None = None
    contact: str | None = None
    model_version: str = "V3.2"
    matting_type: str = "AI"
    model_resolution: str = "1080P"
    app_user_id: str | None = None
    is_flexus: bool = False
    is_live_copy: bool = False
    is_fast_flexus: bool = False
    is_only_human_model: bool = False
    optional_training_location: list[str] = field(default_factory=lambda: ["cn-north-4"])
    is_background_replacement: bool = False
    is_ondemand_resource: bool = False
    #: Upload confirmations, which change no state (CONFIRM_*_UPLOADED, ..._LETTER).
    video_confirmed: bool = False
    action_video_confirmed: bool = False
    authorization_letter_confirmed: bool = False
    #: Updated after a failed review (PUT .../user/jobs/{job_id}): the upload is open again.
    reopened: bool = False
    operation_logs: list[LogEntry] = field(default_factory=list)
    comment_logs: list[CommentEntry] = field(default_factory=list)
    #: Commands that took effect here, in order (for tests and ``/__simulator/jobs``).
    history: list[str] = field(default_factory=list)

    def copy_to(self, project_id: str) -> Job:
        """A copy of this (seed) job in ``project_id``, sharing nothing mutable."""
        return replace(
            self,
            project_id=project_id,
            tags=list(self.tags),
            optional_training_location=list(self.optional_training_location),
            operation_logs=list(self.operation_logs),
            comment_logs=list(self.comment_logs),
            history=list(self.history),
        )

    def log(self, entry: LogEntry) -> None:
        """Append an operation-log entry; a user's entry also moves ``last_update_time``."""
        self.operation_logs.append(entry)
        if entry.operate_user == "USER":
            self.last_update_time = max(self.last_update_time, entry.operate_time)

    def basic_info(self, *, now: datetime) -> dict[str, Any]:
        """The job as List shows it (``TrainingJobBasicInfo``)."""
        cover = self._download("cover.jpg", now=now) if self.asset_id else None
        shown = {"cover_download_url": cover}
        return {name: _shown(shown.get(name, getattr(self, name, None))) for name in _BASIC}

    def detail(self, *, now: datetime) -> dict[str, Any]:
        """The job as Show answers it: the basic info, download URLs and both logs."""
        body = self.basic_info(now=now)
        for name, needs, filename in _DOWNLOADS:
            if getattr(self, needs):
                body[name] = self._download(filename, now=now)
        body["is_mask_file_uploaded"] = False
        body["flexus_retry_count"] = 0
        body["operation_logs"] = [entry.to_api() for entry in self.operation_logs]
        body["comment_logs"] = [self._comment(c, now=now) for c in self.comment_logs]
        return body

    def _download(self, *names: str, now: datetime) -> str:
        """A download URL of this job's file, valid 24 hours from ``now``."""
        return obs_url(self.project_id, self.job_id, *names, expires=int(now.timestamp()) + 86400)

    def _comment(self, entry: CommentEntry, *, now: datetime) -> dict[str, Any]:
        return {
            "operate_time": rfc3339(entry.operate_time),
            "comment_type": entry.comment_type,
            "comment_title": entry.comment_title,
            "comment_message": entry.comment_message,
            "attachment_download_url": [
                self._download("attachments", name, now=now) for name in entry.attachment_names
            ],
        }

    def as_dict(self) -> dict[str, Any]:
        """The simulator's own view (``/__simulator/jobs``), with the upload flags."""
        own = {name: _shown(getattr(self, name)) for name in _OWN}
        return own | {"log_types": [entry.log_type for entry in self.operation_logs]}


#: List's fields, in its order (``cover_download_url`` is made, the others are attributes).
_BASIC = (
    "job_id", "name", "state", "asset_id", "project_id", "cover_download_url",
    "last_update_time", "create_time", "contact", "batch_name", "tags", "model_version",
    "matting_type", "model_resolution", "app_user_id", "is_flexus", "is_live_copy",
    "is_fast_flexus", "is_only_human_model", "optional_training_location",
    "is_background_replacement", "is_ondemand_resource",
)  # fmt: skip
_OWN = (
    "project_id", "job_id", "state", "batch_name", "tags", "video_confirmed",
    "action_video_confirmed", "authorization_letter_confirmed", "reopened", "history",
)  # fmt: skip


def _shown(value: Any) -> Any:
    """An attribute as JSON shows it: times in RFC 3339, lists copied, states by name."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, list):
        return list(value)
    return str(value) if isinstance(value, JobState) else value


def new_job(project_id: str, job_id: str, *, now: datetime) -> Job:
    """A job that springs into being on first sight: WAIT_FILE_UPLOAD, just created.

    >>> job = new_job("p", "j", now=datetime(2026, 11, 25, tzinfo=UTC))
    >>> job.state.value, [e.log_type for e in job.operation_logs]
    ('WAIT_FILE_UPLOAD', ['USER_CREATE_JOD'])
    """
    now = stamp(now)
    job = Job(project_id=project_id, job_id=job_id, create_time=now, last_update_time=now)
    job.name = job_id
    job.log(LogEntry(now, "USER_CREATE_JOD", "USER", "training job created"))
    return job
