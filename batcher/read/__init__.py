"""Manifests: YAML and CSV files of entries, checked as a whole, then read entry by entry.

Pass 1 (:meth:`Manifests.check`) reads every file once, validates every entry and collects
every problem, each pointing at a file, a line and a field; everything it reads is copied
to a private temporary file and hashed (:attr:`ManifestSummary.sha256`). Pass 2
(:meth:`Manifests.entries`) reads that copy again and yields
:class:`~batcher.entry.Entry` objects in manifest order: a run dispatches exactly what was
validated, however the files change meanwhile. Memory stays flat: CSV is read row by row,
YAML event by event (an entry at a time), and duplicate keys are found through a table of
64-bit hashes rather than a set of strings.

>>> with Manifests(["manifests/example.yaml"]) as manifests:  # doctest: +SKIP
...     summary = manifests.check()       # raises ManifestError listing every problem
...     for entry in manifests.entries():
...         print(entry.source, entry.job_id, entry.command)
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO

from batcher.entry import ID_CHARS, PATH_ID_RE, DigestSet, Entry, job_digest, key_digest, quote
from batcher.errors import ManifestError, Problem, UsageError
from batcher.read._problems import Problems, check_default_command
from batcher.read._source import MAX_MANIFEST_BYTES, STDIN_NAME, Source, open_source, refuse_repeats
from batcher.read._validate import Record, Validator
from batcher.read.csv_manifest import CSV_COLUMNS, csv_records

if TYPE_CHECKING:
    from batcher.read.yaml_manifest import YamlReader

__all__ = [
    "CSV_COLUMNS",
    "MAX_MANIFEST_BYTES",
    "STDIN_NAME",
    "ManifestSummary",
    "Manifests",
    "validate",
]


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What :meth:`Manifests.check` found: counts of valid entries, and what was read.

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
    #: Number of distinct jobs, ``(project_id, job_id)`` (counted through 64-bit hashes).
    jobs: int
    #: Where the first entry with no project id is (``file:line``); None when all have one.
    without_project_id: str | None = None
    #: The SHA-256 (hex) of each file as read and validated, in file order: the second pass
    #: reads exactly these bytes.
    sha256: tuple[str, ...] = field(default=(), compare=False)
    #: The size in bytes of each file as read, in file order.
    sizes: tuple[int, ...] = field(default=(), compare=False)
    #: The number of entries in each file, in file order.
    entries: tuple[int, ...] = field(default=(), compare=False)
    #: Entries per project they go to (the run's default filled in), in order of first
    #: appearance; past the first ``MAX_PROJECTS_NAMED`` projects, the rest are counted
    #: under ``""`` (no project id is empty), so a manifest of a million projects stays small.
    projects: dict[str | None, int] = field(default_factory=dict, compare=False)


#: Projects a summary names one by one (see :attr:`ManifestSummary.projects`).
MAX_PROJECTS_NAMED = 20


class _Rescan(Exception):
    """A YAML manifest's settings came after its entries: check everything again."""


class Manifests:
    """One or more manifests, checked as a whole, then read entry by entry.

    ``paths`` are YAML (``.yaml``/``.yml``) or CSV (``.csv``) files (regular files or
    named pipes), or ``-`` for CSV on ``stdin`` (default ``sys.stdin.buffer``).
    ``default_command`` fills entries that name no command (after a YAML manifest's
    ``defaults:``); ``project_id`` is used for entries that name none and whose manifest
    sets none. At most ``max_problems`` problems are collected.

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
            raise UsageError(
                f"project id {quote(project_id)} must be 1-64 characters of {ID_CHARS}"
            )
        self._paths = list(paths)
        self._default_command = default_command
        self._project_id = project_id
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
                sources.append(open_source(path, stdin=self._stdin))
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
            source.close()
        self._sources = None

    def check(self) -> ManifestSummary:
        """Pass 1: read every file once and validate every entry.

        Returns the counts, or raises :class:`~batcher.errors.ManifestError` with every
        problem found (up to ``max_problems``, then ``truncated=True``).

        >>> with Manifests(["bad.csv"]) as m:  # doctest: +SKIP
        ...     m.check()
        Traceback (most recent call last):
        ManifestError: 2 problem(s) in the manifest
        """
        if self._summary is None:
            sources = self._entered()
            while True:
                try:
                    self._summary = self._check(sources)
                    break
                except _Rescan:
                    continue  # a YAML file learnt its settings late: once more, knowing them
        return self._summary

    def entries(self, done: Container[int] = ()) -> Iterator[Entry | None]:
        """Pass 2: yield every entry, file by file, in manifest order (checking first).

        Reads the private copy made by :meth:`check`, so it yields exactly the entries that
        were validated and never raises :class:`~batcher.errors.ManifestError`; each
        ``next()`` costs one entry's work. An entry whose :func:`~batcher.entry.key_digest`
        is in ``done`` (a resumed run's succeeded keys) is yielded as None, unbuilt: a
        million of them are passed over in seconds.

        >>> with Manifests(["jobs.yaml"]) as m:  # doctest: +SKIP
        ...     [entry.key for entry in m.entries()]
        [('6f1e...', 'CONFIRM_MULTIPART_UPLOADED'), ('6f1e...', 'SUBMITVERIFYING')]
        """
        self.check()
        validator = self._validator()
        for source in self._entered():
            for record in self._records(source, validator, check=False, done=done):
                if record.problems:  # cannot happen: the same bytes were found valid
                    raise RuntimeError(
                        f"manifest {source.name} read differently the second time: "
                        f"{record.problems[0]}"
                    )
                data = record.data
                if data is None:
                    if record.done:
                        yield None
                    continue
                if done and key_digest(data["job_id"], data["command"]) in done:
                    yield None  # a YAML entry (a CSV row is found done before it is read)
                else:
                    yield Entry.build(data)

    # -- internals ------------------------------------------------------------------------

    def _entered(self) -> list[Source]:
        if self._sources is None:
            raise RuntimeError("use Manifests as a context manager: with Manifests(...) as m:")
        return self._sources

    def _validator(self) -> Validator:
        return Validator(default_command=self._default_command, project_id=self._project_id)

    def _reader(
        self, source: Source, validator: Validator, *, check: bool, done: Container[int] = ()
    ) -> tuple[Iterator[Record], YamlReader | None]:
        handle = source.open()
        if source.kind == "csv":
            return csv_records(source.name, handle, validator, check=check, done=done), None
        from batcher.read.yaml_manifest import YamlReader

        reader = YamlReader(source.name, handle, validator, check=check, hint=source.hint)
        return reader.records(), reader

    def _records(
        self, source: Source, validator: Validator, *, check: bool, done: Container[int] = ()
    ) -> Iterator[Record]:
        records, _ = self._reader(source, validator, check=check, done=done)
        return records

    def _check(self, sources: list[Source]) -> ManifestSummary:
        problems = Problems(self._max_problems)
        validator = self._validator()
        # Digests, not key strings, in typed arrays: a million entries fit in ~40 MB.
        keys = DigestSet()
        jobs = DigestSet()
        # Entries whose key hash was seen before, by record number: two entries can share a
        # line (a YAML flow list, an alias), so (file, line) cannot tell them apart.
        suspects: list[tuple[int, int, int, tuple[str, str]]] = []
        commands: dict[str, int] = {}
        projects: dict[str | None, int] = {}
        per_file: list[int] = []
        total = 0
        without_project_id: str | None = None
        seq = 0
        capped = False
        for index, source in enumerate(sources):
            records, reader = self._reader(source, validator, check=True)
            count = 0
            for record in records:
                if record.whole_file:
                    problems.drop(index)
                    suspects = [suspect for suspect in suspects if suspect[1] != index]
                problems.extend(index, record.problems)
                data = record.data
                if data is not None:
                    count += 1
                    command, job_id = data["command"], data["job_id"]
                    commands[command] = commands.get(command, 0) + 1
                    project_id = data["project_id"]
                    if project_id is None and without_project_id is None:
                        without_project_id = data["source"]
                    named = project_id in projects or len(projects) < MAX_PROJECTS_NAMED
                    goes = project_id if named else ""
                    projects[goes] = projects.get(goes, 0) + 1
                    jobs.add(job_digest(job_id, project_id))
                    if not keys.add(key_digest(job_id, command)):
                        suspects.append((seq, index, record.line, (job_id, command)))
                seq += 1
                if problems.count + len(suspects) > self._max_problems:
                    problems.truncated = capped = True
                    break
            if reader is not None and capped:
                # Read on: the file may not be YAML at all further on (then that is all to
                # say about it), and its settings may still come, after its entries.
                reader.finish()
                if reader.fatal is not None:
                    problems.drop(index)
                    suspects = [suspect for suspect in suspects if suspect[1] != index]
                    problems.extend(index, reader.fatal.problems)
            if reader is not None and reader.rescan is not None and source.hint is None:
                source.hint = reader.rescan  # once per file: then the hint is the truth
                raise _Rescan
            per_file.append(count)
            total += count
            if capped:
                break
        jobs_count = len(jobs)
        del keys, jobs
        if suspects:
            for index, problem in self._duplicates(sources, suspects):
                problems.add(index, problem)
        if problems.count or problems.truncated:
            found, truncated = problems.result()
            raise ManifestError(found, truncated=truncated)
        for source in sources:
            source.finish()
        return ManifestSummary(
            files=tuple(source.name for source in sources),
            total=total,
            commands=commands,
            jobs=jobs_count,
            without_project_id=without_project_id,
            sha256=tuple(source.sha256 for source in sources),
            sizes=tuple(source.size for source in sources),
            entries=tuple(per_file),
            projects=projects,
        )

    def _duplicates(
        self, sources: list[Source], suspects: list[tuple[int, int, int, tuple[str, str]]]
    ) -> Iterator[tuple[int, Problem]]:
        """Confirm hash hits with one more scan (of the private copies), finding each key's
        first occurrence.

        ``suspects`` are ``(record number, file index, line, key)``. A hit is almost always
        a real duplicate; a 64-bit collision between different keys is told apart here by
        comparing the keys themselves.
        """
        wanted = {key_digest(*key) for _, _, _, key in suspects}
        last = max(seq for seq, _, _, _ in suspects)
        last_file = max(index for _, index, _, _ in suspects)
        first: dict[tuple[str, str], tuple[int, str]] = {}
        validator = self._validator()  # the same verdicts as the first scan, from scratch
        seq = 0
        for source in sources[: last_file + 1]:
            for record in self._records(source, validator, check=True):
                if seq > last:
                    break
                data = record.data
                if data is not None:
                    key = (data["job_id"], data["command"])
                    if key not in first and key_digest(*key) in wanted:
                        first[key] = (seq, data["source"])
                seq += 1
        for seq, index, line, key in suspects:
            first_seq, first_source = first[key]
            if first_seq != seq:
                job_id, command = key
                yield (
                    index,
                    Problem(
                        sources[index].name,
                        line,
                        "command",
                        f"duplicate entry: job {job_id!r} already has command "
                        f"{command!r} at {first_source} (each (job_id, command) pair may "
                        "appear only once)",
                    ),
                )


def validate(
    paths: Sequence[str],
    *,
    command: str | None = None,
    project_id: str | None = None,
    stdin: BinaryIO | None = None,
) -> ManifestSummary:
    """Check manifests without sending anything (what ``batcher validate`` does).

    Raises :class:`~batcher.errors.ManifestError` naming the file, line and field of every
    problem (up to 100), or :class:`~batcher.errors.UsageError` for a file that cannot be
    read. :func:`batcher.validate` is the same, through the public API.

    >>> validate(["manifests/example.csv"]).total
    8
    """
    with Manifests(
        list(paths), default_command=command, project_id=project_id, stdin=stdin
    ) as checked:
        return checked.check()
