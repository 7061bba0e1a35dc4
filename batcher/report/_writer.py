"""The report's writer: an exclusive lock, and one flushed ``write(2)`` per finished entry.

Every finished entry becomes one line, written with a single ``write(2)`` on an
``O_APPEND`` descriptor, so a crash at any moment loses at most the lines still in flight
and leaves at worst one torn last line, which the reader skips with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any

import orjson

from ..errors import ReportLockedError, UsageError
from ..redact import Redactor


def lock_path(report: Path) -> Path:
    """The lock file beside the report's real path, so a symlink or another spelling of the
    same path cannot take a second lock on one report."""
    real = Path(os.path.realpath(report))
    return real.with_name(real.name + ".lock")


class ReportWriter:
    """Holds the report's lock and appends one flushed line per finished entry.

    >>> with ReportWriter.open(Path("out.jsonl"), resume=False) as report:  # doctest: +SKIP
    ...     report.write(line)
    """

    def __init__(self, path: Path, fd: int, lock_fd: int, redactor: Redactor | None = None) -> None:
        self.path = path
        self._fd = fd
        self._lock_fd = lock_fd
        self._redactor = redactor if redactor else None
        self._prefix = b""
        self.lines_written = 0

    @classmethod
    def open(cls, path: Path, *, resume: bool, redactor: Redactor | None = None) -> ReportWriter:
        """Lock ``path`` (exit code 4 if another run holds it) and open it for appending.

        Without ``resume`` an existing non-empty report is refused: appending a second run
        to it by accident would make its numbers lie.
        """
        lock_fd = acquire_lock(path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as error:
            release_lock(lock_fd)
            raise UsageError(f"cannot open report {path}: {error.strerror}") from None
        try:
            os.fchmod(fd, 0o600)  # it may hold pre-signed upload URLs
            size = os.fstat(fd).st_size
            if size and not resume:
                raise UsageError(
                    f"report {path} already exists and is not empty; add --resume to continue "
                    "it, or choose another --report path"
                )
            torn_tail = bool(size) and not _ends_with_newline(fd, size)
        except BaseException:
            os.close(fd)
            release_lock(lock_fd)
            raise
        writer = cls(path, fd, lock_fd, redactor)
        # A torn last line from a crash: our first line starts on a fresh one. Done lazily so
        # a reader (resume) still sees the torn line as the torn last line it is.
        writer._prefix = b"\n" if torn_tail else b""
        return writer

    def write(self, line: dict[str, Any]) -> None:
        """Append one line (see :mod:`batcher.report.line`); it is in the kernel (safe from a
        process crash) on return."""
        try:
            data = orjson.dumps(line)
        except (TypeError, orjson.JSONEncodeError):
            # Only what a server sent can be odd (an integer beyond 64 bits): the standard
            # library writes any JSON value it parsed.
            data = json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode()
        if self._redactor is not None:  # a server may echo a credential back at us
            data = self._redactor.bytes(data)
        data = self._prefix + data + b"\n"
        self._prefix = b""
        written = os.write(self._fd, data)
        while written < len(data):  # a short write only happens on full disks or signals
            written += os.write(self._fd, data[written:])
        self.lines_written += 1

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            release_lock(self._lock_fd)

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ends_with_newline(fd: int, size: int) -> bool:
    return os.pread(fd, 1, size - 1) == b"\n"


def acquire_lock(report: Path) -> int:
    """Take the exclusive lock beside ``report``; raise ReportLockedError naming the holder.

    ``flock`` locks die with their process, so a ``kill -9`` never leaves a stale lock.
    """
    path = lock_path(report)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise UsageError(f"cannot create lock file {path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ReportLockedError(
            f"report {report} is in use by another batcher run (PID {holder}); "
            "wait for it to finish or stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    os.close(fd)  # closing releases the flock
