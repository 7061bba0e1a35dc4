"""One entry's raw fields (from either format) to an :class:`~batcher.entry.Entry` or problems."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..entry import KNOWN_COMMANDS, Entry
from ..errors import Problem
from ._problems import KNOWN_COMMAND_SET, Path, command_hint, pydantic_message


@dataclass(slots=True)
class Record:
    """One entry as read: an Entry when valid, otherwise the problems found."""

    line: int
    entry: Entry | None
    problems: list[Problem] = field(default_factory=list)


class Validator:
    """Turns one entry's raw fields into an Entry or problems; shared by both formats."""

    def __init__(self, *, default_command: str | None, project_id: str | None) -> None:
        self.default_command = default_command
        self.project_id = project_id
        self._listed_commands = False

    def build(
        self,
        data: dict[str, Any],
        *,
        file: str,
        line: int,
        locate: Callable[[Path], tuple[int, str | None]],
        project_id: str | None = None,
    ) -> Record:
        """Validate ``data`` (Nones already dropped). ``locate`` maps a pydantic location
        to the line and field name to report."""
        if "command" not in data and self.default_command is not None:
            data["command"] = self.default_command
        data["source"] = f"{file}:{line}"
        data["project_id"] = project_id or self.project_id
        record = Record(line, None)
        command = data.get("command")
        if isinstance(command, str) and 0 < len(command) <= 64:
            self._check_command(command, file, locate, record.problems)
        try:
            entry = Entry.model_validate(data)
        except ValidationError as error:
            for item in error.errors(include_url=False):
                at, name = locate(tuple(item["loc"]))
                record.problems.append(Problem(file, at, name, pydantic_message(item)))
            return record
        if not record.problems:
            record.entry = entry
        return record

    def _check_command(
        self,
        command: str,
        file: str,
        locate: Callable[[Path], tuple[int, str | None]],
        problems: list[Problem],
    ) -> None:
        if command in KNOWN_COMMAND_SET:
            return
        hint = command_hint(command)
        if hint:
            message = f"unknown command {command!r}; {hint}"
        elif not self._listed_commands:
            self._listed_commands = True
            message = (
                f"{command!r} is not a known command; the known ones are "
                f"{', '.join(KNOWN_COMMANDS)}"
            )
        else:
            message = f"{command!r} is not a known command (see the list above)"
        at, name = locate(("command",))
        problems.append(Problem(file, at, name, message))
