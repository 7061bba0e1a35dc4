"""Listing every job a query matches, by creation time, while the jobs change.

Each page asks for the jobs created at or after the second the last page ended in
(``create_since``, sorted by ``create_time`` ascending). Jobs that leave the selection, or
come in another order, before that second move nothing after it; the boundary second's
jobs, listed again, are known by their ids. Jobs created meanwhile come after the others:
listed if the walk meets them, left for the next selection otherwise. Only a second holding
more jobs than a page is read by offset within it (see :meth:`_Walk._second`).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from batcher.entry import DigestSet, job_digest
from batcher.errors import BatcherError, ExitCode
from batcher.select.query import JobQuery, parse_time
from batcher.send.client import MetaStudioClient
from batcher.send.reads import Pacer

log = structlog.get_logger("batcher.select")

#: Jobs asked for per page (a server may send fewer), and the fewest after a 400 for it.
PAGE_SIZE, MIN_PAGE_SIZE = 100, 10
#: Passes through a second with more jobs than a page: at most; in a row finding nothing new
#: while fewer were seen than there are, before the server is taken not to page by offset.
MAX_GROUP_PASSES, MAX_QUIET_PASSES = 24, 8


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


@dataclass(slots=True)
class Page:
    """One List answer: the jobs (each with its creation second) and the count."""

    since: datetime | None
    offset: int
    jobs: list[tuple[datetime, dict[str, Any]]]
    count: int
    last: bool  # nothing follows it: empty, or shorter than a page before

    def seconds(self) -> list[datetime]:
        return [second for second, _ in self.jobs]


class _Pages:
    """Reads one List page at a time, at the API's pace, and checks its shape and order."""

    def __init__(
        self,
        client: MetaStudioClient,
        pacer: Pacer,
        query: JobQuery,
        project_id: str | None,
        paging: Paging,
    ) -> None:
        self._read = functools.partial(client.list_jobs, project_id=project_id)
        self._pacer, self._query, self.paging = pacer, query, paging
        self._base = {**query.params(), "sort_key": "create_time", "sort_dir": "asc"}
        self.size = PAGE_SIZE  # halved while the server refuses it with a 400
        self.widest = 1  # the most jobs one page brought: the server's page size, at most ours

    async def read(self, since: datetime | None, offset: int = 0) -> Page:
        """The page at ``offset`` among the jobs created at or after ``since`` (and at or
        after the query's own ``created_since``: the two intersect)."""
        params = {**self._base, "offset": str(offset)}
        if since is not None:
            since = since.astimezone(UTC).replace(microsecond=0)
            if self._query.since is None or since > self._query.since:
                params["create_since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        while True:
            params["limit"] = str(self.size)
            reply = await self._pacer.read(functools.partial(self._read, dict(params)))
            outcome = reply.outcome
            if self._pacer.halts(outcome):
                raise SelectHalted(f"the API refused to list jobs: {outcome.reason}")
            if outcome.http_status != 400 or self.size <= MIN_PAGE_SIZE:
                break
            # The reference gives no largest page: a server may refuse ours as too large
            # (and a page short of a larger one before is then no sign of the end).
            self.size, self.widest = max(MIN_PAGE_SIZE, self.size // 2), 1
            log.warning(
                "select_page_size_refused",
                limit=params["limit"],
                now=self.size,
                reason=outcome.reason,
            )
        if not outcome.succeeded or reply.data is None:
            raise SelectIncomplete(f"could not list jobs (offset {offset}): {outcome.reason}")
        jobs, count = reply.data.get("jobs"), reply.data.get("count")
        if jobs is None and count == 0:
            jobs = []  # nothing matches: some servers leave the empty list out
        if not isinstance(jobs, list) or type(count) is not int or count < 0:
            raise SelectIncomplete("the List answer has no count or jobs list: not the API's shape")
        self.paging.pages += 1
        self.paging.count = count if self.paging.count is None else self.paging.count
        self.widest = max(self.widest, len(jobs))
        # The count is a hint, not an end: taken apart from the page (jobs leave between the
        # two), or low, it would end the walk while jobs that matched all along are unread.
        last = not jobs or len(jobs) < self.widest
        return _checked(Page(since, offset, [_keyed(job) for job in jobs], count, last))


def _keyed(job: Any) -> tuple[datetime, dict[str, Any]]:
    created = parse_time(job.get("create_time")) if isinstance(job, dict) else None
    if created is None or not isinstance(job.get("job_id"), str):
        # Not the job itself in the message: a listed job carries personal data and URLs.
        which = job.get("job_id") if isinstance(job, dict) else None
        raise SelectIncomplete(
            f"the List API listed a job ({which!r}) without a job_id or an RFC 3339 create_time"
            " with its zone: select pages by creation time and cannot go on; nothing was written"
        )
    return created.astimezone(UTC).replace(microsecond=0), job


def _checked(page: Page) -> Page:
    """``page``, once it holds jobs created at or after its ``since``, oldest first (on the
    last page, jobs before it are for the re-check to leave out: a server that ignores every
    filter, whose jobs all fit on a page)."""
    seconds = page.seconds()
    if page.since is not None and seconds and seconds[0] < page.since and not page.last:
        problem = "answered create_since with jobs created before it: it does not apply it"
    elif seconds != sorted(seconds):
        problem = "did not sort the jobs by create_time ascending as asked"
    else:
        return page
    raise SelectIncomplete(
        f"the List API {problem}; select pages by creation time and cannot go on: nothing "
        "was written"
    )


def list_jobs(
    client: MetaStudioClient,
    pacer: Pacer,
    query: JobQuery,
    *,
    project_id: str | None = None,
    paging: Paging | None = None,
    on_page: Callable[[Paging], None] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """Every job matching ``query``, once each, oldest first.

    Raises :class:`SelectHalted` when the API refuses (401/403, TLS) and
    :class:`SelectIncomplete` when a page cannot be read after retries, when the server
    does not page by ``create_since``, when the selection grows faster than it can be
    listed, or when the listing ends short of the API's count.
    """
    pages = _Pages(client, pacer, query, project_id, paging or Paging())
    return _Walk(query, pages, on_page).run()


@dataclass(slots=True)
class _Walk:
    query: JobQuery
    pages: _Pages
    on_page: Callable[[Paging], None] | None
    seen: DigestSet = field(default_factory=DigestSet)

    async def run(self) -> AsyncIterator[dict[str, Any]]:
        page = await self.pages.read(self.query.since)
        first_count, steps = page.count, 0
        while True:
            for job in self._new(page):
                yield job
            if page.last:  # (an empty page is one)
                break
            cursor = page.jobs[-1][0]
            if page.since == cursor:  # nothing but that second's jobs: more than a page
                async for job in self._second(page):
                    yield job
                page = await self.pages.read(cursor + timedelta(seconds=1))
                continue
            steps += 1
            # A page re-lists at most what the one before held of its first second, so two
            # steps bring a page of jobs not seen: twice the steps the first count needs is
            # more than an honest server asks (a selection growing as fast as it is read
            # would never end).
            if steps > 2 * (first_count // max(self.pages.widest - 1, 1) + 1) + 10:
                raise SelectIncomplete(
                    f"the selection grew faster than it could be listed ({self.pages.paging.pages}"
                    f" pages read, {page.count:,} jobs from the last page on): narrow it "
                    "(--created-until) or run select again"
                )
            page = await self.pages.read(cursor)
        # A count the pages never reach (jobs that left since are in neither figure).
        if page.count > page.offset + len(page.jobs) and len(self.seen) < first_count:
            raise SelectIncomplete(
                f"the List API says {first_count} jobs match but {len(self.seen)} were listed "
                "(its pages end before its count)"
            )

    def _new(self, page: Page, second: datetime | None = None) -> list[dict[str, Any]]:
        """The jobs on ``page`` (created in ``second``, if given) not seen before that meet
        the filters; counts them all."""
        paging, admitted = self.pages.paging, []
        for when, job in page.jobs:
            if second not in (None, when) or not self.seen.add(job_digest(job["job_id"])):
                continue
            if not self.query.admits(job):
                paging.not_matching += 1  # the server did not apply a filter
                continue
            state = str(job.get("state"))
            paging.by_state[state] = paging.by_state.get(state, 0) + 1
            paging.jobs += 1
            admitted.append(job)
        if self.on_page is not None:
            self.on_page(paging)
        return admitted

    async def _second(self, page: Page) -> AsyncIterator[dict[str, Any]]:
        """Every job created in the second ``page`` (offset 0) holds nothing but, which has
        more jobs than a page: by offset within it, pass after pass (a server may order them
        differently on every request), until a pass proves every one of them seen."""
        second, quiet = page.jobs[0][0], 0
        tally = _Tally(page.count)
        steady = tally.saw(page, second)
        for passes in range(1, MAX_GROUP_PASSES + 1):
            before, offset, met, repeated = len(tally.every), 0, _ids(page, second), False
            while not page.last and page.seconds().count(second) == len(page.jobs):
                offset += len(page.jobs)
                page = await self.pages.read(second, offset)
                steady = tally.saw(page, second) and steady
                for job in self._new(page, second):  # the later ones in order, afterwards
                    yield job
                ids = _ids(page, second)
                repeated = len(ids) == len(page.jobs) > 0 and ids <= met  # no offset paging
                if repeated:
                    break
                met |= ids
            # A pass whose pages all bring one count, with no job joining or leaving, finds
            # the second's jobs where they are: as many distinct jobs seen under that count
            # as the pass found there is every one. Assumption: an unchanged count is an
            # unchanged selection (a job leaving as another joins would pass unseen).
            found = offset + page.seconds().count(second)
            quiet = quiet + 1 if len(tally.every) == before else 0
            if steady and not repeated and len(tally.ids) >= found:
                return
            if quiet >= MAX_QUIET_PASSES and repeated:
                raise SelectIncomplete(
                    f"the List API's pages at offsets within {second:%Y-%m-%dT%H:%M:%SZ} bring "
                    "no job not seen: it does not seem to page by offset; nothing was written"
                )
            log.info(
                "select_second_again",
                second=f"{second:%Y-%m-%dT%H:%M:%SZ}",
                passes=passes,
                seen=len(tally.ids),
                found=found,
            )
            page = await self.pages.read(second, 0)
            steady = tally.saw(page, second)
            for job in self._new(page, second):
                yield job
        # Jobs leaving move the unseen ones across page boundaries, and passes that find
        # nothing new while they do prove nothing: not known complete is an error.
        raise SelectIncomplete(
            f"the jobs created in {second:%Y-%m-%dT%H:%M:%SZ} (more than a page) kept changing "
            f"over {MAX_GROUP_PASSES} passes, so they cannot be proved all listed: narrow the "
            "selection (a filter, or --created-since/--created-until leaving that second out) "
            "or run select again when fewer jobs are changing; nothing was written"
        )


def _ids(page: Page, second: datetime) -> set[str]:
    return {job["job_id"] for when, job in page.jobs if when == second}


@dataclass(slots=True)
class _Tally:
    """The ids of one second's jobs seen since the count last changed, and ever."""

    count: int
    ids: set[str] = field(default_factory=set)
    every: set[str] = field(default_factory=set)

    def saw(self, page: Page, second: datetime) -> bool:
        """Take in ``page``'s jobs of ``second``; False when its count is another."""
        same = page.count == self.count
        if not same:  # those seen may be the ones gone: the proof starts again
            self.count, self.ids = page.count, set()
        self.ids |= _ids(page, second)
        self.every |= _ids(page, second)
        return same
