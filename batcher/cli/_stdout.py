"""Writing results to standard output, when it may be a closed pipe or a full disk."""

from __future__ import annotations

import os
import sys

from batcher.errors import BatcherError


def emit(text: str) -> None:
    """Write ``text`` and a newline to standard output, flushed; a full disk or an I/O
    error behind it is a :class:`BatcherError` (exit 2: nothing was sent), not a traceback.

    >>> emit("OK: 1 manifest")
    OK: 1 manifest
    """
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        raise BatcherError("standard output is closed: there is nowhere to write the result")
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except OSError as error:
        detach()
        raise BatcherError(f"cannot write to standard output: {error.strerror or error}") from None


def detach() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no descriptor (a captured stream): nothing to flush
        pass
