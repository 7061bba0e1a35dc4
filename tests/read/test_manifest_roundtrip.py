"""Any valid entry written as CSV or YAML reads back as itself (property tests)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manifest_helpers import load, write

from batcher.entry import KNOWN_COMMAND_MESSAGES, KNOWN_COMMANDS, CommentData, Entry
from batcher.read import CSV_COLUMNS

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
        command_message=st.none() | st.sampled_from(KNOWN_COMMAND_MESSAGES),
        operation_reason=st.none() | _TEXT,
        comment_data=st.none()
        | st.builds(
            CommentData,
            comment_title=_TEXT,
            comment_message=st.none() | _TEXT,
            attachment_name=st.none() | st.lists(_NAME, min_size=1, max_size=3).map(tuple),
        ),
        app_user_id=st.none() | st.from_regex(r"\A[\x21-\x7e]{1,20}\Z"),
        project_id=st.none() | st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
    ),
    max_size=8,
    unique_by=lambda entry: entry.key,
)


def _fields(entry: Entry) -> dict[str, Any]:
    fields = entry.as_dict()
    del fields["source"]
    return fields


def _set(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: _set(v) if isinstance(v, dict) else v for k, v in fields.items() if v is not None}


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
                entry.project_id or "",
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
    jobs = [_set(_fields(entry)) for entry in entries]
    text = yaml.safe_dump({"jobs": jobs}, allow_unicode=True)
    path = write(tmp_path, "round.yaml", text.encode())
    _, read = load([path])
    assert [_fields(entry) for entry in read] == [_fields(entry) for entry in entries]
