"""Failure reasons: how failed and skipped lines are grouped, with an example entry each."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from batcher.review.compact import Interner

#: The label of the bucket that holds every group beyond the cap.
OTHER = "(other)"

_T = TypeVar("_T")


@dataclass(slots=True)
class ReasonGroup:
    """Entries whose latest line failed (or was skipped) for the same reason."""

    kind: str  #: "error_code", "failed_msg", "reason" or "other"
    label: str
    detail: str | None  #: the error_msg that came with an error_code
    count: int
    example_job_id: str | None
    example_command: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.label,
            "detail": self.detail,
            "count": self.count,
            "example_job_id": self.example_job_id,
            "example_command": self.example_command,
        }


def capped(items: list[_T], top: int) -> list[_T]:
    """The first ``top`` items (all of them when ``top`` is 0): what ``--top`` shows."""
    return items if top <= 0 else items[:top]


def beyond_cap(groups: list[ReasonGroup], top: int) -> dict[str, int]:
    """How many groups, and entries in them, :func:`capped` leaves out."""
    rest = [] if top <= 0 else groups[top:]
    return {"groups": len(rest), "entries": sum(g.count for g in rest)}


#: A manifest location in a reason, e.g. " (jobs.yaml:12)": one per entry, so it would
#: split every skip ("the job's earlier command X (jobs.yaml:12) did not succeed") apart.
_SOURCE_RE = re.compile(r" \([^()\s]+:\d+\)")


def _text(line: Mapping[str, Any], name: str) -> str | None:
    value = line.get(name)
    return value if isinstance(value, str) and value else None


def failure_group(line: Mapping[str, Any]) -> tuple[str, str]:
    """How a failed or skipped line (a parsed report line) is grouped: its error_code, else
    failed_msg, else reason. A reason loses any ``(file:line)`` it quotes, so skips group by
    cause, not by entry.

    >>> failure_group({"status": "failed", "error_code": "X.1", "reason": "HTTP 400"})
    ('error_code', 'X.1')
    >>> failure_group({"status": "skipped",
    ...                "reason": "earlier command A (jobs.csv:7) did not succeed"})
    ('reason', 'earlier command A did not succeed')
    """
    code = _text(line, "error_code")
    if code:
        return "error_code", code
    failed_msg = _text(line, "failed_msg")
    if failed_msg:
        return "failed_msg", failed_msg
    reason = _text(line, "reason")
    if reason:
        return "reason", _SOURCE_RE.sub("", reason)
    return "reason", "(no reason given)"


@dataclass(slots=True)
class GroupInfo:
    detail: str | None = None
    example_job_id: str | None = None
    example_command: str | None = None
    example_row: int = -1


class ReasonGroups:
    """Failure groups of one status: interned labels plus one example entry each."""

    #: Distinct (error_code, failed_msg, reason) texts remembered with their group.
    CACHE = 4096

    def __init__(self, cap: int) -> None:
        self.intern = Interner(cap)
        self.info: list[GroupInfo] = []
        self._index: dict[tuple[Any, Any, Any], int] = {}

    def add(self, line: Mapping[str, Any], row: int) -> int:
        """Count ``line`` (a parsed report line) in its group; return the group's index."""
        get = line.get
        texts = (get("error_code"), get("failed_msg"), get("reason"))
        try:
            index = self._index.get(texts)
        except TypeError:  # a list or an object where text belongs
            texts, index = (None, None, None), None
        if index is None:
            kind_label = failure_group(line)
            index = self.intern(kind_label)
            while len(self.info) <= index:
                self.info.append(GroupInfo())
            if len(self._index) < self.CACHE and texts != (None, None, None):
                self._index[texts] = index
        info = self.info[index]
        if info.detail is None and texts[0]:
            info.detail = _text(line, "error_msg")
        # The latest line of a group is the example most likely to still be the latest
        # line of its entry at the end; stale examples are fixed up after the pass.
        info.example_job_id, info.example_command, info.example_row = (
            line["job_id"],
            line["command"],
            row,
        )
        return index

    def label(self, index: int) -> tuple[str, str]:
        name = self.intern.names[index]
        return ("other", OTHER) if name is None else name
