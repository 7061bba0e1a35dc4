"""The journal: the report written line by line during a run, and read back through one index.

* :mod:`.line` — one line: its schema and the one place lines are made
* :mod:`.lock` and :mod:`.writer` — the report file's own lock, and the append-only writer
* :mod:`.reader` — the one reader of lines (bad ones skipped)
* :mod:`.index` — the latest line of each entry, in one pass: what resume, the summary,
  selections and export read
* :mod:`.resume` and :mod:`.intents` — what ``--resume`` needs: entries done, entries in
  doubt (from lines, and from the intents a crashed run left)
* :mod:`.runs` — the run record sidecar (``REPORT.runs.jsonl``, one line per run)
* :mod:`.selection` — the latest lines of the entries chosen by status
* :mod:`.times` — the one time parser
"""

from pathlib import Path

from batcher.entry import key_digest
from batcher.errors import ReportWriteError
from batcher.journal.index import Ambiguous, ReportIndex
from batcher.journal.line import ReportLine, line_from_outcome, skipped_line
from batcher.journal.lock import FileId, file_id, same_file
from batcher.journal.reader import (
    BadLineHandler,
    ReportReadError,
    iter_report,
    warn_bad_line,
)
from batcher.journal.runs import (
    ManifestInfo,
    RunRecord,
    finish_run,
    read_runs,
    runs_path,
    start_run,
)
from batcher.journal.writer import ReportWriter


def completed_keys(path: Path, *, on_bad_line: BadLineHandler | None = None) -> ReportIndex:
    """The index of the report at ``path`` keyed by :func:`~batcher.entry.key_digest`
    (``digest in index``: that entry is done); a missing report has nothing done."""
    return ReportIndex.read(
        path, on_bad_line=on_bad_line, digest=key_digest, positions=False, missing_ok=True
    )


__all__ = [
    "Ambiguous",
    "BadLineHandler",
    "FileId",
    "ManifestInfo",
    "ReportIndex",
    "ReportLine",
    "ReportReadError",
    "ReportWriteError",
    "ReportWriter",
    "RunRecord",
    "completed_keys",
    "file_id",
    "finish_run",
    "iter_report",
    "line_from_outcome",
    "read_runs",
    "runs_path",
    "same_file",
    "skipped_line",
    "start_run",
    "warn_bad_line",
]
