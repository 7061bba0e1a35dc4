"""Files that appear whole or not at all: a temporary file beside the target, then a rename.

Exported manifests, the HTML page and the run record are written this way, so a reader (or
a crash) never meets half a file. Without ``replace``, an existing target is refused and
the file is put in place with ``link()``, which fails if the target appeared meanwhile
where ``rename()`` would clobber it. The temporary file is private (0600, as ``mkstemp``
makes it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from batcher.errors import UsageError


@contextlib.contextmanager
def atomic_bytes(path: Path, *, replace: bool) -> Iterator[IO[bytes]]:
    """A binary stream whose bytes become ``path`` when the block ends without an error.

    Raises OSError from the file system (the caller says what it means for its file).

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_bytes(target, replace=False) as stream:
    ...     _ = stream.write(b"whole")
    >>> target.read_bytes()
    b'whole'
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with open(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # FileExistsError if ``path`` appeared meanwhile
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    with contextlib.suppress(OSError):  # the rename itself, on disk
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


@contextlib.contextmanager
def new_file(out: Path, *, force: bool) -> Iterator[IO[bytes]]:
    """:func:`atomic_bytes` for a file the user named: never over an existing one unless
    ``force``, and every failure a :class:`~batcher.errors.UsageError` naming ``out``."""
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; add --force to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: no directory {out.parent}")
    try:
        with atomic_bytes(out, replace=force) as stream:
            yield stream
    except FileExistsError:
        raise UsageError(f"{out} already exists; add --force to replace it") from None
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror or error}") from None
