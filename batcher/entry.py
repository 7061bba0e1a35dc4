"""One manifest entry: a command to run against one training job.

The model is the request as the API takes it, plus where it came from (``source``,
``file:line``) so every error and report line can point back at the manifest.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from ._fields import (
    APP_USER_ID_MESSAGE,
    ENTRY_FIELDS,
    KNOWN_COMMAND_MESSAGES,
    KNOWN_COMMANDS,
    PATH_ID_PATTERN,
    PATH_ID_RE,
    REASON_MAX,
    SHORT_MAX,
    check_app_user_id,
)

__all__ = [
    "APP_USER_ID_MESSAGE",
    "ENTRY_FIELDS",
    "KNOWN_COMMANDS",
    "KNOWN_COMMAND_MESSAGES",
    "PATH_ID_PATTERN",
    "PATH_ID_RE",
    "CommentData",
    "Entry",
    "PathId",
    "Short",
    "check_app_user_id",
]

PathId = Annotated[str, StringConstraints(pattern=PATH_ID_PATTERN)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=SHORT_MAX)]


class CommentData(BaseModel):
    """The optional ``comment_data`` object of a command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comment_title: str | None = None
    comment_message: str | None = None
    attachment_name: tuple[str, ...] | None = None

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, mode="json")


class Entry(BaseModel):
    """A validated manifest entry. ``(job_id, command)`` is its key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: PathId
    command: Short
    command_message: Short | None = None
    operation_reason: str | None = Field(default=None, max_length=REASON_MAX)
    comment_data: CommentData | None = None
    app_user_id: str | None = None
    #: Where the entry was read, as ``file:line``. Not sent.
    source: str = ""
    #: The project the entry goes to: its own, its manifest's, or the run's. Not sent in
    #: the body (it is part of the URL path).
    project_id: PathId | None = None

    @field_validator("app_user_id")
    @classmethod
    def _app_user_id(cls, value: str | None) -> str | None:
        return None if value is None else check_app_user_id(value)

    @property
    def key(self) -> tuple[str, str]:
        return (self.job_id, self.command)

    def request_body(self) -> dict[str, Any]:
        """The JSON body the API takes, without empty optional fields."""
        body: dict[str, Any] = {"command": self.command}
        if self.command_message is not None:
            body["command_message"] = self.command_message
        if self.comment_data is not None:
            body["comment_data"] = self.comment_data.to_api()
        if self.operation_reason is not None:
            body["operation_reason"] = self.operation_reason
        return body
