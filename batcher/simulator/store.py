"""The simulator's jobs, per ``(project_id, job_id)``.

Seed jobs (a ``--jobs N`` population, a ``--jobs-file``, ``set_state``) have no project: each
project the simulator is asked about gets its own copy of every seed, made the first time
that project is touched. A command naming a job that is neither seeded nor known creates it
in WAIT_FILE_UPLOAD; List and Show know only the jobs that exist in the project.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

from batcher.simulator.record import Job, JobState, new_job


class JobStore:
    """Jobs by ``(project_id, job_id)``, with the seeds every project starts from.

    >>> from .record import new_job
    >>> seed = new_job("", "j1", now=datetime(2026, 11, 1, tzinfo=UTC))
    >>> seed.state = JobState.TRAINING
    >>> store = JobStore([seed])
    >>> store.get("p", "j1").state.value, store.get("p", "j2").state.value
    ('TRAINING', 'WAIT_FILE_UPLOAD')
    >>> [job.job_id for job in store.in_project("q")]
    ['j1']
    """

    def __init__(
        self, seeds: Iterable[Job] = (), *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._seeds = {seed.job_id: seed for seed in seeds}  # in order: List shows them so
        self._projects: dict[str, dict[str, Job]] = {}
        self._copied: dict[str, int] = {}  #: per project, how many seeds it has copied

    @property
    def seed_count(self) -> int:
        return len(self._seeds)

    def _project(self, project_id: str) -> dict[str, Job]:
        jobs = self._projects.setdefault(project_id, {})
        copied = self._copied.get(project_id, 0)
        if copied < len(self._seeds):  # seeds it has not copied yet (set_state adds them)
            for job_id, seed in itertools.islice(self._seeds.items(), copied, None):
                jobs.setdefault(job_id, seed.copy_to(project_id))
            self._copied[project_id] = len(self._seeds)
        return jobs

    # ------------------------------------------------------------------ lookups

    def get(self, project_id: str, job_id: str, *, now: datetime | None = None) -> Job:
        """The job, created in WAIT_FILE_UPLOAD (at ``now``) on first sight, as by a command."""
        jobs = self._project(project_id)
        job = jobs.get(job_id)
        if job is None:
            job = jobs[job_id] = new_job(project_id, job_id, now=now or self._clock())
        return job

    def lookup(self, project_id: str, job_id: str) -> Job | None:
        """The job when it exists in the project (seeded or created), else None (Show)."""
        return self._project(project_id).get(job_id)

    def in_project(self, project_id: str) -> list[Job]:
        """Every job in the project, seeds first, then in order of creation (List)."""
        return list(self._project(project_id).values())

    def find(self, job_id: str, project_id: str | None = None) -> Job | None:
        """A job already materialized, by id (and project, when several projects have it)."""
        if project_id is not None:
            return self._projects.get(project_id, {}).get(job_id)
        matches = [jobs[job_id] for jobs in self._projects.values() if job_id in jobs]
        if len(matches) > 1:
            raise LookupError(f"job {job_id} exists in several projects; name the project")
        return matches[0] if matches else None

    def state(self, job_id: str, project_id: str | None = None) -> JobState | None:
        """The job's state, or None when it has not been seen yet."""
        job = self.find(job_id, project_id)
        return None if job is None else job.state

    def set_state(self, job_id: str, state: JobState | str, project_id: str | None = None) -> None:
        """Move a job as the system would (no log entry): in one project, or — when
        ``project_id`` is None — in every project, seeding it for projects to come.

        This is how a test makes training finish: ``set_state("j1", "WAIT_USER_CONFIRM")``.
        """
        state = JobState(state)
        if project_id is not None:
            self.get(project_id, job_id).state = state
            return
        seed = self._seeds.setdefault(job_id, new_job("", job_id, now=self._clock()))
        seed.state = state
        for jobs in self._projects.values():
            if job_id in jobs:
                jobs[job_id].state = state

    def __iter__(self) -> Iterator[Job]:
        return iter([job for jobs in self._projects.values() for job in jobs.values()])

    def __len__(self) -> int:
        return sum(len(jobs) for jobs in self._projects.values())
