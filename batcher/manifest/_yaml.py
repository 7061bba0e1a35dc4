"""YAML manifests: the top-level settings (``project_id``, ``app_user_id``, ``defaults``) and
the entries under ``jobs:``, each with the line it was written on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..entry import ENTRY_FIELDS, PATH_ID_RE, check_app_user_id
from ..errors import Problem
from ._csv import COMMENT_FIELDS
from ._problems import ID_CHARS, Path, describe_kind, short, unknown
from ._validate import Record, Validator
from ._yaml_safe import (
    NULL_TAG,
    BadMerge,
    Budget,
    TooLarge,
    Tree,
    compose,
    decode_all,
    node_line,
    too_large,
    yaml_problem,
)

_TOP_LEVEL_KEYS: tuple[str, ...] = ("jobs", "project_id", "app_user_id", "defaults")


_ENTRY_KEYS: tuple[str, ...] = tuple(sorted(ENTRY_FIELDS))


@dataclass(slots=True)
class _Top:
    """A YAML manifest's settings for all of its entries."""

    project_id: str | None = None
    app_user_id: str | None = None
    app_user_id_line: int = 0
    defaults: dict[str, Any] = field(default_factory=dict)
    default_lines: dict[Path, int] = field(default_factory=dict)


def yaml_records(name: str, raw: bytes, validator: Validator) -> Iterator[Record]:
    text, problem = decode_all(name, raw)
    if problem is not None:
        yield Record(problem.line or 1, None, [problem])
        return
    try:
        root = compose(text)
    except yaml.YAMLError as error:
        problem = yaml_problem(name, error, text)
        yield Record(problem.line or 1, None, [problem])
        return
    except RecursionError:  # the pure-Python parser recurses once per nesting level
        message = "nesting too deep for the YAML parser"
        yield Record(1, None, [Problem(name, None, None, message)])
        return
    if root is None:
        yield Record(1, None, [Problem(name, 1, None, "the file is empty")])
        return
    budget = Budget(text)
    line = node_line(root)
    try:
        top, jobs, problems = _yaml_top(name, root, budget)
        if problems:
            yield Record(line, None, problems)
        for node in jobs:
            line = node_line(node)
            yield _yaml_entry(name, node, top, validator, budget)
    except TooLarge:  # the whole file's budget: checking on would only take long
        yield Record(line, None, [Problem(name, line, None, too_large(budget))])


def _yaml_top(name: str, root: Node, budget: Budget) -> tuple[_Top, list[Node], list[Problem]]:
    """Split a manifest into its settings and its entry nodes. Only the settings' values
    are walked (unknown keys are reported by name, their values never looked at)."""
    top = _Top()
    if isinstance(root, SequenceNode):
        return top, list(root.value), []
    if not isinstance(root, MappingNode):
        message = "a manifest must be a mapping with jobs: [...] or a list of entries"
        return top, [], [Problem(name, node_line(root), None, message)]
    tree = Tree(name, budget)
    jobs_node: Node | None = None
    seen: set[str] = set()
    try:
        pairs = tree.pairs(root, ())
    except BadMerge as error:
        return top, [], [error.problem]
    except TooLarge as error:
        if error.whole_file:
            raise
        return top, [], [Problem(name, node_line(root), None, too_large())]
    for key_node, value_node in pairs:
        at = node_line(key_node)
        if not isinstance(key_node, ScalarNode):
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
    jobs: list[Node] = []
    if jobs_node is None:
        message = "the manifest has no jobs: list"
        tree.problems.append(Problem(name, node_line(root), "jobs", message))
    elif isinstance(jobs_node, SequenceNode):
        jobs = list(jobs_node.value)
    elif not (isinstance(jobs_node, ScalarNode) and jobs_node.tag == NULL_TAG):
        message = "must be a list of entries (each one a mapping with job_id and command)"
        tree.problems.append(Problem(name, node_line(jobs_node), "jobs", message))
    return top, jobs, tree.problems


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
        allowed = tuple(field for field in _ENTRY_KEYS if field != "job_id")
        tree.unknown_keys(value, (key,), allowed)
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
            message = f"must be 1-64 characters of {ID_CHARS} (got {short(value)})"
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


def _yaml_entry(name: str, node: Node, top: _Top, validator: Validator, budget: Budget) -> Record:
    line = node_line(node)
    if not isinstance(node, MappingNode):
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
    )
    if tree.problems:
        record.problems[:0] = tree.problems
        record.entry = None
    return record
