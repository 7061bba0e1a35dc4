"""The JSONL report: an exclusive, append-only writer and a streaming, forgiving reader.

Every finished entry becomes one line, written with a single ``write(2)`` on an
``O_APPEND`` descriptor, so a crash at any moment loses at most the lines still in flight
and leaves at worst one torn last line, which the reader skips with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import structlog
from pydantic import ValidationError

from .errors import ReportLockedError, UsageError
from .outcome import ReportLine
from .redact import Redactor

log = structlog.get_logger("batcher.report")

#: Called with (line number, why) for each line that cannot be read.
BadLineHandler = Callable[[int, str], None]


def key_digest(job_id: str, command: str) -> int:
    """A 64-bit digest of an entry key, so millions of keys fit in a small set.

    >>> key_digest("job-1", "SUBMITVERIFYING") == key_digest("job-1", "SUBMITVERIFYING")
    True
    """
    raw = f"{job_id}\x00{command}".encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


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

    def __init__(self, path: Path, fd: int, lock_fd: int, redactor: Redactor | None = None
                 ) -> None:
        self.path = path
        self._fd = fd
        self._lock_fd = lock_fd
        self._redactor = redactor if redactor else None
        self._prefix = b""
        self.lines_written = 0

    @classmethod
    def open(cls, path: Path, *, resume: bool, redactor: Redactor | None = None
             ) -> ReportWriter:
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

    def write(self, line: ReportLine) -> None:
        """Append one line; it is in the kernel (safe from a process crash) on return."""
        text = line.model_dump_json()
        if self._redactor is not None:  # a server may echo a credential back at us
            text = self._redactor.text(text)
        data = self._prefix + text.encode() + b"\n"
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


def iter_report(path: Path, *, on_bad_line: BadLineHandler | None = None) -> Iterator[
    tuple[int, ReportLine]
]:
    """Stream ``(line number, ReportLine)`` from a report, skipping lines that cannot be read.

    A malformed line is passed to ``on_bad_line`` (default: a warning in the log) and
    skipped; a last line without its newline is a write torn by a crash.

    >>> for lineno, line in iter_report(Path("out.jsonl")):  # doctest: +SKIP
    ...     print(lineno, line.status)
    """
    handler = on_bad_line or warn_bad_line
    with open(path, "rb") as stream:
        for lineno, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                yield lineno, ReportLine.model_validate_json(raw)
            except ValidationError as error:
                if not raw.endswith(b"\n"):
                    handler(lineno, "torn last line (the run was interrupted while writing it)")
                else:
                    first = error.errors(include_url=False)[0]
                    where = ".".join(str(p) for p in first["loc"])
                    handler(lineno, f"not a report line: {where + ': ' if where else ''}"
                                    f"{first['msg']}")


def warn_bad_line(lineno: int, why: str) -> None:
    """The default for unreadable report lines: a warning in the log, and read on."""
    log.warning("report_line_skipped", line=lineno, reason=why)


def completed_keys(path: Path) -> set[int]:
    """Digests (see :func:`key_digest`) of the entries whose latest line is ``succeeded``."""
    done: set[int] = set()
    if not path.exists():
        return done
    for _, line in iter_report(path):
        digest = key_digest(line.job_id, line.command)
        if line.status == "succeeded":
            done.add(digest)
        else:
            done.discard(digest)
    return done
