"""Entry fields: command_message checked like commands, and the hand-written checks of the
first pass agreeing with the pydantic model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from manifest_helpers import load, problems, where, write
from pydantic import ValidationError

from batcher.entry import KNOWN_COMMAND_MESSAGES, Entry
from batcher.manifest._problems import pydantic_message
from batcher.manifest._validate import field_problems

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


# -- the first pass's checks are the model's -------------------------------------------------

_SCALAR = st.one_of(
    st.text(max_size=3),
    st.from_regex(r"\A[A-Za-z0-9_-]{1,70}\Z"),
    st.text(st.characters(codec="ascii"), min_size=60, max_size=70),
    st.sampled_from(["", " ", "a b", "x\n", "SUBMITVERIFYING", "张三", "x" * 1025]),
)
_VALUE = st.recursive(
    st.none() | _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=4,
)
_COMMENT = st.one_of(
    # (Unknown keys of comment_data are reported and dropped by the readers, before this.)
    _VALUE.filter(lambda value: not isinstance(value, dict)),
    st.fixed_dictionaries(
        {},
        optional={
            "comment_title": _VALUE,
            "comment_message": _VALUE,
            "attachment_name": _VALUE | st.lists(_VALUE, max_size=3),
        },
    ),
)
_DATA = st.fixed_dictionaries(
    {"source": st.just("m.yaml:1")},
    optional={
        "job_id": _VALUE,
        "command": _VALUE,
        "command_message": _VALUE,
        "operation_reason": _VALUE,
        "comment_data": _COMMENT,
        "app_user_id": _VALUE,
        "project_id": _VALUE,
    },
)


def _without_nones(data: dict[str, Any]) -> dict[str, Any]:
    # As both readers hand fields over: None (YAML null, an empty CSV cell) means absent.
    data = {key: value for key, value in data.items() if value is not None}
    if isinstance(data.get("comment_data"), dict):
        data["comment_data"] = {k: v for k, v in data["comment_data"].items() if v is not None}
    return data


@settings(max_examples=400, deadline=None)
@given(data=_DATA.map(_without_nones))
def test_hand_checks_agree_with_the_model(data: dict[str, Any]) -> None:
    try:
        Entry.model_validate(data)
        expected: list[tuple[object, str]] = []
    except ValidationError as error:
        expected = [
            (tuple(item["loc"]), pydantic_message(item)) for item in error.errors(include_url=False)
        ]
    assert field_problems(data) == expected
