"""One entry's raw fields (from either format) to checked fields or problems, through
the entry schema's one checker (:func:`~batcher.entry.entry_problems`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batcher.entry import (
    KNOWN_COMMAND_MESSAGES,
    KNOWN_COMMANDS,
    SHORT_MAX,
    Path,
    entry_problems,
    quote,
)
from batcher.errors import Problem
from batcher.read._problems import command_hint


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
        for path, message in entry_problems(data):
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
            hint, shown = command_hint(value, known), quote(value, 70)
            if hint:
                message = f"unknown {what} {shown}; {hint}"
            elif name not in self._listed:
                self._listed.add(name)
                message = f"{shown} is not a known {what}; the known ones are {', '.join(known)}"
            else:
                message = f"{shown} is not a known {what} (see the list above)"
            self._said[said] = message
        problems.append(Problem(file, at, where, message))
