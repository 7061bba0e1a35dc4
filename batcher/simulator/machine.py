"""The commands and the states they move a job between: the simulator's state machine.

Only the API's own state names and log types. Each command is allowed in some states, may
move the job, and — when it takes effect — appends one ``operation_logs`` entry written
with ``operate_user`` ``USER`` (reads, ``GET_*``, change nothing and write nothing):

command (+ command_message)               allowed in -> moves to: log_type
----------------------------------------  -----------------------------------------------------
GET_MULTIPART_UPLOADED,                   WAIT_FILE_UPLOAD, AUTO_VERIFY_FAILED,
GET_ACTION_VIDEO_MULTIPART_UPLOADED       MANUAL_VERIFY_FAILED -> (reads; no log)
CONFIRM_MULTIPART_UPLOADED                WAIT_FILE_UPLOAD, once -> (video confirmed):
                                          SYSTEM_ANALYSE_FILE_INFO
CONFIRM_MULTIPART_UPLOADED + UPDATE_VIDEO WAIT_FILE_UPLOAD -> (video replaced): USER_UPDATE_VIDEO
CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED   WAIT_FILE_UPLOAD, once -> (flag): SYSTEM_ANALYSE_FILE_INFO
CONFIRM_AUTHORIZATION_LETTER              WAIT_FILE_UPLOAD, once -> (flag): SYSTEM_ANALYSE_FILE_INFO
SUBMITVERIFYING                           WAIT_FILE_UPLOAD with the video confirmed ->
                                          AUTO_VERIFYING: USER_VERIFYING_SUBMITTED
CONFIRM_REPAIR                            AUTO_VERIFY_FAILED, MANUAL_VERIFY_FAILED ->
                                          WAIT_FILE_UPLOAD: USER_REPAIR
DELETE_JOB_VIDEO                          WAIT_FILE_UPLOAD, AUTO_/MANUAL_VERIFY_FAILED, JOB_SUCCESS,
                                          JOB_FINISH -> (videos deleted): USER_DELETE_JOB_VIDEO
CONFIRM_ACCEPT                            WAIT_USER_CONFIRM -> JOB_FINISH: SYSTEM_JOB_SUCCESS
CONFIRM_REJECT                            WAIT_USER_CONFIRM -> JOB_REJECT: SYSTEM_TRAIN_FAILED
CONFIRM_PENDING                           WAIT_USER_CONFIRM -> JOB_PENDING:
                                          ADMIN_UPDATE_JOB_PRIORITY
CONFIRM_ACTIVE                            JOB_PENDING -> WAIT_USER_CONFIRM:
                                          ADMIN_UPDATE_JOB_PRIORITY
CONFIRM_ANSWER                            MANUAL_VERIFYING, MANUAL_VERIFY_FAILED, WAIT_USER_CONFIRM,
                                          JOB_PENDING, JOB_REJECT -> (comment):
                                          ADMIN_UPDATE_GENERAL_CONFIG

The log types agree with :data:`batcher.send.vocabulary.TRACES`: a command with a trace
writes its trace's type; the others write the closest real type, never a ``USER_*`` type
that another command's trace names. JOB_FINISH, JOB_REJECT and JOB_PENDING are reached
only by CONFIRM_ACCEPT, CONFIRM_REJECT and CONFIRM_PENDING. CONFIRM_REJECT also adds a
``USER_REJECT`` comment, CONFIRM_ANSWER a ``USER_COMMENT`` one. The upload is confirmed
once: CONFIRM_REPAIR keeps it, so "CONFIRM_REPAIR, then SUBMITVERIFYING" works;
DELETE_JOB_VIDEO undoes it. Every other state (training, compiling, ...) accepts no
command: the system moves such jobs, and here only seeding or ``set_state`` does.

A command not allowed where the job stands is refused with a reason, never an exception:
the API answers such refusals with ``200 EXCUTE_FAILED``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batcher.simulator.record import CommentEntry, Job, LogEntry, stamp
from batcher.simulator.record import JobState as S

Guard = Callable[[Job], str | None]
Effect = Callable[[Job], None]


@dataclass(frozen=True, slots=True)
class Rule:
    """What one command (with one ``command_message``, when ``message`` is set) does."""

    command: str
    allowed: frozenset[S]
    #: The log type it writes when it takes effect; None for reads.
    log_type: str | None
    description: str
    to: S | None = None  #: None: the state stays
    message: str | None = None  #: applies only with this command_message
    reads: str | None = None  #: "video"/"action_video": answer multipart_data, change nothing
    guard: Guard | None = None  #: why the command is refused although the state allows it
    effect: Effect | None = None
    comment_type: str | None = None  #: the comment_logs entry it adds


@dataclass(frozen=True, slots=True)
class Comment:
    """A command's ``comment_data``."""

    title: str | None = None
    message: str | None = None
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What running one command did. ``executed`` is True when it took effect."""

    ok: bool
    failed_msg: str | None = None
    multipart_data: list[dict[str, Any]] | None = None
    executed: bool = False
    logged: tuple[LogEntry, ...] = field(default=())


def _flag(name: str, value: bool) -> Effect:
    def effect(job: Job) -> None:
        setattr(job, name, value)

    return effect


def _once(name: str, what: str) -> Guard:
    def guard(job: Job) -> str | None:
        return f"the {what} is already confirmed" if getattr(job, name) else None

    return guard


def _needs_video(job: Job) -> str | None:
    if job.video_confirmed:
        return None
    return "confirm the video upload first (CONFIRM_MULTIPART_UPLOADED)"


def _video_not_yet(job: Job) -> str | None:
    if not job.video_confirmed:
        return None
    return (
        "the video upload is already confirmed "
        "(to replace the video, send command_message UPDATE_VIDEO)"
    )


def _delete_videos(job: Job) -> None:
    job.video_confirmed = job.action_video_confirmed = False


UPLOADING = frozenset({S.WAIT_FILE_UPLOAD})
VERIFY_FAILED = frozenset({S.AUTO_VERIFY_FAILED, S.MANUAL_VERIFY_FAILED})
_USER_CONFIRM = frozenset({S.WAIT_USER_CONFIRM})

#: Every rule, looked up by ``(command, command_message)`` first, then by command alone.
RULES: tuple[Rule, ...] = (
    Rule("GET_MULTIPART_UPLOADED", UPLOADING | VERIFY_FAILED, None, "", reads="video"),
    Rule(
        "GET_ACTION_VIDEO_MULTIPART_UPLOADED",
        UPLOADING | VERIFY_FAILED,
        None,
        "",
        reads="action_video",
    ),
    Rule(
        "CONFIRM_MULTIPART_UPLOADED",
        UPLOADING,
        "USER_UPDATE_VIDEO",
        "training video replaced",
        message="UPDATE_VIDEO",
        effect=_flag("video_confirmed", True),
    ),
    Rule(
        "CONFIRM_MULTIPART_UPLOADED",
        UPLOADING,
        "SYSTEM_ANALYSE_FILE_INFO",
        "training video upload confirmed",
        guard=_video_not_yet,
        effect=_flag("video_confirmed", True),
    ),
    Rule(
        "CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED",
        UPLOADING,
        "SYSTEM_ANALYSE_FILE_INFO",
        "action video upload confirmed",
        guard=_once("action_video_confirmed", "action video upload"),
        effect=_flag("action_video_confirmed", True),
    ),
    Rule(
        "CONFIRM_AUTHORIZATION_LETTER",
        UPLOADING,
        "SYSTEM_ANALYSE_FILE_INFO",
        "authorization letter confirmed",
        guard=_once("authorization_letter_confirmed", "authorization letter"),
        effect=_flag("authorization_letter_confirmed", True),
    ),
    Rule(
        "SUBMITVERIFYING",
        UPLOADING,
        "USER_VERIFYING_SUBMITTED",
        "submitted for review",
        to=S.AUTO_VERIFYING,
        guard=_needs_video,
    ),
    Rule(
        "CONFIRM_REPAIR",
        VERIFY_FAILED,
        "USER_REPAIR",
        "repair requested after a failed review",
        to=S.WAIT_FILE_UPLOAD,
    ),
    Rule(
        "DELETE_JOB_VIDEO",
        UPLOADING | VERIFY_FAILED | {S.JOB_SUCCESS, S.JOB_FINISH},
        "USER_DELETE_JOB_VIDEO",
        "job videos deleted",
        effect=_delete_videos,
    ),
    Rule(
        "CONFIRM_ACCEPT",
        _USER_CONFIRM,
        "SYSTEM_JOB_SUCCESS",
        "the user accepted the trained model; the job is finished",
        to=S.JOB_FINISH,
    ),
    Rule(
        "CONFIRM_REJECT",
        _USER_CONFIRM,
        "SYSTEM_TRAIN_FAILED",
        "the user rejected the trained model",
        to=S.JOB_REJECT,
        comment_type="USER_REJECT",
    ),
    Rule(
        "CONFIRM_PENDING",
        _USER_CONFIRM,
        "ADMIN_UPDATE_JOB_PRIORITY",
        "job suspended by the user",
        to=S.JOB_PENDING,
    ),
    Rule(
        "CONFIRM_ACTIVE",
        frozenset({S.JOB_PENDING}),
        "ADMIN_UPDATE_JOB_PRIORITY",
        "job resumed by the user",
        to=S.WAIT_USER_CONFIRM,
    ),
    Rule(
        "CONFIRM_ANSWER",
        frozenset(
            {S.MANUAL_VERIFYING, S.MANUAL_VERIFY_FAILED, S.WAIT_USER_CONFIRM, S.JOB_PENDING}
            | {S.JOB_REJECT}
        ),
        "ADMIN_UPDATE_GENERAL_CONFIG",
        "the user answered",
        comment_type="USER_COMMENT",
    ),
)

_BY_MESSAGE = {(r.command, r.message): r for r in RULES}

#: Refusals worth a specific hint (besides what the state allows).
_HINTS: dict[tuple[S, str], str] = {
    (S.AUTO_VERIFY_FAILED, "SUBMITVERIFYING"): "repair it first (CONFIRM_REPAIR)",
    (S.MANUAL_VERIFY_FAILED, "SUBMITVERIFYING"): "repair it first (CONFIRM_REPAIR)",
    (S.AUTO_VERIFYING, "SUBMITVERIFYING"): "the job is already submitted and being reviewed",
    (S.MANUAL_VERIFYING, "SUBMITVERIFYING"): "the job is already submitted and being reviewed",
    (S.WAIT_FILE_UPLOAD, "CONFIRM_REPAIR"): "only a job that failed review can be repaired",
}


def rule_for(command: str, command_message: str | None = None) -> Rule | None:
    """The rule for ``command`` (refined by ``command_message``), None for unknown ones.

    >>> rule_for("CONFIRM_MULTIPART_UPLOADED", "UPDATE_VIDEO").log_type
    'USER_UPDATE_VIDEO'
    >>> rule_for("CONFIRM_MULTIPART_UPLOADED", "UPLOAD_VIDEO").log_type
    'SYSTEM_ANALYSE_FILE_INFO'
    """
    return _BY_MESSAGE.get((command, command_message)) or _BY_MESSAGE.get((command, None))


def allowed_in(state: S) -> list[str]:
    """The commands a job in ``state`` accepts (some still subject to a guard).

    >>> allowed_in(S.AUTO_VERIFY_FAILED)[:3]
    ['CONFIRM_REPAIR', 'DELETE_JOB_VIDEO', 'GET_ACTION_VIDEO_MULTIPART_UPLOADED']
    """
    return sorted({rule.command for rule in RULES if state in rule.allowed})


def _refusal(state: S, command: str, why: str | None = None) -> str:
    allowed = allowed_in(state)
    where = "allowed here: " + ", ".join(allowed) if allowed else "no command is accepted here"
    why = why or _HINTS.get((state, command))
    return f"command {command} is not allowed in state {state.value}: " + (
        f"{why}; {where}" if why else where
    )


def multipart_data(job: Job, what: str) -> list[dict[str, Any]]:
    """Fake but stable part list for the job's uploaded video (or action video)."""
    parts = 2 if what == "video" else 1
    return [
        {
            "part_number": n,
            "etag": hashlib.sha256(
                f"{job.project_id}/{job.job_id}/{what}/{n}".encode()
            ).hexdigest()[:32],
        }
        for n in range(1, parts + 1)
    ]


def execute(
    job: Job,
    command: str,
    *,
    now: datetime,
    command_message: str | None = None,
    operation_reason: str | None = None,
    comment: Comment | None = None,
) -> CommandResult:
    """Run ``command`` against ``job``, changing it in place (and logging) when allowed.

    >>> from datetime import UTC
    >>> from .record import new_job
    >>> now = datetime(2026, 11, 25, 8, tzinfo=UTC)
    >>> job = new_job("p", "j", now=now)
    >>> execute(job, "SUBMITVERIFYING", now=now).failed_msg.split(":")[0]
    'command SUBMITVERIFYING is not allowed in state WAIT_FILE_UPLOAD'
    >>> execute(job, "CONFIRM_MULTIPART_UPLOADED", now=now).executed
    True
    >>> execute(job, "SUBMITVERIFYING", now=now).logged[0].log_type, job.state.value
    ('USER_VERIFYING_SUBMITTED', 'AUTO_VERIFYING')
    """
    rule = rule_for(command, command_message)
    if rule is None or job.state not in rule.allowed:
        return CommandResult(ok=False, failed_msg=_refusal(job.state, command))
    if rule.guard and (why := rule.guard(job)):
        return CommandResult(ok=False, failed_msg=_refusal(job.state, command, why))
    if rule.reads:
        return CommandResult(ok=True, multipart_data=multipart_data(job, rule.reads))
    assert rule.log_type is not None  # every rule that is not a read writes one
    now = stamp(now)
    if rule.effect:
        rule.effect(job)
    if rule.to is not None:
        job.state = rule.to
    named = f"{command}, {rule.message}" if rule.message else command
    description = f"{rule.description} ({named})"
    if operation_reason:
        description += f": {operation_reason}"
    entry = LogEntry(now, rule.log_type, "USER", description)
    job.log(entry)
    if rule.comment_type:
        c = comment or Comment()
        job.comment_logs.append(
            CommentEntry(now, rule.comment_type, c.title, c.message, c.attachments)
        )
    job.history.append(command)
    return CommandResult(ok=True, executed=True, logged=(entry,))
