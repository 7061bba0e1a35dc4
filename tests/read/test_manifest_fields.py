"""Entry fields: command_message checked like commands, per-entry project ids, and one
checker for manifests and hand-built entries alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_helpers import load, problems, where, write

from batcher.entry import KNOWN_COMMAND_MESSAGES, Entry, EntryError

# -- command_message -------------------------------------------------------------------------


def test_command_message_near_miss_in_yaml_entry_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.yaml",
        """
        defaults:
          command_message: upload_vidoe
        jobs:
          - {job_id: a, command: CONFIRM_MULTIPART_UPLOADED}
          - {job_id: b, command: CONFIRM_MULTIPART_UPLOADED}
          - job_id: c
            command: CONFIRM_MULTIPART_UPLOADED
            command_message: UPDATE_VIDO
        """,
    )
    found = problems([path])
    assert where(found) == [(2, "defaults.command_message"), (8, "command_message")]
    assert [problem.message for problem in found] == [
        "unknown command_message 'upload_vidoe'; did you mean 'UPLOAD_VIDEO'?",
        "unknown command_message 'UPDATE_VIDO'; did you mean 'UPDATE_VIDEO'?",
    ]


def test_far_off_command_message_lists_the_known_ones_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.csv",
        "job_id,command,command_message\n"
        "a,CONFIRM_ACCEPT,XYZZY\nb,CONFIRM_ACCEPT,PLUGH\nc,CONFIRM_ACCEPT,UPLOAD_VIDEO\n",
    )
    found = problems([path])
    assert where(found) == [(2, "command_message"), (3, "command_message")]
    assert found[0].message == (
        "'XYZZY' is not a known command_message; the known ones are "
        + ", ".join(KNOWN_COMMAND_MESSAGES)
    )
    assert found[1].message == "'PLUGH' is not a known command_message (see the list above)"


def test_every_known_command_message_is_accepted(tmp_path: Path) -> None:
    rows = "".join(
        f"j{n},CONFIRM_MULTIPART_UPLOADED,{message}\n"
        for n, message in enumerate(KNOWN_COMMAND_MESSAGES)
    )
    path = write(tmp_path, "m.csv", "job_id,command,command_message\n" + rows)
    _, entries = load([path])
    assert [entry.command_message for entry in entries] == list(KNOWN_COMMAND_MESSAGES)


# -- per-entry project ids -------------------------------------------------------------------


def test_yaml_entry_project_id_overrides_the_manifest_and_the_run(tmp_path: Path) -> None:
    own = write(
        tmp_path,
        "own.yaml",
        """
        project_id: top
        jobs:
          - {job_id: a, command: CONFIRM_ACCEPT}
          - {job_id: b, command: CONFIRM_ACCEPT, project_id: other_1}
          - {job_id: c, command: CONFIRM_ACCEPT, project_id: null}
        """,
    )
    bare = write(tmp_path, "bare.yaml", "- {job_id: d, command: CONFIRM_ACCEPT, project_id: p-2}\n")
    summary, entries = load([own, bare], project_id="flag")
    assert [entry.project_id for entry in entries] == ["top", "other_1", "top", "p-2"]
    assert summary.without_project_id is None


def test_csv_project_id_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.csv",
        "job_id,command,project_id\na,CONFIRM_ACCEPT,proj_a\nb,CONFIRM_ACCEPT,\n",
    )
    summary, entries = load([path])
    assert [entry.project_id for entry in entries] == ["proj_a", None]
    assert summary.without_project_id == f"{path}:3"
    _, with_flag = load([path], project_id="flag")
    assert [entry.project_id for entry in with_flag] == ["proj_a", "flag"]


def test_bad_project_ids_are_located(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        """
        jobs:
          - job_id: a
            command: CONFIRM_ACCEPT
            project_id: [x]
          - job_id: b
            command: CONFIRM_ACCEPT
            project_id: ''
          - job_id: c
            command: CONFIRM_ACCEPT
            project_id: "p\\n"
        """,
    )
    found = problems([path])
    assert where(found) == [(4, "project_id"), (7, "project_id"), (10, "project_id")]
    assert found[0].message == "must be text, not a list"
    assert "1-64 characters" in found[1].message and "1-64 characters" in found[2].message


def test_the_same_job_and_command_in_two_projects_is_a_duplicate(tmp_path: Path) -> None:
    # Reports and --resume know an entry by (job_id, command): two projects' entries with
    # the same key would be one report entry, so they are refused.
    path = write(
        tmp_path,
        "two.csv",
        "job_id,command,project_id\nj1,CONFIRM_ACCEPT,p1\nj1,CONFIRM_ACCEPT,p2\n",
    )
    (problem,) = problems([path])
    assert (problem.line, problem.field) == (3, "command")
    assert "duplicate entry" in problem.message


def test_jobs_are_counted_per_project(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "two.csv",
        "job_id,command,project_id\nj1,CONFIRM_ACCEPT,p1\nj1,CONFIRM_REJECT,p2\n"
        "j1,SUBMITVERIFYING,p2\n",
    )
    summary, _ = load([path])
    assert (summary.total, summary.jobs) == (3, 2)


# -- one checker: manifests and hand-built entries get the same verdicts ------------------------


def test_manifests_and_entry_checked_share_one_checker(tmp_path: Path) -> None:
    row = {"job_id": "job 1", "command": "SUBMITVERIFYING", "operation_reason": "x" * 1025}
    path = write(
        tmp_path, "m.csv", ("job_id,command,operation_reason\n" + ",".join(row.values())).encode()
    )
    found = problems([path])
    with pytest.raises(EntryError) as error:
        Entry.checked(row)
    assert [(f"{p.field}: {p.message}") for p in found] == str(error.value).split("; ")
