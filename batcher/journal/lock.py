"""The report's lock: an ``flock`` on the report file's own descriptor.

A lock on a separate ``REPORT.lock`` file beside one name of the report is met only by runs
that reach the report by that name: a hard link, or a lock file deleted or replaced
meanwhile, let a second run in to send the same entries again. A lock on the report's own
open file belongs to the file (its inode), so every name of it meets it — the same path, a
symlink, a hard link, ``sub/../`` — and, like every ``flock``, it dies with its process, so
a ``kill -9`` never leaves a stale lock behind.

The holder's PID, for the message, is read from ``/proc/locks`` (Linux), which lists every
lock with its inode and owner; without it the message says the PID is unknown.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from batcher.errors import ReportLockedError, UsageError

#: A file's identity, whatever its name: ``(st_dev, st_ino)``.
FileId = tuple[int, int]

_PROC_LOCKS = "/proc/locks"


def file_id(path: str | os.PathLike[str]) -> FileId | None:
    """The identity of the file at ``path`` (symlinks followed), or None if there is none.

    >>> file_id("/nonexistent/x") is None
    True
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name one existing file (same path, symlink, hard link...).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     (Path(d) / "r.jsonl").touch()
    ...     same_file(f"{d}/r.jsonl", f"{d}/./sub/../r.jsonl"), same_file(d, f"{d}/r.jsonl")
    (False, False)
    """
    first = file_id(a)
    return first is not None and first == file_id(b)


def lock_exclusively(fd: int, path: Path) -> None:
    """Take the exclusive lock on the open report ``fd``, or raise ReportLockedError (exit
    4) naming the run that holds it. ``path`` is only for the messages."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _in_use(path, holder_pid(fd)) from None
    except OSError as error:
        raise UsageError(
            f"cannot lock report {path}: {error.strerror}; put the report on a local file "
            "system that supports locks (flock)"
        ) from None
    legacy = _legacy_holder(path)
    if legacy is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        raise ReportLockedError(
            f"report {path} is in use by an older batcher run (PID {legacy}, holding "
            f"{legacy_lock_path(path)}); wait for it to finish or stop it first"
        )


def check_unlocked(path: Path) -> None:
    """Raise ReportLockedError (exit 4) if a run holds the lock of the existing report at
    ``path``; change nothing (what ``--dry-run`` checks). A missing report is unlocked.

    The holder is looked up in ``/proc/locks`` rather than by taking a lock: even a brief
    shared lock would turn away a real run starting at the same moment.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # missing or unreadable: the other checks say so
    try:
        pid = holder_pid(fd)
        if pid is not None:
            raise _in_use(path, pid)
        if not os.path.exists(_PROC_LOCKS):
            # Nowhere to read locks from: probe with a shared lock, which a run starting at
            # this very moment could meet (it would exit 4 and can be started again).
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise _in_use(path, None) from None
            except OSError:
                return
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    legacy = _legacy_holder(path)
    if legacy is not None:
        raise ReportLockedError(
            f"report {path} is in use by an older batcher run (PID {legacy}, holding "
            f"{legacy_lock_path(path)}); wait for it to finish or stop it first"
        )


def _in_use(path: Path, pid: int | None) -> ReportLockedError:
    return ReportLockedError(
        f"report {path} is in use by another batcher run "
        f"({'PID ' + str(pid) if pid else 'PID unknown'}), possibly under another name "
        "(a link to the same file); wait for it to finish or stop it first"
    )


def holder_pid(fd: int) -> int | None:
    """The PID that holds an ``flock`` on the file open at ``fd``, from ``/proc/locks``."""
    st = os.fstat(fd)
    exact: list[int] = []
    by_inode: list[int] = []
    try:
        with open(_PROC_LOCKS, encoding="ascii", errors="replace") as stream:
            for row in stream:
                fields = row.split()
                if "->" in fields or len(fields) < 6 or fields[1] != "FLOCK":
                    continue  # a waiter, or another kind of lock
                try:
                    pid = int(fields[4])
                    major, minor, inode = fields[5].split(":")
                    same_inode = int(inode) == st.st_ino
                    same_dev = (int(major, 16), int(minor, 16)) == (
                        os.major(st.st_dev),
                        os.minor(st.st_dev),
                    )
                except ValueError:
                    continue
                if same_inode and pid != os.getpid():
                    (exact if same_dev else by_inode).append(pid)
    except OSError:
        return None
    # Some file systems (overlay, btrfs subvolumes) show another device number there.
    if exact:
        return exact[0]
    return by_inode[0] if len(set(by_inode)) == 1 else None


def legacy_lock_path(report: Path) -> Path:
    """Where batcher 0.1 kept its lock: ``REPORT.lock`` beside the report's real path."""
    real = Path(os.path.realpath(report))
    return real.with_name(real.name + ".lock")


def _legacy_holder(report: Path) -> str | None:
    """The PID of a batcher 0.1 run still holding ``REPORT.lock``, if one does.

    Such a run knows nothing of the lock on the report itself; checking its lock file keeps
    an upgrade made while it runs from starting a second run on the same report.
    """
    try:
        fd = os.open(legacy_lock_path(report), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return None
