"""Training jobs and the commands that move them: the simulator's state machine.

A job lives per ``(project_id, job_id)``. The lifecycle (``FILE_UPLOADED`` is the
simulator's name for "video confirmed, ready to submit"; the rest are the cloud's)::

    WAIT_FILE_UPLOAD --CONFIRM_MULTIPART_UPLOADED--> FILE_UPLOADED --SUBMITVERIFYING-->
    AUTO_VERIFYING --CONFIRM_ACCEPT--> MANUAL_VERIFYING --CONFIRM_ACCEPT--> TRAINING
    (TRAINING finishes only by seeding/``set_state``) WAIT_CONFIRM --CONFIRM_ACTIVE--> SUCCEED

    AUTO_VERIFYING   --CONFIRM_REJECT--> AUTO_VERIFY_FAILED   --CONFIRM_REPAIR--> WAIT_FILE_UPLOAD
    MANUAL_VERIFYING --CONFIRM_REJECT--> MANUAL_VERIFY_FAILED --CONFIRM_REPAIR--> WAIT_FILE_UPLOAD
    *_VERIFYING --CONFIRM_PENDING--> JOB_PENDING --CONFIRM_ANSWER--> MANUAL_VERIFYING
    FILE_UPLOADED --DELETE_JOB_VIDEO--> WAIT_FILE_UPLOAD

A command that is not allowed where the job stands is refused with a reason, never an
exception: the API answers such refusals with ``200 EXCUTE_FAILED``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """Where a training job stands."""

    WAIT_FILE_UPLOAD = "WAIT_FILE_UPLOAD"
    FILE_UPLOADED = "FILE_UPLOADED"  #: simulator-only: video upload confirmed, not submitted
    AUTO_VERIFYING = "AUTO_VERIFYING"
    MANUAL_VERIFYING = "MANUAL_VERIFYING"
    JOB_PENDING = "JOB_PENDING"
    AUTO_VERIFY_FAILED = "AUTO_VERIFY_FAILED"
    MANUAL_VERIFY_FAILED = "MANUAL_VERIFY_FAILED"
    TRAINING = "TRAINING"
    WAIT_CONFIRM = "WAIT_CONFIRM"
    SUCCEED = "SUCCEED"


@dataclass(slots=True)
class Job:
    """One training job's state, plus the upload confirmations that do not change it."""

    project_id: str
    job_id: str
    state: JobState = JobState.WAIT_FILE_UPLOAD
    action_video_confirmed: bool = False
    authorization_letter_confirmed: bool = False
    #: Commands that changed something, in order (for tests and ``/__simulator/jobs``).
    history: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "job_id": self.job_id,
            "state": self.state.value,
            "action_video_confirmed": self.action_video_confirmed,
            "authorization_letter_confirmed": self.authorization_letter_confirmed,
            "history": list(self.history),
        }


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What running one command did. ``executed`` is True when it changed the job."""

    ok: bool
    failed_msg: str | None = None
    multipart_data: list[dict[str, Any]] | None = None
    executed: bool = False


Guard = Callable[[Job], str | None]
Effect = Callable[[Job], None]


@dataclass(frozen=True, slots=True)
class _Rule:
    to: JobState | None = None  #: None: the state stays
    reads: str | None = None  #: "video"/"action_video": answer multipart_data, change nothing
    guard: Guard | None = None  #: returns why the command is refused, or None
    effect: Effect | None = None


def _once(flag: str, what: str) -> tuple[Guard, Effect]:
    """A confirmation that may happen once: refused the second time, like the cloud."""

    def guard(job: Job) -> str | None:
        return f"the {what} is already confirmed" if getattr(job, flag) else None

    def effect(job: Job) -> None:
        setattr(job, flag, True)

    return guard, effect


_ACTION_GUARD, _ACTION_EFFECT = _once("action_video_confirmed", "action video upload")
_LETTER_GUARD, _LETTER_EFFECT = _once("authorization_letter_confirmed", "authorization letter")

_UPLOAD_COMMON: dict[str, _Rule] = {
    "GET_MULTIPART_UPLOADED": _Rule(reads="video"),
    "GET_ACTION_VIDEO_MULTIPART_UPLOADED": _Rule(reads="action_video"),
    "CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED": _Rule(guard=_ACTION_GUARD, effect=_ACTION_EFFECT),
    "CONFIRM_AUTHORIZATION_LETTER": _Rule(guard=_LETTER_GUARD, effect=_LETTER_EFFECT),
}

S = JobState
_RULES: dict[JobState, dict[str, _Rule]] = {
    S.WAIT_FILE_UPLOAD: {
        **_UPLOAD_COMMON,
        "CONFIRM_MULTIPART_UPLOADED": _Rule(to=S.FILE_UPLOADED),
        "DELETE_JOB_VIDEO": _Rule(),
    },
    S.FILE_UPLOADED: {
        **_UPLOAD_COMMON,
        "DELETE_JOB_VIDEO": _Rule(to=S.WAIT_FILE_UPLOAD),
        "SUBMITVERIFYING": _Rule(to=S.AUTO_VERIFYING),
    },
    S.AUTO_VERIFYING: {
        "CONFIRM_ACCEPT": _Rule(to=S.MANUAL_VERIFYING),
        "CONFIRM_REJECT": _Rule(to=S.AUTO_VERIFY_FAILED),
        "CONFIRM_PENDING": _Rule(to=S.JOB_PENDING),
        "CONFIRM_ANSWER": _Rule(),
    },
    S.MANUAL_VERIFYING: {
        "CONFIRM_ACCEPT": _Rule(to=S.TRAINING),
        "CONFIRM_REJECT": _Rule(to=S.MANUAL_VERIFY_FAILED),
        "CONFIRM_PENDING": _Rule(to=S.JOB_PENDING),
        "CONFIRM_ANSWER": _Rule(),
    },
    S.JOB_PENDING: {
        "CONFIRM_ANSWER": _Rule(to=S.MANUAL_VERIFYING),
        "CONFIRM_REJECT": _Rule(to=S.MANUAL_VERIFY_FAILED),
    },
    S.AUTO_VERIFY_FAILED: {"CONFIRM_REPAIR": _Rule(to=S.WAIT_FILE_UPLOAD)},
    S.MANUAL_VERIFY_FAILED: {"CONFIRM_REPAIR": _Rule(to=S.WAIT_FILE_UPLOAD)},
    S.TRAINING: {},
    S.WAIT_CONFIRM: {"CONFIRM_ACTIVE": _Rule(to=S.SUCCEED)},
    S.SUCCEED: {},
}

#: Refusals worth a specific hint; anything else lists what the state allows.
_HINTS: dict[tuple[JobState, str], str] = {
    (S.WAIT_FILE_UPLOAD, "SUBMITVERIFYING"): (
        "confirm the video upload first (CONFIRM_MULTIPART_UPLOADED)"
    ),
    (S.FILE_UPLOADED, "CONFIRM_MULTIPART_UPLOADED"): "the video upload is already confirmed",
    (S.WAIT_FILE_UPLOAD, "CONFIRM_ACTIVE"): "the model has not been trained yet",
}


def _refusal(state: JobState, command: str) -> str:
    allowed = sorted(_RULES[state])
    if (state, command) in _HINTS:
        why = _HINTS[state, command]
    elif state is S.TRAINING:
        why = "training is in progress; no command is accepted until it reaches WAIT_CONFIRM"
    elif state is S.SUCCEED:
        why = "the job has finished"
    else:
        why = "allowed here: " + ", ".join(allowed)
    return f"command {command} is not allowed in state {state.value}: {why}"


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


def execute(job: Job, command: str) -> CommandResult:
    """Run ``command`` against ``job``, changing it in place when allowed.

    >>> job = Job(project_id="p", job_id="j")
    >>> execute(job, "SUBMITVERIFYING").failed_msg.split(":")[0]
    'command SUBMITVERIFYING is not allowed in state WAIT_FILE_UPLOAD'
    >>> execute(job, "CONFIRM_MULTIPART_UPLOADED").ok, job.state.value
    (True, 'FILE_UPLOADED')
    """
    rule = _RULES[job.state].get(command)
    if rule is None:
        return CommandResult(ok=False, failed_msg=_refusal(job.state, command))
    if rule.guard and (why := rule.guard(job)):
        return CommandResult(ok=False, failed_msg=f"command {command} refused: {why}")
    if rule.reads:
        return CommandResult(ok=True, multipart_data=multipart_data(job, rule.reads))
    if rule.effect:
        rule.effect(job)
    if rule.to is not None:
        job.state = rule.to
    job.history.append(command)
    return CommandResult(ok=True, executed=True)


class JobStore:
    """Jobs by ``(project_id, job_id)``; unknown ones start in their seeded state.

    ``seeds`` maps a job_id to the state it starts in, in whichever project it is first
    seen (the ``--jobs`` file); others start in ``WAIT_FILE_UPLOAD``.

    >>> store = JobStore({"j1": JobState.TRAINING})
    >>> store.get("p", "j1").state.value, store.get("p", "j2").state.value
    ('TRAINING', 'WAIT_FILE_UPLOAD')
    """

    def __init__(self, seeds: Mapping[str, JobState] | None = None) -> None:
        self._seeds = dict(seeds or {})
        self._jobs: dict[tuple[str, str], Job] = {}

    def get(self, project_id: str, job_id: str) -> Job:
        """The job, created on first sight."""
        key = (project_id, job_id)
        job = self._jobs.get(key)
        if job is None:
            state = self._seeds.get(job_id, JobState.WAIT_FILE_UPLOAD)
            job = self._jobs[key] = Job(project_id=project_id, job_id=job_id, state=state)
        return job

    def find(self, job_id: str, project_id: str | None = None) -> Job | None:
        """A job already seen, by id (and project, when several projects used that id)."""
        if project_id is not None:
            return self._jobs.get((project_id, job_id))
        matches = [job for (_, jid), job in self._jobs.items() if jid == job_id]
        if len(matches) > 1:
            raise LookupError(f"job {job_id} exists in several projects; name the project")
        return matches[0] if matches else None

    def state(self, job_id: str, project_id: str | None = None) -> JobState | None:
        """The job's state, or None when it has not been seen yet."""
        job = self.find(job_id, project_id)
        return None if job is None else job.state

    def set_state(self, job_id: str, state: JobState | str, project_id: str | None = None) -> None:
        """Move a job (in every project, when ``project_id`` is None) and seed it for later.

        This is how a test makes training finish: ``set_state("j1", "WAIT_CONFIRM")``.
        """
        state = JobState(state)
        if project_id is None:
            self._seeds[job_id] = state
            for (_, jid), job in self._jobs.items():
                if jid == job_id:
                    job.state = state
        else:
            self.get(project_id, job_id).state = state

    def __iter__(self) -> Iterator[Job]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)
