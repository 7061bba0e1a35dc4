"""Hostile YAML: alias bombs, recursive aliases, merge keys and deep nesting."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from manifest_helpers import load, problems, write

from batcher.errors import Problem
from batcher.read import _yaml_events, _yaml_safe

# -- hostile YAML: aliases, merge keys, nesting ------------------------------------------------


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (rather than hang the suite) if the block takes far longer than it should."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def laughs(indent: str, key: str = "a", flow: str = "[x, x, x, x, x, x, x, x, x, x]") -> str:
    """Nine lines naming 10**9 values: each anchor lists the one before ten times."""
    lines = [f"{indent}{key}0: &a0 {flow}"]
    for level in range(1, 9):
        lines.append(f"{indent}{key}{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def merge_laughs(indent: str, key: str = "m") -> str:
    """The same through merge keys: each mapping merges the one before ten times."""
    lines = [f"{indent}{key}0: &m0 {{k0: x, k1: x, k2: x, k3: x, k4: x}}"]
    for level in range(1, 9):
        lines.append(
            f"{indent}{key}{level}: &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * 10)}]}}"
        )
    return "\n".join(lines) + "\n"


TOO_LARGE = "too large: YAML alias expansion makes more than 10,000 values"

BOMBS = {
    # The whole manifest is still checked: the bad entry after the bomb is reported too.
    "in an entry": (
        "jobs:\n  - job_id: j1\n    command: SUBMITVERIFYING\n    comment_data:\n"
        + laughs("      ", "comment_title")
        + "  - {job_id: j2, command: SUBMITVERIFYING, operation_reason: *a8}\n"
        "  - {job_id: j3, command: SUBMITVERIFYING}\n"
        "  - {job_id: j/4, command: SUBMITVERIFYING}\n",
        [(2, None, TOO_LARGE), (14, None, TOO_LARGE), (16, "job_id", "1-64 characters")],
    ),
    "in defaults": (
        "defaults:\n  comment_data:\n" + laughs("    ", "comment_title") + "jobs: []\n",
        [(1, "defaults", TOO_LARGE)],
    ),
    # Unknown top-level keys are reported by name; their values are never walked.
    "under unknown top-level keys": (
        laughs("") + "jobs:\n  - {job_id: j1, command: SUBMITVERIFYING}\n",
        [(line, f"a{line - 1}", "unknown top-level key") for line in range(1, 10)],
    ),
    "merged into the top level": (
        "defaults:\n" + merge_laughs("  ") + "<<: *m8\njobs: []\n",
        [(1, None, TOO_LARGE)],
    ),
    "merged into entries": (
        "- {job_id: j0, command: SUBMITVERIFYING, comment_data: {x: &m0 {k: x}}}\n"
        + "".join(
            f"- &m{level} {{<<: [{', '.join([f'*m{level - 1}'] * 10)}], job_id: j{level}, "
            "command: SUBMITVERIFYING}\n"
            for level in range(1, 9)
        ),
        # Entries j1-j3 expand to under 10,000 nodes and are checked as usual (reporting the
        # merged-in key k once, where it is written).
        [(1, "comment_data.x", "unknown field 'x'"), (1, "k", "unknown field 'k'")]
        + [(level + 1, None, TOO_LARGE) for level in range(4, 9)],
    ),
}


@pytest.mark.parametrize("text, expected", BOMBS.values(), ids=BOMBS.keys())
def test_alias_bombs_are_refused_promptly(
    tmp_path: Path, text: str, expected: list[tuple[int, str | None, str]]
) -> None:
    path = write(tmp_path, "bomb.yaml", text)
    with deadline(30):  # takes milliseconds; without the node limits, hours and all memory
        found = problems([path])
    assert [(p.line, p.field) for p in found] == [(line, field) for line, field, _ in expected]
    for problem, (_, _, message) in zip(found, expected, strict=True):
        assert message in problem.message


def test_file_budget_stops_many_aliased_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each entry names 500 values through one alias: under the entry limit, but a file of
    # them must not take long either. The next file is still checked.
    monkeypatch.setattr(_yaml_safe, "_FILE_NODES_BASE", 0)
    names = ", ".join(["x.pdf"] * 500)
    entries = "".join(
        f"  - {{job_id: j{number}, command: SUBMITVERIFYING, "
        "comment_data: {attachment_name: *names}}\n"
        for number in range(100)
    )
    first = write(
        tmp_path,
        "many.yaml",
        f"defaults:\n  comment_data:\n    attachment_name: &names [{names}]\njobs:\n{entries}",
    )
    second = write(tmp_path, "next.csv", "job_id,command\nj/1,SUBMITVERIFYING\n")
    found = problems([first, second])
    assert [(p.file, p.field) for p in found] == [(first, None), (second, "job_id")]
    assert "the rest of the file was not checked" in found[0].message
    assert 5 < (found[0].line or 0) < 104


def test_merge_keys_follow_the_yaml_spec_without_changing_anchors(tmp_path: Path) -> None:
    # https://yaml.org/type/merge.html: a key of the mapping itself wins; of the mappings
    # listed, the earlier wins. (PyYAML 6.0.4 makes the later one win: yaml/pyyaml#953.)
    text = (
        "- &a {job_id: j1, command: CONFIRM_ACCEPT, operation_reason: ra,"
        " command_message: UPLOAD_VIDEO}\n"
        "- &b {job_id: j2, command: CONFIRM_REJECT, operation_reason: rb}\n"
        "- {<<: [*a, *b], job_id: j3}\n"
        "- {<<: [*b, *a], job_id: j4, operation_reason: own}\n"
        "- &c {<<: *b, job_id: j5}\n"
        "- {<<: [*c, *a], job_id: j6, command: SUBMITVERIFYING}\n"
    )
    path = write(tmp_path, "merge.yaml", text)
    _, entries = load([path])
    fields = ("job_id", "command", "operation_reason", "command_message")
    assert [tuple(getattr(entry, name) for name in fields) for entry in entries] == [
        ("j1", "CONFIRM_ACCEPT", "ra", "UPLOAD_VIDEO"),
        ("j2", "CONFIRM_REJECT", "rb", None),
        ("j3", "CONFIRM_ACCEPT", "ra", "UPLOAD_VIDEO"),
        ("j4", "CONFIRM_REJECT", "own", "UPLOAD_VIDEO"),
        ("j5", "CONFIRM_REJECT", "rb", None),
        ("j6", "SUBMITVERIFYING", "rb", "UPLOAD_VIDEO"),
    ]


def test_deep_nesting_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    # libyaml stops at 1000 levels; 900 used to overflow the stack walking the values.
    nested = "{a: " * 900 + "x" + "}" * 900
    text = f"jobs:\n  - job_id: {nested}\n    command: SUBMITVERIFYING\n"
    path = write(tmp_path, "deep.yaml", text)
    found = problems([path])
    assert found[0].line == 2
    assert found[0].field is not None and found[0].field.startswith("job_id.a.a")
    assert "nesting too deep (more than 32 levels)" in found[0].message
    assert found[1:] == [Problem(path, 2, "job_id", "must be text, not a mapping")]


def test_parser_recursion_is_a_problem_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without libyaml, PyYAML's own parser recurses once per level and has no limit.
    monkeypatch.setattr(_yaml_events, "_Loader", yaml.SafeLoader)
    nested = "[" * 10_000 + "]" * 10_000
    path = write(tmp_path, "deep.yaml", f"jobs:\n  - job_id: {nested}\n")
    assert problems([path]) == [Problem(path, None, None, "nesting too deep for the YAML parser")]
