"""batcher's lists of the API's names against the pinned official SDK's models: any drift
(a state, log type, command or command message added, renamed or dropped) fails here."""

from __future__ import annotations

import inspect
import re
from types import ModuleType

import pytest

pytest.importorskip("huaweicloudsdkmetastudio")

from huaweicloudsdkmetastudio.v1.model import (
    comment_log_info,
    execute2d_model_training_command_by_user_req,
    operation_log_info,
    training_job_basic_info,
)

from batcher.send import vocabulary
from batcher.simulator import JobState


def sdk_names(module: ModuleType, param: str) -> tuple[str, ...]:
    """The ``* NAME: ...`` values a model's docstring lists for ``param``, first seen first."""
    doc = next(
        line for line in inspect.getsource(module).splitlines() if f":param {param}:" in line
    )
    return tuple(dict.fromkeys(re.findall(r"\*\s*([A-Z][A-Z0-9_]+)", doc)))


@pytest.mark.parametrize(
    ("ours", "module", "param", "count"),
    [
        (vocabulary.JOB_STATES, training_job_basic_info, "state", 53),
        (vocabulary.LOG_TYPES, operation_log_info, "log_type", 95),
        (vocabulary.OPERATE_USERS, operation_log_info, "operate_user", 3),
        (vocabulary.COMMENT_TYPES, comment_log_info, "comment_type", 3),
        (vocabulary.KNOWN_COMMANDS, execute2d_model_training_command_by_user_req, "command", 13),
        (
            vocabulary.KNOWN_COMMAND_MESSAGES,
            execute2d_model_training_command_by_user_req,
            "command_message",
            4,
        ),
    ],
)
def test_lists_match_the_sdk(
    ours: tuple[str, ...], module: ModuleType, param: str, count: int
) -> None:
    assert ours == sdk_names(module, param)
    assert len(ours) == count


def test_the_sdk_is_the_pinned_one() -> None:
    from importlib.metadata import version

    assert version("huaweicloudsdkmetastudio") == "3.1.219"


def test_the_simulator_and_manifest_validation_use_the_same_lists() -> None:
    from batcher import entry

    assert tuple(JobState) == vocabulary.JOB_STATES
    assert entry.KNOWN_COMMANDS is vocabulary.KNOWN_COMMANDS
    assert entry.KNOWN_COMMAND_MESSAGES is vocabulary.KNOWN_COMMAND_MESSAGES
