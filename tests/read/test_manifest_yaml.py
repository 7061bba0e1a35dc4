"""YAML manifests: settings, defaults and entries, and every problem located."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_helpers import load, problems, where, write

from batcher.entry import CommentData
from batcher.read import ManifestSummary

# -- YAML: good --------------------------------------------------------------------------------


def test_yaml_defaults_app_user_id_and_project_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "jobs.yaml",
        """
        project_id: proj_1
        app_user_id: team-a
        defaults:
          command: SUBMITVERIFYING
          operation_reason: 默认原因
          comment_data: {comment_title: 默认标题}
        jobs:
          - job_id: job1
          - job_id: job2
            command: CONFIRM_ACCEPT
            operation_reason: own reason
            app_user_id: team-b
            comment_data:
              comment_message: 自己的
          - job_id: job3
            operation_reason: null
        """,
    )
    summary, entries = load([path])
    assert summary == ManifestSummary(
        files=(path,), total=3, commands={"SUBMITVERIFYING": 2, "CONFIRM_ACCEPT": 1}, jobs=3
    )
    first, second, third = entries
    assert first.command == "SUBMITVERIFYING"
    assert first.operation_reason == "默认原因"
    assert first.app_user_id == "team-a"
    assert first.project_id == "proj_1"
    assert first.comment_data == CommentData(comment_title="默认标题")
    assert first.source == f"{path}:8"
    assert (second.command, second.operation_reason, second.app_user_id) == (
        "CONFIRM_ACCEPT",
        "own reason",
        "team-b",
    )
    # An entry's comment_data replaces the default one as a whole.
    assert second.comment_data == CommentData(comment_message="自己的")
    assert second.source == f"{path}:9"
    # An explicit null opts out of a default.
    assert third.operation_reason is None


def test_yaml_bare_list_scalars_kept_as_written_and_merge_keys(tmp_path: Path) -> None:
    text = (
        "- job_id: 0123\n"
        "  command: SUBMITVERIFYING\n"
        "  operation_reason: NO\n"
        "- &base\n"
        "  job_id: 1e3\n"
        "  command: CONFIRM_ACCEPT\n"
        "- <<: *base\n"
        "  command: CONFIRM_REJECT\n"
    )
    path = write(tmp_path, "list.yml", text)
    _, entries = load([path])
    assert [entry.key for entry in entries] == [
        ("0123", "SUBMITVERIFYING"),
        ("1e3", "CONFIRM_ACCEPT"),
        ("1e3", "CONFIRM_REJECT"),
    ]
    # YAML 1.1 would have made this False; every field is text, so it stays as written.
    assert entries[0].operation_reason == "NO"
    assert entries[0].project_id is None


def test_project_id_option_is_the_fallback(tmp_path: Path) -> None:
    own = write(
        tmp_path, "own.yaml", "project_id: mine\njobs: [{job_id: a, command: CONFIRM_ACCEPT}]"
    )
    bare = write(tmp_path, "bare.csv", "job_id,command\nb,CONFIRM_ACCEPT\n")
    _, entries = load([own, bare], project_id="flag")
    assert [entry.project_id for entry in entries] == ["mine", "flag"]


def test_default_command_applies_after_yaml_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.yaml",
        """
        jobs:
          - {job_id: a}
          - {job_id: b, command: CONFIRM_ACCEPT}
        """,
    )
    _, entries = load([path], default_command="DELETE_JOB_VIDEO")
    assert [entry.command for entry in entries] == ["DELETE_JOB_VIDEO", "CONFIRM_ACCEPT"]


def test_zero_entries_is_valid(tmp_path: Path) -> None:
    path = write(tmp_path, "none.yaml", "jobs: []\n")
    summary, entries = load([path])
    assert (summary.total, entries) == (0, [])


# -- YAML: bad ---------------------------------------------------------------------------------

YAML_CASES = {
    "syntax error": ("jobs:\n  - job_id: [a\n", [(3, None)], "YAML syntax error"),
    "empty file": ("", [(1, None)], "empty"),
    "only comments": ("# nothing\n", [(1, None)], "empty"),
    "scalar root": ("hello\n", [(1, None)], "mapping with jobs"),
    "jobs not a list": ("jobs: {job_id: a}\n", [(1, "jobs")], "must be a list"),
    "no jobs": ("project_id: p\n", [(1, "jobs")], "no jobs"),
    "unknown top-level": (
        "job: []\njobs: []\n",
        [(1, "job")],
        "did you mean 'jobs'?",
    ),
    "entry not a mapping": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n  - just text\n",
        [(4, None)],
        "must be a mapping",
    ),
    "unknown entry field": (
        "jobs:\n  - job_id: a\n    comand: CONFIRM_ACCEPT\n",
        [(2, "command"), (3, "comand")],
        "did you mean 'command'?",
    ),
    "bad project_id in an entry": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    project_id: p q\n",
        [(4, "project_id")],
        "1-64 characters",
    ),
    "project_id in defaults": (
        "defaults: {project_id: p}\njobs: []\n",
        [(1, "defaults.project_id")],
        "top of the manifest, or on each entry",
    ),
    "source in an entry": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    source: x.yaml:1\n",
        [(4, "source")],
        "unknown field 'source'",
    ),
    "unknown comment field": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    comment_data:\n"
        "      comment_titel: x\n",
        [(5, "comment_data.comment_titel")],
        "did you mean 'comment_title'?",
    ),
    "list where text belongs": (
        "jobs:\n  - job_id: [a, b]\n    command: CONFIRM_ACCEPT\n",
        [(2, "job_id")],
        "must be text, not a list",
    ),
    "mapping in attachment list": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    comment_data:\n"
        "      attachment_name:\n        - ok.pdf\n        - {x: 1}\n",
        [(7, "comment_data.attachment_name[1]")],
        "must be text, not a mapping",
    ),
    "attachment not a list": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    comment_data:\n"
        "      attachment_name: one.pdf\n",
        [(5, "comment_data.attachment_name")],
        "list of file names",
    ),
    "comment_data not a mapping": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    comment_data: hi\n",
        [(4, "comment_data")],
        "must be a mapping",
    ),
    "bad job_id": (
        "jobs:\n  - job_id: a/b\n    command: CONFIRM_ACCEPT\n",
        [(2, "job_id")],
        "1-64 characters",
    ),
    "missing job_id": ("jobs:\n  - command: CONFIRM_ACCEPT\n", [(2, "job_id")], "is required"),
    "long command_message": (
        f"jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    command_message: {'M' * 65}\n",
        [(4, "command_message")],
        "at most 64",
    ),
    "empty command_message": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    command_message: ''\n",
        [(4, "command_message")],
        "must not be empty",
    ),
    "near-miss command": (
        "jobs:\n  - job_id: a\n    command: SUBMITVERIFY\n",
        [(3, "command")],
        "did you mean 'SUBMITVERIFYING'?",
    ),
    "lower-case command": (
        "jobs:\n  - job_id: a\n    command: confirm_accept\n",
        [(3, "command")],
        "did you mean 'CONFIRM_ACCEPT'?",
    ),
    "far-off command": (
        "jobs:\n  - job_id: a\n    command: XYZZY\n",
        [(3, "command")],
        "not a known command; the known ones are SUBMITVERIFYING",
    ),
    "repeated key": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    job_id: b\n",
        [(4, "job_id")],
        "appears twice",
    ),
    "bad project_id": ("project_id: a b\njobs: []\n", [(1, "project_id")], "1-64 characters"),
    "chinese app_user_id": (
        "app_user_id: 张三\njobs: []\n",
        [(1, "app_user_id")],
        "Chinese characters",
    ),
    "job_id in defaults": (
        "defaults: {job_id: a}\njobs: []\n",
        [(1, "defaults.job_id")],
        "unknown field 'job_id'",
    ),
    "bad default reported once at its own line": (
        "defaults:\n  operation_reason: [x]\njobs:\n"
        "  - {job_id: a, command: CONFIRM_ACCEPT}\n  - {job_id: b, command: CONFIRM_ACCEPT}\n",
        [(2, "defaults.operation_reason")],
        "must be text",
    ),
    "bad merge key": (
        "jobs:\n  - <<: 5\n    job_id: a\n",
        [(2, None)],
        "YAML syntax error",
    ),
    "control character": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    operation_reason: x\x07\n",
        [(4, None)],
        "YAML syntax error",
    ),
    "merge key list holds a scalar": (
        "jobs:\n  - {<<: [x], job_id: a, command: CONFIRM_ACCEPT}\n",
        [(2, None)],
        "expected a mapping for merging, but found scalar",
    ),
    "top-level merge key names a scalar": (
        "<<: 5\njobs: []\n",
        [(1, None)],
        "expected a mapping or list of mappings for merging",
    ),
    "recursive alias": (
        "jobs:\n  - &e {job_id: ok1, command: SUBMITVERIFYING, comment_data: *e}\n",
        [(2, "comment_data")],
        "recursive YAML alias",
    ),
    "recursive alias in a list": (
        "jobs:\n  - job_id: a\n    command: SUBMITVERIFYING\n    operation_reason: &r [x, *r]\n",
        [(4, "operation_reason[1]"), (4, "operation_reason")],
        "recursive YAML alias",
    ),
    "recursive merge key": (
        "jobs:\n  - &e {job_id: a, command: SUBMITVERIFYING, <<: *e}\n",
        [(2, None)],
        "recursive YAML alias: a merge key (<<) includes its own mapping",
    ),
    "python tag": (
        "jobs:\n  - !!python/object:os.system {job_id: a, command: SUBMITVERIFYING}\n",
        [(2, None)],
        "YAML tag '!!python/object:os.system' is not allowed",
    ),
    "local tag on a field": (
        "jobs:\n  - job_id: !x a\n    command: SUBMITVERIFYING\n",
        [(2, "job_id")],
        "YAML tag '!x' is not allowed",
    ),
}


@pytest.mark.parametrize("text, expected, message", YAML_CASES.values(), ids=YAML_CASES.keys())
def test_yaml_problem_is_located(
    tmp_path: Path, text: str, expected: list[tuple[int, str | None]], message: str
) -> None:
    path = write(tmp_path, "bad.yaml", text.encode())
    found = problems([path])
    assert where(found) == expected
    assert all(problem.file == path for problem in found)
    assert any(message in problem.message for problem in found)
    assert "https://" not in str(found[0])  # no raw pydantic dumps with URLs


def test_non_utf8_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "latin.yaml",
        "jobs:\n  - job_id: a\n    operation_reason: caf\xe9\n".encode("latin-1"),
    )
    (problem,) = problems([path])
    assert (problem.line, problem.field) == (3, None)
    assert "UTF-8" in problem.message
