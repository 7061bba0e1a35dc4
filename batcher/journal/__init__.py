"""The report: written line by line during a run, read back to review, select and export.

* :mod:`.line` — one line: its schema and the one place lines are made
* :mod:`._lock` and :mod:`._writer` — the report file's own lock, and the append-only writer
* :mod:`._reader` — the one reader (bad lines skipped); :mod:`._resume` what ``--resume``
  needs (entries done, entries ambiguous)
* :mod:`.runs` — the run record sidecar (``REPORT.runs.jsonl``, one line per run)
* :mod:`.selection` — the latest line of each entry, filtered by status
* :mod:`.summary` and :mod:`.render` — the numbers, and the table people read
* :mod:`.html` — the same as a self-contained page with charts
* :mod:`.export` — a manifest rebuilt from selected lines
"""

from pathlib import Path

from batcher.errors import ReportWriteError
from batcher.journal.line import ReportLine, line_from_outcome, skipped_line
from batcher.journal.lock import FileId, file_id, same_file
from batcher.journal.reader import (
    BadLineHandler,
    ReportReadError,
    iter_records,
    iter_report,
    warn_bad_line,
)
from batcher.journal.resume_scan import Ambiguous, ResumeState
from batcher.journal.runs import (
    ManifestInfo,
    RunRecord,
    finish_run,
    read_runs,
    runs_path,
    start_run,
)
from batcher.journal.writer import ReportWriter

#: The name this had before it also knew ambiguous entries.
CompletedKeys = ResumeState


def completed_keys(path: Path, *, on_bad_line: BadLineHandler | None = None) -> ResumeState:
    """The resume state of the report at ``path`` (see :meth:`ResumeState.read`)."""
    return ResumeState.read(path, on_bad_line=on_bad_line)


__all__ = [
    "Ambiguous",
    "BadLineHandler",
    "CompletedKeys",
    "FileId",
    "ManifestInfo",
    "ReportLine",
    "ReportReadError",
    "ReportWriteError",
    "ReportWriter",
    "ResumeState",
    "RunRecord",
    "completed_keys",
    "file_id",
    "finish_run",
    "iter_records",
    "iter_report",
    "line_from_outcome",
    "read_runs",
    "runs_path",
    "same_file",
    "skipped_line",
    "start_run",
    "warn_bad_line",
]
