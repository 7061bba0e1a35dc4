"""The latest line of each report entry, chosen by status, without keeping whole lines.

A report may hold several lines for one entry (a failed line, then after ``--resume`` a
succeeded one); the LATEST line per ``(job_id, command)`` is the entry's state. Reports can
run to millions of lines, so a selection keeps one packed int per entry in its first pass,
and re-reads the file for the chosen lines themselves.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..keys import KeyTable, key_digest
from ..outcome import STATUSES
from ._reader import BadLineHandler, iter_report
from .line import ReportLine

#: A status as a small int, to pack into typed arrays; ``STATUSES[code]`` reverses it.
STATUS_CODE: dict[str, int] = {status: code for code, status in enumerate(STATUSES)}


class Selection:
    """The latest line of each entry whose status is selected, found in two passes.

    Pass 1 (on construction) keeps one packed int per entry (line number, status,
    retryable) and marks the selected line numbers in a bitmap; iterating re-reads the
    file and yields exactly those lines, in report order. Unreadable lines go to
    ``on_bad_line`` (default: a warning in the log).

    >>> failed = Selection(Path("out.jsonl"), statuses={"failed"})  # doctest: +SKIP
    >>> failed.count, [line.job_id for line in failed][:2]  # doctest: +SKIP
    (2, ['job-7', 'job-9'])
    """

    def __init__(
        self,
        path: Path,
        *,
        statuses: Iterable[str] = ("failed", "skipped"),
        retryable_only: bool = False,
        on_bad_line: BadLineHandler | None = None,
    ) -> None:
        self.path = path
        self.statuses = frozenset(statuses)
        unknown = self.statuses - set(STATUSES)
        if unknown:
            raise ValueError(f"unknown status {sorted(unknown)}")
        self.retryable_only = retryable_only
        self.by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
        self.count = 0
        self.job_id_width = len("job_id")
        self.command_width = len("command")
        self._bitmap = self._pass_one(on_bad_line)

    def _selected(self, status: str, retryable: bool) -> bool:
        if self.retryable_only:
            return status == "failed" and retryable and "failed" in self.statuses
        return status in self.statuses

    def _pass_one(self, on_bad_line: BadLineHandler | None) -> bytearray:
        rows = KeyTable()
        latest = array("Q")  # per entry: lineno << 3 | status code << 1 | retryable
        last_lineno = 0
        for lineno, line in iter_report(self.path, on_bad_line=on_bad_line):
            row = rows.setdefault(key_digest(line.job_id, line.command), len(latest))
            packed = lineno << 3 | STATUS_CODE[line.status] << 1 | line.retryable
            if row == len(latest):
                latest.append(packed)
            else:
                latest[row] = packed
            last_lineno = lineno
            self.job_id_width = max(self.job_id_width, len(line.job_id))
            self.command_width = max(self.command_width, len(line.command))
        bitmap = bytearray(last_lineno // 8 + 1)
        for packed in latest:
            status, retryable = STATUSES[packed >> 1 & 3], bool(packed & 1)
            if self._selected(status, retryable):
                lineno = packed >> 3
                bitmap[lineno >> 3] |= 1 << (lineno & 7)
                self.by_status[status] += 1
                self.count += 1
        return bitmap

    def _wanted(self, lineno: int) -> bool:
        index = lineno >> 3
        return index < len(self._bitmap) and bool(self._bitmap[index] >> (lineno & 7) & 1)

    def __iter__(self) -> Iterator[ReportLine]:
        for _, line in self.numbered():
            yield line

    def numbered(self) -> Iterator[tuple[int, ReportLine]]:
        """Like iterating, with each line's number in the report."""
        return iter_report(self.path, wanted=self._wanted)
