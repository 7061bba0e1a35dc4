"""Reading where jobs are, through the read path (its limiter and retry rule): Show one by
one, or select's List walk. Per job only a few fields are kept, never pages or records."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import anyio

from batcher.config import Options
from batcher.journal.times import epoch
from batcher.select.paging import PAGE_SIZE, SelectHalted, list_jobs
from batcher.select.query import JobQuery
from batcher.select.selector import list_client
from batcher.send.client import MetaStudioClient, Reply
from batcher.send.reads import Pacer
from batcher.send.vocabulary import JOB_STATES
from batcher.status.flows import FAILED_REVIEW

#: The state shown for a job that Show answers 404 for (deleted, or another project's).
NOT_FOUND = "(not found)"
#: The state shown for a job whose record could not be read (retries exhausted).
UNREAD = "(unread)"
#: Show requests in flight at once; the limiter sets the pace, this only bounds memory.
SHOW_CONCURRENCY = 8

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as status shows it: its state, since when, and for a failed review why."""

    job_id: str
    project_id: str
    state: str
    last_update_time: str | None = None
    #: The latest operation-log entry's, read (by Show) for failed reviews only.
    log_type: str | None = None
    error_code: str | None = None
    log_description: str | None = None
    #: Why the record could not be read (state UNREAD).
    reason: str | None = None

    @classmethod
    def from_record(cls, data: dict[str, Any], project_id: str) -> JobView:
        """From a List item or a Show answer (which also carries ``operation_logs``)."""
        logs = data.get("operation_logs")
        dated = [
            (epoch(e.get("operate_time")) or 0.0, i, e)
            for i, e in enumerate(logs if isinstance(logs, list) else ())
            if isinstance(e, dict)
        ]
        latest = max(dated, key=lambda item: item[:2])[2] if dated else {}
        return cls(
            job_id=str(data.get("job_id")),
            project_id=project_id,
            state=_text(data.get("state")) or UNREAD,
            last_update_time=_text(data.get("last_update_time")),
            log_type=_text(latest.get("log_type")),
            error_code=_text(latest.get("error_code")),
            log_description=_text(latest.get("log_description")),
        )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class StateReader:
    """Reads job states for one client through one pacer; remembers the server's clock."""

    def __init__(self, client: MetaStudioClient, pacer: Pacer) -> None:
        self._client, self._pacer = client, pacer
        #: The latest ``Date`` the server sent (epoch seconds): "now" for --stuck-after.
        self.server_now: float | None = None

    @property
    def reads(self) -> int:
        return self._pacer.requests

    async def _read(self, send: Callable[[], Awaitable[Reply]], refused: str) -> Reply:
        reply = await self._pacer.read(send)
        try:
            dated = parsedate_to_datetime(reply.server_date or "")
        except (TypeError, ValueError):
            dated = None
        if dated is not None:  # "-0000", or no zone, is UTC in an HTTP date
            when = dated.replace(tzinfo=dated.tzinfo or UTC).timestamp()
            self.server_now = max(when, self.server_now or when)
        if self._pacer.halts(reply.outcome):
            raise SelectHalted(f"the API refused to {refused}: {reply.outcome.reason}")
        return reply

    async def show(self, job_id: str, project_id: str) -> JobView:
        send = functools.partial(self._client.show_job, job_id, project_id=project_id)
        reply = await self._read(send, f"show job {job_id}")
        outcome = reply.outcome
        if outcome.succeeded and reply.data is not None:
            return JobView.from_record({**reply.data, "job_id": job_id}, project_id)
        state = NOT_FOUND if outcome.http_status == 404 else UNREAD
        return JobView(job_id, project_id, state, reason=outcome.reason)

    async def each(
        self,
        items: Iterable[_T],
        read: Callable[[_T], Awaitable[JobView]],
        got: Callable[[JobView], None],
    ) -> None:
        """``read`` each item, a few at a time, handing each view to ``got``."""
        pending = iter(items)

        async def worker() -> None:
            for item in pending:  # one shared iterator: each item once
                got(await read(item))

        async with anyio.create_task_group() as group:
            for _ in range(SHOW_CONCURRENCY):
                group.start_soon(worker)

    async def listed(self, query: JobQuery, project_id: str) -> AsyncIterator[JobView]:
        """Every job ``query`` matches (select's listing: each once, in bounded memory)."""
        async for job in list_jobs(self._client, self._pacer, query, project_id=project_id):
            yield JobView.from_record(job, project_id)

    async def count(self, project_id: str) -> int | None:
        """How many jobs the project has (one List page of one job), or None."""
        params = {"offset": "0", "limit": "1"}
        send = functools.partial(self._client.list_jobs, params, project_id=project_id)
        count = ((await self._read(send, "list jobs")).data or {}).get("count")
        return count if type(count) is int and count >= 0 else None

    async def why(self, view: JobView) -> JobView:
        """A failed review's view with its latest log entry (one Show), else as it is."""
        if view.state not in FAILED_REVIEW or view.log_type is not None:
            return view
        shown = await self.show(view.job_id, view.project_id)
        # A job that moved since it was listed: the newer record wins. One whose record
        # cannot be read keeps the state List gave (known), without the log entry.
        return view if shown.state in (UNREAD, NOT_FOUND) else shown


@asynccontextmanager
async def open_reader(settings: Options) -> AsyncIterator[StateReader]:
    """A reader for ``settings``' endpoint (or a simulator), paced by its read limiter."""
    async with list_client(settings, concurrency=SHOW_CONCURRENCY) as (client, pacer):
        yield StateReader(client, pacer)


def listing_covers(count: int | None, wanted: int) -> bool:
    """Whether listing a project's ``count`` jobs costs fewer reads than ``wanted`` Shows."""
    return count is not None and count // PAGE_SIZE + 2 < wanted


def by_state(jobs: Iterable[JobView]) -> dict[str, int]:
    """Jobs per state, in the API's order of states (unknown ones and read failures last)."""
    counts: dict[str, int] = {}
    for view in jobs:
        counts[view.state] = counts.get(view.state, 0) + 1
    order = {state: i for i, state in enumerate(JOB_STATES)}
    return dict(sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
