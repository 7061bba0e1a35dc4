"""The report's writer: the file's own lock, and one flushed ``write(2)`` per finished entry.

Every finished entry becomes one line, written with a single ``write(2)`` on an
``O_APPEND`` descriptor, so a crash at any moment loses at most the lines still in flight
and leaves at worst one torn last line, which the reader skips with a warning.

What can go wrong, and what it becomes:

* another run holds the report, by any name → :class:`~batcher.errors.ReportLockedError`
  (exit 4) naming its PID (see :mod:`._lock`);
* the report is one of the manifests, not a regular file, cannot be created or opened
  (read-only file system, no directory, no permission), or its file system is full →
  :class:`~batcher.errors.UsageError` (exit 2) before anything is written or sent;
* a write fails after that (``ENOSPC``, ``EROFS``, ``EIO``), or the report is deleted,
  its directory removed, another file renamed over it, or it shrinks (``truncate``,
  logrotate's ``copytruncate``, ``: > report``) mid-run →
  :class:`ReportWriteError` (exit 3), raised by :meth:`ReportWriter.write` and by every
  write after it. A line cut short by the failure is truncated away when the file system
  allows, and otherwise ends the file; no later line is ever glued onto it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, NoReturn

import orjson
import structlog

from batcher.entry import DigestSet, bytes_digest
from batcher.errors import ReportWriteError, UsageError
from batcher.journal.lock import FileId, file_id, lock_exclusively
from batcher.redact import Redactor

log = structlog.get_logger("batcher.journal")

#: Less free space than this on the report's file system refuses a run before it starts.
MIN_FREE_BYTES = 1 << 20
#: How often (seconds) a write checks that the report's name still leads to its file.
IDENTITY_CHECK_INTERVAL = 1.0
_write = os.write  # one name for every write, so tests can make it fail


class ReportWriter:
    """Holds the report's lock and appends one flushed line per finished entry.

    >>> with ReportWriter.open(Path("out.jsonl"), resume=False) as report:  # doctest: +SKIP
    ...     report.write(line)
    """

    def __init__(self, path: Path, fd: int, redactor: Redactor | None = None) -> None:
        self.path = path
        #: The report's real path (symlinks resolved) when it was opened: the run record
        #: sidecar lives beside it (see :mod:`.runs`).
        self.real_path = Path(os.path.realpath(path))
        self._fd = fd
        st = os.fstat(fd)
        #: The report file's identity ``(st_dev, st_ino)``, whatever its name.
        self.identity: FileId = (st.st_dev, st.st_ino)
        self._size = st.st_size
        #: The report's size when this run opened it: where this run's lines begin.
        self.started_size = st.st_size
        #: Set when the report's name stopped leading to this file mid-run.
        self.moved = False
        self._redactor = redactor if redactor else None
        self._prefix = b""
        self._failed: str | None = None
        self._cause: str | None = None
        self._next_check = time.monotonic() + IDENTITY_CHECK_INTERVAL
        self.lines_written = 0
        #: Whether opening it created the file (a run that sends nothing may remove it).
        self.created = False

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        resume: bool,
        redactor: Redactor | None = None,
        manifests: Iterable[str | os.PathLike[str]] = (),
    ) -> ReportWriter:
        """Lock ``path`` (exit code 4 if another run holds it) and open it for appending.

        ``manifests`` are the run's manifest paths (``"-"`` for standard input): a report
        that is one of them, by any name, is refused (UsageError) before it is locked,
        changed or written. Without ``resume`` an existing non-empty report is refused:
        appending a second run to it by accident would make its numbers lie.
        """
        path = Path(path)
        manifest_ids = {mid: str(m) for m in manifests if (mid := _manifest_id(m)) is not None}
        fd, created = _open_report(path)
        locked = False
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(f"report {path} is not a regular file; choose a file path")
            manifest = manifest_ids.get((st.st_dev, st.st_ino))
            if manifest is not None:
                raise UsageError(
                    f"report {path} is the manifest {manifest} (the same file); choose "
                    "another --report path"
                )
            lock_exclusively(fd, path)
            locked = True
            # Another process may have put a new file at ``path`` between open and lock.
            if file_id(path) != (st.st_dev, st.st_ino):
                raise UsageError(f"report {path} was replaced while it was being opened; retry")
            if st.st_size and not resume:
                raise UsageError(
                    f"report {path} already exists and is not empty; add --resume to continue "
                    "it, or choose another --report path"
                )
            _refuse_full_file_system(fd, path)
            _private(fd, st, path)  # it may hold pre-signed upload URLs
            torn_tail = bool(st.st_size) and os.pread(fd, 1, st.st_size - 1) != b"\n"
            if torn_tail:
                torn_tail = not _cut_torn_tail(fd, st.st_size, path)
        except BaseException:
            # Refused: leave no empty report behind, but only one this run created and
            # locked (another run may have opened it meanwhile and be about to use it).
            if created and locked:
                _unlink_if_empty(path, fd)
            os.close(fd)  # closing releases the lock
            raise
        writer = cls(path, fd, redactor)
        writer.created = created
        # A whole last line that lacks only its newline: ours starts on a fresh one.
        writer._prefix = b"\n" if torn_tail else b""
        return writer

    def reader(self) -> IO[bytes]:
        """The report, from its first byte, read through the locked descriptor itself.

        Reading through another descriptor and closing it would drop the lock on file
        systems where ``flock`` is emulated with POSIX locks (NFS); this one is safe. The
        stream does not close the descriptor.
        """
        stream = open(self._fd, "rb", buffering=1 << 20, closefd=False)  # noqa: SIM115
        stream.seek(0)
        return stream

    def write(self, line: dict[str, Any]) -> None:
        """Append one line (see :mod:`batcher.journal.line`); it is in the kernel (safe from a
        process crash) on return. Raises :class:`ReportWriteError` when it cannot be."""
        if self._failed is not None:
            raise ReportWriteError(self._failed, cause=self._cause)
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + IDENTITY_CHECK_INTERVAL
            self._check_identity()
        try:
            data = orjson.dumps(line)
        except (TypeError, orjson.JSONEncodeError):
            # Only what a server sent can be odd (an integer beyond 64 bits, a lone
            # surrogate): the standard library writes any JSON value it parsed, and UTF-8
            # gets a "?" for what it cannot carry.
            text = json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)
            data = text.encode("utf-8", "replace")
        if self._redactor is not None:  # a server may echo a credential back at us
            data = self._redactor.bytes(data)
        data = self._prefix + data + b"\n"
        written = 0
        try:
            # A short write only happens on full disks or signals; the loop finishes it or
            # meets the error.
            while written < len(data):
                written += _write(self._fd, data[written:])
            # O_APPEND writes at the file's end, wherever that is now: an end short of
            # where ours should be means the file was cut while we wrote it.
            end = os.lseek(self._fd, 0, os.SEEK_CUR)
        except OSError as error:
            self._fail(f"cannot write report {self.path}: {error.strerror}", written)
        self._prefix = b""
        self._size += written
        self.lines_written += 1
        if end < self._size:
            # This line is in the file; the next write (or check) stops the run.
            self._shrunk(self._size - end)

    def _shrunk(self, lost: int) -> str:
        """Remember that the file lost ``lost`` bytes of lines under us; return why."""
        self._size -= lost
        self._cause = (
            f"report {self.path} shrank during the run (truncated or emptied by another "
            f"program, such as logrotate's copytruncate): {lost} bytes of lines written "
            "before are gone from it"
        )
        self._failed = (
            f"{self._cause}; the run stops. A --resume of it now would send their entries "
            "again: put the lost lines back first (logrotate keeps them in the rotated copy)"
        )
        return self._failed

    def _fail(self, message: str, written: int) -> NoReturn:
        """Remember the failure, cut a partly written line back off, and raise."""
        if written:
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                # It stays as a torn last line; nothing more is written after it here, and
                # the next run's writer starts on a fresh line.
                self._size += written
        self._failed = (
            f"{message}; the run stops. Every line written before this is in the report: "
            "fix the cause, then continue with the same command plus --resume"
        )
        self._cause = message
        raise ReportWriteError(self._failed, cause=message)  # said once, at the end

    def _check_identity(self) -> None:
        """Fail if the report's name no longer leads to the file being written."""
        try:
            st = os.fstat(self._fd)
        except OSError as error:
            self._fail(f"cannot write report {self.path}: {error.strerror}", 0)
        if st.st_size < self._size:
            raise ReportWriteError(self._shrunk(self._size - st.st_size), cause=self._cause)
        nlink = st.st_nlink
        now = file_id(self.path)
        if now == self.identity:
            return
        self.moved = True
        if nlink == 0 and now is not None:
            why = (
                "was replaced by another file (renamed over it); lines written since then are lost"
            )
        elif nlink == 0:
            why = "was deleted (or its directory removed); lines written since then are lost"
        else:
            why = (
                "was renamed or moved away"
                + (" and another file put in its place" if now is not None else "")
                + "; lines written since then are in the file under its new name"
            )
        self._fail(f"report {self.path} {why} during the run", 0)

    def check(self) -> None:
        """Raise :class:`ReportWriteError` now if the report was deleted or replaced."""
        if self._failed is not None:
            raise ReportWriteError(self._failed, cause=self._cause)
        self._check_identity()

    def lines_missing_at_path(self) -> list[dict[str, Any]]:
        """This run's lines that the file now at the report's path does not hold (after it
        was replaced, moved or deleted): only the file this run wrote knows those outcomes,
        so their entries must stay in doubt for ``--resume``.

        Compares whole lines by digest, streaming both files (memory: 8 bytes a line)."""
        if self._fd < 0:
            return []
        there = DigestSet()
        with contextlib.suppress(OSError), open(self.path, "rb") as current:
            for raw in current:
                there.add(bytes_digest(raw.rstrip(b"\n")))
        missing: list[dict[str, Any]] = []
        ours = open(self._fd, "rb", closefd=False)  # noqa: SIM115 - not ours to close
        ours.seek(self.started_size)
        for raw in ours:
            raw = raw.rstrip(b"\n")
            if not raw or bytes_digest(raw) in there:
                continue
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(line, dict):
                missing.append(line)
        return missing

    def redact(self, data: bytes) -> bytes:
        """``data`` with the run's secrets masked (what :meth:`write` does to a line)."""
        return self._redactor.bytes(data) if self._redactor is not None else data

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def failed(self) -> str | None:
        """Why the report can no longer be written, or None while it can."""
        return self._failed

    def close(self) -> None:
        """Flush to disk, release the lock, close. Raises :class:`ReportWriteError` if the
        last lines could not be flushed (and the report had not failed already)."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        problem = None
        try:
            os.fsync(fd)
        except OSError as error:
            problem = error.strerror
        try:
            os.close(fd)  # closing releases the lock
        except OSError as error:
            problem = problem or error.strerror
        if problem is not None and self._failed is None:
            self._failed = f"cannot write report {self.path}: {problem} (when flushing it)"
            raise ReportWriteError(self._failed, cause=self._cause)

    def __enter__(self) -> ReportWriter:
        return self

    def discard_if_unused(self) -> None:
        """Remove the report if this run created it and wrote nothing to it: a run refused
        before sending anything leaves no empty report behind."""
        if self._fd >= 0 and self.created and self.lines_written == 0:
            _unlink_if_empty(self.path, self._fd)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except ReportWriteError as error:  # the error already on its way comes first
            log.error("report_close_failed", report=str(self.path), reason=str(error))


def _manifest_id(manifest: str | os.PathLike[str]) -> FileId | None:
    if os.fspath(manifest) == "-":
        try:
            st = os.fstat(0)
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None
    return file_id(manifest)


_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOCTTY


def _open_report(path: Path) -> tuple[int, bool]:
    """The report open for appending, and whether this created it."""
    try:
        try:
            return os.open(path, _FLAGS), False
        except FileNotFoundError:
            try:
                return os.open(path, _FLAGS | os.O_CREAT | os.O_EXCL, 0o600), True
            except FileExistsError:  # a dangling symlink, or created meanwhile
                return os.open(path, _FLAGS | os.O_CREAT, 0o600), False
    except FileNotFoundError:
        raise UsageError(f"cannot create report {path}: no directory {path.parent}") from None
    except OSError as error:
        raise UsageError(f"cannot open report {path} for writing: {error.strerror}") from None


#: How far back a torn last line is looked for (lines are far shorter).
_TORN_TAIL_SEARCH = 4 << 20


def _cut_torn_tail(fd: int, size: int, path: Path) -> bool:
    """Remove a torn last line (a crash cut its write short); True if it was cut.

    Left in place, the next run's lines would follow it and the report would hold a line
    that is not JSON in its middle, which DuckDB's and pandas' one-call readers refuse. It
    holds no outcome: its entry is in the in-flight file, so --resume checks it. A last
    line that is whole JSON and lacks only its newline is kept."""
    start = max(0, size - _TORN_TAIL_SEARCH)
    data = os.pread(fd, size - start, start)
    newline = data.rfind(b"\n")
    if newline < 0 and start > 0:
        return False  # no line start within reach: leave it
    tail = data[newline + 1 :]
    try:
        whole = isinstance(orjson.loads(tail), dict)
    except orjson.JSONDecodeError:
        whole = False
    if whole:
        return False
    os.ftruncate(fd, start + newline + 1)
    log.warning(
        "report_torn_line_removed",
        report=str(path),
        bytes=len(tail),
        hint="a crash cut its last line short; that entry is checked on --resume",
    )
    return True


def _unlink_if_empty(path: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        st = os.fstat(fd)
        if st.st_size == 0 and file_id(path) == (st.st_dev, st.st_ino):
            os.unlink(path)


def _refuse_full_file_system(fd: int, path: Path) -> None:
    try:
        fs = os.fstatvfs(fd)
    except OSError:
        return
    if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
        raise UsageError(f"no space left on the file system of report {path}; free some first")


def _private(fd: int, st: os.stat_result, path: Path) -> None:
    if stat.S_IMODE(st.st_mode) == 0o600:
        return
    try:
        os.fchmod(fd, 0o600)
    except OSError as error:
        log.warning(
            "report_mode_unchanged",
            report=str(path),
            reason=f"cannot make it private (mode 0600): {error.strerror}",
        )
