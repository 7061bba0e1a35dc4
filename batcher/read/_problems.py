"""Problems: collected in file order without repeats, and worded for an operator.

Every message names what is wrong in the manifest's own terms (a field, a column, a
command) and, where a near miss is likely, suggests what was meant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from batcher.entry import KNOWN_COMMANDS, Path, quote
from batcher.errors import Problem, UsageError

KNOWN_COMMAND_SET = frozenset(KNOWN_COMMANDS)


class Problems:
    """Problems in file order, without repeats (a bad ``defaults:`` value would otherwise
    be reported once per entry), capped."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._items: list[tuple[int, int, Problem]] = []
        self._seen: set[Problem] = set()
        self.truncated = False

    @property
    def count(self) -> int:
        return len(self._items)

    def add(self, index: int, problem: Problem) -> None:
        if problem in self._seen:
            return
        self._seen.add(problem)
        self._items.append((index, problem.line or 0, problem))

    def drop(self, index: int) -> None:
        """Forget the problems of file ``index`` (it turned out not to be readable at all)."""
        dropped = [item for item in self._items if item[0] == index]
        self._items = [item for item in self._items if item[0] != index]
        self._seen.difference_update(item[2] for item in dropped)

    def extend(self, index: int, problems: list[Problem]) -> None:
        for problem in problems:
            self.add(index, problem)

    def result(self) -> tuple[list[Problem], bool]:
        # Stable sort: duplicates found by the extra scan fall into place by file and line.
        ordered = [item[2] for item in sorted(self._items, key=lambda item: item[:2])]
        truncated = self.truncated or len(ordered) > self._cap
        return ordered[: self._cap], truncated


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    import difflib  # only when something is misspelt

    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.lower(), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown(what: str, name: str, choices: Sequence[str]) -> str:
    hint = did_you_mean(name, choices)
    return f"unknown {what} {quote(name, 70)}" + (
        hint or f" (expected one of: {', '.join(choices)})"
    )


def command_hint(command: str, known: Sequence[str] = KNOWN_COMMANDS) -> str:
    """``did you mean 'X'?`` for a near miss of a known value, else empty.

    >>> command_hint("submitverifying")
    "did you mean 'SUBMITVERIFYING'?"
    """
    import difflib  # only when something is misspelt

    close = difflib.get_close_matches(command.upper(), known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def check_default_command(command: str) -> None:
    if command not in KNOWN_COMMAND_SET:
        hint = command_hint(command) or f"known commands: {', '.join(KNOWN_COMMANDS)}"
        raise UsageError(f"--command {quote(command, 70)} is not a known command; {hint}")


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]{1,64}\Z")


def field_name(name: str) -> str:
    """A field or column name as written, quoted when it is not a plain word (an invisible
    BOM, a megabyte of text)."""
    return name if _PLAIN_NAME.match(name) else quote(name)


def yaml_field(path: Path) -> str | None:
    """``("comment_data", "attachment_name", 0)`` -> ``comment_data.attachment_name[0]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{field_name(part)}" if text else field_name(part)
    return text or None


def csv_field(path: Path) -> str | None:
    # CSV has flat columns: comment_data.attachment_name[0] -> attachment_name[0].
    return yaml_field(path[1:] if path[:1] == ("comment_data",) else path)
