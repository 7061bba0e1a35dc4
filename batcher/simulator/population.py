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
from batcher.simulator.record import CommentEntry, Job, LogEntry, stamp
from batcher.simulator.record import JobState as S

#: How often a generated job is in a state: mostly where operators act.
STATE_WEIGHTS: dict[S, float] = {
    S.WAIT_FILE_UPLOAD: 18,
    S.AUTO_VERIFY_FAILED: 14,
    S.MANUAL_VERIFY_FAILED: 12,
    S.WAIT_USER_CONFIRM: 10,
    S.JOB_SUCCESS: 8,
    S.AUTO_VERIFYING: 6,
    S.MANUAL_VERIFYING: 6,
    S.JOB_FINISH: 4,
    S.JOB_REJECT: 3,
    S.JOB_PENDING: 3,
    S.TRAINING: 3,
}
_RARE = 0.4  #: the weight of every other state
TAGS: tuple[str, ...] = ("vip", "retake", "4k", "主播", "na-whitelist", "q4")

_Step = tuple[str, str, str]  # (log_type, operate_user, description)
_CREATE: _Step = ("USER_CREATE_JOD", "USER", "training job created")
_SUBMIT: _Step = ("USER_VERIFYING_SUBMITTED", "USER", "submitted for review (SUBMITVERIFYING)")
_AUTO_FAIL: _Step = ("SYSTEM_VERIFY_FAILED", "SYSTEM", "automatic review failed")
_AUTO_OK: _Step = ("SYSTEM_VERIFY_SUCCESS", "SYSTEM", "automatic review passed")
_MANUAL_FAIL: _Step = ("ADMIN_VERIFY_FAILED", "ADMIN", "人工审核不通过：视频中人物面部被遮挡")
_MANUAL_OK: _Step = ("ADMIN_VERIFY_SUCCESS", "ADMIN", "manual review passed")


def _sys(log_type: str, description: str) -> _Step:
    return (log_type, "SYSTEM", description)


_VERIFIED = (_CREATE, _SUBMIT, _AUTO_OK, _MANUAL_OK)
_PREPROCESSED = (
    *_VERIFIED,
    _sys("SYSTEM_TRAIN_DATA_PREPROCESSING", "training data preprocessing"),
    _sys("SYSTEM_TRAIN_DATA_PREPROCESS_SUCCESS", "training data preprocessed"),
)
_TRAINED = (
    *_PREPROCESSED,
    _sys("SYSTEM_TRAINING", "training started"),
    _sys("SYSTEM_TRAIN_SUCCESS", "training succeeded"),
)
_INFERRED = (
    *_TRAINED,
    _sys("SYSTEM_INFERENCE_DATA_PREPROCESSING", "inference data preprocessing"),
    _sys("SYSTEM_INFERENCE_DATA_PREPROCESS_SUCCESS", "inference data preprocessed"),
)

#: The log that leads to a state; states not listed get ``_INFERRED`` plus their
#: ``_LAST`` entry (the later pipeline: compiling, actions, test videos).
_PATHS: dict[S, tuple[_Step, ...]] = {
    S.WAIT_FILE_UPLOAD: (_CREATE,),
    S.AUTO_VERIFYING: (_CREATE, _SUBMIT),
    S.AUTO_VERIFY_FAILED: (_CREATE, _SUBMIT, _AUTO_FAIL),
    S.MANUAL_VERIFYING: (_CREATE, _SUBMIT, _AUTO_OK),
    S.MANUAL_VERIFY_FAILED: (_CREATE, _SUBMIT, _AUTO_OK, _MANUAL_FAIL),
    S.MANUAL_VERIFY_SUCCESS: _VERIFIED,
    S.WAIT_TRAINING_DATA_PREPROCESS: _VERIFIED,
    S.TRAINING_DATA_PREPROCESSING: _PREPROCESSED[:-1],
    S.TRAINING_DATA_PREPROCESS_FAILED: (
        *_PREPROCESSED[:-1],
        _sys("SYSTEM_TRAIN_DATA_PREPROCESS_FAILED", "training data preprocessing failed"),
    ),
    S.MANUAL_STOP_TRAINING_DATA_PREPROCESS: (
        *_PREPROCESSED[:-1],
        ("ADMIN_STOP_TRAINING_DATA_PREPROCESS", "ADMIN", "preprocessing stopped"),
    ),
    S.TRAINING_DATA_PREPROCESS_SUCCESS: _PREPROCESSED,
    S.TRAINING: _TRAINED[:-1],
    S.TRAIN_FAILED: (*_TRAINED[:-1], _sys("SYSTEM_TRAIN_FAILED", "training failed")),
    S.MANUAL_STOP_TRAIN: (*_TRAINED[:-1], ("ADMIN_STOP_TRAIN", "ADMIN", "training stopped")),
    S.TRAIN_SUCCESS: _TRAINED,
    S.INFERENCE_DATA_PREPROCESSING: _INFERRED[:-1],
    S.INFERENCE_DATA_PREPROCESS_FAILED: (
        *_INFERRED[:-1],
        _sys("SYSTEM_INFERENCE_DATA_PREPROCESS_FAILED", "inference preprocessing failed"),
    ),
    S.MANUAL_STOP_INFERENCE_DATA_PREPROCESS: (
        *_INFERRED[:-1],
        ("ADMIN_STOP_INFERENCE_DATA_PREPROCESS", "ADMIN", "inference preprocessing stopped"),
    ),
    S.WAIT_USER_CONFIRM: _INFERRED,
    S.JOB_SUCCESS: (*_INFERRED, _sys("SYSTEM_JOB_SUCCESS", "job finished")),
}
_LAST: dict[S, _Step] = {
    S.COMPILING: _sys("SYSTEM_EXECUTE_COMPILE", "compiling"),
    S.COMPILE_FAILED: _sys("SYSTEM_COMPILE_FAILED", "compiling failed"),
    S.ACTION_GENERATE_DATA_PROCESSING: _sys(
        "SYSTEM_ACTION_GENERATE_DATA_PREPROCESSING", "generating actions"
    ),
    S.ACTION_GENERATE_DATA_FAILED: _sys("SYSTEM_ACTION_GENERATE_DATA_FAILED", "actions failed"),
    S.ACTION_GENERATE_ORI_PROCESSING: _sys(
        "SYSTEM_ACTION_GENERATE_ORI_PREPROCESSING", "arranging actions"
    ),
    S.ACTION_GENERATE_ORI_FAILED: _sys("SYSTEM_ACTION_GENERATE_ORI_FAILED", "arranging failed"),
    S.ACTION_GENERATE_ORI_SUCCESS: _sys("SYSTEM_ACTION_GENERATE_ORI_SUCCESS", "actions arranged"),
    S.WAIT_TEST_VIDEO_CHECK: _sys("WAIT_TEST_VIDEO_CHECK", "waiting for the test video check"),
    S.TEST_VIDEO_CHECK_PROCESSING: _sys("TEST_VIDEO_CHECK_PROCESSING", "checking test video"),
    S.TEST_VIDEO_CHECK_SUCCESS: _sys("TEST_VIDEO_CHECK_SUCCESS", "test video check passed"),
    S.TEST_VIDEO_CHECK_FAILED: _sys("TEST_VIDEO_CHECK_FAILED", "test video check failed"),
}
#: States a user command reaches from WAIT_USER_CONFIRM: their log is what it wrote.
_BY_COMMAND: dict[S, str] = {
    S.JOB_FINISH: "CONFIRM_ACCEPT",
    S.JOB_REJECT: "CONFIRM_REJECT",
    S.JOB_PENDING: "CONFIRM_PENDING",
}


def default_until(now: datetime | None = None) -> datetime:
    """The instant seeded times end at by default: 00:00 UTC of today.

    >>> default_until(datetime(2026, 11, 25, 8, 30, tzinfo=UTC)).isoformat()
    '2026-11-25T00:00:00+00:00'
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _path(state: S, rng: random.Random) -> tuple[_Step, ...]:
    path = _PATHS.get(state) or (*_INFERRED, *([_LAST[state]] if state in _LAST else []))
    if state in (S.AUTO_VERIFY_FAILED, S.MANUAL_VERIFY_FAILED) and rng.random() < 0.3:
        path = (_CREATE, _SUBMIT, _AUTO_FAIL, *path[1:])  # failed, updated, resubmitted, failed
    return path


def build(
    job_id: str,
    state: S,
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
    path = _PATHS[S.WAIT_USER_CONFIRM] if command else _path(state, rng)
    span = max((until - created).total_seconds(), float(len(path) + 1))
    # One time per step after the creation, and one more for the command, if any.
    offsets = sorted(rng.uniform(0, span) for _ in range(len(path) - (0 if command else 1)))
    times = [created] + [created + timedelta(seconds=int(o)) for o in offsets]
    for (log_type, user, description), when in zip(path, times[: len(path)], strict=True):
        error = "44005901" if log_type == "SYSTEM_VERIFY_FAILED" else None
        job.log(LogEntry(when, log_type, user, description, error_code=error))
        if log_type == "ADMIN_VERIFY_FAILED":
            job.comment_logs.append(CommentEntry(when, "ADMIN_COMMENT", "审核意见", description))
    # Past the upload, the video and the letter were confirmed.
    job.video_confirmed = state is not S.WAIT_FILE_UPLOAD
    job.authorization_letter_confirmed = job.video_confirmed
    if any(log_type == "SYSTEM_TRAIN_SUCCESS" for log_type, _, _ in path):
        job.asset_id = f"{rng.getrandbits(128):032x}"
    job.state = S.WAIT_USER_CONFIRM if command else state
    if command:  # got there by the user's command: its log is the one that command writes
        execute(job, command, now=times[-1], comment=Comment(title="效果不满意"))
        job.history.clear()
    return job


def populate(
    *, count: int, seed: int | None, until: datetime, days: int = 30, prefix: str = ""
) -> list[Job]:
    """``count`` seed jobs spread over states, batches and tags, created in the ``days``
    before ``until``; the same arguments give the same jobs."""
    rng = random.Random(None if seed is None else f"population/{seed}")
    states = list(S)
    weights = [STATE_WEIGHTS.get(state, _RARE) for state in states]
    batches = _batches(count)
    jobs = []
    for n in range(count):
        created = until - timedelta(seconds=rng.uniform(3600, days * 86400))
        flexus = rng.random() < 0.15
        state = rng.choices(states, weights)[0]
        jobs.append(
            build(
                prefix + f"{rng.getrandbits(128):032x}",
                state,
                rng=rng,
                created=created,
                until=until,
                name=f"分身-{n:05d}" if n % 2 else f"avatar-{n:05d}",
                batch_name=rng.choice(batches) if rng.random() < 0.9 else None,
                tags=sorted(rng.sample(TAGS, rng.choice((0, 1, 1, 2)))),
                contact=f"138****{rng.randrange(10_000):04d}",
                model_version="V3.3" if flexus else "V3.2",
                matting_type="MANUAL" if rng.random() < 0.1 else "AI",
                model_resolution="4K" if rng.random() < 0.2 else "1080P",
                app_user_id=f"user-{rng.randrange(100):03d}" if rng.random() < 0.3 else None,
                is_flexus=flexus,
                is_fast_flexus=flexus and rng.random() < 0.5,
                is_live_copy=rng.random() < 0.1,
                is_only_human_model=rng.random() < 0.05,
                optional_training_location=list(
                    rng.choice((("cn-north-4",), ("cn-east-3",), ("cn-north-4", "cn-east-3")))
                ),
                is_background_replacement=rng.random() < 0.1,
                is_ondemand_resource=rng.random() < 0.05,
            )
        )
        # A job waiting for its files has them all uploaded but not yet confirmed.
        jobs[-1].action_video_confirmed = state is not S.WAIT_FILE_UPLOAD and rng.random() < 0.3
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


def _batches(count: int) -> Sequence[str]:
    """Batch names: about one per 40 jobs (at most 40), some of them Chinese."""
    return [
        f"华北-批次{k:02d}" if k % 3 == 2 else f"batch-{k:02d}"
        for k in range(1, min(40, count // 40 + 1) + 1)
    ]
