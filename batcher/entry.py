r"""The entry model: one manifest entry, what an attempt at it came to, and its key.

The field rules are plain functions (checking a manifest starts fast); the pydantic model
:class:`Entry` is built from the same rules. :func:`key_digest` is the one digest of an
entry's key, with compact tables of such digests.

>>> PATH_ID_RE.match("job-1") is not None, PATH_ID_RE.match("job-1\n") is None
(True, True)
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass
from hashlib import blake2b
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

# The lists live with the API's other names; manifest validation reads them from here.
from batcher.send.vocabulary import KNOWN_COMMAND_MESSAGES, KNOWN_COMMANDS

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


# One manifest entry: a command to run against one training job.
#
# The model is the request as the API takes it, plus where it came from (``source``,
# ``file:line``) so every error and report line can point back at the manifest.
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


# What one attempt at an entry's command came to, as the client maps the API's answer.
#: An entry's final status in the report.
Status = Literal["succeeded", "failed", "skipped"]
#: Every status, in the order reports and summaries list them.
STATUSES: tuple[Status, ...] = get_args(Status)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one HTTP attempt, mapped from the API's answer.

    ``retryable`` says a later attempt may succeed (429, 5xx, network errors);
    ``auth_refused`` says every further request would fail too (401/403), and ``fatal``
    that no retry can fix the setup (a TLS certificate that does not verify): both halt.
    ``ambiguous`` says the request may have reached the API but no answer was read (a
    timeout, a connection lost after sending, a 502/504 from the gateway, an answer cut
    short): the command may or may not have taken effect. It is sent again only after the
    job's record has been checked (see :mod:`batcher.send.confirm`).

    >>> Outcome(succeeded=False, reason="HTTP 500", retryable=True).retryable
    True
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
    fatal: bool = False
    ambiguous: bool = False
    #: The server may still be working on it: the answer timed out (ours, or a gateway's
    #: 504), so a record that shows nothing yet is given time before it is believed.
    still_running: bool = False


# The one digest of an entry's key, and compact tables of such digests.
#
# An entry is known by ``(job_id, command)`` and a job by ``(project_id, job_id)``. Manifest
# checking (duplicates), the runner (per-job ordering, resume) and every report reader
# (latest line per entry) compare keys through these 64-bit digests, so millions of them fit
# in typed arrays instead of sets of string tuples. :func:`key_digest` is BLAKE2b (the same
# in every process); the summary and selection readers, whose tables never leave their
# process, use :func:`local_key_digest` (Python's hash), which is several times cheaper.
#
# >>> key_digest("job-1", "SUBMITVERIFYING") == key_digest("job-1", "SUBMITVERIFYING")
# True
# >>> key_digest("job-1", "SUBMITVERIFYING") == key_digest("job-1\x00SUBMIT", "VERIFYING")
# False
__all__ = [
    "DigestSet",
    "KeyTable",
    "bytes_digest",
    "job_digest",
    "key_digest",
    "local_job_digest",
    "local_key_digest",
    "text_digest",
]


def text_digest(text: str) -> int:
    """A 64-bit digest of ``text`` (BLAKE2b, so stable across processes, unlike ``hash``).

    >>> text_digest("job-1") == text_digest("job-1")
    True
    """
    return bytes_digest(text.encode())


def bytes_digest(data: bytes) -> int:
    """:func:`text_digest` of text still in UTF-8 bytes (a report line as read).

    >>> bytes_digest("任务-1".encode()) == text_digest("任务-1")
    True
    """
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def key_digest(job_id: str, command: str) -> int:
    """The digest of an entry's key ``(job_id, command)``."""
    # NUL cannot occur in either part (ids are [A-Za-z0-9_-], commands are known words),
    # so the joined text is unambiguous.
    return text_digest(f"{job_id}\x00{command}")


def job_digest(job_id: str, project_id: str | None = None) -> int:
    """The digest of a job: its id within its project (``None``: the run's project).

    >>> job_digest("job-1") == job_digest("job-1", None) != job_digest("job-1", "p2")
    True
    """
    return text_digest(f"{project_id or ''}\x00{job_id}")


def local_key_digest(job_id: str, command: str) -> int:
    """:func:`key_digest` for tables that live and die in one process: Python's own
    (randomised, 64-bit) string hash, several times cheaper than BLAKE2b, for readers that
    key a million report lines (summary, selection) and never compare digests with another
    process or with :func:`key_digest`'s.

    >>> local_key_digest("job-1", "SUBMITVERIFYING") == local_key_digest("job-1", "SUBMITVERIFYING")
    True
    """
    return (hash(f"{job_id}\x00{command}") & _MASK64) or 1


def local_job_digest(job_id: str, project_id: str | None = None) -> int:
    """:func:`job_digest`, process-local as :func:`local_key_digest` is."""
    return (hash(f"{project_id or ''}\x00{job_id}") & _MASK64) or 1


_MASK64 = (1 << 64) - 1


class KeyTable:
    """64-bit digest to a small non-negative int, in typed arrays.

    A dict of 64-bit ints costs ~130 bytes per key (two int objects plus its table); this
    open-addressing table (linear probing, at most half full) costs 24-48 bytes per key,
    which is what lets millions of keys be held in bounded memory.

    >>> table = KeyTable()
    >>> table.setdefault(0x9E3779B97F4A7C15, 0)
    0
    >>> table.setdefault(0x9E3779B97F4A7C15, 1), len(table)
    (0, 1)
    >>> table[0x9E3779B97F4A7C15] = 7
    >>> table.get(0x9E3779B97F4A7C15), table.get(42)
    (7, None)
    """

    __slots__ = ("_keys", "_mask", "_size", "_values")

    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._mask = capacity - 1  # capacity is a power of two
        # Repeating a one-item array allocates once; array("Q", bytes(n)) held both copies.
        self._keys = array("Q", [0]) * capacity  # 0 = empty slot
        self._values = array("I", [0]) * capacity  # values < 2**32
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _slot(self, digest: int) -> int:
        keys, mask = self._keys, self._mask
        slot = digest & mask
        while True:
            found = keys[slot]
            if found == digest or found == 0:
                return slot
            slot = (slot + 1) & mask

    def get(self, digest: int, default: int | None = None) -> int | None:
        digest = digest or 1  # 0 marks an empty slot (a 2**-64 chance of merging two keys)
        slot = self._slot(digest)
        return self._values[slot] if self._keys[slot] == digest else default

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, int) and self.get(digest) is not None

    def setdefault(self, digest: int, value: int) -> int:
        """The value stored for ``digest``; if there is none, store ``value`` and return it."""
        digest = digest or 1
        slot = self._slot(digest)
        if self._keys[slot] == digest:
            return self._values[slot]
        self._insert(slot, digest, value)
        return value

    def __setitem__(self, digest: int, value: int) -> None:
        digest = digest or 1
        slot = self._slot(digest)
        if self._keys[slot] == digest:
            self._values[slot] = value
        else:
            self._insert(slot, digest, value)

    def _insert(self, slot: int, digest: int, value: int) -> None:
        self._keys[slot] = digest
        self._values[slot] = value
        self._size += 1
        if self._size * 2 > self._mask:
            old = zip(self._keys, self._values, strict=True)
            self._alloc((self._mask + 1) * 2)
            for member, stored in old:
                if member:
                    self._insert(self._slot(member), member, stored)

    def items(self) -> list[tuple[int, int]]:
        """``(digest, value)`` pairs, in no particular order."""
        return [(k, v) for k, v in zip(self._keys, self._values, strict=True) if k]


class DigestSet:
    """A set of 64-bit digests in one typed array.

    A Python set of such ints costs ~70 bytes per member (an int object and its slot); this
    open-addressing table (linear probing, at most half full) costs 16-32, which is what
    keeps a million-entry manifest's duplicate check small.

    >>> seen = DigestSet()
    >>> seen.add(0x9E3779B97F4A7C15), seen.add(0x9E3779B97F4A7C15), len(seen)
    (True, False, 1)
    """

    __slots__ = ("_keys", "_mask", "_size")

    def __init__(self, capacity: int = 1024) -> None:
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._mask = capacity - 1  # capacity is a power of two
        self._keys = array("Q", [0]) * capacity  # 0 = empty slot (allocated once)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def _slot(self, digest: int) -> int:
        keys, mask = self._keys, self._mask
        slot = digest & mask
        while keys[slot] not in (0, digest):
            slot = (slot + 1) & mask
        return slot

    def __contains__(self, digest: object) -> bool:
        if not isinstance(digest, int):
            return False
        digest = digest or 1  # 0 marks an empty slot (a 2**-64 chance of merging two keys)
        return self._keys[self._slot(digest)] == digest

    def add(self, digest: int) -> bool:
        """Add ``digest``; True if it was not there yet."""
        digest = digest or 1
        slot = self._slot(digest)
        if self._keys[slot] == digest:
            return False
        self._keys[slot] = digest
        self._size += 1
        if self._size * 2 > self._mask:
            old = self._keys
            self._alloc((self._mask + 1) * 2)
            for member in old:
                if member:
                    self._keys[self._slot(member)] = member
                    self._size += 1
        return True
