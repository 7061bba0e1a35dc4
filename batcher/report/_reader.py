"""The one report reader: lines streamed from the file, bad ones skipped with a warning.

A report can hold millions of lines, so nothing here keeps them: :func:`iter_report`
streams checked :class:`~batcher.report.line.ReportLine` models (optionally only the lines
a filter wants, which is how selections re-read what they chose), :func:`iter_records` the
same lines as light dicts for readers that need a few fields fast (resume, summaries), and
:func:`completed_keys` the entries whose latest line is ``succeeded``.

A line that cannot be read is passed to ``on_bad_line`` (default: a warning in the log) and
skipped; a last line without its newline is a write torn by a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import structlog
from pydantic import ValidationError

from ..keys import KeyTable, key_digest
from ..outcome import STATUSES
from .line import ReportLine

log = structlog.get_logger("batcher.report")

#: Called with (line number, why) for each line that cannot be read.
BadLineHandler = Callable[[int, str], None]

_TORN = "torn last line (the run was interrupted while writing it)"
_STATUS_SET = frozenset(STATUSES)


def warn_bad_line(lineno: int, why: str) -> None:
    """The default for unreadable report lines: a warning in the log, and read on."""
    log.warning("report_line_skipped", line=lineno, reason=why)


def _raw_lines(path: Path, wanted: Callable[[int], bool] | None) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as stream:
        for lineno, raw in enumerate(stream, start=1):
            if (wanted is None or wanted(lineno)) and raw.strip():
                yield lineno, raw


def iter_report(
    path: Path,
    *,
    wanted: Callable[[int], bool] | None = None,
    on_bad_line: BadLineHandler | None = None,
) -> Iterator[tuple[int, ReportLine]]:
    """Stream ``(line number, ReportLine)`` from a report; ``wanted(lineno)`` picks lines.

    >>> for lineno, line in iter_report(Path("out.jsonl")):  # doctest: +SKIP
    ...     print(lineno, line.status)
    """
    handler = on_bad_line or warn_bad_line
    for lineno, raw in _raw_lines(path, wanted):
        try:
            yield lineno, ReportLine.model_validate_json(raw)
        except ValidationError as error:
            if not raw.endswith(b"\n"):
                handler(lineno, _TORN)
            else:
                first = error.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                handler(lineno, f"not a report line: {where + ': ' if where else ''}{first['msg']}")


def iter_records(
    path: Path, *, on_bad_line: BadLineHandler | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream ``(line number, dict)``: every line whose key and status can be trusted.

    Only ``job_id``, ``command`` and ``status`` are checked; other fields are as written.
    About three times as fast as :func:`iter_report`, for readers of a few fields.
    """
    handler = on_bad_line or warn_bad_line
    for lineno, raw in _raw_lines(path, None):
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            handler(
                lineno, _TORN if not raw.endswith(b"\n") else "not a report line: not valid JSON"
            )
            continue
        why = _unusable(record)
        if why is None:
            yield lineno, record
        else:
            handler(lineno, _TORN if not raw.endswith(b"\n") else f"not a report line: {why}")


def _unusable(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    for name in ("job_id", "command"):
        if not isinstance(record.get(name), str):
            return f"{name}: " + ("Field required" if name not in record else "not text")
    if record.get("status") not in _STATUS_SET:
        return "status: " + (
            "Field required" if "status" not in record else f"not one of {', '.join(STATUSES)}"
        )
    return None


class CompletedKeys:
    """Entries (by :func:`~batcher.keys.key_digest`) whose latest line is ``succeeded``.

    >>> done = CompletedKeys()
    >>> done.record("j", "C", "succeeded"); done.record("j", "C", "failed")
    >>> key_digest("j", "C") in done, len(done)
    (False, 0)
    """

    __slots__ = ("_count", "_latest")

    def __init__(self) -> None:
        self._latest = KeyTable()  # digest -> 1 when the latest line succeeded, else 0
        self._count = 0

    def record(self, job_id: str, command: str, status: str) -> None:
        """Note a line; the latest line of an entry wins."""
        digest = key_digest(job_id, command)
        done = int(status == "succeeded")
        before = self._latest.get(digest)
        self._latest[digest] = done
        self._count += done - (before or 0)

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, int) and self._latest.get(digest) == 1

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0


def completed_keys(path: Path, *, on_bad_line: BadLineHandler | None = None) -> CompletedKeys:
    """The entries of the report at ``path`` whose latest line is ``succeeded``.

    A missing report has none (``--resume`` on a first run simply starts it).
    """
    done = CompletedKeys()
    if not path.exists():
        return done
    for _, record in iter_records(path, on_bad_line=on_bad_line):
        done.record(record["job_id"], record["command"], record["status"])
    return done
