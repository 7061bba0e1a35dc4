"""Manifests as a whole: the examples, problems across entries and files, stdin."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from manifest_helpers import EXAMPLES, JOB_A, JOB_B, load, problems, write

from batcher import read as manifest_module
from batcher.entry import KNOWN_COMMANDS, CommentData
from batcher.errors import ManifestError, UsageError
from batcher.read import Manifests

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
    monkeypatch.setattr(manifest_module, "key_digest", lambda job_id, command: 42)
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
