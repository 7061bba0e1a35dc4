"""CSV manifests: streamed rows, and every problem at its line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from manifest_helpers import load, problems, where, write

from batcher.entry import CommentData

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
    "bad project_id cell": (
        "job_id,command,project_id\na,CONFIRM_ACCEPT,p/1\n",
        [(2, "project_id")],
        "1-64 characters",
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
