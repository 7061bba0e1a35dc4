"""YAML manifests, streamed: the top-level settings (``project_id``, ``app_user_id``,
``defaults``) and the entries under ``jobs:``, each with the line it was written on.

The parser's events are composed one entry at a time (:mod:`._yaml_events`), so memory
does not grow with the number of entries and reading the next entry costs one entry's
work. Settings written after ``jobs:`` (or merged in after it) are found only at the end;
the reader then says so (:attr:`YamlReader.rescan`) and the file is read again with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import yaml

from batcher.entry import (
    COMMENT_FIELDS,
    ENTRY_FIELDS,
    ID_CHARS,
    PATH_ID_RE,
    Path,
    check_app_user_id,
    describe_kind,
    quote,
)
from batcher.errors import Problem
from batcher.read._problems import unknown
from batcher.read._text import SNIFF_BYTES, YamlText, sniff
from batcher.read._validate import Record, Validator
from batcher.read._yaml_events import (
    MAPPING,
    MERGE_TAG,
    NULL_TAG,
    SCALAR,
    SEQUENCE,
    SKIPPED,
    Composer,
    Fatal,
    Node,
    yaml_error,
)
from batcher.read._yaml_safe import BadMerge, Budget, TooLarge, Tree, too_large

_TOP_LEVEL_KEYS: tuple[str, ...] = ("jobs", "project_id", "app_user_id", "defaults")


_ENTRY_KEYS: tuple[str, ...] = tuple(sorted(ENTRY_FIELDS))


_DEFAULT_KEYS: tuple[str, ...] = tuple(k for k in _ENTRY_KEYS if k not in ("job_id", "project_id"))


#: Stands for the ``jobs:`` list in the top-level pairs while its entries stream by.
_STREAM = Node("streamed jobs", 0, "tag:yaml.org,2002:seq", None)


@dataclass(slots=True)
class _Top:
    """A YAML manifest's settings for all of its entries."""

    project_id: str | None = None
    app_user_id: str | None = None
    app_user_id_line: int = 0
    defaults: dict[str, Any] = field(default_factory=dict)
    default_lines: dict[Path, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TopHint:
    """What a whole reading of a manifest found at its top: its settings, and whether its
    entries are the ``jobs:`` list written in it (``"own"``) or come from elsewhere."""

    top: _Top
    jobs: str


class YamlReader:
    """The records of one YAML manifest, read from ``stream`` as events.

    ``check`` False: the second pass (fields are not checked again). ``hint``: what an
    earlier reading found at the top (see :attr:`rescan`).
    """

    def __init__(
        self,
        name: str,
        stream: BinaryIO,
        validator: Validator,
        *,
        check: bool = True,
        hint: TopHint | None = None,
    ) -> None:
        self.name = name
        self.validator = validator
        self.check = check
        self.hint = hint
        #: Set when entries were read with other settings than the whole file has: read the
        #: file again with this hint.
        self.rescan: TopHint | None = None
        self._stream = stream
        self._skip_entries = False
        self._line = 1  # where the entry being read starts
        #: The record saying the file cannot be read (not text, not YAML), once found.
        self.fatal: Record | None = None
        self._records = self._read()

    def records(self) -> Iterator[Record]:
        return self._records

    def finish(self) -> None:
        """Read on to the end without checking entries, to learn the top (and
        :attr:`rescan`): what checking stopped early (at the problem cap) needs."""
        self._skip_entries = True
        for _ in self._records:
            pass

    # -- reading -----------------------------------------------------------------------------

    def _read(self) -> Iterator[Record]:
        name = self.name
        head = self._stream.read(SNIFF_BYTES)
        self._stream.seek(0)
        what = sniff(head, csv=False)
        if what is not None:
            yield Record(what[0], None, [Problem(name, what[0], None, what[1])], whole_file=True)
            return
        text = YamlText(name, self._stream)
        composer = Composer(name, text)
        budget = Budget(text)
        try:
            if not composer.document_start():
                yield Record(1, None, [Problem(name, 1, None, "the file is empty")])
                return
            self._line = composer.start_line()
            yield from self._document(composer, budget)
            composer.document_end()
        except Fatal as error:
            fatal = Record(error.problem.line or 1, None, [error.problem], error.whole_file)
        except yaml.YAMLError as error:
            problem = yaml_error(name, error, self._stream)
            fatal = Record(problem.line or 1, None, [problem], whole_file=True)
        except TooLarge:  # the whole file's budget: checking on would only take long
            line = self._line
            fatal = Record(line, None, [Problem(name, line, None, too_large(budget))])
        else:
            return
        finally:
            composer.dispose()
        if fatal.whole_file:
            self.fatal = fatal
        yield fatal

    def _document(self, composer: Composer, budget: Budget) -> Iterator[Record]:
        event = composer.peek()
        kind = type(event)
        if kind is yaml.SequenceStartEvent:
            composer.anchor_streamed(composer.next())
            yield from self._stream_entries(composer, _Top(), budget)
            composer.next()  # SequenceEndEvent
            return
        if kind is not yaml.MappingStartEvent:
            root = composer.compose()
            message = "a manifest must be a mapping with jobs: [...] or a list of entries"
            yield Record(root.line, None, [Problem(self.name, root.line, None, message)])
            return
        yield from self._mapping(composer, budget)

    def _mapping(self, composer: Composer, budget: Budget) -> Iterator[Record]:
        root_line = composer.start_line()
        composer.anchor_streamed(composer.next())
        pairs: list[tuple[Node, Node]] = []
        composed: set[str] = set()
        used: TopHint | None = None  # the settings the streamed entries were read with
        while not isinstance(composer.peek(), yaml.MappingEndEvent):
            key = composer.compose()
            name = key.value if key.id is SCALAR and key.tag != MERGE_TAG else None
            if key.id is SCALAR and key.tag == MERGE_TAG:
                pairs.append((key, composer.compose()))
            elif name == "jobs" and "jobs" not in composed and self._is_list(composer):
                composed.add("jobs")
                pairs.append((key, _STREAM))
                hint = self.hint
                if hint is None:
                    top, jobs, problems = _evaluate(
                        self.name, root_line, pairs, Budget(composer.text), final=False
                    )
                    if problems:
                        yield Record(problems[0].line or root_line, None, problems)
                    hint = TopHint(top, "own" if jobs is _STREAM else "other")
                used = hint
                composer.anchor_streamed(composer.next())
                if hint.jobs == "own":
                    yield from self._stream_entries(composer, hint.top, budget)
                else:
                    while not isinstance(composer.peek(), yaml.SequenceEndEvent):
                        composer.skip()
                composer.next()  # SequenceEndEvent
            elif name in _TOP_LEVEL_KEYS and name not in composed:
                composed.add(name)
                pairs.append((key, composer.compose()))
            else:
                pairs.append((key, Node(SKIPPED, composer.start_line(), "", None)))
                composer.skip()
        composer.next()  # MappingEndEvent
        top, jobs, problems = _evaluate(
            self.name, root_line, pairs, Budget(composer.text), final=True
        )
        if problems:
            yield Record(problems[0].line or root_line, None, problems)
        final = TopHint(top, "own" if jobs is _STREAM else "other")
        if used is not None and used != final:
            self.rescan = final
            return
        if jobs is not None and jobs is not _STREAM and jobs.id is SEQUENCE:
            for node in jobs.value:
                if not self._skip_entries:
                    yield self._entry(node, top, budget)

    @staticmethod
    def _is_list(composer: Composer) -> bool:
        return isinstance(composer.peek(), yaml.SequenceStartEvent)

    def _stream_entries(self, composer: Composer, top: _Top, budget: Budget) -> Iterator[Record]:
        while not isinstance(composer.peek(), yaml.SequenceEndEvent):
            if self._skip_entries:
                composer.skip()
                continue
            yield self._entry(composer.compose(), top, budget)

    def _entry(self, node: Node, top: _Top, budget: Budget) -> Record:
        self._line = node.line
        return _yaml_entry(self.name, node, top, self.validator, budget, self.check)


def _evaluate(
    name: str, root_line: int, pairs: list[tuple[Node, Node]], budget: Budget, *, final: bool
) -> tuple[_Top, Node | None, list[Problem]]:
    """The settings of a manifest from its top-level pairs (merge keys resolved), where its
    entries are, and the problems. Only the settings' values are walked (unknown keys are
    reported by name, their values never looked at)."""
    top = _Top()
    root = Node(MAPPING, root_line, "tag:yaml.org,2002:map", pairs)
    tree = Tree(name, budget)
    jobs_node: Node | None = None
    seen: set[str] = set()
    try:
        resolved = tree.pairs(root, ())
    except BadMerge as error:
        return top, None, [error.problem]
    except TooLarge as error:
        if error.whole_file:
            raise
        return top, None, [Problem(name, root_line, None, too_large())]
    for key_node, value_node in resolved:
        at = key_node.line
        if key_node.id is not SCALAR:
            tree.problems.append(Problem(name, at, None, "a key must be a plain name"))
            continue
        key = key_node.value
        if key not in _TOP_LEVEL_KEYS:
            message = unknown("top-level key", key, _TOP_LEVEL_KEYS)
            tree.problems.append(Problem(name, at, key, message))
        elif key in seen:
            tree.problems.append(Problem(name, at, key, "the key appears twice"))
        elif key == "jobs":
            jobs_node = value_node
        else:
            _yaml_setting(tree, top, key, at, value_node)
        seen.add(key)
    if jobs_node is None:
        if final:
            message = "the manifest has no jobs: list"
            tree.problems.append(Problem(name, root_line, "jobs", message))
    elif jobs_node is not _STREAM and jobs_node.id is not SEQUENCE:
        if not (jobs_node.id is SCALAR and jobs_node.tag == NULL_TAG):
            message = "must be a list of entries (each one a mapping with job_id and command)"
            tree.problems.append(Problem(name, jobs_node.line, "jobs", message))
        jobs_node = None
    return top, jobs_node, tree.problems


def _yaml_setting(tree: Tree, top: _Top, key: str, at: int, node: Node) -> None:
    """Read ``project_id``, ``app_user_id`` or ``defaults`` at the top of a manifest."""
    name = tree.name
    try:
        value = tree.value(node, (key,), at)
    except TooLarge as error:
        if error.whole_file:
            raise
        tree.problems.append(Problem(name, at, key, too_large()))
        return
    if key == "defaults":
        if value is None:
            return
        if not isinstance(value, dict):
            message = f"must be a mapping, not {describe_kind(value)}"
            tree.problems.append(Problem(name, at, key, message))
            return
        tree.unknown_keys(value, (key,), _DEFAULT_KEYS)
        if isinstance(value.get("comment_data"), dict):
            tree.unknown_keys(value["comment_data"], (key, "comment_data"), COMMENT_FIELDS)
        top.defaults = value
        # Lines of inherited fields, keyed like the entry's own fields.
        top.default_lines = {path[1:]: line for path, line in tree.lines.items() if path[0] == key}
        return
    if value is None:
        return
    if not isinstance(value, str):
        tree.problems.append(Problem(name, at, key, f"must be text, not {describe_kind(value)}"))
    elif key == "project_id":
        if PATH_ID_RE.match(value):
            top.project_id = value
        else:
            message = f"must be 1-64 characters of {ID_CHARS} (got {quote(value)})"
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
    name: str, node: Node, top: _Top, validator: Validator, budget: Budget, check: bool
) -> Record:
    line = node.line
    if node.id is not MAPPING:
        message = "an entry must be a mapping (job_id: ..., command: ...)"
        return Record(line, None, [Problem(name, line, None, message)])
    tree = Tree(name, budget)
    try:
        data = tree.value(node, (), line)
    except TooLarge as error:
        if error.whole_file:
            raise
        return Record(line, None, [Problem(name, line, None, too_large())])
    if tree.broken:
        return Record(line, None, tree.problems)
    tree.unknown_keys(data, (), _ENTRY_KEYS)
    comment = data.get("comment_data")
    if isinstance(comment, dict):
        tree.unknown_keys(comment, ("comment_data",), COMMENT_FIELDS)
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
        check=check,
    )
    if tree.problems:
        record.problems[:0] = tree.problems
        record.data = None
    return record
