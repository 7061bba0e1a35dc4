"""Manifests: YAML and CSV files of entries, read in two streaming passes.

Pass 1 (:meth:`Manifests.check`) validates every entry of every file and collects every
problem, each pointing at a file, a line and a field; pass 2 (:meth:`Manifests.entries`)
reads the files again and yields :class:`~batcher.entry.Entry` objects in manifest order.
Standard input (``-``, always CSV) is spooled to a temporary file so it can be read twice.
Memory stays bounded: CSV is streamed row by row, and duplicate keys are found through a
set of 64-bit hashes rather than a set of strings.

>>> with Manifests(["manifests/example.yaml"]) as manifests:  # doctest: +SKIP
...     summary = manifests.check()       # raises ManifestError listing every problem
...     for entry in manifests.entries():
...         print(entry.source, entry.job_id, entry.command)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, Literal

from ..entry import PATH_ID_RE, Entry
from ..errors import ManifestError, Problem, UsageError
from ..keys import DigestSet, key_digest, text_digest
from ._csv import CSV_COLUMNS, csv_records
from ._problems import ID_CHARS, Problems, check_default_command
from ._source import CSV_SUFFIXES, YAML_SUFFIXES, Source, refuse_repeats
from ._validate import Record, Validator
from ._yaml import yaml_records

__all__ = ["CSV_COLUMNS", "STDIN_NAME", "ManifestSummary", "Manifests"]


#: The name standard input goes by in problems and in ``Entry.source``.
STDIN_NAME = "<stdin>"


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What :meth:`Manifests.check` found: counts of valid entries.

    >>> summary = ManifestSummary(files=("a.csv",), total=3, commands={"SUBMITVERIFYING": 3},
    ...                           jobs=3)
    >>> summary.total, summary.commands
    (3, {'SUBMITVERIFYING': 3})
    """

    #: The manifests as given (``<stdin>`` for ``-``), in order.
    files: tuple[str, ...]
    #: Number of entries in all files.
    total: int
    #: Entries per command, in order of first appearance.
    commands: dict[str, int]
    #: Number of distinct ``job_id`` values (counted through 64-bit hashes).
    jobs: int
    #: Where the first entry with no project id is (``file:line``); None when all have one.
    without_project_id: str | None = None


class Manifests:
    """One or more manifests, checked as a whole, then read entry by entry.

    ``paths`` are YAML (``.yaml``/``.yml``) or CSV (``.csv``) files, or ``-`` for CSV on
    ``stdin`` (default ``sys.stdin.buffer``). ``default_command`` fills entries that name no
    command (after a YAML manifest's ``defaults:``); ``project_id`` is used for entries whose
    manifest sets none. At most ``max_problems`` problems are collected.

    >>> with Manifests(["jobs.csv"], default_command="SUBMITVERIFYING") as m:  # doctest: +SKIP
    ...     print(m.check().total)
    ...     first = next(m.entries())
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        default_command: str | None = None,
        project_id: str | None = None,
        stdin: BinaryIO | None = None,
        max_problems: int = 100,
    ) -> None:
        if not paths:
            raise UsageError("no manifest given")
        if paths.count("-") > 1:
            raise UsageError("standard input (-) can be given only once")
        if default_command is not None:
            check_default_command(default_command)
        if project_id is not None and not PATH_ID_RE.match(project_id):
            raise UsageError(f"project id {project_id!r} must be 1-64 characters of {ID_CHARS}")
        self._paths = list(paths)
        self._validator = Validator(default_command=default_command, project_id=project_id)
        self._stdin = stdin
        self._max_problems = max(1, max_problems)
        self._sources: list[Source] | None = None
        self._summary: ManifestSummary | None = None

    def __enter__(self) -> Manifests:
        refuse_repeats(self._paths)
        sources: list[Source] = []
        self._sources = sources
        try:
            for path in self._paths:
                sources.append(self._source(path))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for source in self._sources or ():
            if source.spool is not None:
                source.spool.close()
        self._sources = None

    def check(self) -> ManifestSummary:
        """Pass 1: validate every entry of every file.

        Returns the counts, or raises :class:`~batcher.errors.ManifestError` with every
        problem found (up to ``max_problems``, then ``truncated=True``).

        >>> with Manifests(["bad.csv"]) as m:  # doctest: +SKIP
        ...     m.check()
        Traceback (most recent call last):
        ManifestError: 2 problem(s) in the manifest
        """
        if self._summary is None:
            self._summary = self._check(self._entered())
        return self._summary

    def entries(self) -> Iterator[Entry]:
        """Pass 2: yield every entry, file by file, in manifest order (checking first).

        >>> with Manifests(["jobs.yaml"]) as m:  # doctest: +SKIP
        ...     [entry.key for entry in m.entries()]
        [('6f1e...', 'CONFIRM_MULTIPART_UPLOADED'), ('6f1e...', 'SUBMITVERIFYING')]
        """
        self.check()
        for source in self._entered():
            for record in self._records(source):
                if record.problems:
                    # Only when a file changed between the two passes.
                    raise ManifestError(record.problems)
                if record.entry is not None:
                    yield record.entry

    # -- internals ------------------------------------------------------------------------

    def _entered(self) -> list[Source]:
        if self._sources is None:
            raise RuntimeError("use Manifests as a context manager: with Manifests(...) as m:")
        return self._sources

    def _source(self, path: str) -> Source:
        if path == "-":
            stdin = self._stdin if self._stdin is not None else sys.stdin.buffer
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
            shutil.copyfileobj(stdin, spool, 1 << 20)
            return Source(STDIN_NAME, "csv", spool=spool)
        lowered = path.lower()
        if lowered.endswith(YAML_SUFFIXES):
            kind: Literal["yaml", "csv"] = "yaml"
        elif lowered.endswith(CSV_SUFFIXES):
            kind = "csv"
        else:
            raise UsageError(
                f"manifest {path}: cannot tell its format from its name; "
                "use .yaml, .yml or .csv (or - for CSV on standard input)"
            )
        try:
            with open(path, "rb"):
                pass
        except OSError as error:
            raise UsageError(f"cannot read manifest {path}: {error.strerror}") from None
        return Source(path, kind, path=path)

    def _records(self, source: Source) -> Iterator[Record]:
        with source.open() as handle:
            if source.kind == "csv":
                yield from csv_records(source.name, handle, self._validator)
            else:
                yield from yaml_records(source.name, handle.read(), self._validator)

    def _all_records(self, sources: list[Source]) -> Iterator[tuple[int, Record]]:
        for index, source in enumerate(sources):
            for record in self._records(source):
                yield index, record

    def _check(self, sources: list[Source]) -> ManifestSummary:
        problems = Problems(self._max_problems)
        # Digests, not key strings, in typed arrays: a million entries fit in ~40 MB.
        keys = DigestSet()
        jobs = DigestSet()
        # Entries whose key hash was seen before, by record number: two entries can share a
        # line (a YAML flow list, an alias), so (file, line) cannot tell them apart.
        suspects: list[tuple[int, int, int, Entry]] = []
        commands: dict[str, int] = {}
        total = 0
        without_project_id: str | None = None
        for seq, (index, record) in enumerate(self._all_records(sources)):
            problems.extend(index, record.problems)
            entry = record.entry
            if entry is not None:
                total += 1
                commands[entry.command] = commands.get(entry.command, 0) + 1
                if entry.project_id is None and without_project_id is None:
                    without_project_id = entry.source
                jobs.add(text_digest(entry.job_id))
                if not keys.add(key_digest(entry.job_id, entry.command)):
                    suspects.append((seq, index, record.line, entry))
            if problems.count + len(suspects) > self._max_problems:
                problems.truncated = True
                break
        jobs_count = len(jobs)
        del keys, jobs
        if suspects:
            for index, problem in self._duplicates(sources, suspects):
                problems.add(index, problem)
        if problems.count or problems.truncated:
            found, truncated = problems.result()
            raise ManifestError(found, truncated=truncated)
        names = tuple(source.name for source in sources)
        return ManifestSummary(
            files=names,
            total=total,
            commands=commands,
            jobs=jobs_count,
            without_project_id=without_project_id,
        )

    def _duplicates(
        self, sources: list[Source], suspects: list[tuple[int, int, int, Entry]]
    ) -> Iterator[tuple[int, Problem]]:
        """Confirm hash hits with one more scan, finding each key's first occurrence.

        ``suspects`` are ``(record number, file index, line, entry)``. A hit is almost always a
        real duplicate; a 64-bit collision between different keys is told apart here by
        comparing the keys themselves.
        """
        wanted = {key_digest(entry.job_id, entry.command) for _, _, _, entry in suspects}
        last = max(seq for seq, _, _, _ in suspects)
        first: dict[tuple[str, str], tuple[int, str]] = {}
        for seq, (_, record) in enumerate(self._all_records(sources)):
            if seq > last:
                break
            entry = record.entry
            if (
                entry is not None
                and entry.key not in first
                and key_digest(entry.job_id, entry.command) in wanted
            ):
                first[entry.key] = (seq, entry.source)
        for seq, index, line, entry in suspects:
            first_seq, first_source = first[entry.key]
            if first_seq != seq:
                yield (
                    index,
                    Problem(
                        sources[index].name,
                        line,
                        "command",
                        f"duplicate entry: job {entry.job_id!r} already has command "
                        f"{entry.command!r} at {first_source} (each (job_id, command) pair may "
                        "appear only once)",
                    ),
                )
