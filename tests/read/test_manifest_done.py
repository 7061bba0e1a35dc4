"""The second pass of a resumed run: entries already done are passed over, not built."""

from __future__ import annotations

from pathlib import Path

from manifest_helpers import write

from batcher.entry import DigestSet, key_digest
from batcher.read import Manifests


def _done(*keys: tuple[str, str]) -> DigestSet:
    done = DigestSet()
    for job_id, command in keys:
        done.add(key_digest(job_id, command))
    return done


def _second_pass(paths: list[str], done: DigestSet, **options: object) -> list[object]:
    with Manifests(paths, **options) as manifests:  # type: ignore[arg-type]
        manifests.check()
        return [None if e is None else (e.job_id, e.command) for e in manifests.entries(done)]


def test_csv_rows_already_done_come_as_none_in_their_place(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.csv",
        """
        job_id,command,operation_reason
        j1,SUBMITVERIFYING,a
        " j2 ",CONFIRM_ACCEPT,b
        j3,SUBMITVERIFYING,c
        j1,CONFIRM_ACCEPT,d
        """,
    )
    done = _done(("j1", "SUBMITVERIFYING"), ("j2", "CONFIRM_ACCEPT"))
    assert _second_pass([path], done) == [
        None,
        None,  # the cell's spaces are not part of the id, as in the first pass
        ("j3", "SUBMITVERIFYING"),
        ("j1", "CONFIRM_ACCEPT"),
    ]


def test_a_csv_without_command_column_is_matched_with_the_default_command(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "m.csv", "job_id,command_message\nj1,\nj2,UPLOAD_VIDEO\n")
    done = _done(("j2", "CONFIRM_MULTIPART_UPLOADED"))
    assert _second_pass([path], done, default_command="CONFIRM_MULTIPART_UPLOADED") == [
        ("j1", "CONFIRM_MULTIPART_UPLOADED"),
        None,
    ]


def test_an_empty_command_cell_takes_the_default_command(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "job_id,command\nj1,\nj2,SUBMITVERIFYING\n")
    done = _done(("j1", "CONFIRM_REPAIR"), ("j2", "CONFIRM_REPAIR"))
    assert _second_pass([path], done, default_command="CONFIRM_REPAIR") == [
        None,
        ("j2", "SUBMITVERIFYING"),
    ]


def test_yaml_entries_already_done_come_as_none(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.yaml",
        """
        defaults: {command: SUBMITVERIFYING}
        jobs:
          - job_id: j1
          - job_id: j2
            command: CONFIRM_ACCEPT
          - job_id: j3
        """,
    )
    done = _done(("j1", "SUBMITVERIFYING"), ("j2", "CONFIRM_ACCEPT"))
    assert _second_pass([path], done) == [None, None, ("j3", "SUBMITVERIFYING")]


def test_nothing_done_builds_every_entry(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "job_id,command\nj1,SUBMITVERIFYING\n")
    assert _second_pass([path], DigestSet()) == [("j1", "SUBMITVERIFYING")]
