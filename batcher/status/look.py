"""One look at every job named, and ``--wait-until``: looking again, politely, until done.

A look reads each job's state once (List where one listing of its project costs fewer reads
than a Show per job, Show otherwise), then each failed review's latest log entry. Waiting
looks again only at the jobs still on their way (a query's jobs are those of its first
listing), pausing longer while nothing moves.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from batcher.select.query import JobQuery
from batcher.status.fetch import NOT_FOUND, JobView, StateReader, by_state, listing_covers
from batcher.status.flows import FAILED_REVIEW, cannot_follow
from batcher.status.source import JobKeys, Targets

log = structlog.get_logger("batcher.status")

#: Seconds between the first looks while waiting, and the longest pause it grows to.
FIRST_PAUSE, LONGEST_PAUSE, _GROWTH = 5.0, 120.0, 1.5

Key = tuple[str, str]
Views = dict[Key, JobView]


@dataclass(slots=True)
class Progress:
    """How far a look has got: jobs read (of how many, when known), per state."""

    read: int = 0
    total: int | None = None
    by_state: dict[str, int] = field(default_factory=dict)


async def look(
    reader: StateReader,
    targets: Targets,
    *,
    keys: JobKeys | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> Views:
    """Read the state of ``keys`` (default: every job ``targets`` names), and each failed
    review's latest log entry."""
    listing = targets.query is not None and keys is None
    named = keys if keys is not None else targets.jobs
    seen = Progress(total=None if listing else len(named))
    views: Views = {}

    def got(view: JobView) -> None:
        views[view.job_id, view.project_id] = view
        seen.read += 1
        seen.by_state[view.state] = seen.by_state.get(view.state, 0) + 1
        if progress is not None:  # the live view redraws a few times a second at most
            progress(seen)

    if listing:
        assert targets.query is not None
        async for view in reader.listed(targets.query, targets.project_id):
            got(view)
    else:
        await _by_id(reader, named, got)
    failed = [v for v in views.values() if v.state in FAILED_REVIEW and v.log_type is None]
    await reader.each(failed, reader.why, lambda v: views.update({(v.job_id, v.project_id): v}))
    return views


async def _by_id(reader: StateReader, keys: JobKeys, got: Callable[[JobView], None]) -> None:
    projects: dict[str, set[str]] = {}
    for job_id, project in keys:
        projects.setdefault(project, set()).add(job_id)
    for project, ids in projects.items():
        if listing_covers(await reader.count(project), len(ids)):
            async for view in reader.listed(JobQuery(), project):
                if view.job_id in ids:
                    ids.discard(view.job_id)
                    got(view)
        # Jobs the listing did not meet (or all of them, when it would cost more): Show.
        await reader.each(sorted(ids), functools.partial(reader.show, project_id=project), got)


@dataclass(slots=True)
class Waited:
    """How a wait ended: the views at the end, jobs that cannot reach, timed out or not."""

    views: Views
    wanted: tuple[str, ...]
    blocked: dict[Key, str] = field(default_factory=dict)  #: key -> the resting state
    timed_out: bool = False
    passes: int = 0

    def outcome(self) -> dict[str, Any]:
        """Jobs that reached a wanted state; by state, those that cannot and the others."""
        return {
            "reached": sum(v.state in self.wanted for v in self.views.values()),
            "cannot_reach": by_state(self.views[k] for k in self.blocked),
            "elsewhere": by_state(self.elsewhere().values()),
        }

    def elsewhere(self) -> Views:
        """Jobs neither in a wanted state nor unable to reach one."""
        views = self.views.items()
        return {k: v for k, v in views if v.state not in self.wanted and k not in self.blocked}


async def wait_until(
    reader: StateReader,
    targets: Targets,
    wanted: Collection[str],
    *,
    deadline_s: float | None,
    first_pause: float = FIRST_PAUSE,
    progress: Callable[[Progress], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Waited:
    """Look until every job is in one of ``wanted`` or cannot reach one, or ``deadline_s``
    seconds pass (None: no limit); ``first_pause`` seconds between looks, growing while
    nothing moves."""
    deadline = None if deadline_s is None else clock() + deadline_s
    done = Waited(views={}, wanted=tuple(wanted))
    pending: JobKeys | None = None  # None: every job the targets name
    pause, draw = first_pause, (rng or random.Random()).uniform
    while True:
        done.passes += 1
        fresh = await look(reader, targets, keys=pending, progress=progress)
        moved = any(done.views.get(k, v).state != v.state for k, v in fresh.items())
        done.views.update(fresh)
        _note_blocked(done, fresh)
        pending = dict.fromkeys(done.elsewhere())
        log.info(
            "status_pass",
            passes=done.passes,
            jobs=len(done.views),
            pending=len(pending),
            cannot_reach=len(done.blocked),
            by_state=by_state(done.views.values()),
        )
        if not pending:
            return done
        left = None if deadline is None else deadline - clock()
        if left is not None and left <= 0:
            done.timed_out = True
            return done
        pause = first_pause if moved else min(pause * _GROWTH, max(first_pause, LONGEST_PAUSE))
        # A little jitter, so that waiters started together do not read in step.
        await anyio.sleep(min(pause * draw(0.9, 1.1), left if left is not None else pause * 2))


def _note_blocked(done: Waited, fresh: Views) -> None:
    """Jobs that came to rest outside the wanted states: said at once, not waited for."""
    # Only jobs still on their way are read again: a job blocked once is never met again, and
    # a failed review (always wanted or resting) is never read twice.
    new = [v for v in fresh.values() if v.state == NOT_FOUND or cannot_follow(v.state, done.wanted)]
    done.blocked.update({(v.job_id, v.project_id): v.state for v in new})
    if new:
        log.warning(
            "status_cannot_reach",
            wanted=list(done.wanted),
            by_state=by_state(new),
            hint="these jobs rest where the wanted states cannot follow without someone "
            "acting (a failed review needs Update and a new upload; WAIT_FILE_UPLOAD, the "
            "upload and its commands)",
        )
