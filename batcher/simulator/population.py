"""Seeded jobs: a reproducible population (``--jobs N``) and the jobs of a seed file.

Each seed job gets a plausible past: create and update times spread over past days and an
operation log that leads to its state (created, submitted, failed review, resubmitted, ...),
with the entries a command would have written where a command got it there. Seeds carry no
project: a copy of each appears in every project the simulator is asked about.

>>> from datetime import UTC, datetime
>>> until = datetime(2026, 11, 25, tzinfo=UTC)
>>> jobs = populate(count=3, seed=7, until=until)
>>> [j.job_id for j in jobs] == [j.job_id for j in populate(count=3, seed=7, until=until)]
True
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from batcher.simulator.config import JobSpec, SimulatorConfig
from batcher.simulator.machine import Comment, execute
from batcher.simulator.record import CommentEntry, Job, JobState, LogEntry, stamp

#: How often a generated job is in a state: mostly where operators act.
STATE_WEIGHTS: dict[str, float] = {
    "WAIT_FILE_UPLOAD": 18, "AUTO_VERIFY_FAILED": 14, "MANUAL_VERIFY_FAILED": 12,
    "WAIT_USER_CONFIRM": 10, "JOB_SUCCESS": 8, "AUTO_VERIFYING": 6, "MANUAL_VERIFYING": 6,
    "JOB_FINISH": 4, "JOB_REJECT": 3, "JOB_PENDING": 3, "TRAINING": 3,
}  # fmt: skip
_RARE = 0.4  #: the weight of every other state
TAGS: tuple[str, ...] = ("vip", "retake", "4k", "主播", "na-whitelist", "q4")
_LOCATIONS = (("cn-north-4",), ("cn-east-3",), ("cn-north-4", "cn-east-3"))
_MANUAL_FAIL = "人工审核不通过：视频中人物面部被遮挡"

#: How the system got a job to a state: ``state: (the state before, the log entry written)``.
#: States not named here are the later pipeline, reached from WAIT_USER_CONFIRM: each writes
#: its own entry where a log type names it (:data:`_LATER`), none otherwise.
_STEPS: dict[str, tuple[str | None, str | None]] = {
    "WAIT_FILE_UPLOAD": (None, "USER_CREATE_JOD"),
    "AUTO_VERIFYING": ("WAIT_FILE_UPLOAD", "USER_VERIFYING_SUBMITTED"),
    "AUTO_VERIFY_FAILED": ("AUTO_VERIFYING", "SYSTEM_VERIFY_FAILED"),
    "MANUAL_VERIFYING": ("AUTO_VERIFYING", "SYSTEM_VERIFY_SUCCESS"),
    "MANUAL_VERIFY_FAILED": ("MANUAL_VERIFYING", "ADMIN_VERIFY_FAILED"),
    "MANUAL_VERIFY_SUCCESS": ("MANUAL_VERIFYING", "ADMIN_VERIFY_SUCCESS"),
    "WAIT_TRAINING_DATA_PREPROCESS": ("MANUAL_VERIFY_SUCCESS", None),
    "TRAINING_DATA_PREPROCESSING": ("MANUAL_VERIFY_SUCCESS", "SYSTEM_TRAIN_DATA_PREPROCESSING"),
    "TRAINING_DATA_PREPROCESS_FAILED": (
        "TRAINING_DATA_PREPROCESSING", "SYSTEM_TRAIN_DATA_PREPROCESS_FAILED"
    ),
    "MANUAL_STOP_TRAINING_DATA_PREPROCESS": (
        "TRAINING_DATA_PREPROCESSING", "ADMIN_STOP_TRAINING_DATA_PREPROCESS"
    ),
    "TRAINING_DATA_PREPROCESS_SUCCESS": (
        "TRAINING_DATA_PREPROCESSING", "SYSTEM_TRAIN_DATA_PREPROCESS_SUCCESS"
    ),
    "TRAINING": ("TRAINING_DATA_PREPROCESS_SUCCESS", "SYSTEM_TRAINING"),
    "TRAIN_FAILED": ("TRAINING", "SYSTEM_TRAIN_FAILED"),
    "MANUAL_STOP_TRAIN": ("TRAINING", "ADMIN_STOP_TRAIN"),
    "TRAIN_SUCCESS": ("TRAINING", "SYSTEM_TRAIN_SUCCESS"),
    "INFERENCE_DATA_PREPROCESSING": ("TRAIN_SUCCESS", "SYSTEM_INFERENCE_DATA_PREPROCESSING"),
    "INFERENCE_DATA_PREPROCESS_FAILED": (
        "INFERENCE_DATA_PREPROCESSING", "SYSTEM_INFERENCE_DATA_PREPROCESS_FAILED"
    ),
    "MANUAL_STOP_INFERENCE_DATA_PREPROCESS": (
        "INFERENCE_DATA_PREPROCESSING", "ADMIN_STOP_INFERENCE_DATA_PREPROCESS"
    ),
    "WAIT_USER_CONFIRM": (
        "INFERENCE_DATA_PREPROCESSING", "SYSTEM_INFERENCE_DATA_PREPROCESS_SUCCESS"
    ),
    "JOB_SUCCESS": ("WAIT_USER_CONFIRM", "SYSTEM_JOB_SUCCESS"),
}  # fmt: skip
_LATER: dict[str, str] = {
    "COMPILING": "SYSTEM_EXECUTE_COMPILE",
    "COMPILE_FAILED": "SYSTEM_COMPILE_FAILED",
    "ACTION_GENERATE_DATA_PROCESSING": "SYSTEM_ACTION_GENERATE_DATA_PREPROCESSING",
    "ACTION_GENERATE_DATA_FAILED": "SYSTEM_ACTION_GENERATE_DATA_FAILED",
    "ACTION_GENERATE_ORI_PROCESSING": "SYSTEM_ACTION_GENERATE_ORI_PREPROCESSING",
    "ACTION_GENERATE_ORI_FAILED": "SYSTEM_ACTION_GENERATE_ORI_FAILED",
    "ACTION_GENERATE_ORI_SUCCESS": "SYSTEM_ACTION_GENERATE_ORI_SUCCESS",
    **{s: s for s in ("WAIT_TEST_VIDEO_CHECK", "TEST_VIDEO_CHECK_PROCESSING")},
    **{s: s for s in ("TEST_VIDEO_CHECK_SUCCESS", "TEST_VIDEO_CHECK_FAILED")},
}
#: States a user command reaches from WAIT_USER_CONFIRM: their log is what it wrote.
_BY_COMMAND = {"JOB_FINISH": "CONFIRM_ACCEPT", "JOB_REJECT": "CONFIRM_REJECT"}
_BY_COMMAND["JOB_PENDING"] = "CONFIRM_PENDING"


def default_until(now: datetime | None = None) -> datetime:
    """The instant seeded times end at by default: 00:00 UTC of today.

    >>> default_until(datetime(2026, 11, 25, 8, 30, tzinfo=UTC)).isoformat()
    '2026-11-25T00:00:00+00:00'
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _log_types(state: str) -> list[str]:
    """The log types the system wrote on the way to ``state``, oldest first."""
    before, log_type = _STEPS.get(state, ("WAIT_USER_CONFIRM", _LATER.get(state)))
    path = _log_types(before) if before else []
    return [*path, log_type] if log_type else path


def _entry(log_type: str, when: datetime) -> LogEntry:
    user = log_type.partition("_")[0] if log_type.startswith(("USER_", "ADMIN_")) else "SYSTEM"
    description = _MANUAL_FAIL if log_type == "ADMIN_VERIFY_FAILED" else log_type.lower()
    error = "44005901" if log_type == "SYSTEM_VERIFY_FAILED" else None
    return LogEntry(when, log_type, user, description.replace("_", " "), error_code=error)


def _path(state: str, rng: random.Random) -> list[str]:
    path = _log_types(state)
    if state in ("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED") and rng.random() < 0.3:
        path[1:1] = _log_types("AUTO_VERIFY_FAILED")[1:]  # failed, updated, resubmitted, failed
    return path


def build(
    job_id: str,
    state: JobState,
    *,
    rng: random.Random,
    created: datetime,
    until: datetime,
    **attributes: object,
) -> Job:
    """A seed job in ``state`` with a log that leads there, between ``created`` and
    ``until``; ``attributes`` set other fields (name, batch_name, tags, ...)."""
    created = stamp(created).replace(microsecond=0)
    job = Job(project_id="", job_id=job_id, create_time=created, last_update_time=created)
    for name, value in attributes.items():
        setattr(job, name, value)
    command = _BY_COMMAND.get(state)
    path = _log_types("WAIT_USER_CONFIRM") if command else _path(state, rng)
    span = max((until - created).total_seconds(), float(len(path) + 1))
    # One time per step after the creation, and one more for the command, if any.
    offsets = sorted(rng.uniform(0, span) for _ in range(len(path) - (0 if command else 1)))
    times = [created] + [created + timedelta(seconds=int(o)) for o in offsets]
    for log_type, when in zip(path, times, strict=False):
        job.log(_entry(log_type, when))
        if log_type == "ADMIN_VERIFY_FAILED":
            job.comment_logs.append(CommentEntry(when, "ADMIN_COMMENT", "审核意见", _MANUAL_FAIL))
    # Past the upload, the video and the letter were confirmed.
    job.video_confirmed = job.authorization_letter_confirmed = state != "WAIT_FILE_UPLOAD"
    if "SYSTEM_TRAIN_SUCCESS" in path:
        job.asset_id = f"{rng.getrandbits(128):032x}"
    job.state = JobState("WAIT_USER_CONFIRM" if command else state)
    if command:  # got there by the user's command: its log is the one that command writes
        execute(job, command, now=times[-1], comment=Comment(title="效果不满意"))
        job.history.clear()
    return job


def _attributes(
    n: int, rng: random.Random, batches: Sequence[str], *, flexus: bool
) -> dict[str, object]:
    """A generated job's fields other than its id, state and past (drawn in this order)."""
    return {
        "name": f"分身-{n:05d}" if n % 2 else f"avatar-{n:05d}",
        "batch_name": rng.choice(batches) if rng.random() < 0.9 else None,
        "tags": sorted(rng.sample(TAGS, rng.choice((0, 1, 1, 2)))),
        "contact": f"138****{rng.randrange(10_000):04d}",
        "model_version": "V3.3" if flexus else "V3.2",
        "matting_type": "MANUAL" if rng.random() < 0.1 else "AI",
        "model_resolution": "4K" if rng.random() < 0.2 else "1080P",
        "app_user_id": f"user-{rng.randrange(100):03d}" if rng.random() < 0.3 else None,
        "is_flexus": flexus,
        "is_fast_flexus": flexus and rng.random() < 0.5,
        "is_live_copy": rng.random() < 0.1,
        "is_only_human_model": rng.random() < 0.05,
        "optional_training_location": list(rng.choice(_LOCATIONS)),
        "is_background_replacement": rng.random() < 0.1,
        "is_ondemand_resource": rng.random() < 0.05,
    }


def populate(
    *, count: int, seed: int | None, until: datetime, days: int = 30, prefix: str = ""
) -> list[Job]:
    """``count`` seed jobs spread over states, batches and tags, created in the ``days``
    before ``until``; the same arguments give the same jobs."""
    rng = random.Random(None if seed is None else f"population/{seed}")
    states = list(JobState)
    weights = [STATE_WEIGHTS.get(state, _RARE) for state in states]
    batches = [  # about one per 40 jobs (at most 40), some of them Chinese
        f"华北-批次{k:02d}" if k % 3 == 2 else f"batch-{k:02d}"
        for k in range(1, min(40, count // 40 + 1) + 1)
    ]
    jobs = []
    for n in range(count):
        # The draws keep their order, so a seed gives the population it always gave.
        created = until - timedelta(seconds=rng.uniform(3600, days * 86400))
        flexus = rng.random() < 0.15
        state = rng.choices(states, weights)[0]
        job_id = prefix + f"{rng.getrandbits(128):032x}"
        attributes = _attributes(n, rng, batches, flexus=flexus)
        job = build(job_id, state, rng=rng, created=created, until=until, **attributes)
        # A job waiting for its files has them all uploaded but not yet confirmed.
        job.action_video_confirmed = state != "WAIT_FILE_UPLOAD" and rng.random() < 0.3
        jobs.append(job)
    return jobs


def seed_jobs(config: SimulatorConfig, *, now: datetime | None = None) -> list[Job]:
    """The seeds ``config`` asks for: its population, then its ``jobs`` (which win)."""
    until = config.population_until or default_until(now)
    seeds = {
        job.job_id: job
        for job in populate(
            count=config.population, seed=config.seed, until=until, days=config.population_days
        )
    }
    for job_id, spec in config.jobs.items():
        spec = spec if isinstance(spec, JobSpec) else JobSpec(state=spec)
        created = spec.create_time or until - timedelta(days=1)
        job = build(
            job_id,
            spec.state,
            rng=random.Random(f"file/{config.seed}/{job_id}"),
            created=created,
            until=max(until, stamp(created)),
            name=spec.name or job_id,
            batch_name=spec.batch_name,
            tags=list(spec.tags),
        )
        if spec.video_confirmed is not None:
            job.video_confirmed = job.authorization_letter_confirmed = spec.video_confirmed
        job.reopened = spec.reopened
        if spec.last_update_time is not None:
            job.last_update_time = stamp(spec.last_update_time)
        seeds[job_id] = job
    return list(seeds.values())
