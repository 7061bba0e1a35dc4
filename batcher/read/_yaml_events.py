"""A YAML manifest as parser events, composed into small nodes one value at a time.

PyYAML's composer builds the node tree of the whole document (1.9-5.7 KB per entry). Here
the parser's events are composed into light :class:`Node` objects one value at a time (an
entry, a setting), which are dropped once read; only anchored values are kept, since an
alias may name them later, and those under a budget. Aliases are the very node they name,
as in PyYAML, so the walk in :mod:`._yaml_safe` sees the same graph (and the same cycles).
Errors are worded as libyaml's composer words them.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from batcher.errors import Problem
from batcher.read._text import Fatal, YamlText

__all__ = ["Composer", "Fatal", "Node", "yaml_error"]

#: The parser: libyaml's when PyYAML was built with it (about 10x faster), else PyYAML's.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SCALAR, SEQUENCE, MAPPING = "scalar", "sequence", "mapping"

#: An anchor on the manifest itself or on its ``jobs:`` list: read as a stream, never kept.
STREAMED = "streamed list"

#: The value of a top-level key that is never looked at (an unknown key).
SKIPPED = "skipped value"

NULL_TAG = "tag:yaml.org,2002:null"
MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"

#: Plain scalars YAML resolves to null (PyYAML's implicit resolver).
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})

#: Values that anchors may keep for later aliases, in all: far more than any manifest
#: shares through anchors (a few defaults), far fewer than would fill memory.
MAX_KEPT = 200_000

#: How deeply collections may nest before composing stops (libyaml's own limit is near).
MAX_PARSER_DEPTH = 1000


# (No line: PyYAML's composer, which this replaces, overflowed the stack at some depth.)
_TOO_DEEP = "nesting too deep for the YAML parser"


class Node:
    """A composed YAML value: ``id`` is its kind, ``line`` where it starts (1-based), ``tag``
    the resolved tag, ``value`` the text, the items, or the ``(key, value)`` pairs."""

    __slots__ = ("id", "line", "tag", "value")

    def __init__(self, kind: str, line: int, tag: str, value: Any) -> None:
        self.id = kind
        self.line = line
        self.tag = tag
        self.value = value


class Composer:
    """Events of one YAML stream (read through ``text``), composed a value at a time."""

    def __init__(self, name: str, text: YamlText, *, loader: Any = None) -> None:
        self.name = name
        self.text = text
        self.anchors: dict[str, Node] = {}
        #: Values kept for anchors so far.
        self.kept = 0
        #: The line where the last event consumed ends.
        self.last_line = 1
        self._loader = (loader or _Loader)(text)
        self._peeked: Any = None  # events are typed loosely: they are read by attribute

    def dispose(self) -> None:
        self._loader.dispose()

    def peek(self) -> Any:
        if self._peeked is None:
            self._peeked = self._loader.get_event()
        return self._peeked

    def next(self) -> Any:
        event = self._peeked
        if event is None:
            event = self._loader.get_event()
        else:
            self._peeked = None
        self.last_line = event.end_mark.line + 1
        return event

    def start_line(self) -> int:
        return int(self.peek().start_mark.line) + 1

    # -- the document ------------------------------------------------------------------------

    def document_start(self) -> bool:
        """Skip to the document's root; False when the stream holds no document."""
        self.next()  # StreamStartEvent
        event = self.next()
        return isinstance(event, DocumentStartEvent)

    def document_end(self) -> None:
        """Check that the stream ends after this document (as ``get_single_node`` does)."""
        if isinstance(self.peek(), DocumentEndEvent):
            self.next()
        event = self.peek()
        if not isinstance(event, StreamEndEvent):
            raise Fatal(
                Problem(
                    self.name,
                    int(event.start_mark.line) + 1,
                    None,
                    "YAML syntax error: expected a single document in the stream "
                    "but found another document",
                ),
                whole_file=True,
            )
        self.next()

    def anchor_streamed(self, event: Any) -> None:
        """Register the anchor of a collection read as a stream (never kept)."""
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._register(anchor, Node(STREAMED, int(event.start_mark.line) + 1, "", None), event)

    # -- values ------------------------------------------------------------------------------

    def compose(self) -> Node:
        """The next value, composed (iteratively: nesting costs no Python stack).

        The hot loop of reading a manifest: events are taken from the parser directly and
        nodes attached inline."""
        get_event = self._loader.get_event
        event = self._peeked
        if event is None:
            event = get_event()
        else:
            self._peeked = None
        text = self.text
        text.value_start, text.value_line = text.consumed, event.start_mark.line + 1
        stack: list[Node] = []
        keys: list[Node | None] = []
        kept_from = -1  # the depth of the outermost anchored collection open, if any
        while True:
            kind = type(event)
            if kind is ScalarEvent:
                tag = event.tag
                if tag is None or tag == "!":
                    tag = _STR_TAG
                    if event.implicit[0]:  # plain: resolved as PyYAML's resolver would
                        value = event.value
                        if value in _NULLS:
                            tag = NULL_TAG
                        elif value == "<<":
                            tag = MERGE_TAG
                node = Node(SCALAR, event.start_mark.line + 1, tag, event.value)
                if event.anchor is not None:
                    self._register(event.anchor, node, event)
                    self._keep(event)
                elif kept_from >= 0:
                    self._keep(event)
            elif kind is AliasEvent:
                found = self.anchors.get(event.anchor)
                if found is None:
                    raise Fatal(
                        Problem(
                            self.name,
                            event.start_mark.line + 1,
                            None,
                            "YAML syntax error: found undefined alias",
                        ),
                        whole_file=True,
                    )
                node = found
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if len(stack) >= MAX_PARSER_DEPTH:
                    raise Fatal(Problem(self.name, None, None, _TOO_DEEP), whole_file=True)
                tag = event.tag
                if tag is None or tag == "!":
                    tag = _MAP_TAG if kind is MappingStartEvent else _SEQ_TAG
                node = Node(
                    MAPPING if kind is MappingStartEvent else SEQUENCE,
                    event.start_mark.line + 1,
                    tag,
                    [],
                )
                if event.anchor is not None:
                    self._register(event.anchor, node, event)
                    if kept_from < 0:
                        kept_from = len(stack)
                    self._keep(event)
                elif kept_from >= 0:
                    self._keep(event)
                if stack:
                    self._attach(stack, keys, node)
                stack.append(node)
                keys.append(None)
                event = get_event()
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                node = stack.pop()
                keys.pop()
                if kept_from == len(stack):
                    kept_from = -1
                if not stack:
                    self.last_line = event.end_mark.line + 1
                    return node
                event = get_event()
                continue
            else:  # pragma: no cover - the parser only gives these inside a document
                raise Fatal(
                    Problem(self.name, self.last_line, None, "YAML syntax error"), whole_file=True
                )
            if not stack:
                self.last_line = event.end_mark.line + 1
                return node
            parent = stack[-1]
            if parent.id is SEQUENCE:
                parent.value.append(node)
            else:
                key = keys[-1]
                if key is None:
                    keys[-1] = node
                else:
                    parent.value.append((key, node))
                    keys[-1] = None
            event = get_event()

    def skip(self) -> None:
        """Consume the next value without keeping it, except its anchored parts."""
        depth = 0
        text = self.text
        while True:
            text.value_start = text.consumed  # only one token at a time is held here
            event = self.peek()
            kind = type(event)
            if getattr(event, "anchor", None) is not None and kind is not AliasEvent:
                self.compose()  # anchored: kept, since an alias may name it later
            elif kind is AliasEvent:
                self.compose()  # only to check that the alias is defined
            elif kind is SequenceStartEvent or kind is MappingStartEvent:
                self.next()
                depth += 1
                if depth > MAX_PARSER_DEPTH:
                    raise Fatal(Problem(self.name, None, None, _TOO_DEEP), whole_file=True)
                continue
            elif kind is SequenceEndEvent or kind is MappingEndEvent:
                self.next()
                depth -= 1
            else:
                self.next()
            if depth == 0:
                return

    @staticmethod
    def _attach(stack: list[Node], keys: list[Node | None], node: Node) -> None:
        parent = stack[-1]
        if parent.id is SEQUENCE:
            parent.value.append(node)
        elif keys[-1] is None:
            keys[-1] = node
        else:
            parent.value.append((keys[-1], node))
            keys[-1] = None

    def _register(self, anchor: str, node: Node, event: Any) -> None:
        if anchor in self.anchors:
            raise Fatal(
                Problem(
                    self.name,
                    int(event.start_mark.line) + 1,
                    None,
                    "YAML syntax error: found duplicate anchor; first occurrence second occurrence",
                ),
                whole_file=True,
            )
        self.anchors[anchor] = node

    def _keep(self, event: Any) -> None:
        self.kept += 1
        if self.kept > MAX_KEPT:
            raise Fatal(
                Problem(
                    self.name,
                    event.start_mark.line + 1,
                    None,
                    f"too many anchored values: YAML anchors (&name) in this file hold more "
                    f"than {MAX_KEPT:,} values; the rest of the file was not checked",
                )
            )


#: The longest a YAML simple key may be (the YAML spec's limit, and libyaml's).
MAX_KEY_CHARS = 1024


def yaml_error(name: str, error: yaml.YAMLError, stream: BinaryIO | None = None) -> Problem:
    """A parser error as a problem at its line, in at most about 200 characters (an alias
    name is quoted by the parser, whatever its length). ``stream``, the file, is looked at
    again when the parser could not find a key's ``:``: on a line too long for a key, the
    parser's words would send the reader looking for the wrong thing."""
    mark = getattr(error, "problem_mark", None)
    if mark is None:
        what = str(getattr(error, "reason", "") or error).splitlines()[0]
        return Problem(name, None, None, f"YAML syntax error: {what[:200]}")
    context = getattr(error, "context", None)
    what = " ".join(part for part in (context, getattr(error, "problem", None)) if part)
    context_mark = getattr(error, "context_mark", None)
    marks = {mark.line} | ({context_mark.line} if context_mark is not None else set())
    long = None if stream is None else _long_line(stream, marks)
    if long is not None:
        line, length = long
        what = (
            f"line {line + 1} is {length:,} characters long, and a YAML key can be at most "
            f"{MAX_KEY_CHARS:,}: {what}"
        )
    if len(what) > 200:
        what = what[:200] + "..."
    return Problem(name, mark.line + 1, None, f"YAML syntax error: {what}")


def _long_line(stream: BinaryIO, lines: set[int]) -> tuple[int, int] | None:
    """The first of ``lines`` (0-based) longer than a key may be, and its length."""
    stream.seek(0)
    last = max(lines)
    for number, raw in enumerate(stream):
        if number in lines and len(raw) > MAX_KEY_CHARS:
            return number, len(raw.decode("utf-8", "replace").rstrip("\r\n"))
        if number >= last:
            break
    return None
