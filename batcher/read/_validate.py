"""One entry's raw fields (from either format) to checked fields or problems.

The first pass checks fields by hand, with the verdicts and messages the pydantic model
(:class:`~batcher.entry.Entry`) would give (a property test holds the two together), so
that ``batcher validate`` need not import pydantic at all; the second pass builds the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batcher.entry import (
    APP_USER_ID_MESSAGE,
    KNOWN_COMMAND_MESSAGES,
    KNOWN_COMMANDS,
    PATH_ID_RE,
    REASON_MAX,
    SHORT_MAX,
    check_app_user_id,
)
from batcher.errors import Problem
from batcher.read._problems import ID_CHARS, Path, command_hint, describe_kind, short

if TYPE_CHECKING:
    from batcher.entry import Entry


@dataclass(slots=True)
class Record:
    """One entry as read: its checked fields when valid, otherwise the problems found."""

    line: int
    data: dict[str, Any] | None
    problems: list[Problem] = field(default_factory=list)
    #: The file cannot be read (not text, not YAML): this problem replaces all others of
    #: the file, as when a file was decoded and parsed whole before anything was checked.
    whole_file: bool = False
    #: The second pass found the entry's key among those already done: not built.
    done: bool = False


Locate = Callable[[Path], tuple[int, str | None]]


_KNOWN = {
    "command": (frozenset(KNOWN_COMMANDS), KNOWN_COMMANDS, "command"),
    "command_message": (
        frozenset(KNOWN_COMMAND_MESSAGES),
        KNOWN_COMMAND_MESSAGES,
        "command_message",
    ),
}


class Validator:
    """Turns one entry's raw fields into checked fields or problems; shared by both formats."""

    def __init__(self, *, default_command: str | None, project_id: str | None) -> None:
        self.default_command = default_command
        self.project_id = project_id
        self._listed: set[str] = set()
        # A bad value in defaults: is met once per entry: say the same thing each time, so
        # that it is reported once.
        self._said: dict[tuple[str, int, str | None, str], str] = {}

    def build(
        self,
        data: dict[str, Any],
        *,
        file: str,
        line: int,
        locate: Locate,
        project_id: str | None = None,
        check: bool = True,
    ) -> Record:
        """Complete ``data`` (Nones already dropped) with the default command, the source and
        the project id, and check it (unless ``check`` is False: the second pass, which reads
        what the first one checked). ``locate`` maps a field's path to its line and name."""
        if "command" not in data and self.default_command is not None:
            data["command"] = self.default_command
        data["source"] = f"{file}:{line}"
        if "project_id" not in data:
            data["project_id"] = project_id or self.project_id
        record = Record(line, data)
        if not check:
            return record
        for name in ("command", "command_message"):
            value = data.get(name)
            if isinstance(value, str) and 0 < len(value) <= SHORT_MAX:
                self._check_known(name, value, file, locate, record.problems)
        for path, message in field_problems(data):
            at, where = locate(path)
            record.problems.append(Problem(file, at, where, message))
        if record.problems:
            record.data = None
        return record

    def _check_known(
        self, name: str, value: str, file: str, locate: Locate, problems: list[Problem]
    ) -> None:
        known_set, known, what = _KNOWN[name]
        if value in known_set:
            return
        at, where = locate((name,))
        said = (file, at, where, value)
        message = self._said.get(said, "")
        if not message:
            hint = command_hint(value, known)
            if hint:
                message = f"unknown {what} {value!r}; {hint}"
            elif name not in self._listed:
                self._listed.add(name)
                message = f"{value!r} is not a known {what}; the known ones are {', '.join(known)}"
            else:
                message = f"{value!r} is not a known {what} (see the list above)"
            self._said[said] = message
        problems.append(Problem(file, at, where, message))


def build_entry(data: dict[str, Any]) -> Entry:
    """The model of fields the first pass found valid (the second pass reads the same bytes
    from the snapshot, so they are constructed without checking them again)."""
    from batcher.entry import CommentData, Entry

    comment = data.get("comment_data")
    if comment is not None:
        names = comment.get("attachment_name")
        data = {
            **data,
            "comment_data": CommentData.model_construct(
                **{**comment, "attachment_name": None if names is None else tuple(names)}
            ),
        }
    return Entry.model_construct(**data)


# -- the model's rules, by hand ------------------------------------------------------------------


def field_problems(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """What :class:`~batcher.entry.Entry` would refuse in ``data``, in its field order, each
    as ``(path, message)``: the messages :func:`~._problems.pydantic_message` gives.

    >>> field_problems({"job_id": "a b", "source": "x"})
    [(('job_id',), "must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (got 'a b')"), \
(('command',), 'is required')]
    """
    found: list[tuple[Path, str]] = []
    _path_id(data, "job_id", found, required=True)
    _text(data, "command", found, required=True, low=1, high=SHORT_MAX)
    _text(data, "command_message", found, low=1, high=SHORT_MAX)
    _text(data, "operation_reason", found, high=REASON_MAX)
    comment = data.get("comment_data")
    if comment is not None:
        if not isinstance(comment, dict):
            found.append(
                (
                    ("comment_data",),
                    "must be a mapping (comment_title: ..., comment_message: ...), "
                    f"not {describe_kind(comment)}",
                )
            )
        else:
            found.extend((("comment_data", *path), message) for path, message in _comment(comment))
    app_user_id = data.get("app_user_id")
    if app_user_id is not None:
        if not isinstance(app_user_id, str):
            found.append((("app_user_id",), f"must be text, not {describe_kind(app_user_id)}"))
        else:
            try:
                check_app_user_id(app_user_id)
            except ValueError:
                found.append((("app_user_id",), APP_USER_ID_MESSAGE))
    _path_id(data, "project_id", found)
    return found


def _comment(comment: dict[str, Any]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    _text(comment, "comment_title", found)
    _text(comment, "comment_message", found)
    names = comment.get("attachment_name")
    if names is not None:
        if not isinstance(names, list | tuple):
            found.append(
                (("attachment_name",), f"must be a list of file names, not {describe_kind(names)}")
            )
        else:
            for index, name in enumerate(names):
                if not isinstance(name, str):
                    found.append(
                        (("attachment_name", index), f"must be text, not {describe_kind(name)}")
                    )
    return found


def _text(
    data: dict[str, Any],
    name: str,
    found: list[tuple[Path, str]],
    *,
    required: bool = False,
    low: int = 0,
    high: int | None = None,
) -> None:
    value = data.get(name)
    if value is None:
        if required:
            found.append(((name,), "is required"))
        return
    if not isinstance(value, str):
        found.append(((name,), f"must be text, not {describe_kind(value)}"))
    elif len(value) < low:
        found.append(((name,), "must not be empty"))
    elif high is not None and len(value) > high:
        found.append(((name,), f"is too long: {len(value)} characters, at most {high}"))


def _path_id(
    data: dict[str, Any], name: str, found: list[tuple[Path, str]], *, required: bool = False
) -> None:
    value = data.get(name)
    if value is None:
        if required:
            found.append(((name,), "is required"))
    elif not isinstance(value, str):
        found.append(((name,), f"must be text, not {describe_kind(value)}"))
    elif not PATH_ID_RE.match(value):
        found.append(((name,), f"must be 1-64 characters of {ID_CHARS} (got {short(value)})"))
