r"""The entry: its schema (the field rules and the one checker of them), the plain model
built from checked fields, what an attempt at it came to, and its key.

Every reader of entries (CSV and YAML manifests, report exports) checks fields with
:func:`entry_problems`, whose messages are the ones manifests report at file:line:field;
:meth:`Entry.checked` is the same check for code that builds an entry by hand. The model
itself is a slotted dataclass: the run's hot path builds one per entry from fields already
checked, at the cost of a tuple.

>>> PATH_ID_RE.match("job-1") is not None, PATH_ID_RE.match("job-1\n") is None
(True, True)
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, fields
from hashlib import blake2b
from typing import Any, Literal, get_args

__all__ = [
    "APP_USER_ID_MESSAGE",
    "BLANKS",
    "ENTRY_FIELDS",
    "KNOWN_COMMANDS",
    "KNOWN_COMMAND_MESSAGES",
    "PATH_ID_RE",
    "CommentData",
    "DigestSet",
    "Entry",
    "EntryError",
    "KeyTable",
    "Outcome",
    "bytes_digest",
    "check_app_user_id",
    "entry_problems",
    "job_digest",
    "key_digest",
    "local_job_digest",
    "local_key_digest",
    "quote",
    "text_digest",
]

# The lists live with the API's other names; manifest validation reads them from here.
from batcher.send.vocabulary import KNOWN_COMMAND_MESSAGES, KNOWN_COMMANDS

#: IDs go into the URL path, so they are restricted to characters that need no escaping.
PATH_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
ID_CHARS = "A-Z, a-z, 0-9, '_' or '-'"

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

#: Control characters (C0 but tab and line breaks, DEL, C1): never meant in a field's text,
#: and a NUL cuts the value short in more than one server. (YAML forbids them already; a
#: quoted CSV cell and a hand-built entry do not.)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

#: What manifests trim around a value: ASCII blanks only. ``str.strip`` would also eat
#: U+3000, U+001C-U+001F and the like, and send an id padded with them as if clean.
BLANKS = " \t\r\n"

#: The most characters of input a message quotes.
QUOTE_MAX = 200


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

# -- how input is shown in messages ------------------------------------------------------------


def quote(value: Any, limit: int = 40) -> str:
    r"""``value`` as a message quotes it: ``repr`` (so invisible characters show as escapes:
    a BOM, U+3000, a NUL), at most ``limit`` characters of it (never more than
    :data:`QUOTE_MAX`), with the length said when it was cut.

    >>> quote("job\u3000"), quote("x" * 50)
    ("'job\\u3000'", "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... (50 characters)")
    """
    limit = min(limit, QUOTE_MAX)
    if not isinstance(value, str):
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    text = repr(value[: limit + 1])
    if len(value) <= limit and len(text) <= limit + 2:
        return text
    return f"{text[:limit]}... ({len(value):,} characters)"


def describe_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {quote(value)}"


# -- the one checker ---------------------------------------------------------------------------

Path = tuple[str | int, ...]


def entry_problems(data: Mapping[str, Any]) -> list[tuple[Path, str]]:
    """What is wrong with an entry's fields (None or absent: not set), in field order, each
    as ``(path, message)``. Whether commands are known is the readers' to say (with hints).

    >>> entry_problems({"job_id": "a b", "source": "x"})
    [(('job_id',), "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (got 'a b')"), \
(('command',), 'is required')]
    """
    found: list[tuple[Path, str]] = []
    _path_id(data, "job_id", found, required=True)
    _text(data, "command", found, required=True, low=1, high=SHORT_MAX)
    _text(data, "command_message", found, low=1, high=SHORT_MAX)
    _text(data, "operation_reason", found, high=REASON_MAX)
    comment = data.get("comment_data")
    if isinstance(comment, CommentData):
        comment = comment.as_dict()
    if comment is not None and not isinstance(comment, Mapping):
        found.append(
            (
                ("comment_data",),
                "must be a mapping (comment_title: ..., comment_message: ...), "
                f"not {describe_kind(comment)}",
            )
        )
    elif comment is not None:
        found.extend((("comment_data", *path), message) for path, message in _comment(comment))
    app_user_id = data.get("app_user_id")
    if app_user_id is not None:
        if not isinstance(app_user_id, str):
            found.append((("app_user_id",), f"must be text, not {describe_kind(app_user_id)}"))
        elif not _APP_USER_ID_RE.match(app_user_id):
            found.append((("app_user_id",), APP_USER_ID_MESSAGE))
    _path_id(data, "project_id", found)
    return found


def _comment(comment: Mapping[str, Any]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    _text(comment, "comment_title", found)
    _text(comment, "comment_message", found)
    names = comment.get("attachment_name")
    if names is not None and not isinstance(names, list | tuple):
        found.append(
            (("attachment_name",), f"must be a list of file names, not {describe_kind(names)}")
        )
    elif names is not None:
        for index, name in enumerate(names):
            _text({"": name}, "", found, required=True, low=1, at=("attachment_name", index))
    return found


def _text(
    data: Mapping[str, Any],
    name: str,
    found: list[tuple[Path, str]],
    *,
    required: bool = False,
    low: int = 0,
    high: int | None = None,
    at: Path | None = None,
) -> None:
    value = data.get(name)
    path = at or (name,)
    if value is None:
        if required:
            found.append((path, "is required"))
    elif not isinstance(value, str):
        found.append((path, f"must be text, not {describe_kind(value)}"))
    elif len(value) < low:
        found.append((path, "must not be empty"))
    elif high is not None and len(value) > high:
        found.append((path, f"is too long: {len(value)} characters, at most {high}"))
    elif (control := _CONTROL_RE.search(value)) is not None:
        found.append(
            (
                path,
                f"holds a control character (U+{ord(control.group()):04X}) at character "
                f"{control.start() + 1}: {quote(value)}",
            )
        )


def _path_id(
    data: Mapping[str, Any], name: str, found: list[tuple[Path, str]], *, required: bool = False
) -> None:
    value = data.get(name)
    if value is None:
        if required:
            found.append(((name,), "is required"))
    elif not isinstance(value, str):
        found.append(((name,), f"must be text, not {describe_kind(value)}"))
    elif not PATH_ID_RE.match(value):
        found.append(((name,), f"must be 1-64 characters of {ID_CHARS} (got {quote(value)})"))


class EntryError(ValueError):
    """Fields that do not make an entry; ``problems`` as :func:`entry_problems` gives them."""

    def __init__(self, problems: list[tuple[Path, str]]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{'.'.join(map(str, path))}: {message}" for path, message in problems)
        )


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommentData:
    """The optional ``comment_data`` object of a command."""

    comment_title: str | None = None
    comment_message: str | None = None
    attachment_name: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every field, None included, names as a list (the report's form)."""
        names = self.attachment_name
        return {
            "comment_title": self.comment_title,
            "comment_message": self.comment_message,
            "attachment_name": None if names is None else list(names),
        }

    def to_api(self) -> dict[str, Any]:
        """The fields that are set (the request's form)."""
        return {key: value for key, value in self.as_dict().items() if value is not None}


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry, from checked fields. ``(job_id, command)`` is its key.

    The constructor does not check (the readers check first, then build); use
    :meth:`checked` for fields that were not.

    >>> Entry.checked({"job_id": "j", "command": "SUBMITVERIFYING"}).key
    ('j', 'SUBMITVERIFYING')
    >>> Entry.checked({"job_id": "j/1", "command": "SUBMITVERIFYING", "x": 1})
    Traceback (most recent call last):
    batcher.entry.EntryError: x: is not a field; job_id: must be 1-64 characters of ...
    """

    job_id: str
    command: str
    command_message: str | None = None
    operation_reason: str | None = None
    comment_data: CommentData | None = None
    app_user_id: str | None = None
    #: Where the entry was read, as ``file:line``. Not sent.
    source: str = ""
    #: The project the entry goes to: its own, its manifest's, or the run's. Not sent in
    #: the body (it is part of the URL path).
    project_id: str | None = None

    @classmethod
    def checked(cls, data: Mapping[str, Any]) -> Entry:
        """The entry of ``data`` (a manifest entry's fields), or :class:`EntryError`."""
        unknown = sorted(set(data) - ENTRY_FIELDS - {"source"})
        problems: list[tuple[Path, str]] = [((name,), "is not a field") for name in unknown]
        problems += entry_problems(data)
        if problems:
            raise EntryError(problems)
        return cls.build(data)

    @classmethod
    def build(cls, data: Mapping[str, Any]) -> Entry:
        """The entry of fields already checked."""
        comment = data.get("comment_data")
        if isinstance(comment, Mapping):
            names = comment.get("attachment_name")
            comment = CommentData(
                comment.get("comment_title"),
                comment.get("comment_message"),
                None if names is None else tuple(names),
            )
        return cls(
            data["job_id"],
            data["command"],
            data.get("command_message"),
            data.get("operation_reason"),
            comment,
            data.get("app_user_id"),
            data.get("source", ""),
            data.get("project_id"),
        )

    def as_dict(self) -> dict[str, Any]:
        """Every field, by name (``comment_data`` as a dict)."""
        found = {field.name: getattr(self, field.name) for field in fields(self)}
        if self.comment_data is not None:
            found["comment_data"] = self.comment_data.as_dict()
        return found

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
    ``ambiguous`` says the answer does not prove the command was refused (a timeout, a
    connection lost after sending, any 5xx, an answer cut short or unreadable; see
    :func:`batcher.send.answer.proves_refusal`): it may or may not have taken effect. It is
    sent again only once the job's record shows it did not (see :mod:`batcher.send.confirm`).

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
    """The digest of an entry's key ``(job_id, command)``.

    >>> key_digest("job-1", "SUBMITVERIFYING") == key_digest("job-1", "SUBMITVERIFYING")
    True
    """
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
