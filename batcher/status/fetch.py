"""Reading where jobs are: Show one by one, or List where one listing covers them.

Every read goes through the read path (:class:`~batcher.send.reads.Pacer`: its limiter and
retry rule), so a status check stays within the read quota however many jobs it names.
Per job only a few fields are kept (:class:`JobView`), never the pages or the records.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import anyio

from batcher.config import SIMULATED_POPULATION, Options, target
from batcher.errors import BatcherError, ExitCode
from batcher.journal.times import epoch
from batcher.redact import Redactor
from batcher.select.paging import PAGE_SIZE, list_jobs
from batcher.select.query import JobQuery
from batcher.send.client import MetaStudioClient, Reply, open_session
from batcher.send.limiter import RateLimiter
from batcher.send.reads import Pacer
from batcher.send.retry import RetryPolicy
from batcher.send.vocabulary import JOB_STATES
from batcher.status.flows import FAILED_REVIEW

#: The state shown for a job that Show answers 404 for (deleted, or another project's).
NOT_FOUND = "(not found)"
#: The state shown for a job whose record could not be read (retries exhausted).
UNREAD = "(unread)"
#: Show requests in flight at once; the limiter sets the pace, this only bounds memory.
SHOW_CONCURRENCY = 8

_T = TypeVar("_T")


class StatusHalted(BatcherError):
    """The API refused the reads (credentials, TLS): exit 3."""

    exit_code = ExitCode.HALTED


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
        latest = _latest_log(data.get("operation_logs"))
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


def _latest_log(logs: Any) -> dict[str, Any]:
    if not isinstance(logs, list):
        return {}
    dated = [
        (epoch(e.get("operate_time")) or 0.0, i, e)
        for i, e in enumerate(logs)
        if isinstance(e, dict)
    ]
    return max(dated, key=lambda item: item[:2])[2] if dated else {}


class StateReader:
    """Reads job states for one client through one pacer; remembers the server's clock."""

    def __init__(self, client: MetaStudioClient, pacer: Pacer) -> None:
        self._client = client
        self._pacer = pacer
        #: The latest ``Date`` the server sent (epoch seconds): "now" for --stuck-after.
        self.server_now: float | None = None

    @property
    def reads(self) -> int:
        return self._pacer.requests

    def _heard(self, reply: Reply) -> None:
        if reply.server_date:
            try:
                when = parsedate_to_datetime(reply.server_date).timestamp()
            except (TypeError, ValueError):
                return
            self.server_now = max(when, self.server_now or when)

    async def show(self, job_id: str, project_id: str) -> JobView:
        send = functools.partial(self._client.show_job, job_id, project_id=project_id)
        reply = await self._pacer.read(send)
        self._heard(reply)
        outcome = reply.outcome
        if self._pacer.halts(outcome):
            raise StatusHalted(f"the API refused to show job {job_id}: {outcome.reason}")
        if outcome.succeeded and reply.data is not None:
            return JobView.from_record({**reply.data, "job_id": job_id}, project_id)
        if outcome.http_status == 404:
            return JobView(job_id, project_id, NOT_FOUND, reason=outcome.reason)
        return JobView(job_id, project_id, UNREAD, reason=outcome.reason)

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

    async def show_all(
        self, jobs: Iterable[tuple[str, str]], got: Callable[[JobView], None]
    ) -> None:
        """Show each ``(job_id, project_id)``."""
        await self.each(jobs, lambda job: self.show(*job), got)

    async def listed(self, query: JobQuery, project_id: str) -> AsyncIterator[JobView]:
        """Every job ``query`` matches (select's listing: each once, in bounded memory)."""
        async for job in list_jobs(self._client, self._pacer, query, project_id=project_id):
            if isinstance(job.get("job_id"), str):
                yield JobView.from_record(job, project_id)

    async def count(self, project_id: str) -> int | None:
        """How many jobs the project has (one List page of one job), or None."""
        params = {"offset": "0", "limit": "1"}
        send = functools.partial(self._client.list_jobs, params, project_id=project_id)
        reply = await self._pacer.read(send)
        self._heard(reply)
        if self._pacer.halts(reply.outcome):
            raise StatusHalted(f"the API refused to list jobs: {reply.outcome.reason}")
        count = (reply.data or {}).get("count")
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
    """A reader for ``settings``' endpoint (or a simulator), paced by its read limiter and
    retry rule; errors leave it with any credential an answer quoted masked."""
    assert settings.project_id is not None
    redactor = Redactor(settings.secrets())
    pacer = Pacer(
        RateLimiter(rate=settings.paces[1]),
        RetryPolicy(max_attempts=settings.max_attempts),
    )
    try:
        async with (
            target(settings, population=SIMULATED_POPULATION) as (url, credentials),
            open_session(concurrency=SHOW_CONCURRENCY, timeout=settings.timeout) as session,
        ):
            yield StateReader(
                MetaStudioClient(
                    session,
                    endpoint=url,
                    project_id=settings.project_id,
                    credentials=credentials,
                    app_user_id=settings.app_user_id,
                    timeout=settings.timeout,
                    redactor=redactor,
                ),
                pacer,
            )
    except BatcherError as error:  # an answer may quote a credential
        raise type(error)(redactor.text(str(error))) from None


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
