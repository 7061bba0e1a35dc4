"""Where manifests are read from: files by name, or standard input spooled to a temporary file."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Literal

from ..errors import UsageError

YAML_SUFFIXES = (".yaml", ".yml")


CSV_SUFFIXES = (".csv",)


@dataclass(slots=True)
class Source:
    name: str
    kind: Literal["yaml", "csv"]
    path: str | None = None  # None: the spooled standard input
    spool: BinaryIO | None = None

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        if self.spool is not None:
            self.spool.seek(0)
            yield self.spool
            return
        assert self.path is not None
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed below, after the yield
        except OSError as error:
            raise UsageError(f"cannot read manifest {self.path}: {error.strerror}") from None
        with handle:
            yield handle


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
