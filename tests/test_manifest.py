"""Tests for batcher.manifest: both formats, every problem located, two passes."""

from __future__ import annotations

import csv
import io
import signal
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batcher import manifest as manifest_module
from batcher.entry import KNOWN_COMMANDS, CommentData, Entry
from batcher.errors import ManifestError, Problem, UsageError
from batcher.manifest import CSV_COLUMNS, Manifests, ManifestSummary

EXAMPLES = Path(__file__).resolve().parent.parent / "manifests"
JOB_A = "f5ff24e3ecb1bf8fd534de6c48c261bf"
JOB_B = "0163a752b5493159d80902402d1f09be"


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


def load(paths: list[str], **options: object) -> tuple[ManifestSummary, list[Entry]]:
    with Manifests(paths, **options) as manifests:  # type: ignore[arg-type]
        summary = manifests.check()
        return summary, list(manifests.entries())


def problems(paths: list[str], **options: object) -> list[Problem]:
    with Manifests(paths, **options) as manifests, pytest.raises(ManifestError) as caught:  # type: ignore[arg-type]
        manifests.check()
    return caught.value.problems


def where(found: list[Problem]) -> list[tuple[int | None, str | None]]:
    return [(problem.line, problem.field) for problem in found]


# -- the shipped examples ----------------------------------------------------------------------


def test_example_manifests_are_valid_and_realistic() -> None:
    paths = [str(EXAMPLES / "example.yaml"), str(EXAMPLES / "example.csv")]
    summary, entries = load(paths)
    assert summary.total == len(entries) == 18
    assert summary.files == tuple(paths)
    assert sum(summary.commands.values()) == 18
    assert len(summary.commands) >= 5
    # One job with two commands in order: confirm the upload, then submit for review.
    ordered = [entry.command for entry in entries if entry.job_id == JOB_A]
    assert ordered == ["CONFIRM_MULTIPART_UPLOADED", "SUBMITVERIFYING"]
    reupload = next(entry for entry in entries if entry.job_id == JOB_B)
    assert reupload.comment_data == CommentData(
        comment_title="训练视频已重新上传",
        comment_message="上一版视频光线不足，已按要求重新拍摄并上传。",
        attachment_name=("训练视频_v2.mp4", "拍摄说明.pdf"),
    )
    assert all(entry.command in KNOWN_COMMANDS for entry in entries)
    csv_entries = [entry for entry in entries if entry.source.startswith(paths[1])]
    assert any(
        entry.comment_data and len(entry.comment_data.attachment_name or ()) == 2
        for entry in csv_entries
    )


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
        "  command_message: NO\n"
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
    assert entries[0].command_message == "NO"
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
    "project_id in an entry": (
        "jobs:\n  - job_id: a\n    command: CONFIRM_ACCEPT\n    project_id: p\n",
        [(4, "project_id")],
        "top of the manifest",
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


# -- CSV: good ---------------------------------------------------------------------------------


def test_csv_with_bom_crlf_attachments_multiline_and_blank_rows(tmp_path: Path) -> None:
    text = (
        "\ufeffjob_id,command,comment_title,comment_message,attachment_name,app_user_id\r\n"
        "a1,CONFIRM_ACCEPT,标题,,x.pdf; y.mp4;,\r\n"
        "\r\n"
        ",,,,,\r\n"
        'a2,SUBMITVERIFYING,,"第一行\r\n第二行",,u-1\r\n'
        "a3,CONFIRM_REJECT,,,,\r\n"
    )
    path = write(tmp_path, "rows.csv", text.encode("utf-8"))
    summary, entries = load([path])
    assert summary.total == 3
    first, second, third = entries
    assert first.comment_data == CommentData(
        comment_title="标题", attachment_name=("x.pdf", "y.mp4")
    )
    assert first.app_user_id is None  # an empty cell is an absent field
    assert first.source == f"{path}:2"
    assert second.comment_data == CommentData(comment_message="第一行\r\n第二行")
    assert second.source == f"{path}:5"  # a multi-line record is reported where it starts
    assert third.source == f"{path}:7"
    assert third.comment_data is None


def test_csv_default_command_for_missing_column_and_empty_cells(tmp_path: Path) -> None:
    no_column = write(tmp_path, "ids.csv", "job_id\nj1\nj2\n")
    some_empty = write(tmp_path, "mixed.csv", "job_id,command\nj3,\nj4,CONFIRM_ACCEPT\n")
    summary, entries = load([no_column, some_empty], default_command="SUBMITVERIFYING")
    assert [entry.key for entry in entries] == [
        ("j1", "SUBMITVERIFYING"),
        ("j2", "SUBMITVERIFYING"),
        ("j3", "SUBMITVERIFYING"),
        ("j4", "CONFIRM_ACCEPT"),
    ]
    assert summary.commands == {"SUBMITVERIFYING": 3, "CONFIRM_ACCEPT": 1}


def test_header_only_csv_is_valid(tmp_path: Path) -> None:
    summary, entries = load([write(tmp_path, "h.csv", "job_id,command\n")])
    assert (summary.total, entries) == (0, [])


# -- CSV: bad ----------------------------------------------------------------------------------

CSV_CASES = {
    "unknown column": (
        "job_id,command,comand_message\na,CONFIRM_ACCEPT,\n",
        [(1, "comand_message")],
        "did you mean 'command_message'?",
    ),
    "project_id column": (
        "job_id,command,project_id\na,CONFIRM_ACCEPT,p\n",
        [(1, "project_id")],
        "unknown column",
    ),
    "missing command column": ("job_id\na\n", [(1, "command")], "--command"),
    "missing job_id column, rows not checked": (
        "jobid,command\na,XX\n",
        [(1, "jobid"), (1, "job_id")],
        "did you mean 'job_id'?",
    ),
    "duplicated column": (
        "job_id,command,job_id\na,CONFIRM_ACCEPT,b\n",
        [(1, "job_id")],
        "appears twice",
    ),
    "too many cells": (
        "job_id,command\na,CONFIRM_ACCEPT,extra\n",
        [(2, None)],
        "3 cells but the header has 2",
    ),
    "too few cells": (
        "job_id,command,command_message\na,CONFIRM_ACCEPT\n",
        [(2, None)],
        "2 cells but the header has 3",
    ),
    "empty file": ("", [(1, None)], "empty"),
    "bad job_id": ("job_id,command\na b,CONFIRM_ACCEPT\n", [(2, "job_id")], "1-64 characters"),
    "near-miss command": (
        "job_id,command\na,CONFIRM_ACEPT\n",
        [(2, "command")],
        "did you mean 'CONFIRM_ACCEPT'?",
    ),
    "attachment item too": (
        "job_id,command,app_user_id\na,CONFIRM_ACCEPT,张三\n",
        [(2, "app_user_id")],
        "Chinese",
    ),
    "bad quoting": (
        'job_id,command\n"a"b,CONFIRM_ACCEPT\nc,CONFIRM_ACCEPT\n',
        [(2, None)],
        "unreadable CSV",
    ),
    "unterminated quote": (
        'job_id,command\na,"CONFIRM_ACCEPT\nb,CONFIRM_ACCEPT\n',
        [(2, None)],
        "unreadable CSV",
    ),
}


@pytest.mark.parametrize("text, expected, message", CSV_CASES.values(), ids=CSV_CASES.keys())
def test_csv_problem_is_located(
    tmp_path: Path, text: str, expected: list[tuple[int, str | None]], message: str
) -> None:
    path = write(tmp_path, "bad.csv", text.encode())
    found = problems([path])
    assert where(found) == expected
    assert all(problem.file == path for problem in found)
    assert message in found[0].message


def test_csv_non_utf8_byte_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "gbk.csv", b"job_id,command\na,CONFIRM_ACCEPT\nb,x\n" + "c,中文\n".encode("gbk")
    )
    found = problems([path])
    assert where(found) == [(3, "command"), (4, None)]
    assert "UTF-8" in found[1].message


def test_utf16_csv_is_refused_plainly(tmp_path: Path) -> None:
    path = write(tmp_path, "u16.csv", "job_id,command\na,CONFIRM_ACCEPT\n".encode("utf-16"))
    (problem,) = problems([path])
    assert (problem.line, problem.field) == (1, None)
    assert "UTF-16" in problem.message


# -- across entries and files ------------------------------------------------------------------


def test_all_problems_are_reported_at_once_in_file_order(tmp_path: Path) -> None:
    first = write(
        tmp_path, "a.csv", "job_id,command\nok,CONFIRM_ACCEPT\nb/1,CONFIRM_ACCEPT\nx,NOPE_\n"
    )
    second = write(
        tmp_path, "b.yaml", "jobs:\n  - job_id: ok\n    command: CONFIRM_ACCEPT\n  - 7\n"
    )
    found = problems([first, second])
    assert [(Path(p.file).name, p.line, p.field) for p in found] == [
        ("a.csv", 3, "job_id"),
        ("a.csv", 4, "command"),
        ("b.yaml", 2, "command"),  # (ok, CONFIRM_ACCEPT) again: a duplicate
        ("b.yaml", 4, None),
    ]
    assert f"{first}:2" in found[2].message


def test_problems_are_capped(tmp_path: Path) -> None:
    rows = "".join(f"bad id {n},CONFIRM_ACCEPT\n" for n in range(300))
    path = write(tmp_path, "many.csv", "job_id,command\n" + rows)
    with Manifests([path], max_problems=10) as manifests, pytest.raises(ManifestError) as caught:
        manifests.check()
    assert caught.value.truncated
    assert [problem.line for problem in caught.value.problems] == list(range(2, 12))


def test_exactly_the_cap_is_not_truncated(tmp_path: Path) -> None:
    rows = "".join(f"bad id {n},CONFIRM_ACCEPT\n" for n in range(10))
    path = write(tmp_path, "ten.csv", "job_id,command\n" + rows)
    with Manifests([path], max_problems=10) as manifests, pytest.raises(ManifestError) as caught:
        manifests.check()
    assert not caught.value.truncated
    assert len(caught.value.problems) == 10


def test_duplicates_across_files_name_the_first_location(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "one.yaml",
        "jobs:\n"
        "  - {job_id: j1, command: CONFIRM_ACCEPT}\n"
        "  - {job_id: j1, command: CONFIRM_REJECT}\n",
    )
    second = write(
        tmp_path,
        "two.csv",
        "job_id,command\nj2,CONFIRM_ACCEPT\nj1,CONFIRM_REJECT\nj2,CONFIRM_ACCEPT\n",
    )
    found = problems([first, second])
    assert [(p.file, p.line, p.field) for p in found] == [
        (second, 3, "command"),
        (second, 4, "command"),
    ]
    assert f"{first}:3" in found[0].message
    assert f"{second}:2" in found[1].message
    assert "'j1'" in found[0].message and "CONFIRM_REJECT" in found[0].message


def test_hash_collisions_are_not_reported_as_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every key hashes alike: only the real duplicate may be reported, against its own first.
    monkeypatch.setattr(manifest_module, "_key_hash", lambda entry: 42)
    path = write(
        tmp_path,
        "c.csv",
        "job_id,command\na,CONFIRM_ACCEPT\nb,CONFIRM_ACCEPT\nb,CONFIRM_REJECT\nb,CONFIRM_ACCEPT\nc,CONFIRM_ACCEPT\n",
    )
    (problem,) = problems([path])
    assert (problem.line, problem.field) == (5, "command")
    assert f"{path}:3" in problem.message


def test_duplicates_on_one_yaml_line_are_found(tmp_path: Path) -> None:
    # Two entries of a flow list share a line: they must still be told apart.
    path = write(
        tmp_path,
        "70.yaml",
        "jobs: [{job_id: ok1, command: CONFIRM_MULTIPART_UPLOADED}, "
        "{job_id: ok1, command: CONFIRM_MULTIPART_UPLOADED}]\n",
    )
    (problem,) = problems([path])
    assert (problem.file, problem.line, problem.field) == (path, 1, "command")
    assert "duplicate entry: job 'ok1'" in problem.message
    assert f"already has command 'CONFIRM_MULTIPART_UPLOADED' at {path}:1 " in problem.message


def test_duplicate_through_an_alias_is_found(tmp_path: Path) -> None:
    # An alias is the very same node: same line, same everything.
    path = write(
        tmp_path,
        "alias.yaml",
        "jobs:\n  - &e {job_id: ok1, command: SUBMITVERIFYING}\n  - {job_id: ok2, "
        "command: SUBMITVERIFYING}\n  - *e\n",
    )
    (problem,) = problems([path])
    assert (problem.line, problem.field) == (2, "command")
    assert f"'SUBMITVERIFYING' at {path}:2 " in problem.message


def test_distinct_jobs_are_counted(tmp_path: Path) -> None:
    path = write(
        tmp_path, "j.csv", "job_id,command\na,CONFIRM_ACCEPT\na,SUBMITVERIFYING\nb,CONFIRM_ACCEPT\n"
    )
    summary, _ = load([path])
    assert (summary.total, summary.jobs) == (3, 2)


# -- standard input and files ------------------------------------------------------------------


def test_stdin_is_csv_and_read_twice() -> None:
    stdin = io.BytesIO("\ufeffjob_id,command\nj1,CONFIRM_ACCEPT\nj2,SUBMITVERIFYING\n".encode())
    summary, entries = load(["-"], stdin=stdin)
    assert summary.files == ("<stdin>",)
    assert [entry.source for entry in entries] == ["<stdin>:2", "<stdin>:3"]
    assert [entry.job_id for entry in entries] == ["j1", "j2"]


def test_stdin_problems_name_stdin() -> None:
    stdin = io.BytesIO(b"job_id,command\nj 1,CONFIRM_ACCEPT\n")
    (problem,) = problems(["-"], stdin=stdin)
    assert (
        str(problem)
        == "<stdin>:2: job_id: must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' (got 'j 1')"
    )


def test_stdin_only_once() -> None:
    with pytest.raises(UsageError, match="only once"):
        Manifests(["-", "-"], stdin=io.BytesIO())


def test_missing_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match=r"cannot read manifest .*nope\.yaml"):
        Manifests([missing]).__enter__()


def test_unknown_extension_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "jobs.txt", "job_id,command\n")
    with pytest.raises(UsageError, match="cannot tell its format"):
        Manifests([path]).__enter__()


def test_same_file_twice_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "job_id,command\n")
    with pytest.raises(UsageError, match="given twice"):
        Manifests([path, str(tmp_path / "." / "a.csv")]).__enter__()


def test_bad_default_command_and_project_id_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="did you mean 'SUBMITVERIFYING'"):
        Manifests(["-"], default_command="SUBMITVERIFYNG")
    with pytest.raises(UsageError, match="project id"):
        Manifests(["-"], project_id="a/b")


def test_entries_check_first(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "job_id,command\nok,CONFIRM_ACCEPT\nbad id,CONFIRM_ACCEPT\n")
    with Manifests([path]) as manifests, pytest.raises(ManifestError):
        next(manifests.entries())


def test_needs_the_context_manager(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "job_id,command\n")
    with pytest.raises(RuntimeError, match="context manager"):
        Manifests([path]).check()


def test_entries_stream_lazily(tmp_path: Path) -> None:
    rows = "".join(f"j{n},CONFIRM_ACCEPT\n" for n in range(1000))
    path = write(tmp_path, "big.csv", "job_id,command\n" + rows)
    with Manifests([path]) as manifests:
        manifests.check()
        stream = manifests.entries()
        assert next(stream).job_id == "j0"
        assert next(stream).job_id == "j1"


# -- round trips (property tests) --------------------------------------------------------------


def _text(exclude: str = "") -> st.SearchStrategy[str]:
    # Commas, quotes and line breaks included: the CSV writer quotes them. Leading and
    # trailing blanks are excluded because cells are stripped.
    alphabet = st.characters(
        categories=["L", "N", "P", "S", "Zs"], include_characters="\n", exclude_characters=exclude
    )
    return st.text(alphabet, min_size=1, max_size=30).filter(lambda text: text == text.strip())


_TEXT = _text()
_NAME = _text(exclude=";")  # attachment names: ';' separates them in CSV


_ENTRIES = st.lists(
    st.builds(
        Entry,
        job_id=st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
        command=st.sampled_from(KNOWN_COMMANDS),
        command_message=st.none() | _TEXT,
        operation_reason=st.none() | _TEXT,
        comment_data=st.none()
        | st.builds(
            CommentData,
            comment_title=_TEXT,
            comment_message=st.none() | _TEXT,
            attachment_name=st.none() | st.lists(_NAME, min_size=1, max_size=3).map(tuple),
        ),
        app_user_id=st.none() | st.from_regex(r"\A[\x21-\x7e]{1,20}\Z"),
    ),
    max_size=8,
    unique_by=lambda entry: entry.key,
)


def _fields(entry: Entry) -> dict[str, object]:
    return entry.model_dump(exclude={"source", "project_id"})


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=_ENTRIES)
def test_any_valid_csv_round_trips(tmp_path: Path, entries: list[Entry]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        comment = entry.comment_data or CommentData()
        writer.writerow(
            [
                entry.job_id,
                entry.command,
                entry.command_message or "",
                entry.operation_reason or "",
                comment.comment_title or "",
                comment.comment_message or "",
                ";".join(comment.attachment_name or ()),
                entry.app_user_id or "",
            ]
        )
    path = write(tmp_path, "round.csv", buffer.getvalue().encode())
    _, read = load([path])
    assert [_fields(entry) for entry in read] == [_fields(entry) for entry in entries]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=_ENTRIES)
def test_any_valid_yaml_round_trips(tmp_path: Path, entries: list[Entry]) -> None:
    jobs = [
        entry.model_dump(exclude={"source", "project_id"}, exclude_none=True) for entry in entries
    ]
    for job in jobs:
        if "comment_data" in job and "attachment_name" in job["comment_data"]:
            job["comment_data"]["attachment_name"] = list(job["comment_data"]["attachment_name"])
    text = yaml.safe_dump({"jobs": jobs}, allow_unicode=True)
    path = write(tmp_path, "round.yaml", text.encode())
    _, read = load([path])
    assert [_fields(entry) for entry in read] == [_fields(entry) for entry in entries]


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
    monkeypatch.setattr(manifest_module, "_FILE_NODES_BASE", 0)
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
        "- &a {job_id: j1, command: CONFIRM_ACCEPT, operation_reason: ra, command_message: ma}\n"
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
        ("j1", "CONFIRM_ACCEPT", "ra", "ma"),
        ("j2", "CONFIRM_REJECT", "rb", None),
        ("j3", "CONFIRM_ACCEPT", "ra", "ma"),
        ("j4", "CONFIRM_REJECT", "own", "ma"),
        ("j5", "CONFIRM_REJECT", "rb", None),
        ("j6", "SUBMITVERIFYING", "rb", "ma"),
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
    monkeypatch.setattr(manifest_module, "_Loader", yaml.SafeLoader)
    nested = "[" * 10_000 + "]" * 10_000
    path = write(tmp_path, "deep.yaml", f"jobs:\n  - job_id: {nested}\n")
    assert problems([path]) == [Problem(path, None, None, "nesting too deep for the YAML parser")]
