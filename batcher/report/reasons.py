"""Failure reasons: how failed and skipped lines are grouped, with an example entry each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

from ._compact import Interner
from .line import ReportLine

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


def failure_group(line: ReportLine) -> tuple[str, str]:
    """How a failed or skipped line is grouped: its error_code, else failed_msg, else reason.

    A reason loses any ``(file:line)`` it quotes, so skips group by cause, not by entry.

    >>> failure_group(ReportLine(job_id="j", command="C", status="failed", error_code="X.1"))
    ('error_code', 'X.1')
    >>> failure_group(ReportLine(job_id="j", command="C", status="skipped",
    ...                          reason="earlier command A (jobs.csv:7) did not succeed"))
    ('reason', 'earlier command A did not succeed')
    """
    if line.error_code:
        return "error_code", line.error_code
    if line.failed_msg:
        return "failed_msg", line.failed_msg
    if line.reason:
        return "reason", _SOURCE_RE.sub("", line.reason)
    return "reason", "(no reason given)"


@dataclass(slots=True)
class GroupInfo:
    detail: str | None = None
    example_job_id: str | None = None
    example_command: str | None = None
    example_row: int = -1


class ReasonGroups:
    """Failure groups of one status: interned labels plus one example entry each."""

    def __init__(self, cap: int) -> None:
        self.intern = Interner(cap)
        self.info: list[GroupInfo] = []

    def add(self, line: ReportLine, row: int) -> int:
        kind_label = failure_group(line)
        index = self.intern(kind_label)
        while len(self.info) <= index:
            self.info.append(GroupInfo())
        info = self.info[index]
        if info.detail is None and kind_label[0] == "error_code":
            info.detail = line.error_msg
        # The latest line of a group is the example most likely to still be the latest
        # line of its entry at the end; stale examples are fixed up after the pass.
        info.example_job_id, info.example_command, info.example_row = (
            line.job_id,
            line.command,
            row,
        )
        return index

    def label(self, index: int) -> tuple[str, str]:
        name = self.intern.names[index]
        return ("other", OTHER) if name is None else name
