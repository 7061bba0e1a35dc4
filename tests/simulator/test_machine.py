"""The state machine, and its agreement with what batcher reads from a job's record
(:mod:`batcher.send.vocabulary`): the API's names only, and every command's trace."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from batcher.entry import KNOWN_COMMAND_MESSAGES, KNOWN_COMMANDS
from batcher.send.vocabulary import JOB_STATES, LOG_TYPES, OPERATE_USERS, TRACES, trace_of
from batcher.simulator import RULES, JobState, allowed_in, rfc3339, rule_for
from batcher.simulator.listing import parse_rfc3339
from batcher.simulator.machine import Comment, execute
from batcher.simulator.population import build
from batcher.simulator.record import Job, new_job

NOW = datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC)
MESSAGES: tuple[str | None, ...] = (None, *KNOWN_COMMAND_MESSAGES)


def job_in(state: JobState, *, uploaded: bool) -> Job:
    job = new_job("p", "j", now=NOW - timedelta(days=1))
    job.state = state
    job.video_confirmed = job.action_video_confirmed = uploaded
    job.authorization_letter_confirmed = uploaded
    return job


def every_attempt() -> list[tuple[JobState, bool, str, str | None]]:
    return list(itertools.product(JobState, (False, True), KNOWN_COMMANDS, MESSAGES))


def test_the_states_are_the_apis() -> None:
    assert tuple(state.value for state in JobState) == JOB_STATES
    for name in ("FILE_UPLOADED", "SUCCEED", "WAIT_CONFIRM"):
        assert name not in JobState.__members__


def test_every_known_command_has_a_rule_and_rules_name_real_types() -> None:
    assert {rule.command for rule in RULES} == set(KNOWN_COMMANDS)
    for rule in RULES:
        assert rule.log_type is None or rule.log_type in LOG_TYPES, rule
        assert (rule.log_type is None) == (rule.reads is not None), rule
        assert rule.allowed, rule


def _written(before: Job, after: Job) -> list[str]:
    return [e.log_type for e in after.operation_logs[len(before.operation_logs) :]]


def _snapshot(job: Job) -> Job:
    return job.copy_to(job.project_id)


@pytest.mark.parametrize(("command", "message"), list(itertools.product(KNOWN_COMMANDS, MESSAGES)))
def test_commands_agree_with_their_traces(command: str, message: str | None) -> None:
    """When a command takes effect it writes its trace's log types (operate_user USER), never
    a type another command's trace names, and only it leads to its trace's states."""
    trace = trace_of(command, message)
    theirs = {  # what the other commands' traces name
        (c, m): trace_of(c, m)
        for c, m in itertools.product(KNOWN_COMMANDS, MESSAGES)
        if trace_of(c, m) != trace
    }
    took_effect = False
    for state, uploaded in itertools.product(JobState, (False, True)):
        job = job_in(state, uploaded=uploaded)
        before = _snapshot(job)
        result = execute(job, command, now=NOW, command_message=message)
        written = _written(before, job)
        if not result.executed:
            assert job.state is before.state and not written, (state, result)
            if trace.read_only and result.ok:
                assert result.multipart_data
            continue
        took_effect = True
        assert not trace.read_only
        assert len(written) == 1 and written[0] in LOG_TYPES
        entry = job.operation_logs[-1]
        assert entry.operate_user == "USER"
        assert entry.operate_time == NOW.replace(microsecond=123000)
        assert trace.log_types <= set(written), (state, written)
        assert job.last_update_time == entry.operate_time
        if trace.leads_to:
            assert job.state in trace.leads_to
        for other in theirs.values():
            assert not other.log_types & set(written), (command, message, written, other)
            if job.state is not before.state:
                assert job.state.value not in other.leads_to, (command, state, job.state)
    assert took_effect or trace.read_only, f"{command} never takes effect"


def test_no_command_writes_another_commands_user_log_type() -> None:
    traced = {t for trace in TRACES.values() for t in trace.log_types} | {"USER_UPDATE_VIDEO"}
    for rule in RULES:
        own = trace_of(rule.command, rule.message).log_types
        if rule.log_type and rule.log_type.startswith("USER_"):
            assert rule.log_type in own, rule
        assert rule.log_type not in traced - own, rule


def test_trace_states_are_reachable_and_only_by_their_command() -> None:
    reached: dict[str, set[str]] = {}
    for state, uploaded, command, message in every_attempt():
        job = job_in(state, uploaded=uploaded)
        before = job.state
        result = execute(job, command, now=NOW, command_message=message)
        if result.executed and job.state is not before:
            reached.setdefault(job.state.value, set()).add(command)
    for command, trace in TRACES.items():
        for state in trace.leads_to:
            assert reached.get(state) == {command}, (state, reached.get(state))


def test_refusals_change_nothing_and_say_what_is_allowed() -> None:
    for state, uploaded, command, message in every_attempt():
        job = job_in(state, uploaded=uploaded)
        before = job.as_dict()
        result = execute(job, command, now=NOW, command_message=message)
        if result.ok:
            continue
        assert job.as_dict() == before
        assert result.failed_msg is not None
        assert result.failed_msg.startswith(f"command {command} is not allowed in state {state}: ")
        allowed = allowed_in(state)
        tail = ("allowed here: " + ", ".join(allowed)) if allowed else "no command is accepted here"
        assert result.failed_msg.endswith(tail)


@pytest.mark.parametrize(
    ("start", "uploaded", "command", "message", "end", "log_type"),
    [
        ("WAIT_FILE_UPLOAD", False, "CONFIRM_MULTIPART_UPLOADED", None, "WAIT_FILE_UPLOAD",
         "SYSTEM_ANALYSE_FILE_INFO"),
        ("WAIT_FILE_UPLOAD", True, "CONFIRM_MULTIPART_UPLOADED", "UPDATE_VIDEO",
         "WAIT_FILE_UPLOAD", "USER_UPDATE_VIDEO"),
        ("WAIT_FILE_UPLOAD", True, "SUBMITVERIFYING", None, "AUTO_VERIFYING",
         "USER_VERIFYING_SUBMITTED"),
        ("AUTO_VERIFY_FAILED", True, "CONFIRM_REPAIR", None, "WAIT_FILE_UPLOAD", "USER_REPAIR"),
        ("MANUAL_VERIFY_FAILED", True, "CONFIRM_REPAIR", None, "WAIT_FILE_UPLOAD", "USER_REPAIR"),
        ("MANUAL_VERIFY_FAILED", True, "DELETE_JOB_VIDEO", None, "MANUAL_VERIFY_FAILED",
         "USER_DELETE_JOB_VIDEO"),
        ("WAIT_USER_CONFIRM", True, "CONFIRM_ACCEPT", None, "JOB_FINISH", "SYSTEM_JOB_SUCCESS"),
        ("WAIT_USER_CONFIRM", True, "CONFIRM_REJECT", None, "JOB_REJECT", "SYSTEM_TRAIN_FAILED"),
        ("WAIT_USER_CONFIRM", True, "CONFIRM_PENDING", None, "JOB_PENDING",
         "ADMIN_UPDATE_JOB_PRIORITY"),
        ("JOB_PENDING", True, "CONFIRM_ACTIVE", None, "WAIT_USER_CONFIRM",
         "ADMIN_UPDATE_JOB_PRIORITY"),
        ("MANUAL_VERIFYING", True, "CONFIRM_ANSWER", None, "MANUAL_VERIFYING",
         "ADMIN_UPDATE_GENERAL_CONFIG"),
    ],
)  # fmt: skip
def test_transition_table(
    start: str, uploaded: bool, command: str, message: str | None, end: str, log_type: str
) -> None:
    job = job_in(JobState(start), uploaded=uploaded)
    result = execute(job, command, now=NOW, command_message=message, operation_reason="nightly")
    assert result.executed and job.state is JobState(end)
    assert result.logged == (job.operation_logs[-1],)
    assert job.operation_logs[-1].log_type == log_type
    assert job.operation_logs[-1].log_description.endswith(f"({command}"
        + (f", {message}" if message else "") + "): nightly")  # fmt: skip
    assert job.history == [command]


def test_repair_keeps_the_upload_so_submit_follows() -> None:
    job = job_in(JobState.AUTO_VERIFY_FAILED, uploaded=True)
    assert execute(job, "CONFIRM_REPAIR", now=NOW).executed
    assert execute(job, "SUBMITVERIFYING", now=NOW).executed
    assert job.state is JobState.AUTO_VERIFYING
    deleted = job_in(JobState.AUTO_VERIFY_FAILED, uploaded=True)
    execute(deleted, "DELETE_JOB_VIDEO", now=NOW)
    execute(deleted, "CONFIRM_REPAIR", now=NOW)
    refused = execute(deleted, "SUBMITVERIFYING", now=NOW)
    assert refused.failed_msg and "confirm the video upload first" in refused.failed_msg


def test_reads_answer_parts_and_write_nothing() -> None:
    job = job_in(JobState.MANUAL_VERIFY_FAILED, uploaded=True)
    before = job.as_dict()
    result = execute(job, "GET_MULTIPART_UPLOADED", now=NOW)
    assert result.ok and not result.executed and result.multipart_data
    assert job.as_dict() == before
    assert not execute(job_in(JobState.TRAINING, uploaded=True), "GET_MULTIPART_UPLOADED",
                       now=NOW).ok  # fmt: skip


def test_reject_and_answer_add_comments() -> None:
    job = job_in(JobState.WAIT_USER_CONFIRM, uploaded=True)
    comment = Comment(title="口型不自然", message="请重新训练", attachments=("截图.png",))
    execute(job, "CONFIRM_REJECT", now=NOW, comment=comment)
    execute(job, "CONFIRM_ANSWER", now=NOW)
    assert [(c.comment_type, c.comment_title) for c in job.comment_logs] == [
        ("USER_REJECT", "口型不自然"),
        ("USER_COMMENT", None),
    ]
    shown = job.detail(now=NOW)["comment_logs"][0]
    assert shown["comment_message"] == "请重新训练"
    assert shown["attachment_download_url"][0].startswith("https://obs.example.invalid/p/j/")


def test_rule_for_falls_back_to_the_command() -> None:
    rule = rule_for("CONFIRM_MULTIPART_UPLOADED", "CONFIRM_ACTION_VIDEO")
    assert rule is not None and rule.message is None
    assert rule_for("NO_SUCH_COMMAND") is None


# --------------------------------------------------------------------------- seeded pasts


@pytest.mark.parametrize("state", list(JobState))
def test_a_seeded_past_is_plausible(state: JobState) -> None:
    until = datetime(2026, 11, 25, tzinfo=UTC)
    created = until - timedelta(days=20)
    for n in range(5):
        job = build(f"j{n}", state, rng=random.Random(n), created=created, until=until)
        assert job.state is state and job.history == []
        logs = job.operation_logs
        assert logs[0].log_type == "USER_CREATE_JOD" and logs[0].operate_time == created
        assert all(e.log_type in LOG_TYPES and e.operate_user in OPERATE_USERS for e in logs)
        times = [e.operate_time for e in logs]
        assert times == sorted(times) and created <= times[-1] <= until
        user_times = [e.operate_time for e in logs if e.operate_user == "USER"]
        assert job.last_update_time == max(user_times)
        for command, trace in TRACES.items():
            if state.value in trace.leads_to:  # got here by that command: its entry is last
                assert logs[-1].log_type == rule_for(command).log_type  # type: ignore[union-attr]
        for entry in logs:
            assert parse_rfc3339(entry.to_api()["operate_time"]) == entry.operate_time


def test_times_render_as_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(NOW) == "2026-11-25T08:00:00.123Z"
    east = datetime(2026, 11, 25, 16, 0, tzinfo=UTC).astimezone(
        datetime.fromisoformat("2026-01-01T00:00:00+08:00").tzinfo
    )
    assert rfc3339(east) == "2026-11-25T16:00:00.000Z"
