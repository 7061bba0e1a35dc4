"""Hardened YAML: a manifest's composed nodes to plain values, bounded against hostile files.

Scalars are kept as text, tags other than YAML's standard ones are refused, and aliases
and merge keys are expanded under a budget (per entry and per file) and a depth limit, so
"billion laughs", recursive aliases and deep nesting end in a problem, not in a hang.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from batcher.entry import Path, quote
from batcher.errors import Problem
from batcher.read._problems import unknown, yaml_field
from batcher.read._text import YamlText
from batcher.read._yaml_events import MAPPING, MERGE_TAG, NULL_TAG, SCALAR, SEQUENCE, STREAMED, Node

#: The YAML tags a manifest may carry (most are resolved implicitly); ``!!python/...`` and
#: local ``!tags`` are refused, though nothing would construct them anyway, and so is
#: ``!!binary``: its value is bytes, not the text written, and no field takes bytes.
_STANDARD_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in (
        *("str", "null", "bool", "int", "float", "timestamp"),
        *("seq", "map", "omap", "pairs", "set", "merge", "value"),
    )
)


#: Values one entry (or one top-level setting) may expand to, counting every use of an
#: alias afresh: far more than any real entry, far fewer than a "billion laughs" makes.
_MAX_NODES = 10_000


#: How deep values may nest (an entry needs 3 levels: comment_data.attachment_name[0]).
_MAX_DEPTH = 32


#: Values a whole YAML file may expand to: this many per byte of the file read so far, plus
#: a base (see :class:`Budget`).
_FILE_NODES_PER_CHAR = 2


_FILE_NODES_BASE = 100_000


class TooLarge(Exception):
    """The walk of one entry or setting ran out of nodes (``whole_file``: the file's)."""

    def __init__(self, whole_file: bool = False) -> None:
        super().__init__()
        self.whole_file = whole_file


class BadMerge(Exception):
    """A merge key (``<<``) that cannot be resolved; the mapping's contents are unknown."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class Budget:
    """Nodes a whole file may visit. Aliases let each entry name up to _MAX_NODES values, so
    without this a file of many aliased entries would still take long. A file without
    aliases visits fewer nodes than it has bytes; twice the bytes read so far leaves room
    for ordinary aliases and merge keys (``<<: *common`` in every entry)."""

    def __init__(self, text: YamlText | None = None) -> None:
        self._text = text
        self.used = 0
        self.limit = self.total

    @property
    def total(self) -> int:
        consumed = self._text.consumed if self._text is not None else 0
        return _FILE_NODES_PER_CHAR * consumed + _FILE_NODES_BASE

    def exceeded(self) -> bool:
        """Whether ``used`` is over the budget (called when it passes ``limit``)."""
        self.limit = self.total
        return self.used > self.limit


def too_large(budget: Budget | None = None) -> str:
    if budget is not None:
        return (
            f"too large: YAML alias expansion makes more than {budget.total:,} values in "
            "this file; the rest of the file was not checked"
        )
    return f"too large: YAML alias expansion makes more than {_MAX_NODES:,} values"


class Tree:
    """Plain values from composed YAML nodes, remembering the line of every value.

    Scalars are kept as their source text (``job_id: 0123`` stays ``"0123"``, ``command:
    NO`` stays ``"NO"``): every manifest field is text, so YAML's type guessing would only
    corrupt them. ``~``/``null``/empty become None.

    Aliases are nodes shared in the composed graph, walked again at every use: the walk
    counts nodes (at most ``_MAX_NODES``, then :class:`TooLarge`; ``budget`` is the
    file's), refuses a value that contains itself, and stops at ``_MAX_DEPTH`` levels.
    """

    def __init__(self, name: str, budget: Budget) -> None:
        self.name = name
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self.broken = False  # a bad merge key: the mapping's contents are unknown
        self._budget = budget
        self._left = _MAX_NODES
        self._open: set[int] = set()  # ids of the collections being walked

    def _visit(self, count: int = 1) -> None:
        budget = self._budget
        budget.used += count
        if budget.used > budget.limit and budget.exceeded():
            raise TooLarge(whole_file=True)
        self._left -= count
        if self._left < 0:
            raise TooLarge

    def value(self, node: Node, path: Path, at: int) -> Any:
        """The plain value of ``node``, found at ``path``; ``at`` is the line naming it."""
        self._visit()
        kind = node.id
        if kind is STREAMED:
            message = "this alias names the list of entries, which is read as a stream"
            self.problems.append(Problem(self.name, at, yaml_field(path), message))
            return None
        if node.tag not in _STANDARD_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!", 1)
            message = f"YAML tag {quote(tag)} is not allowed in a manifest"
            self.problems.append(Problem(self.name, node.line, yaml_field(path), message))
        if kind is SCALAR:
            return None if node.tag == NULL_TAG else node.value
        where = yaml_field(path)
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
            if kind is SEQUENCE:
                items = []
                for index, item in enumerate(node.value):
                    line = item.line
                    self.lines[(*path, index)] = line
                    items.append(self.value(item, (*path, index), line))
                return items
            return self.mapping(node, path)
        finally:
            self._open.discard(id(node))

    def mapping(self, node: Node, path: Path) -> dict[str, Any]:
        pairs: list[tuple[Node, Node]] = node.value
        merges = False
        # PyYAML silently keeps the last of two equal keys; in a manifest it is a mistake.
        seen: set[str] = set()
        for key_node, _ in pairs:
            if key_node.id is not SCALAR:
                continue
            if key_node.tag == MERGE_TAG:
                merges = True
                continue
            if key_node.value in seen:
                repeated = yaml_field((*path, key_node.value))
                message = "the key appears twice"
                self.problems.append(Problem(self.name, key_node.line, repeated, message))
            seen.add(key_node.value)
        if merges:
            try:
                pairs = self.pairs(node, path)
            except BadMerge as error:
                self.problems.append(error.problem)
                self.broken = True
                return {}
        else:
            self._visit(len(pairs))  # what pairs() counts, without merge keys to resolve
        result: dict[str, Any] = {}
        # Merged keys come first: a key written in the mapping itself comes later and wins,
        # as YAML merge keys intend.
        for key_node, value_node in pairs:
            if key_node.id is not SCALAR:
                message = "a key must be a plain name"
                self.problems.append(Problem(self.name, key_node.line, None, message))
                continue
            where = (*path, key_node.value)
            line = key_node.line
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
            if key_node.tag != MERGE_TAG:
                own.append((key_node, value_node))
                continue
            if value_node.id is MAPPING:
                sources = [value_node]
            elif value_node.id is SEQUENCE:
                sources = list(value_node.value)
            else:
                raise BadMerge(self._merge_problem(value_node, "mapping or list of mappings"))
            for source in reversed(sources):  # the first one listed wins
                if source.id is not MAPPING:
                    raise BadMerge(self._merge_problem(source, "mapping"))
                at, where = key_node.line, yaml_field(path)
                if id(source) in chain:
                    message = "recursive YAML alias: a merge key (<<) includes its own mapping"
                    raise BadMerge(Problem(self.name, at, where, message))
                if len(chain) >= _MAX_DEPTH:
                    message = f"nesting too deep (merge keys more than {_MAX_DEPTH} levels deep)"
                    raise BadMerge(Problem(self.name, at, where, message))
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
            if key_node.id is SCALAR:
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
            f"merging, but found {found.id}"
        )
        return Problem(self.name, found.line, None, message)

    def locate(self, path: Path, default: int) -> tuple[int, str | None]:
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]], yaml_field(path)
        return default, yaml_field(path)

    def unknown_keys(self, data: dict[str, Any], path: Path, allowed: Sequence[str]) -> None:
        """Report and drop keys not in ``allowed``."""
        for key in [key for key in data if key not in allowed]:
            where = (*path, key)
            message = unknown("field", key, allowed)
            if key == "source" and not path:
                message = f"unknown field {key!r}"
            elif key == "project_id" and path == ("defaults",):
                message = (
                    f"unknown field {key!r} (set project_id at the top of the manifest, "
                    "or on each entry)"
                )
            self.problems.append(Problem(self.name, self.lines[where], yaml_field(where), message))
            del data[key]
