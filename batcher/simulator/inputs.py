"""What a request carries, checked as the API would: the command body, ids, X-App-UserId.

Every check returns why the input is invalid (for the simulator's log only: the answer is
always the API's terse ``400 MSS.00000003``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from batcher.entry import KNOWN_COMMANDS, PATH_ID_RE, check_app_user_id
from batcher.simulator.machine import Comment
from batcher.simulator.record import obs_url


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """A valid command body."""

    command: str
    command_message: str | None = None
    operation_reason: str | None = None
    comment: Comment | None = None

    @property
    def attachment_names(self) -> tuple[str, ...]:
        return self.comment.attachments if self.comment else ()

    def as_event(self) -> list[Any]:
        """A JSON form for the world file (:meth:`from_event` reads it back)."""
        c = self.comment
        comment = None if c is None else [c.title, c.message, list(c.attachments)]
        return [self.command, self.command_message, self.operation_reason, comment]

    @classmethod
    def from_event(cls, value: list[Any]) -> ParsedCommand:
        command, message, reason, comment = value
        if comment is not None:
            comment = Comment(comment[0], comment[1], tuple(comment[2]))
        return cls(command, message, reason, comment)


def _optional_str(value: Any, *, max_len: int | None = None) -> bool:
    if value is None:
        return True
    return isinstance(value, str) and (max_len is None or len(value) <= max_len)


def parse_body(raw: bytes) -> tuple[ParsedCommand | None, str | None]:
    """The command in a request body, or why the body is invalid.

    >>> parse_body(b'{"command": "SUBMITVERIFYING"}')[0].command
    'SUBMITVERIFYING'
    >>> parse_body(b'{"command": "NOPE"}')[1]
    'command is not a known value'
    """
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, "the body is not JSON"
    if not isinstance(body, dict):
        return None, "the body is not a JSON object"
    command = body.get("command")
    if not isinstance(command, str) or not 1 <= len(command) <= 64:
        return None, "command is missing, not a string, or longer than 64"
    if command not in KNOWN_COMMANDS:
        return None, "command is not a known value"
    message, reason = body.get("command_message"), body.get("operation_reason")
    if not _optional_str(message, max_len=64):
        return None, "command_message is not a string of at most 64"
    if not _optional_str(reason):
        return None, "operation_reason is not a string"
    parsed = ParsedCommand(command, message, reason)
    comment = body.get("comment_data")
    if comment is None:
        return parsed, None
    if not isinstance(comment, dict):
        return None, "comment_data is not an object"
    title, text = comment.get("comment_title"), comment.get("comment_message")
    if not _optional_str(title) or not _optional_str(text):
        return None, "comment_title/comment_message is not a string"
    names = comment.get("attachment_name") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        return None, "attachment_name is not a list of non-empty strings"
    return ParsedCommand(command, message, reason, Comment(title, text, tuple(names))), None


def check_ids(project_id: str, job_id: str | None, app_user_id: str | None) -> str | None:
    """Why the path ids or the X-App-UserId header are invalid, or None."""
    if not PATH_ID_RE.match(project_id) or (job_id is not None and not PATH_ID_RE.match(job_id)):
        return "project_id or job_id is not 1-64 of [A-Za-z0-9_-]"
    if app_user_id is not None:
        try:
            check_app_user_id(app_user_id)
        except ValueError:
            return "X-App-UserId is not printable ASCII"
    return None


def peek_command(raw: bytes) -> str | None:
    """The command, for the log: only a known value, never arbitrary client text."""
    try:
        command = json.loads(raw).get("command")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return command if command in KNOWN_COMMANDS else None


def upload_urls(
    project_id: str, job_id: str, names: tuple[str, ...], rid: str, folder: str = "attachments"
) -> list[str]:
    """One fake pre-signed OBS upload URL per file name (valid 24 hours, as the API's)."""
    expires = int(time.time()) + 86400
    return [obs_url(project_id, job_id, folder, name, expires=expires, salt=rid) for name in names]


#: Update2dModelTrainingJobReq's fields the simulator keeps, and their types.
_UPDATE_FIELDS: dict[str, type] = {
    "name": str,
    "contact": str,
    "batch_name": str,
    "tags": list,
    "video_multipart_count": int,
    "action_video_multipart_count": int,
}


def parse_update(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The fields of an Update body the simulator keeps, or why the body is invalid.

    >>> parse_update(b'{"video_multipart_count": 3, "name": "a"}')[0]
    {'name': 'a', 'video_multipart_count': 3}
    >>> parse_update(b'{"video_multipart_count": 0}')[1]
    'video_multipart_count must be 1-1000'
    """
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None, "the body is not JSON"
    if not isinstance(body, dict):
        return None, "the body is not a JSON object"
    fields = {k: body[k] for k in _UPDATE_FIELDS if body.get(k) is not None}
    for name, value in fields.items():
        if not isinstance(value, _UPDATE_FIELDS[name]) or isinstance(value, bool):
            return None, f"{name} is not a {_UPDATE_FIELDS[name].__name__}"
        if isinstance(value, int) and not 1 <= value <= 1000:
            return None, f"{name} must be 1-1000"
    if not all(isinstance(tag, str) for tag in fields.get("tags", ())):
        return None, "tags is not a list of strings"
    return fields, None
