"""Where manifests are read from, and the private copy that makes a run dispatch exactly
what it validated.

Each manifest (a regular file, a named pipe, or standard input) is read once, by the first
pass, and every byte read is copied into an unnamed temporary file and hashed on the way.
Every later reading (the duplicate re-scan, the second pass) replays that copy, so a file
appended to, truncated or replaced during a run changes nothing, and the SHA-256 names
exactly the bytes that were validated. Directories, devices and sockets are refused before
anything is opened; a named pipe is opened like ``cat`` opens it (waiting for a writer,
which SIGINT or SIGTERM ends).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
from collections.abc import Sequence
from typing import IO, Any, BinaryIO, Literal

from batcher.errors import UsageError

YAML_SUFFIXES = (".yaml", ".yml")


CSV_SUFFIXES = (".csv",)


#: The name standard input goes by in problems and in ``Entry.source``.
STDIN_NAME = "<stdin>"


#: The largest manifest read (2 GiB, about 20 million entries): a bigger input is far more
#: likely a mistake (a device, a pipe that never ends) than a manifest.
MAX_MANIFEST_BYTES = 2 << 30


_BUFFER = 1 << 18


class Source:
    """One manifest: read once from its origin, replayed from a private copy after that.

    >>> source = Source("<stdin>", "csv", io.BytesIO(b"job_id,command\\n"), owned=False)
    >>> with source.open() as handle:
    ...     handle.read()
    b'job_id,command\\n'
    >>> source.finish()
    >>> source.size, source.sha256 == hashlib.sha256(b"job_id,command\\n").hexdigest()
    (15, True)
    >>> source.close()
    """

    def __init__(
        self,
        name: str,
        kind: Literal["yaml", "csv"],
        origin: BinaryIO,
        *,
        owned: bool,
        limit: int | None = None,
    ) -> None:
        self.name = name
        self.kind: Literal["yaml", "csv"] = kind
        #: Bytes read from the origin (and copied) so far.
        self.size = 0
        self._origin: BinaryIO | None = origin
        self._owned = owned
        # A pipe, a terminal or a socket: wait for it in slices a cancellation can end, and
        # take what one read() gives (a buffered reader would wait to fill the buffer).
        self._waits = _waits(origin)
        self._read_once = getattr(origin, "readinto1", None) or origin.readinto  # type: ignore[attr-defined]
        self._limit = MAX_MANIFEST_BYTES if limit is None else limit
        self._hash = hashlib.sha256()
        self._sha256: str | None = None
        try:
            self._copy: IO[bytes] = _private_file()
        except OSError as error:
            self.close()
            raise UsageError(
                f"cannot make a private copy of manifest {name} in {_temporary_directory()}: "
                f"{error.strerror}; set TMPDIR to a writable directory"
            ) from None
        #: Anything a reader of this manifest found out once and needs again (the YAML
        #: reader's settings, when they come after the entries).
        self.hint: Any = None

    @property
    def sha256(self) -> str:
        """The SHA-256 (hex) of every byte read; only once :meth:`finish` was called."""
        if self._sha256 is None:
            raise RuntimeError(f"manifest {self.name} has not been read to its end yet")
        return self._sha256

    def open(self) -> BinaryIO:
        """A reader from the first byte: the copy, then (the first time) the origin."""
        return io.BufferedReader(_Replay(self), _BUFFER)

    def finish(self) -> None:
        """Read the origin to its end (copying it), close it, and fix the SHA-256."""
        if self._sha256 is not None:
            return
        buffer = bytearray(_BUFFER)
        while self.read_at(self.size, memoryview(buffer)):
            pass
        self._sha256 = self._hash.hexdigest()

    def close(self) -> None:
        self._close_origin()
        copy = getattr(self, "_copy", None)
        if copy is not None:
            copy.close()

    def read_at(self, position: int, buffer: memoryview) -> int:
        """Fill ``buffer`` from ``position``: from the copy, or past its end from the origin."""
        if position < self.size:
            return os.preadv(self._copy.fileno(), [buffer[: self.size - position]], position)
        if self._origin is None:
            return 0
        count = self._read_origin(buffer)
        if not count:
            self._close_origin()
            return 0
        data = buffer[:count]
        try:
            written = 0
            while written < count:
                written += os.pwrite(self._copy.fileno(), data[written:], self.size + written)
        except OSError as error:
            raise UsageError(
                f"cannot copy manifest {self.name} to {_temporary_directory()}: "
                f"{error.strerror}; set TMPDIR to a directory with room"
            ) from None
        self._hash.update(data)
        self.size += count
        if self.size > self._limit:
            raise UsageError(_too_large(self.name, self._limit))
        return count

    def _read_origin(self, buffer: memoryview) -> int:
        assert self._origin is not None
        while True:
            try:
                if self._waits:
                    _wait_readable(self._origin.fileno())
                count = self._read_once(buffer)
            except OSError as error:
                raise UsageError(f"cannot read manifest {self.name}: {error.strerror}") from None
            if count is not None:
                return int(count)
            # Nothing there after all (a non-blocking descriptor): wait again.

    def _close_origin(self) -> None:
        origin, self._origin = getattr(self, "_origin", None), None
        if origin is not None and self._owned:
            origin.close()


def _waits(origin: BinaryIO) -> bool:
    """Whether reading ``origin`` can wait for a writer (anything but a regular file)."""
    try:
        return not stat.S_ISREG(os.fstat(origin.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both
        return False


def _wait_readable(fd: int) -> None:
    """Wait until ``fd`` has data, or its writer has come and gone (end of file).

    In slices of 100 ms, so that a run cancelled meanwhile stops waiting: under asyncio,
    the first SIGINT only cancels the main task (which sits in this very wait), and a
    blocking read() would be restarted and never see it. Outside an event loop SIGINT
    raises KeyboardInterrupt here and SIGTERM ends the process, as for `cat`.
    """
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    while not poller.poll(100):
        _raise_if_cancelled()
    _raise_if_cancelled()  # the writer may have finished just after the signal


def _raise_if_cancelled() -> None:
    asyncio = sys.modules.get("asyncio")  # not imported: not in an event loop
    if asyncio is None:
        return
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running event loop in this thread
        return
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _temporary_directory() -> str:
    return os.environ.get("TMPDIR") or "/tmp"  # noqa: S108 - an unnamed file, mode 0600


def _private_file() -> IO[bytes]:
    """An unnamed temporary file (Linux's O_TMPFILE: no name, so nothing else can open it,
    and it is gone when closed), else the standard library's. (Not ``tempfile`` first: it
    imports ``shutil`` and the compression modules, a tenth of a short check's time.)"""
    flags = getattr(os, "O_TMPFILE", 0)
    if flags:
        try:
            fd = os.open(_temporary_directory(), flags | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError:
            pass  # not supported by this file system: let tempfile choose
        else:
            return open(fd, "w+b", buffering=0)
    import tempfile

    return tempfile.TemporaryFile()


class _Replay(io.RawIOBase):
    """A raw stream over a :class:`Source`, so the standard buffered reader can read it."""

    def __init__(self, source: Source) -> None:
        super().__init__()
        self._source = source
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self._position
        elif whence == os.SEEK_END:
            self._source.finish()
            offset += self._source.size
        if not 0 <= offset <= self._source.size:
            raise ValueError("seek outside what was read of the manifest")
        self._position = offset
        return offset

    def readinto(self, buffer: Any) -> int:
        count = self._source.read_at(self._position, memoryview(buffer).cast("B"))
        self._position += count
        return count


def _too_large(name: str, limit: int) -> str:
    size = f"{limit >> 30} GiB" if limit % (1 << 30) == 0 else f"{limit:,} bytes"
    return f"manifest {name} is larger than {size}, the most batcher reads: split it up"


def manifest_kind(path: str) -> Literal["yaml", "csv"]:
    lowered = path.lower()
    if lowered.endswith(YAML_SUFFIXES):
        return "yaml"
    if lowered.endswith(CSV_SUFFIXES):
        return "csv"
    raise UsageError(
        f"manifest {path}: cannot tell its format from its name; "
        "use .yaml, .yml or .csv (or - for CSV on standard input)"
    )


_NOT_A_FILE = {
    stat.S_IFDIR: "is a directory",
    stat.S_IFCHR: "is a device (a character special file)",
    stat.S_IFBLK: "is a device (a block special file)",
    stat.S_IFSOCK: "is a socket",
}


def open_source(path: str, *, stdin: BinaryIO | None = None) -> Source:
    """Open one manifest: ``-`` is standard input (CSV), anything else a file by name.

    Regular files and named pipes are read; anything else is refused, before it is opened,
    with a UsageError saying what it is.
    """
    if path == "-":
        return Source(STDIN_NAME, "csv", _standard_input(stdin), owned=False)
    kind = manifest_kind(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise UsageError(f"cannot read manifest {path}: {error.strerror}") from None
    what = _NOT_A_FILE.get(stat.S_IFMT(mode))
    if what is None and not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        what = "is not a regular file"
    if what is not None:
        raise UsageError(
            f"manifest {path} {what}: give a regular file, a named pipe, or - for standard input"
        )
    # Non-blocking, so that opening never waits: not for a pipe's writer (that wait is in
    # reading, where a signal or a cancellation can end it), not for a file swapped for a
    # pipe after the stat() above.
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise UsageError(f"cannot read manifest {path}: {error.strerror}") from None
    try:
        status = os.fstat(fd)
        if stat.S_IFMT(status.st_mode) != stat.S_IFMT(mode):
            raise UsageError(f"manifest {path} changed while it was being opened; try again")
        if stat.S_ISREG(mode):
            os.set_blocking(fd, True)
            if status.st_size > MAX_MANIFEST_BYTES:
                raise UsageError(_too_large(path, MAX_MANIFEST_BYTES))
        origin = open(fd, "rb", buffering=0, closefd=True)  # noqa: SIM115 - the Source closes it
    except BaseException:
        os.close(fd)
        raise
    try:
        return Source(path, kind, origin, owned=True)
    except BaseException:
        origin.close()
        raise


def _standard_input(stdin: BinaryIO | None) -> BinaryIO:
    if stdin is not None:
        return stdin
    if sys.stdin is None:  # started with standard input closed (`<&-`)
        raise UsageError(
            "standard input is closed, so there is no manifest to read from '-': "
            "give the manifest's file name, or pipe it in"
        )
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        raise UsageError("standard input cannot be read as bytes; give the manifest's file name")
    return buffer  # type: ignore[no-any-return]


def refuse_repeats(paths: Sequence[str]) -> None:
    # The same file twice would make every entry a duplicate of itself: say so plainly.
    seen: dict[tuple[int, int], str] = {}
    for path in paths:
        if path == "-":
            continue
        try:
            status = os.stat(path)
        except OSError:
            continue  # reported, naming the file, when it is opened
        identity = (status.st_dev, status.st_ino)
        if identity in seen:
            raise UsageError(f"manifest {path} is given twice (as {seen[identity]} too)")
        seen[identity] = path
