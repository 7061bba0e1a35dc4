"""One manifest entry: a command to run against one training job.

The model is the request as the API takes it, plus where it came from (``source``,
``file:line``) so every error and report line can point back at the manifest.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

#: The ``command`` values the API documents. A manifest naming any other command is refused
#: (with a "did you mean" for near misses): a typo must not be sent three thousand times.
KNOWN_COMMANDS: tuple[str, ...] = (
    "SUBMITVERIFYING",
    "CONFIRM_ACCEPT",
    "CONFIRM_REJECT",
    "CONFIRM_ANSWER",
    "CONFIRM_PENDING",
    "CONFIRM_ACTIVE",
    "GET_MULTIPART_UPLOADED",
    "CONFIRM_REPAIR",
    "CONFIRM_MULTIPART_UPLOADED",
    "GET_ACTION_VIDEO_MULTIPART_UPLOADED",
    "CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED",
    "CONFIRM_AUTHORIZATION_LETTER",
    "DELETE_JOB_VIDEO",
)

KNOWN_COMMAND_MESSAGES: tuple[str, ...] = (
    "UPDATE_VIDEO",
    "UPLOAD_VIDEO",
    "CONFIRM_ACTION_VIDEO",
    "GET_ACTION_VIDEO_MULTIPART",
)

#: IDs go into the URL path, so they are restricted to characters that need no escaping.
PATH_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PATH_ID_RE = re.compile(PATH_ID_PATTERN)

PathId = Annotated[str, StringConstraints(pattern=PATH_ID_PATTERN)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=64)]

# Header values must be plain ASCII on the wire; the API also forbids Chinese characters.
_APP_USER_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


def check_app_user_id(value: str) -> str:
    """Validate an ``X-App-UserId`` value (printable ASCII, no spaces, 1-128 chars)."""
    if not _APP_USER_ID_RE.match(value):
        raise ValueError(
            "must be 1-128 printable ASCII characters without spaces "
            "(the API forbids Chinese characters in X-App-UserId)"
        )
    return value


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
    operation_reason: str | None = Field(default=None, max_length=1024)
    comment_data: CommentData | None = None
    app_user_id: str | None = None
    #: Where the entry was read, as ``file:line``. Not sent.
    source: str = ""
    #: The manifest's own ``project_id``, if it set one. Not sent in the body.
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


#: Fields a user may set on an entry (YAML keys; CSV flattens ``comment_data``).
ENTRY_FIELDS: frozenset[str] = frozenset(
    {"job_id", "command", "command_message", "operation_reason", "comment_data", "app_user_id"}
)
