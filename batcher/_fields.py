"""What a valid manifest entry field is, without pydantic (so checking a manifest starts fast).

:mod:`batcher.entry` builds its pydantic model from these rules and re-exports them; the
manifest checker applies them by hand, with the same verdicts and the same messages.

>>> PATH_ID_RE.match("job-1") is not None, PATH_ID_RE.match("job-1\\n") is None
(True, True)
"""

from __future__ import annotations

import re

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

#: The ``command_message`` values the API documents; others are refused like commands.
KNOWN_COMMAND_MESSAGES: tuple[str, ...] = (
    "UPDATE_VIDEO",
    "UPLOAD_VIDEO",
    "CONFIRM_ACTION_VIDEO",
    "GET_ACTION_VIDEO_MULTIPART",
)

#: IDs go into the URL path, so they are restricted to characters that need no escaping.
#: (The pattern pydantic checks; its regex engine anchors ``$`` at the very end.)
PATH_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

#: The same rule for Python's ``re``, where ``$`` would also accept a trailing newline.
PATH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")

#: ``command`` and ``command_message``: 1-64 characters.
SHORT_MAX = 64

#: ``operation_reason``: at most this many characters.
REASON_MAX = 1024

# Header values must be plain ASCII on the wire; the API also forbids Chinese characters.
_APP_USER_ID_RE = re.compile(r"[\x21-\x7e]{1,128}\Z")

APP_USER_ID_MESSAGE = (
    "must be 1-128 printable ASCII characters without spaces "
    "(the API forbids Chinese characters in X-App-UserId)"
)


def check_app_user_id(value: str) -> str:
    """Validate an ``X-App-UserId`` value (printable ASCII, no spaces, 1-128 chars).

    >>> check_app_user_id("ops-01")
    'ops-01'
    """
    if not _APP_USER_ID_RE.match(value):
        raise ValueError(APP_USER_ID_MESSAGE)
    return value


#: The fields of ``comment_data`` (CSV has a column for each).
COMMENT_FIELDS: tuple[str, ...] = ("comment_title", "comment_message", "attachment_name")

#: Fields a user may set on an entry (YAML keys; CSV flattens ``comment_data``).
ENTRY_FIELDS: frozenset[str] = frozenset(
    {
        "job_id",
        "command",
        "command_message",
        "operation_reason",
        "comment_data",
        "app_user_id",
        "project_id",
    }
)
