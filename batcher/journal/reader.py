"""The one report reader: lines streamed from the file, bad ones skipped with a warning.

A report can hold millions of lines, so nothing here keeps them: :func:`iter_report`
streams checked :class:`~batcher.journal.line.ReportLine` models (optionally only the lines
a filter wants, which is how readers re-read what they chose); :mod:`.index` reads every
line once, as light dicts, for each entry's latest.

A line that cannot be read is passed to ``on_bad_line`` (default: a warning in the log) and
skipped; a last line without its newline is a write torn by a crash. A report that cannot be
read at all (missing, a directory, no permission, an I/O error while reading) raises
:class:`ReportReadError`, a usage error (exit 2) that says which and why.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import structlog
from pydantic import ValidationError

from batcher.entry import STATUSES
from batcher.errors import UsageError
from batcher.journal.line import ReportLine

log = structlog.get_logger("batcher.journal")

#: Called with (line number, why) for each line that cannot be read.
BadLineHandler = Callable[[int, str], None]

_TORN = "torn last line (the run was interrupted while writing it)"
_STATUS_SET = frozenset(STATUSES)


def warn_bad_line(lineno: int, why: str) -> None:
    """The default for unreadable report lines: a warning in the log, and read on."""
    log.warning("report_line_skipped", line=lineno, reason=why)


class ReportReadError(UsageError):
    """The report cannot be read: missing, not a file, no permission, an I/O error."""


def open_report(path: Path) -> IO[bytes]:
    """Open a report for reading, or raise :class:`ReportReadError` saying why not.

    >>> open_report(Path("/nonexistent/r.jsonl"))
    Traceback (most recent call last):
    ...
    batcher.journal.reader.ReportReadError: report /nonexistent/r.jsonl does not exist
    """
    try:
        # Non-blocking, so a named pipe is refused here instead of hanging the open.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ReportReadError(f"report {path} does not exist") from None
    except IsADirectoryError:
        raise ReportReadError(f"report {path} is not a file (a directory)") from None
    except OSError as error:
        raise ReportReadError(f"cannot read report {path}: {error.strerror}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ReportReadError(f"report {path} is not a file (a directory)")
        if not stat.S_ISREG(mode):
            raise ReportReadError(f"report {path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    stream = open(fd, "rb", buffering=1 << 20)  # noqa: SIM115
    return stream


@contextlib.contextmanager
def reading(path: Path) -> Iterator[IO[bytes]]:
    """:func:`open_report`, turning an I/O error while reading into ReportReadError."""
    with open_report(path) as stream:
        try:
            yield stream
        except OSError as error:
            raise ReportReadError(f"cannot read report {path}: {error.strerror}") from None


def _raw_lines(path: Path, wanted: Callable[[int], bool] | None) -> Iterator[tuple[int, bytes]]:
    with reading(path) as stream:
        for lineno, raw in enumerate(stream, start=1):
            if (wanted is None or wanted(lineno)) and raw.strip():
                yield lineno, raw


def first_report_line(path: Path) -> int | None:
    """The number of the first readable report line, 0 if the file has no lines at all, or
    None if none of its lines is a report line (it is something else: a manifest, say).

    Reads only as far as that first report line, without warnings: this is how
    ``batcher report`` tells a report from another file before it says anything.
    """
    seen = False
    with reading(path) as stream:
        for lineno, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            seen = True
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if unusable(record) is None:
                return lineno
    return None if seen else 0


def torn_or_bad(raw: bytes, why: str) -> str:
    """What to say of an unreadable line: torn (no newline: a crash cut it), or why not."""
    return _TORN if not raw.endswith(b"\n") else f"not a report line: {why}"


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


def unusable(record: Any) -> str | None:
    """Why a parsed line is no report line (its key or status unusable), or None."""
    if not isinstance(record, dict):
        return "not a JSON object"
    for name in ("job_id", "command"):
        if not isinstance(record.get(name), str):
            return f"{name}: " + ("Field required" if name not in record else "not text")
    status = record.get("status")
    if not isinstance(status, str) or status not in _STATUS_SET:
        return "status: " + (
            "Field required" if "status" not in record else f"not one of {', '.join(STATUSES)}"
        )
    return None
