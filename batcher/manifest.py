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

import codecs
import csv
import difflib
import functools
import gc
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, BinaryIO, Literal

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .compact import DigestSet
from .entry import ENTRY_FIELDS, KNOWN_COMMANDS, PATH_ID_RE, Entry, check_app_user_id
from .errors import ManifestError, Problem, UsageError

__all__ = ["CSV_COLUMNS", "STDIN_NAME", "ManifestSummary", "Manifests"]

#: The name standard input goes by in problems and in ``Entry.source``.
STDIN_NAME = "<stdin>"

#: The columns a CSV manifest may have (``comment_*`` and ``attachment_name`` fill
#: ``comment_data``; ``attachment_name`` holds several names separated by ``;``).
CSV_COLUMNS: tuple[str, ...] = (
    "job_id",
    "command",
    "command_message",
    "operation_reason",
    "comment_title",
    "comment_message",
    "attachment_name",
    "app_user_id",
)
_COMMENT_FIELDS: tuple[str, ...] = ("comment_title", "comment_message", "attachment_name")
_TOP_LEVEL_KEYS: tuple[str, ...] = ("jobs", "project_id", "app_user_id", "defaults")
_ENTRY_KEYS: tuple[str, ...] = tuple(sorted(ENTRY_FIELDS))
_KNOWN_COMMAND_SET = frozenset(KNOWN_COMMANDS)
_YAML_SUFFIXES = (".yaml", ".yml")
_CSV_SUFFIXES = (".csv",)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: The YAML tags a manifest may carry (most are resolved implicitly); ``!!python/...`` and
#: local ``!tags`` are refused, though nothing would construct them anyway.
_STANDARD_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in (
        *("str", "null", "bool", "int", "float", "timestamp", "binary"),
        *("seq", "map", "omap", "pairs", "set", "merge", "value"),
    )
)
#: Values one entry (or one top-level setting) may expand to, counting every use of an
#: alias afresh: far more than any real entry, far fewer than a "billion laughs" makes.
_MAX_NODES = 10_000
#: How deep values may nest (an entry needs 3 levels: comment_data.attachment_name[0]).
_MAX_DEPTH = 32
#: Values a whole YAML file may expand to: this many per character of the file, plus a base
#: (see :class:`_Budget`).
_FILE_NODES_PER_CHAR = 2
_FILE_NODES_BASE = 100_000

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What :meth:`Manifests.check` found: counts of valid entries.

    >>> ManifestSummary(files=("a.csv",), total=3, commands={"SUBMITVERIFYING": 3}, jobs=3)
    ManifestSummary(files=('a.csv',), total=3, commands={'SUBMITVERIFYING': 3}, jobs=3)
    """

    #: The manifests as given (``<stdin>`` for ``-``), in order.
    files: tuple[str, ...]
    #: Number of entries in all files.
    total: int
    #: Entries per command, in order of first appearance.
    commands: dict[str, int]
    #: Number of distinct ``job_id`` values (counted through 64-bit hashes).
    jobs: int


@dataclass(slots=True)
class _Record:
    """One entry as read: an Entry when valid, otherwise the problems found."""

    line: int
    entry: Entry | None
    problems: list[Problem] = field(default_factory=list)


@dataclass(slots=True)
class _Source:
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
            _check_default_command(default_command)
        if project_id is not None and not PATH_ID_RE.match(project_id):
            raise UsageError(f"project id {project_id!r} must be 1-64 characters of {_ID_CHARS}")
        self._paths = list(paths)
        self._validator = _Validator(default_command=default_command, project_id=project_id)
        self._stdin = stdin
        self._max_problems = max(1, max_problems)
        self._sources: list[_Source] | None = None
        self._summary: ManifestSummary | None = None

    def __enter__(self) -> Manifests:
        _refuse_repeats(self._paths)
        sources: list[_Source] = []
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

    def _entered(self) -> list[_Source]:
        if self._sources is None:
            raise RuntimeError("use Manifests as a context manager: with Manifests(...) as m:")
        return self._sources

    def _source(self, path: str) -> _Source:
        if path == "-":
            stdin = self._stdin if self._stdin is not None else sys.stdin.buffer
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
            shutil.copyfileobj(stdin, spool, 1 << 20)
            return _Source(STDIN_NAME, "csv", spool=spool)
        lowered = path.lower()
        if lowered.endswith(_YAML_SUFFIXES):
            kind: Literal["yaml", "csv"] = "yaml"
        elif lowered.endswith(_CSV_SUFFIXES):
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
        return _Source(path, kind, path=path)

    def _records(self, source: _Source) -> Iterator[_Record]:
        with source.open() as handle:
            if source.kind == "csv":
                yield from _csv_records(source.name, handle, self._validator)
            else:
                yield from _yaml_records(source.name, handle.read(), self._validator)

    def _all_records(self, sources: list[_Source]) -> Iterator[tuple[int, _Record]]:
        for index, source in enumerate(sources):
            for record in self._records(source):
                yield index, record

    def _check(self, sources: list[_Source]) -> ManifestSummary:
        problems = _Problems(self._max_problems)
        # Digests, not key strings, in typed arrays: a million entries fit in ~40 MB.
        keys = DigestSet()
        jobs = DigestSet()
        # Entries whose key hash was seen before, by record number: two entries can share a
        # line (a YAML flow list, an alias), so (file, line) cannot tell them apart.
        suspects: list[tuple[int, int, int, Entry]] = []
        commands: dict[str, int] = {}
        total = 0
        for seq, (index, record) in enumerate(self._all_records(sources)):
            problems.extend(index, record.problems)
            entry = record.entry
            if entry is not None:
                total += 1
                commands[entry.command] = commands.get(entry.command, 0) + 1
                jobs.add(_hash(entry.job_id))
                if not keys.add(_key_hash(entry)):
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
        return ManifestSummary(files=names, total=total, commands=commands, jobs=jobs_count)

    def _duplicates(
        self, sources: list[_Source], suspects: list[tuple[int, int, int, Entry]]
    ) -> Iterator[tuple[int, Problem]]:
        """Confirm hash hits with one more scan, finding each key's first occurrence.

        ``suspects`` are ``(record number, file index, line, entry)``. A hit is almost always a
        real duplicate; a 64-bit collision between different keys is told apart here by
        comparing the keys themselves.
        """
        wanted = {_key_hash(entry) for _, _, _, entry in suspects}
        last = max(seq for seq, _, _, _ in suspects)
        first: dict[tuple[str, str], tuple[int, str]] = {}
        for seq, (_, record) in enumerate(self._all_records(sources)):
            if seq > last:
                break
            entry = record.entry
            if entry is not None and entry.key not in first and _key_hash(entry) in wanted:
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


def _refuse_repeats(paths: Sequence[str]) -> None:
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


class _Problems:
    """Problems in file order, without repeats (a bad ``defaults:`` value would otherwise
    be reported once per entry), capped."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._items: list[tuple[int, int, Problem]] = []
        self._seen: set[Problem] = set()
        self.truncated = False

    @property
    def count(self) -> int:
        return len(self._items)

    def add(self, index: int, problem: Problem) -> None:
        if problem in self._seen:
            return
        self._seen.add(problem)
        self._items.append((index, problem.line or 0, problem))

    def extend(self, index: int, problems: list[Problem]) -> None:
        for problem in problems:
            self.add(index, problem)

    def result(self) -> tuple[list[Problem], bool]:
        # Stable sort: duplicates found by the extra scan fall into place by file and line.
        ordered = [item[2] for item in sorted(self._items, key=lambda item: item[:2])]
        truncated = self.truncated or len(ordered) > self._cap
        return ordered[: self._cap], truncated


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _key_hash(entry: Entry) -> int:
    return _hash(f"{entry.job_id}\x00{entry.command}")


# -- validation shared by both formats -------------------------------------------------------

_ID_CHARS = "A-Z, a-z, 0-9, '_' or '-'"


def _did_you_mean(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.lower(), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown(what: str, name: str, choices: Sequence[str]) -> str:
    hint = _did_you_mean(name, choices)
    return f"unknown {what} {name!r}" + (hint or f" (expected one of: {', '.join(choices)})")


def _command_hint(command: str) -> str:
    close = difflib.get_close_matches(command.upper(), KNOWN_COMMANDS, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def _check_default_command(command: str) -> None:
    if command not in _KNOWN_COMMAND_SET:
        hint = _command_hint(command) or f"known commands: {', '.join(KNOWN_COMMANDS)}"
        raise UsageError(f"--command {command!r} is not a known command; {hint}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {_short(value)}"


def _message(error: Any) -> str:
    """An operator-readable message for one pydantic error."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "string_pattern_mismatch":
        return f"must be 1-64 characters of {_ID_CHARS} (got {_short(value)})"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is too long: {len(value)} characters, at most {ctx.get('max_length')}"
    if kind == "string_type":
        return f"must be text, not {_kind(value)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping (comment_title: ..., comment_message: ...), not {_kind(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list of file names, not {_kind(value)}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return str(error["msg"])


def _yaml_field(path: Path) -> str | None:
    """``("comment_data", "attachment_name", 0)`` -> ``comment_data.attachment_name[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


def _csv_field(path: Path) -> str | None:
    # CSV has flat columns: comment_data.attachment_name[0] -> attachment_name[0].
    return _yaml_field(path[1:] if path[:1] == ("comment_data",) else path)


def _csv_locate(line: int, path: Path) -> tuple[int, str | None]:
    """Where a field of a CSV record is: the record's line, and the column's name."""
    return line, _csv_field(path)


class _Validator:
    """Turns one entry's raw fields into an Entry or problems; shared by both formats."""

    def __init__(self, *, default_command: str | None, project_id: str | None) -> None:
        self.default_command = default_command
        self.project_id = project_id
        self._listed_commands = False

    def build(
        self,
        data: dict[str, Any],
        *,
        file: str,
        line: int,
        locate: Callable[[Path], tuple[int, str | None]],
        project_id: str | None = None,
    ) -> _Record:
        """Validate ``data`` (Nones already dropped). ``locate`` maps a pydantic location
        to the line and field name to report."""
        if "command" not in data and self.default_command is not None:
            data["command"] = self.default_command
        data["source"] = f"{file}:{line}"
        data["project_id"] = project_id or self.project_id
        record = _Record(line, None)
        command = data.get("command")
        if isinstance(command, str) and 0 < len(command) <= 64:
            self._check_command(command, file, locate, record.problems)
        try:
            entry = Entry.model_validate(data)
        except ValidationError as error:
            for item in error.errors(include_url=False):
                at, name = locate(tuple(item["loc"]))
                record.problems.append(Problem(file, at, name, _message(item)))
            return record
        if not record.problems:
            record.entry = entry
        return record

    def _check_command(
        self,
        command: str,
        file: str,
        locate: Callable[[Path], tuple[int, str | None]],
        problems: list[Problem],
    ) -> None:
        if command in _KNOWN_COMMAND_SET:
            return
        hint = _command_hint(command)
        if hint:
            message = f"unknown command {command!r}; {hint}"
        elif not self._listed_commands:
            self._listed_commands = True
            message = (
                f"{command!r} is not a known command; the known ones are "
                f"{', '.join(KNOWN_COMMANDS)}"
            )
        else:
            message = f"{command!r} is not a known command (see the list above)"
        at, name = locate(("command",))
        problems.append(Problem(file, at, name, message))


# -- CSV ---------------------------------------------------------------------------------------


def _text_lines(name: str, handle: BinaryIO, problems: list[Problem]) -> Iterator[str]:
    """Decode ``handle`` line by line, so a bad byte is reported at its line."""
    for number, raw in enumerate(handle, start=1):
        if number == 1:
            if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                problems.append(
                    Problem(name, 1, None, "the file is UTF-16; save it as UTF-8 (CSV UTF-8)")
                )
                return
            raw = raw.removeprefix(codecs.BOM_UTF8)
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(
                Problem(
                    name,
                    number,
                    None,
                    f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at position "
                    f"{error.start + 1} of the line); save the file as UTF-8",
                )
            )
            yield raw.decode("utf-8", "replace")


def _csv_rows(
    name: str, handle: BinaryIO, problems: list[Problem]
) -> Iterator[tuple[int, list[str] | None]]:
    """Yield ``(first line, cells)`` per record; cells is None for an unreadable record
    (its problem is in ``problems``). Blank rows are skipped."""
    reader = csv.reader(_text_lines(name, handle, problems), strict=True)
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problems.append(Problem(name, start, None, f"unreadable CSV: {error}"))
            yield start, None
            continue
        if any(cell.strip() for cell in cells):
            yield start, cells


@dataclass(slots=True)
class _Header:
    line: int
    names: list[str]
    columns: dict[str, int]  # known column -> index
    usable: bool  # False: a required column is missing, so rows are not checked


def _csv_header(
    name: str, line: int, cells: list[str], default_command: str | None
) -> tuple[_Header, list[Problem]]:
    names = [cell.strip() for cell in cells]
    problems: list[Problem] = []
    columns: dict[str, int] = {}
    for number, column in enumerate(names, start=1):
        if not column:
            problems.append(Problem(name, line, None, f"column {number} has no name"))
        elif column in columns:
            problems.append(Problem(name, line, column, "the column appears twice"))
        elif column not in CSV_COLUMNS:
            problems.append(Problem(name, line, column, _unknown("column", column, CSV_COLUMNS)))
        else:
            columns[column] = number - 1
    usable = True
    if "job_id" not in columns:
        usable = False
        problems.append(Problem(name, line, "job_id", "the header has no job_id column"))
    if "command" not in columns and default_command is None:
        usable = False
        problems.append(
            Problem(
                name,
                line,
                "command",
                "the header has no command column (add one, or give a default command "
                "with --command)",
            )
        )
    return _Header(line, names, columns, usable), problems


def _csv_data(header: _Header, cells: list[str]) -> dict[str, Any]:
    values = {column: cells[index].strip() for column, index in header.columns.items()}
    data: dict[str, Any] = {}
    comment: dict[str, Any] = {}
    for column, value in values.items():
        if not value:
            continue  # an empty cell is an absent field
        if column == "attachment_name":
            names = tuple(part.strip() for part in value.split(";") if part.strip())
            if names:
                comment[column] = names
        elif column in _COMMENT_FIELDS:
            comment[column] = value
        else:
            data[column] = value
    if comment:
        data["comment_data"] = comment
    return data


def _csv_records(name: str, handle: BinaryIO, validator: _Validator) -> Iterator[_Record]:
    problems: list[Problem] = []  # filled by the reader as it goes (decoding, quoting)
    header: _Header | None = None
    for line, cells in _csv_rows(name, handle, problems):
        found = problems[:]
        problems.clear()  # in place: the line decoder appends to this very list
        if cells is None:
            yield _Record(line, None, found)
            continue
        if header is None:
            header, more = _csv_header(name, line, cells, validator.default_command)
            yield _Record(line, None, found + more)
            continue
        if not header.usable:
            if found:
                yield _Record(line, None, found)
            continue
        if found:  # undecodable bytes: the row's values are not what the user wrote
            yield _Record(line, None, found)
            continue
        if len(cells) != len(header.names):
            found.append(
                Problem(
                    name,
                    line,
                    None,
                    f"the row has {len(cells)} cells but the header has "
                    f"{len(header.names)} columns",
                )
            )
            yield _Record(line, None, found)
            continue
        record = validator.build(
            _csv_data(header, cells),
            file=name,
            line=line,
            locate=functools.partial(_csv_locate, line),
        )
        yield record
    if problems:
        yield _Record(problems[0].line or 1, None, problems)
    elif header is None:
        yield _Record(1, None, [Problem(name, 1, None, "the file is empty")])


# -- YAML --------------------------------------------------------------------------------------


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _yaml_problem(name: str, error: yaml.YAMLError, text: str) -> Problem:
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        line: int | None = mark.line + 1
        context = getattr(error, "context", None)
        what = " ".join(part for part in (context, getattr(error, "problem", None)) if part)
    else:  # a ReaderError: an unacceptable character
        position = getattr(error, "position", None)
        line = None if position is None else text.count("\n", 0, position) + 1
        what = str(getattr(error, "reason", "") or error).splitlines()[0]
    return Problem(name, line, None, f"YAML syntax error: {what}")


class _TooLarge(Exception):
    """The walk of one entry or setting ran out of nodes (``whole_file``: the file's)."""

    def __init__(self, whole_file: bool = False) -> None:
        super().__init__()
        self.whole_file = whole_file


class _BadMerge(Exception):
    """A merge key (``<<``) that cannot be resolved; the mapping's contents are unknown."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Budget:
    """Nodes a whole file may still visit. Aliases let each entry name up to _MAX_NODES
    values, so without this a file of many aliased entries would still take long. A file
    without aliases visits fewer nodes than it has characters; twice that leaves room for
    ordinary aliases and merge keys (``<<: *common`` in every entry)."""

    def __init__(self, text: str) -> None:
        self.total = _FILE_NODES_PER_CHAR * len(text) + _FILE_NODES_BASE
        self.left = self.total


def _too_large(budget: _Budget | None = None) -> str:
    if budget is not None:
        return (
            f"too large: YAML alias expansion makes more than {budget.total:,} values in "
            "this file; the rest of the file was not checked"
        )
    return f"too large: YAML alias expansion makes more than {_MAX_NODES:,} values"


class _Tree:
    """Plain values from composed YAML nodes, remembering the line of every value.

    Scalars are kept as their source text (``job_id: 0123`` stays ``"0123"``, ``command:
    NO`` stays ``"NO"``): every manifest field is text, so YAML's type guessing would only
    corrupt them. ``~``/``null``/empty become None.

    Aliases are nodes shared in the composed graph, walked again at every use: the walk
    counts nodes (at most ``_MAX_NODES``, then :class:`_TooLarge`; ``budget`` is the
    file's), refuses a value that contains itself, and stops at ``_MAX_DEPTH`` levels.
    """

    def __init__(self, name: str, budget: _Budget) -> None:
        self.name = name
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self.broken = False  # a bad merge key: the mapping's contents are unknown
        self._budget = budget
        self._left = _MAX_NODES
        self._open: set[int] = set()  # ids of the collections being walked

    def _visit(self) -> None:
        self._left -= 1
        self._budget.left -= 1
        if self._budget.left < 0:
            raise _TooLarge(whole_file=True)
        if self._left < 0:
            raise _TooLarge

    def value(self, node: Node, path: Path, at: int) -> Any:
        """The plain value of ``node``, found at ``path``; ``at`` is the line naming it."""
        self._visit()
        if node.tag not in _STANDARD_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!", 1)
            message = f"YAML tag {_short(tag)} is not allowed in a manifest"
            self.problems.append(Problem(self.name, _line(node), _yaml_field(path), message))
        if isinstance(node, ScalarNode):
            return None if node.tag == _NULL_TAG else node.value
        where = _yaml_field(path)
        if id(node) in self._open:
            message = "recursive YAML alias: the value contains itself"
            self.problems.append(Problem(self.name, at, where, message))
            return None
        if len(path) >= _MAX_DEPTH:
            message = f"nesting too deep (more than {_MAX_DEPTH} levels)"
            self.problems.append(Problem(self.name, at, where, message))
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = []
                for index, item in enumerate(node.value):
                    line = _line(item)
                    self.lines[(*path, index)] = line
                    items.append(self.value(item, (*path, index), line))
                return items
            return self.mapping(node, path)
        finally:
            self._open.discard(id(node))

    def mapping(self, node: Node, path: Path) -> dict[str, Any]:
        self._repeated_keys(node, path)
        try:
            pairs = self.pairs(node, path)
        except _BadMerge as error:
            self.problems.append(error.problem)
            self.broken = True
            return {}
        result: dict[str, Any] = {}
        # Merged keys come first: a key written in the mapping itself comes later and wins,
        # as YAML merge keys intend.
        for key_node, value_node in pairs:
            if not isinstance(key_node, ScalarNode):
                message = "a key must be a plain name"
                self.problems.append(Problem(self.name, _line(key_node), None, message))
                continue
            where = (*path, key_node.value)
            line = _line(key_node)
            self.lines[where] = line
            result[key_node.value] = self.value(value_node, where, line)
        return result

    def pairs(self, node: Node, path: Path) -> list[tuple[Node, Node]]:
        """The key/value pairs of a mapping, merge keys (``<<: *anchor``) resolved: merged
        pairs first, each key once, then the mapping's own, so that building a dict in
        order gives https://yaml.org/type/merge.html: the mapping's own keys win, then the
        mapping listed first in ``<<: [*a, *b]``. (PyYAML's ``flatten_mapping`` is not
        used: it changes shared nodes, and 6.0.4 lets the last listed mapping win.)"""
        return self._pairs(node, path, {id(node)})

    def _pairs(self, node: Node, path: Path, chain: set[int]) -> list[tuple[Node, Node]]:
        merged: list[tuple[Node, Node]] = []
        own: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            self._visit()
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node))
                continue
            if isinstance(value_node, MappingNode):
                sources = [value_node]
            elif isinstance(value_node, SequenceNode):
                sources = list(value_node.value)
            else:
                raise _BadMerge(self._merge_problem(value_node, "mapping or list of mappings"))
            for source in reversed(sources):  # the first one listed wins
                if not isinstance(source, MappingNode):
                    raise _BadMerge(self._merge_problem(source, "mapping"))
                at, where = _line(key_node), _yaml_field(path)
                if id(source) in chain:
                    message = "recursive YAML alias: a merge key (<<) includes its own mapping"
                    raise _BadMerge(Problem(self.name, at, where, message))
                if len(chain) >= _MAX_DEPTH:
                    message = f"nesting too deep (merge keys more than {_MAX_DEPTH} levels deep)"
                    raise _BadMerge(Problem(self.name, at, where, message))
                chain.add(id(source))
                try:
                    merged.extend(self._pairs(source, path, chain))
                finally:
                    chain.discard(id(source))
        if not merged:
            return own
        # Keep each merged key once, where it wins; unique keys keep merging linear.
        seen: set[str] = set()
        unique: list[tuple[Node, Node]] = []
        for key_node, value_node in reversed(merged):
            if isinstance(key_node, ScalarNode):
                if key_node.value in seen:
                    continue
                seen.add(key_node.value)
            unique.append((key_node, value_node))
        unique.reverse()
        return unique + own

    def _merge_problem(self, found: Node, expected: str) -> Problem:
        # Worded as PyYAML's constructor words it.
        message = (
            f"YAML syntax error: while constructing a mapping expected a {expected} for "
            f"merging, but found {getattr(found, 'id', 'a node')}"
        )
        return Problem(self.name, _line(found), None, message)

    def _repeated_keys(self, node: Node, path: Path) -> None:
        # PyYAML silently keeps the last of two equal keys; in a manifest it is a mistake.
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            if key_node.value in seen:
                where = _yaml_field((*path, key_node.value))
                message = "the key appears twice"
                self.problems.append(Problem(self.name, _line(key_node), where, message))
            seen.add(key_node.value)

    def locate(self, path: Path, default: int) -> tuple[int, str | None]:
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]], _yaml_field(path)
        return default, _yaml_field(path)

    def unknown_keys(self, data: dict[str, Any], path: Path, allowed: Sequence[str]) -> None:
        """Report and drop keys not in ``allowed``."""
        for key in [key for key in data if key not in allowed]:
            where = (*path, key)
            message = _unknown("field", key, allowed)
            if key in ("project_id", "source") and not path:
                message = f"unknown field {key!r}"
                if key == "project_id":
                    message += " (project_id can only be set at the top of the manifest)"
            self.problems.append(Problem(self.name, self.lines[where], _yaml_field(where), message))
            del data[key]


@dataclass(slots=True)
class _Top:
    """A YAML manifest's settings for all of its entries."""

    project_id: str | None = None
    app_user_id: str | None = None
    app_user_id_line: int = 0
    defaults: dict[str, Any] = field(default_factory=dict)
    default_lines: dict[Path, int] = field(default_factory=dict)


def _yaml_records(name: str, raw: bytes, validator: _Validator) -> Iterator[_Record]:
    text, problem = _decode_all(name, raw)
    if problem is not None:
        yield _Record(problem.line or 1, None, [problem])
        return
    try:
        root = _compose(text)
    except yaml.YAMLError as error:
        problem = _yaml_problem(name, error, text)
        yield _Record(problem.line or 1, None, [problem])
        return
    except RecursionError:  # the pure-Python parser recurses once per nesting level
        message = "nesting too deep for the YAML parser"
        yield _Record(1, None, [Problem(name, None, None, message)])
        return
    if root is None:
        yield _Record(1, None, [Problem(name, 1, None, "the file is empty")])
        return
    budget = _Budget(text)
    line = _line(root)
    try:
        top, jobs, problems = _yaml_top(name, root, budget)
        if problems:
            yield _Record(line, None, problems)
        for node in jobs:
            line = _line(node)
            yield _yaml_entry(name, node, top, validator, budget)
    except _TooLarge:  # the whole file's budget: checking on would only take long
        yield _Record(line, None, [Problem(name, line, None, _too_large(budget))])


def _compose(text: str) -> Node | None:
    """The document's node tree (None when it holds no document).

    The cyclic garbage collector is paused meanwhile: a big manifest makes millions of
    nodes, none of them garbage, and repeated collections over them made composing 100k
    entries take 20 s instead of 3 s.
    """
    paused = gc.isenabled()
    gc.disable()
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()
        if paused:
            gc.enable()


def _decode_all(name: str, raw: bytes) -> tuple[str, Problem | None]:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "", Problem(name, 1, None, "the file is UTF-16; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        return "", Problem(
            name, line, None, f"not valid UTF-8 (byte 0x{raw[error.start]:02x}); save as UTF-8"
        )


def _yaml_top(name: str, root: Node, budget: _Budget) -> tuple[_Top, list[Node], list[Problem]]:
    """Split a manifest into its settings and its entry nodes. Only the settings' values
    are walked (unknown keys are reported by name, their values never looked at)."""
    top = _Top()
    if isinstance(root, SequenceNode):
        return top, list(root.value), []
    if not isinstance(root, MappingNode):
        message = "a manifest must be a mapping with jobs: [...] or a list of entries"
        return top, [], [Problem(name, _line(root), None, message)]
    tree = _Tree(name, budget)
    jobs_node: Node | None = None
    seen: set[str] = set()
    try:
        pairs = tree.pairs(root, ())
    except _BadMerge as error:
        return top, [], [error.problem]
    except _TooLarge as error:
        if error.whole_file:
            raise
        return top, [], [Problem(name, _line(root), None, _too_large())]
    for key_node, value_node in pairs:
        at = _line(key_node)
        if not isinstance(key_node, ScalarNode):
            tree.problems.append(Problem(name, at, None, "a key must be a plain name"))
            continue
        key = key_node.value
        if key not in _TOP_LEVEL_KEYS:
            message = _unknown("top-level key", key, _TOP_LEVEL_KEYS)
            tree.problems.append(Problem(name, at, key, message))
        elif key in seen:
            tree.problems.append(Problem(name, at, key, "the key appears twice"))
        elif key == "jobs":
            jobs_node = value_node
        else:
            _yaml_setting(tree, top, key, at, value_node)
        seen.add(key)
    jobs: list[Node] = []
    if jobs_node is None:
        tree.problems.append(Problem(name, _line(root), "jobs", "the manifest has no jobs: list"))
    elif isinstance(jobs_node, SequenceNode):
        jobs = list(jobs_node.value)
    elif not (isinstance(jobs_node, ScalarNode) and jobs_node.tag == _NULL_TAG):
        message = "must be a list of entries (each one a mapping with job_id and command)"
        tree.problems.append(Problem(name, _line(jobs_node), "jobs", message))
    return top, jobs, tree.problems


def _yaml_setting(tree: _Tree, top: _Top, key: str, at: int, node: Node) -> None:
    """Read ``project_id``, ``app_user_id`` or ``defaults`` at the top of a manifest."""
    name = tree.name
    try:
        value = tree.value(node, (key,), at)
    except _TooLarge as error:
        if error.whole_file:
            raise
        tree.problems.append(Problem(name, at, key, _too_large()))
        return
    if key == "defaults":
        if value is None:
            return
        if not isinstance(value, dict):
            tree.problems.append(Problem(name, at, key, f"must be a mapping, not {_kind(value)}"))
            return
        allowed = tuple(field for field in _ENTRY_KEYS if field != "job_id")
        tree.unknown_keys(value, (key,), allowed)
        if isinstance(value.get("comment_data"), dict):
            tree.unknown_keys(value["comment_data"], (key, "comment_data"), _COMMENT_FIELDS)
        top.defaults = value
        # Lines of inherited fields, keyed like the entry's own fields.
        top.default_lines = {path[1:]: line for path, line in tree.lines.items() if path[0] == key}
        return
    if value is None:
        return
    if not isinstance(value, str):
        tree.problems.append(Problem(name, at, key, f"must be text, not {_kind(value)}"))
    elif key == "project_id":
        if PATH_ID_RE.match(value):
            top.project_id = value
        else:
            message = f"must be 1-64 characters of {_ID_CHARS} (got {_short(value)})"
            tree.problems.append(Problem(name, at, key, message))
    else:
        try:
            top.app_user_id = check_app_user_id(value)
            top.app_user_id_line = at
        except ValueError as error:
            tree.problems.append(Problem(name, at, key, str(error)))


def _from_defaults(
    found: tuple[int, str | None], path: Path, inherited: set[str | int]
) -> tuple[int, str | None]:
    # A bad value inherited from defaults: is reported where it is written, under its name.
    at, name = found
    if path and path[0] in inherited and name is not None:
        return at, f"defaults.{name}"
    return found


def _yaml_entry(
    name: str, node: Node, top: _Top, validator: _Validator, budget: _Budget
) -> _Record:
    line = _line(node)
    if not isinstance(node, MappingNode):
        message = "an entry must be a mapping (job_id: ..., command: ...)"
        return _Record(line, None, [Problem(name, line, None, message)])
    tree = _Tree(name, budget)
    try:
        data = tree.value(node, (), line)
    except _TooLarge as error:
        if error.whole_file:
            raise
        return _Record(line, None, [Problem(name, line, None, _too_large())])
    if tree.broken:
        return _Record(line, None, tree.problems)
    tree.unknown_keys(data, (), _ENTRY_KEYS)
    comment = data.get("comment_data")
    if isinstance(comment, dict):
        tree.unknown_keys(comment, ("comment_data",), _COMMENT_FIELDS)
    inherited: set[str | int] = set()
    for key, value in top.defaults.items():
        if key not in data:
            data[key] = value
            inherited.add(key)
            tree.lines.update(
                (path, at) for path, at in top.default_lines.items() if path[0] == key
            )
    if "app_user_id" not in data and top.app_user_id is not None:
        data["app_user_id"] = top.app_user_id
        tree.lines[("app_user_id",)] = top.app_user_id_line
    data = {key: value for key, value in data.items() if value is not None}
    if isinstance(data.get("comment_data"), dict):
        data["comment_data"] = {k: v for k, v in data["comment_data"].items() if v is not None}
    record = validator.build(
        data,
        file=name,
        line=line,
        locate=lambda path: _from_defaults(tree.locate(path, line), path, inherited),
        project_id=top.project_id,
    )
    if tree.problems:
        record.problems[:0] = tree.problems
        record.entry = None
    return record
