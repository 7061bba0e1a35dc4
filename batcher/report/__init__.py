"""The report: written line by line during a run, read back to review, select and export.

* :mod:`.line` — one line: its schema and the one place lines are made
* :mod:`._writer` — the exclusive lock and the append-only writer
* :mod:`._reader` — the one reader (bad lines skipped), and the keys already done
* :mod:`.selection` — the latest line of each entry, filtered by status
* :mod:`.summary` and :mod:`.render` — the numbers, and the table people read
* :mod:`.export` — a manifest rebuilt from selected lines
"""

from ._reader import (
    BadLineHandler,
    CompletedKeys,
    completed_keys,
    iter_records,
    iter_report,
    warn_bad_line,
)
from ._writer import ReportWriter, acquire_lock, lock_path, release_lock
from .line import ReportLine, line_from_outcome, skipped_line

__all__ = [
    "BadLineHandler",
    "CompletedKeys",
    "ReportLine",
    "ReportWriter",
    "acquire_lock",
    "completed_keys",
    "iter_records",
    "iter_report",
    "line_from_outcome",
    "lock_path",
    "release_lock",
    "skipped_line",
    "warn_bad_line",
]
