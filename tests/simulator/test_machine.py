"""The state machine: the documented flows only, and its agreement with what batcher reads
from a job's record (:mod:`batcher.send.vocabulary`): the API's names, every command's trace."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from batcher.send.vocabulary import (
    JOB_STATES,
    KNOWN_COMMAND_MESSAGES,
    KNOWN_COMMANDS,
    LOG_TYPES,
    OPERATE_USERS,
    TRACES,
    trace_of,
)
from batcher.simulator import RULES, JobState, rfc3339, rule_for
from batcher.simulator.listing import parse_rfc3339
from batcher.simulator.machine import (
    NA_STATES,
    VERIFY_FAILED,
    CommandResult,
    Comment,
    allowed_for,
    execute,
    reopen,
)
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
        assert rule.reads is None or rule.log_type is None, rule
        assert rule.allowed, rule
    # Only the entries the log types' names suggest; no invented ones.
    assert {r.log_type for r in RULES} - {None} == {
        "USER_VERIFYING_SUBMITTED", "USER_REPAIR", "USER_UPDATE_VIDEO", "USER_DELETE_JOB_VIDEO"
    }  # fmt: skip


def _written(before: Job, after: Job) -> list[str]:
    return [e.log_type for e in after.operation_logs[len(before.operation_logs) :]]


def _snapshot(job: Job) -> Job:
    return job.copy_to(job.project_id)


def run(job: Job, command: str, message: str | None = None, **kw: object) -> CommandResult:
    kw.setdefault("app_user_id", "ops-01")
    return execute(job, command, now=NOW, command_message=message, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("command", "message"), list(itertools.product(KNOWN_COMMANDS, MESSAGES)))
def test_commands_agree_with_their_traces(command: str, message: str | None) -> None:
    """When a command takes effect it writes its rule's log type (operate_user USER), which
    covers its trace's, never a type another command's trace names, and only it leads to
    its trace's states."""
    trace = trace_of(command, message)
    theirs = {
        (c, m): trace_of(c, m)
        for c, m in itertools.product(KNOWN_COMMANDS, MESSAGES)
        if trace_of(c, m) != trace
    }
    took_effect = False
    for state, uploaded in itertools.product(JobState, (False, True)):
        job = job_in(state, uploaded=uploaded)
        job.reopened = state.value.endswith("VERIFY_FAILED")
        before = _snapshot(job)
        result = run(job, command, message)
        written = _written(before, job)
        if not result.executed:
            assert job.state is before.state and not written, (state, result)
            if trace.read_only and result.ok:
                assert result.multipart_data
            continue
        took_effect = True
        assert not trace.read_only
        rule = rule_for(command, message)
        assert rule is not None and written == ([rule.log_type] if rule.log_type else [])
        assert trace.log_types <= set(written), (state, written)
        if written:
            entry = job.operation_logs[-1]
            assert entry.operate_user == "USER"
            assert entry.operate_time == NOW.replace(microsecond=123000)
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
        result = run(job, command, message)
        if result.executed and job.state is not before:
            reached.setdefault(job.state.value, set()).add(command)
    for command, trace in TRACES.items():
        for state in trace.leads_to:
            assert reached.get(state) == {command}, (state, reached.get(state))


def test_refusals_change_nothing_and_never_offer_the_refused_command() -> None:
    for state, uploaded, command, message in every_attempt():
        job = job_in(state, uploaded=uploaded)
        before = job.as_dict()
        result = run(job, command, message)
        if result.ok:
            continue
        assert job.as_dict() == before
        assert result.failed_msg is not None
        assert result.failed_msg.startswith(f"command {command} is not allowed in state {state}: ")
        allowed = [c for c in allowed_for(job) if c.partition(" ")[0] != command]
        tail = ("allowed here: " + ", ".join(allowed)) if allowed else "no command is accepted here"
        assert result.failed_msg.endswith(tail)
        offered = result.failed_msg.rpartition("allowed here: ")[2].split(", ")
        assert not [c for c in offered if c.startswith(command)], result.failed_msg
        for other in allowed:  # what it offers, the job accepts
            name, _, with_message = other.partition(" (command_message ")
            again = job_in(state, uploaded=uploaded)
            assert run(again, name, with_message.rstrip(")") or None).ok, (state, other)


@pytest.mark.parametrize(
    ("start", "uploaded", "command", "message", "end", "log_type"),
    [
        ("WAIT_FILE_UPLOAD", False, "CONFIRM_MULTIPART_UPLOADED", None, "WAIT_FILE_UPLOAD", None),
        ("WAIT_FILE_UPLOAD", True, "CONFIRM_MULTIPART_UPLOADED", "UPDATE_VIDEO",
         "WAIT_FILE_UPLOAD", "USER_UPDATE_VIDEO"),
        ("WAIT_FILE_UPLOAD", True, "SUBMITVERIFYING", None, "AUTO_VERIFYING",
         "USER_VERIFYING_SUBMITTED"),
        ("JOB_SUCCESS", True, "CONFIRM_REPAIR", None, "JOB_SUCCESS", "USER_REPAIR"),
        ("MANUAL_VERIFY_FAILED", True, "DELETE_JOB_VIDEO", None, "MANUAL_VERIFY_FAILED",
         "USER_DELETE_JOB_VIDEO"),
        ("WAIT_USER_CONFIRM", True, "CONFIRM_ACCEPT", None, "JOB_FINISH", None),
        ("WAIT_USER_CONFIRM", True, "CONFIRM_REJECT", None, "JOB_REJECT", None),
        ("WAIT_USER_CONFIRM", True, "CONFIRM_PENDING", None, "JOB_PENDING", None),
        ("JOB_PENDING", True, "CONFIRM_ACTIVE", None, "WAIT_USER_CONFIRM", None),
        ("JOB_REJECT", True, "CONFIRM_ANSWER", None, "JOB_REJECT", None),
    ],
)  # fmt: skip
def test_transition_table(
    start: str, uploaded: bool, command: str, message: str | None, end: str, log_type: str | None
) -> None:
    job = job_in(JobState(start), uploaded=uploaded)
    result = run(job, command, message, operation_reason="nightly")
    assert result.executed and job.state is JobState(end)
    assert job.history == [command]
    if log_type is None:
        assert result.logged == () and len(job.operation_logs) == 1
        return
    assert result.logged == (job.operation_logs[-1],)
    assert job.operation_logs[-1].log_type == log_type
    named = f"{command}, {message}" if message else command
    assert job.operation_logs[-1].log_description == f"{named}: nightly"


def test_a_new_job_is_confirmed_then_submitted() -> None:
    job = new_job("p", "j", now=NOW)
    assert "CONFIRM_MULTIPART_UPLOADED" in (run(job, "SUBMITVERIFYING").failed_msg or "")
    assert run(job, "CONFIRM_MULTIPART_UPLOADED").executed
    assert "already confirmed" in (run(job, "CONFIRM_MULTIPART_UPLOADED").failed_msg or "")
    assert run(job, "SUBMITVERIFYING").executed and job.state is JobState.AUTO_VERIFYING


@pytest.mark.parametrize("state", sorted(VERIFY_FAILED))
def test_a_failed_review_is_updated_uploaded_confirmed_and_resubmitted(state: JobState) -> None:
    job = job_in(state, uploaded=True)
    for command in (
        "CONFIRM_MULTIPART_UPLOADED",
        "SUBMITVERIFYING",
        "CONFIRM_AUTHORIZATION_LETTER",
    ):
        refused = run(job, command)
        assert refused.failed_msg and "update the job first" in refused.failed_msg
    assert run(job, "CONFIRM_REPAIR").failed_msg is not None  # not the fix for a failed review
    assert reopen(job, now=NOW) is None
    assert job.state is state and not job.video_confirmed and job.reopened
    assert "CONFIRM_MULTIPART_UPLOADED" in (run(job, "SUBMITVERIFYING").failed_msg or "")
    assert run(job, "CONFIRM_MULTIPART_UPLOADED").executed
    assert run(job, "SUBMITVERIFYING").executed
    assert job.state is JobState.AUTO_VERIFYING and not job.reopened
    assert job.history == ["CONFIRM_MULTIPART_UPLOADED", "SUBMITVERIFYING"]


@pytest.mark.parametrize("state", [s for s in JobState if s not in VERIFY_FAILED])
def test_only_a_failed_review_is_updated(state: JobState) -> None:
    job = job_in(state, uploaded=True)
    assert reopen(job, now=NOW) is not None and not job.reopened


def test_confirm_repair_is_requested_once_after_training_with_an_app_user() -> None:
    job = job_in(JobState.JOB_SUCCESS, uploaded=True)
    missing = run(job, "CONFIRM_REPAIR", app_user_id=None)
    assert missing.failed_msg and "X-App-UserId" in missing.failed_msg
    assert run(job, "CONFIRM_REPAIR").executed and job.state is JobState.JOB_SUCCESS
    again = run(job, "CONFIRM_REPAIR")
    assert again.failed_msg and "already requested" in again.failed_msg
    assert job.history == ["CONFIRM_REPAIR"]
    for state in JobState:
        if state is not JobState.JOB_SUCCESS:
            refused = run(job_in(state, uploaded=True), "CONFIRM_REPAIR")
            assert refused.failed_msg and "model optimisation" in refused.failed_msg


@pytest.mark.parametrize(
    "command",
    ["CONFIRM_ACCEPT", "CONFIRM_REJECT", "CONFIRM_ANSWER", "CONFIRM_PENDING", "CONFIRM_ACTIVE"],
)
def test_na_whitelist_commands_only_in_the_na_states(command: str) -> None:
    took = {s for s in JobState if run(job_in(s, uploaded=True), command).executed}
    assert took and took <= NA_STATES, took


def test_reads_answer_parts_and_write_nothing() -> None:
    job = job_in(JobState.MANUAL_VERIFY_FAILED, uploaded=True)
    before = job.as_dict()
    result = execute(job, "GET_MULTIPART_UPLOADED", now=NOW)
    assert result.ok and not result.executed and result.multipart_data
    assert job.as_dict() == before
    assert [part["part_number"] for part in result.multipart_data] == ["1", "2"]
    assert not run(job_in(JobState.TRAINING, uploaded=True), "GET_MULTIPART_UPLOADED").ok


def test_reject_and_answer_add_comments() -> None:
    job = job_in(JobState.WAIT_USER_CONFIRM, uploaded=True)
    comment = Comment(title="口型不自然", message="请重新训练", attachments=("截图.png",))
    run(job, "CONFIRM_REJECT", comment=comment)
    run(job, "CONFIRM_ANSWER")
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
        if state in NA_STATES - {JobState.WAIT_USER_CONFIRM}:  # reached by the user: no entry
            assert logs[-1].log_type == "SYSTEM_INFERENCE_DATA_PREPROCESS_SUCCESS"
        for entry in logs:
            assert parse_rfc3339(entry.to_api()["operate_time"]) == entry.operate_time


def test_times_render_as_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(NOW) == "2026-11-25T08:00:00.123Z"
    east = datetime(2026, 11, 25, 16, 0, tzinfo=UTC).astimezone(
        datetime.fromisoformat("2026-01-01T00:00:00+08:00").tzinfo
    )
    assert rfc3339(east) == "2026-11-25T16:00:00.000Z"
