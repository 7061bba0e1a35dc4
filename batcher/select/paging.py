"""Listing every job a query matches, page by page, while the jobs change.

The List API pages by offset over a selection that moves under it (jobs change state and
leave it, new ones arrive). :func:`list_jobs` reads it in creation order, one page at a
time, keeping only the digests of the jobs seen: pages overlap by one job and are checked
against what was seen, so jobs leaving the selection hide none of the others, and the jobs
seen are counted against the API's ``count``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from batcher.entry import DigestSet, job_digest
from batcher.errors import BatcherError, ExitCode
from batcher.journal.times import parse_time
from batcher.send.client import MetaStudioClient
from batcher.send.reads import Pacer

if TYPE_CHECKING:
    from batcher.select.selector import JobQuery

log = structlog.get_logger("batcher.select")

#: Jobs asked for per List page; a server may send fewer, and paging follows what it sends.
PAGE_SIZE = 100
#: The smallest page asked for after a server refused larger ones (400).
MIN_PAGE_SIZE = 10


class SelectHalted(BatcherError):
    """The API refused the selection (credentials, TLS): exit 3, the manifest not written."""

    exit_code = ExitCode.HALTED


class SelectIncomplete(BatcherError):
    """The jobs could not all be listed (a page not read, a server that does not page, a
    selection changing too fast): exit 1, the manifest not written."""

    exit_code = ExitCode.INCOMPLETE


@dataclass(slots=True)
class Paging:
    """How far the paging got: matches the API reported, jobs seen, per state."""

    count: int | None = None
    jobs: int = 0
    pages: int = 0
    #: Jobs the server listed that do not meet the filters (left out).
    not_matching: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


#: Pages read again from further back before the listing gives up: a selection that keeps
#: changing faster than it can be listed is better narrowed than listed forever.
MAX_STEP_BACKS = 64

#: Pages in a row, past every position read, that bring no job not seen: the server is not
#: paging (it ignores ``offset``), and what was listed would silently be all there is.
MAX_IDLE_PAGES = 3

#: Passes through the pages while fewer jobs were listed than the API counts (a server that
#: orders jobs created in the same second differently on each request, in groups larger
#: than a page, hides some of them; each pass finds most of the rest). The passes stop
#: early when two in a row find nothing new.
MAX_PASSES = 16


async def list_jobs(
    client: MetaStudioClient,
    pacer: Pacer,
    query: JobQuery,
    *,
    project_id: str | None = None,
    paging: Paging | None = None,
    on_page: Callable[[Paging], None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every job matching ``query``, once each, in the API's order (by creation time).

    Jobs change while they are paged through. Each page after the first overlaps the one
    before by a job, and must start with a job already seen (or, while the server keeps
    the creation order asked for, one created before the newest seen): then no job that
    matched all along can be behind it. A page that starts otherwise (jobs before it left
    the selection, moving later ones forward past it) is read again from a little further
    back, twice as far each time, until one does. Jobs that enter the selection meanwhile
    are listed if paging meets them. When the pages held fewer jobs than the API counts
    (a server that orders jobs created in the same second differently on each request can
    hide some: a page that ends inside a group of jobs created in the same second is followed
    by one that starts on the group, but a group larger than a page cannot be read whole),
    they are gone through again while each pass finds more, up to :data:`MAX_PASSES` times;
    the jobs found then come after the others.

    Raises :class:`SelectHalted` when the API refuses (401/403, TLS) and
    :class:`SelectIncomplete` when a page cannot be read after retries, when the server
    does not page, when the selection changes faster than it can be listed, or when the
    passes never list as many jobs as the API counts.
    """
    paging = paging or Paging()
    seen = DigestSet()
    base = {**query.params(), "sort_key": "create_time", "sort_dir": "asc"}
    walk = _Walk()
    passes = fruitless = 0
    first_pages = 0
    listed_count: int | None = None
    while passes < MAX_PASSES and fruitless < 2:
        passes += 1
        before = len(seen)
        if passes == 2:
            first_pages = paging.pages
        elif passes > 2 and paging.pages > 4 * first_pages + 50:
            break  # the passes cost more than four listings: say what is known
        walk.unsure = walk.shifted = False
        async for job in _one_pass(client, pacer, query, base, seen, walk, paging, project_id,
                                   on_page, first=passes == 1):  # fmt: skip
            yield job
        if passes == 1:
            listed_count = paging.count  # jobs created after this are the next selection's
        reached = paging.count is None or len(seen) >= min(paging.count, listed_count or 0)
        # Jobs that left the selection after being listed still count as seen, so when a
        # page may have missed some without the count telling - a group of same-second jobs
        # larger than a page (no page reads it whole), or one that jobs leaving before it
        # moved back past a page's start - the pages are gone through again until a pass
        # (two, for a group larger than a page) finds nothing more.
        if reached and not (walk.unsure or walk.shifted):
            return
        fruitless = fruitless + 1 if passes > 1 and len(seen) == before else 0
        if reached and fruitless >= (2 if walk.unsure else 1):
            return
        if reached:
            log.info(
                "select_pass_again", passes=passes, listed=len(seen),
                hint="a page held only jobs created in the same second: the pages are read "
                "again until two passes find nothing new",
            )  # fmt: skip
        else:
            log.warning(
                "select_listing_short", count=paging.count, listed=len(seen), passes=passes,
                hint="jobs were missing from the pages: going through them again",
            )  # fmt: skip
    if paging.count is None or len(seen) >= min(paging.count, listed_count or 0):
        log.warning(
            "select_listing_unsettled", passes=passes, listed=len(seen),
            hint="passes kept finding jobs (the selection is changing): every job seen is "
            "written; run select again later for the ones that arrived meanwhile",
        )  # fmt: skip
        return
    raise SelectIncomplete(
        f"the List API says {paging.count} jobs match but {len(seen)} were listed after "
        f"{passes} passes through its pages (does it order jobs created in the same second "
        "differently on each request, in groups larger than a page?)"
    )


@dataclass(slots=True)
class _Walk:
    """What one pass through the pages tells the next."""

    frontier: int = 0  # the furthest position read
    newest: datetime | None = None  # the latest creation time seen
    ordered: bool = True  # creation times never went backwards: the server keeps the order
    page_size: int = PAGE_SIZE  # halved while the server refuses it with a 400
    unsure: bool = False  # a page held nothing but one group of same-second jobs
    shifted: bool = False  # jobs left while a page started on a group of same-second jobs


async def _one_pass(
    client: MetaStudioClient,
    pacer: Pacer,
    query: JobQuery,
    base: dict[str, str],
    seen: DigestSet,
    walk: _Walk,
    paging: Paging,
    project_id: str | None,
    on_page: Callable[[Paging], None] | None,
    *,
    first: bool,
) -> AsyncIterator[dict[str, Any]]:
    """Page through the selection once, yielding the jobs not in ``seen``."""
    offset = 0  # the position where the first job not yet seen should be
    overlap = True  # start a page one job early, on the last one seen
    back = step_backs = idle = pages = 0
    widest = 1  # the most jobs a page brought: the server's own page size, at most ours
    counted: int | None = None  # the count when the pass began
    brought_new = True
    # Past the count only while full pages still bring jobs not seen: a count that is too
    # low must not end the listing early, and neither a server that answers any offset
    # past the end with its last page nor jobs created meanwhile may keep it going.
    # A later pass looks again at the selection the first one listed: up to the count it
    # began with (jobs created since are for the next selection).
    while (
        paging.count is None
        or offset < (paging.count if first or counted is None else min(counted, paging.count))
        or (first and brought_new)
    ):
        overlapped, overlap = overlap and offset > 0, True
        start = offset - 1 if overlapped else offset
        params = {**base, "offset": str(start), "limit": str(walk.page_size)}
        reply = await pacer.read(functools.partial(client.list_jobs, params, project_id=project_id))
        outcome = reply.outcome
        if pacer.halts(outcome):
            raise SelectHalted(f"the API refused to list jobs: {outcome.reason}")
        if outcome.http_status == 400 and walk.page_size > MIN_PAGE_SIZE:
            # The reference gives no largest page: a server may refuse ours as too large.
            walk.page_size = max(MIN_PAGE_SIZE, walk.page_size // 2)
            log.warning("select_page_size_refused", limit=params["limit"], now=walk.page_size,
                        reason=outcome.reason)  # fmt: skip
            overlap = overlapped
            continue
        if not outcome.succeeded or reply.data is None:
            raise SelectIncomplete(f"could not list jobs (offset {start}): {outcome.reason}")
        jobs = reply.data.get("jobs")
        count = reply.data.get("count")
        if jobs is None and count == 0 and not len(seen):
            jobs = []  # nothing matches: some servers leave the empty list out
        if not isinstance(jobs, list) or type(count) is not int or count < 0:
            raise SelectIncomplete("the List answer has no count or jobs list: not the API's shape")
        paging.pages += 1
        pages += 1
        widest = max(widest, len(jobs))
        counted = count if counted is None else counted
        # A pass reads the selection once, plus its overlaps and retries: three times the
        # pages its first count needs, at the pages' real size, is more than an honest
        # server asks (a count that grows as fast as it is read never gets there).
        if pages > 3 * (counted // widest + 1) + MAX_STEP_BACKS + 10:
            raise SelectIncomplete(
                f"the selection grew faster than it could be listed ({pages} pages read in "
                f"one pass, {count:,} jobs now): narrow it (--created-until) or run select "
                "again"
            )
        before, paging.count = paging.count, count
        if jobs:
            moved = not _continues(jobs[0], seen, walk.newest if walk.ordered else None)
            if overlapped and not moved and before is not None and count < before:
                # Jobs left, perhaps before this page: if it starts inside a group of
                # same-second jobs (whose order the server may change), the group's unseen
                # members may have moved back past its start, where no page will look.
                opening = _created(jobs[0]) if isinstance(jobs[0], dict) else None
                walk.shifted = walk.shifted or (opening is not None and opening == walk.newest)
        else:
            moved = 0 < count <= start  # the list shrank under this page
        if overlapped and moved:
            step_backs += 1
            if step_backs > MAX_STEP_BACKS:
                raise SelectIncomplete(
                    f"the selection changed faster than it could be listed ({paging.pages} "
                    "pages read, jobs kept leaving it): narrow it (--created-since, "
                    "--batch-name) or run select again"
                )
            back = max(2 * back, (before or count) - count + 1, 2)
            offset = max(0, min(start, count) - back)
            log.debug("select_paging_stepped_back", offset=offset, count=count)
            continue
        back = 0
        new = 0
        previous: datetime | None = None
        for job in jobs:
            job_id = job.get("job_id") if isinstance(job, dict) else None
            if not isinstance(job_id, str):
                continue
            created = _created(job)
            if created is not None:
                if previous is not None and created < previous:
                    walk.ordered = False  # not the order asked for: creation times prove nothing
                previous = created
                if walk.newest is None or created > walk.newest:
                    walk.newest = created
            if not seen.add(job_digest(job_id)):
                continue
            new += 1
            if not query.admits(job):
                paging.not_matching += 1  # the server did not apply a filter
                continue
            state = str(job.get("state"))
            paging.by_state[state] = paging.by_state.get(state, 0) + 1
            paging.jobs += 1
            yield job
        if on_page is not None:
            on_page(paging)
        if not jobs:
            break  # past the end, whatever count says
        end = start + len(jobs)
        if end > walk.frontier:
            walk.frontier = end
            # Later passes find few new jobs by design; a server that does not page is
            # caught by the first.
            idle = idle + 1 if first and new == 0 and len(jobs) > 1 else 0
            if idle >= MAX_IDLE_PAGES:
                raise SelectIncomplete(
                    f"the List API answered offset {start} with jobs already listed, "
                    f"{idle} pages in a row: it does not seem to page (offset ignored?); "
                    "nothing was written"
                )
        # A short page is the end of the list as it is now: jobs created since are for
        # the next selection, not a reason to read on (they can arrive forever).
        brought_new = new > 0 and len(jobs) >= widest
        if end <= offset:
            overlap = False  # the page held only the job overlapped: go on unchecked
        # A page that ends inside a group of jobs created in the same second (which a server
        # may order differently on the next request) is followed by one that starts on the
        # group's first job, so that the whole group is read again on one page.
        ties = _last_tie(jobs)
        offset = start + ties + 1 if ties > 0 and start + ties + 1 > offset else max(end, offset)
        if ties == 0 and len(jobs) > 1 and end < count and _created(jobs[0]) is not None:
            # _last_tie found the whole page one group (or the last time unreadable), and
            # jobs follow it: the group may go on past the page.
            walk.unsure = walk.unsure or _created(jobs[0]) == _created(jobs[-1])


def _last_tie(jobs: list[Any]) -> int:
    """Where the page's last group of jobs with the same creation time begins (0: the whole
    page is one group, or the times cannot be read, so there is nothing to read again).

    >>> _last_tie([{"create_time": t} for t in ("2026-11-01T00:00:01Z", "2026-11-01T00:00:02Z",
    ...                                          "2026-11-01T00:00:02Z")])
    1
    """
    last = _created(jobs[-1]) if jobs and isinstance(jobs[-1], dict) else None
    if last is None:
        return 0
    index = len(jobs) - 1
    while index > 0:
        job = jobs[index - 1]
        if not isinstance(job, dict) or _created(job) != last:
            break
        index -= 1
    return index


def _created(job: dict[str, Any]) -> datetime | None:
    """The job's ``create_time``, if it has a readable one."""
    return parse_time(job.get("create_time"))


def _continues(first: Any, seen: DigestSet, newest: datetime | None) -> bool:
    """Whether a page starting with ``first`` leaves no unseen job before it: ``first`` was
    seen already, or was created before ``newest`` (None: creation times prove nothing).
    A first entry that is not a job cannot tell, and is not one to write: it passes."""
    job_id = first.get("job_id") if isinstance(first, dict) else None
    if not isinstance(job_id, str):
        return True
    if job_digest(job_id) in seen:
        return True
    created = _created(first)
    return created is not None and newest is not None and created < newest
