"""The commands and the states they move a job between: the API's documented flows only.

A new job (WAIT_FILE_UPLOAD) takes CONFIRM_MULTIPART_UPLOADED, then SUBMITVERIFYING. A failed
review (AUTO_/MANUAL_VERIFY_FAILED) takes Update (:func:`reopen`, ``PUT .../user/jobs/{id}``,
not a command) and a new upload first. CONFIRM_REPAIR is the one-time request for model
optimisation after training, with ``X-App-UserId``. The effect confirmations (CONFIRM_ACCEPT,
_REJECT, _PENDING, _ACTIVE, _ANSWER) are for NA-whitelist jobs, in the states the API names
as theirs. Where the documentation is silent the narrow reading is taken, marked *assumed*:
above all, a command writes an operation-log entry only where a log type names it, so batcher
never learns to rely on an entry the API may not write. The README lists what is documented
and what is assumed. A refusal is a reason (the API's ``200 EXCUTE_FAILED``), never an
exception; states the system moves jobs through accept no command.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batcher.simulator.record import CommentEntry, Job, JobState, LogEntry, stamp

Guard = Callable[[Job], str | None]


@dataclass(frozen=True, slots=True)
class Rule:
    """What one command (with one ``command_message``, when ``message`` is set) does."""

    command: str
    allowed: frozenset[JobState]
    #: The log type it writes when it takes effect; None: no entry (reads, and assumed).
    log_type: str | None = None
    to: str | None = None  #: None: the state stays
    message: str | None = None  #: applies only with this command_message
    reads: str | None = None  #: "video"/"action_video": answer multipart_data, change nothing
    guards: tuple[Guard, ...] = ()  #: why it is refused although the state allows it
    sets: tuple[tuple[str, bool], ...] = ()  #: job flags it sets when it takes effect
    comment_type: str | None = None  #: the comment_logs entry it adds
    needs_app_user: bool = False  #: refused without ``X-App-UserId``


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


def _uploadable(job: Job) -> str | None:
    if job.state not in VERIFY_FAILED or job.reopened:
        return None
    return (
        "the review failed: update the job first (Update, PUT .../user/jobs/{job_id}, outside "
        "batcher) and upload the files again"
    )


def _not_yet(flag: str, what: str) -> Guard:
    def guard(job: Job) -> str | None:
        return f"the {what} is already confirmed" if getattr(job, flag) else None

    return guard


def _needs_video(job: Job) -> str | None:
    if job.video_confirmed:
        return None
    return "confirm the video upload first (CONFIRM_MULTIPART_UPLOADED)"


def _repair_once(job: Job) -> str | None:
    if any(entry.log_type == "USER_REPAIR" for entry in job.operation_logs):
        return "model optimisation was already requested for this job (it can be requested once)"
    return None


def _states(*names: str) -> frozenset[JobState]:
    return frozenset(map(JobState, names))  # a misspelt name fails at import


UPLOADING = _states("WAIT_FILE_UPLOAD")
VERIFY_FAILED = _states("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED")
#: Where files are uploaded: a new job, or a failed one after Update.
_UPLOADS = UPLOADING | VERIFY_FAILED
#: Assumed: "after training" read narrowly as an ordinary tenant's finished job. JOB_FINISH,
#: the NA final state, "does not support modification".
AFTER_TRAINING = _states("JOB_SUCCESS")
#: The states the API names as NA-whitelist only.
NA_STATES = _states("WAIT_USER_CONFIRM", "JOB_REJECT", "JOB_PENDING")
#: Assumed for DELETE_JOB_VIDEO (its states are not documented): where a job may be deleted.
DELETABLE = _states(
    "WAIT_FILE_UPLOAD", "AUTO_VERIFY_FAILED", "MANUAL_VERIFYING", "MANUAL_VERIFY_FAILED",
    "TRAINING_DATA_PREPROCESS_FAILED", "TRAIN_FAILED", "INFERENCE_DATA_PREPROCESS_FAILED",
    "JOB_SUCCESS", "WAIT_USER_CONFIRM", "JOB_REJECT", "JOB_FINISH",
)  # fmt: skip
_CONFIRM = _states("WAIT_USER_CONFIRM")
_VIDEO = ("video_confirmed", True)

#: Every rule, looked up by ``(command, command_message)`` first, then by command alone.
RULES: tuple[Rule, ...] = (
    Rule("GET_MULTIPART_UPLOADED", _UPLOADS, reads="video"),
    Rule("GET_ACTION_VIDEO_MULTIPART_UPLOADED", _UPLOADS, reads="action_video"),
    Rule(
        "CONFIRM_MULTIPART_UPLOADED",
        _UPLOADS,
        "USER_UPDATE_VIDEO",
        message="UPDATE_VIDEO",
        guards=(_uploadable,),
        sets=(_VIDEO,),
    ),
    Rule(  # assumed: the state stays (the next step, SUBMITVERIFYING, needs it to)
        "CONFIRM_MULTIPART_UPLOADED",
        _UPLOADS,
        guards=(_uploadable, _not_yet("video_confirmed", "video upload (replace: UPDATE_VIDEO)")),
        sets=(_VIDEO,),
    ),
    Rule(
        "CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED",
        _UPLOADS,
        guards=(_uploadable, _not_yet("action_video_confirmed", "action video upload")),
        sets=(("action_video_confirmed", True),),
    ),
    Rule(
        "CONFIRM_AUTHORIZATION_LETTER",
        _UPLOADS,
        guards=(_uploadable, _not_yet("authorization_letter_confirmed", "authorization letter")),
        sets=(("authorization_letter_confirmed", True),),
    ),
    Rule(
        "SUBMITVERIFYING",
        _UPLOADS,
        "USER_VERIFYING_SUBMITTED",
        to="AUTO_VERIFYING",
        guards=(_uploadable, _needs_video),
        sets=(("reopened", False),),
    ),
    Rule(  # assumed: the state stays (where optimisation leads is not documented)
        "CONFIRM_REPAIR", AFTER_TRAINING, "USER_REPAIR", guards=(_repair_once,), needs_app_user=True
    ),
    Rule(
        "DELETE_JOB_VIDEO",
        DELETABLE,
        "USER_DELETE_JOB_VIDEO",
        sets=(("video_confirmed", False), ("action_video_confirmed", False)),
    ),
    Rule("CONFIRM_ACCEPT", _CONFIRM, to="JOB_FINISH"),
    Rule("CONFIRM_REJECT", _CONFIRM, to="JOB_REJECT", comment_type="USER_REJECT"),
    Rule("CONFIRM_PENDING", _CONFIRM, to="JOB_PENDING"),
    # assumed: an active job waits for the user's confirmation again
    Rule("CONFIRM_ACTIVE", _states("JOB_PENDING"), to="WAIT_USER_CONFIRM"),
    Rule("CONFIRM_ANSWER", NA_STATES, comment_type="USER_COMMENT"),
)

_BY_MESSAGE = {(r.command, r.message): r for r in RULES}

#: Why a command is refused wherever its states do not include the job's.
_HINTS: dict[str, str] = {
    "CONFIRM_REPAIR": (
        "CONFIRM_REPAIR is the one-time request for model optimisation after training "
        "(JOB_SUCCESS); a failed review is fixed by Update and a new upload, then "
        "CONFIRM_MULTIPART_UPLOADED and SUBMITVERIFYING"
    ),
    **dict.fromkeys(
        ("CONFIRM_ACCEPT", "CONFIRM_REJECT", "CONFIRM_PENDING", "CONFIRM_ACTIVE", "CONFIRM_ANSWER"),
        "an NA-whitelist command, for a trained job awaiting the user (WAIT_USER_CONFIRM, "
        "JOB_PENDING, JOB_REJECT)",
    ),
}


def rule_for(command: str, command_message: str | None = None) -> Rule | None:
    """The rule for ``command`` (refined by ``command_message``), None for unknown ones.

    >>> rule_for("CONFIRM_MULTIPART_UPLOADED", "UPDATE_VIDEO").log_type
    'USER_UPDATE_VIDEO'
    >>> rule_for("CONFIRM_MULTIPART_UPLOADED", "UPLOAD_VIDEO").log_type is None
    True
    """
    return _BY_MESSAGE.get((command, command_message)) or _BY_MESSAGE.get((command, None))


def _why_not(rule: Rule, job: Job) -> str | None:
    return next((why for guard in rule.guards if (why := guard(job))), None)


def allowed_for(job: Job) -> list[str]:
    """The commands this job accepts now, guards included (a command that works only with
    a ``command_message`` is named with it)."""
    ok = [r for r in RULES if job.state in r.allowed and _why_not(r, job) is None]
    plain = {r.command for r in ok if r.message is None}
    named = {f"{r.command} (command_message {r.message})" for r in ok if r.command not in plain}
    return sorted(plain | named)


def _refusal(job: Job, command: str, why: str | None) -> str:
    allowed = [c for c in allowed_for(job) if c.partition(" ")[0] != command]
    where = "allowed here: " + ", ".join(allowed) if allowed else "no command is accepted here"
    if command == "SUBMITVERIFYING" and job.state in ("AUTO_VERIFYING", "MANUAL_VERIFYING"):
        why = why or "the job is already submitted and being reviewed"
    why = why or _HINTS.get(command)
    return f"command {command} is not allowed in state {job.state.value}: " + (
        f"{why}; {where}" if why else where
    )


def multipart_data(job: Job, what: str) -> list[dict[str, Any]]:
    """Fake but stable part list (``MultipartUploadInfo``: ``part_number`` is a string)."""
    parts = 2 if what == "video" else 1
    key = f"{job.project_id}/{job.job_id}/{what}"
    return [
        {"part_number": str(n), "etag": hashlib.sha256(f"{key}/{n}".encode()).hexdigest()[:32]}
        for n in range(1, parts + 1)
    ]


def reopen(job: Job, *, now: datetime) -> str | None:
    """Update (``PUT .../user/jobs/{job_id}``) after a failed review: why it is refused, or
    None once the job awaits its new upload (the ID card and every file again).

    Assumed: the state stays where the review left it until SUBMITVERIFYING, and Update
    writes no operation-log entry (neither is documented); it is the user's resubmission,
    so ``last_update_time`` moves.
    """
    if job.state not in VERIFY_FAILED:
        return f"a job is updated only after a failed review, not in state {job.state.value}"
    job.reopened = True
    job.video_confirmed = job.action_video_confirmed = False
    job.authorization_letter_confirmed = False
    job.last_update_time = max(job.last_update_time, stamp(now))
    return None


def execute(
    job: Job,
    command: str,
    *,
    now: datetime,
    command_message: str | None = None,
    operation_reason: str | None = None,
    comment: Comment | None = None,
    app_user_id: str | None = None,
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
        return CommandResult(ok=False, failed_msg=_refusal(job, command, None))
    why = _why_not(rule, job)
    if why is None and rule.needs_app_user and not app_user_id:
        why = f"{command} is requested with X-App-UserId set"
    if why:
        return CommandResult(ok=False, failed_msg=_refusal(job, command, why))
    if rule.reads:
        return CommandResult(ok=True, multipart_data=multipart_data(job, rule.reads))
    now = stamp(now)
    for flag, value in rule.sets:
        setattr(job, flag, value)
    job.state = JobState(rule.to or job.state)
    job.history.append(command)
    if rule.comment_type:
        c = comment or Comment()
        job.comment_logs.append(
            CommentEntry(now, rule.comment_type, c.title, c.message, c.attachments)
        )
    if rule.log_type is None:
        return CommandResult(ok=True, executed=True)
    named = f"{command}, {rule.message}" if rule.message else command
    reason = f": {operation_reason}" if operation_reason else ""
    entry = LogEntry(now, rule.log_type, "USER", f"{named}{reason}")
    job.log(entry)
    return CommandResult(ok=True, executed=True, logged=(entry,))
