"""Jobs selected by the List API, written as a manifest: ``batcher select``.

"Every job of batch X that failed verification: CONFIRM_REPAIR, then SUBMITVERIFYING" is a
query, not a list of ids. :func:`list_jobs` pages through every match (sorted by creation
time, so jobs created meanwhile come at the end), in bounded memory: one page at a time, and
the digests of the jobs seen so a job met twice while paging is written once. Pages overlap
by one job and are checked against what was seen, so jobs leaving the selection while it
is paged (shifting later ones forward) hide none of the others.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from .engine.calls import Pacer
from .engine.limiter import RateLimiter
from .engine.retry import RetryPolicy
from .errors import BatcherError, ExitCode, SettingsError
from .execution import SIMULATED_POPULATION, target
from .keys import DigestSet, job_digest
from .manifest.writer import ManifestWriter, format_of
from .manifest.writer import output as open_output
from .metastudio.client import MetaStudioClient, open_session
from .metastudio.jobs import JOB_STATES
from .redact import Redactor
from .results import SelectResult
from .settings import Options, resolve

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


@dataclass(frozen=True, slots=True, kw_only=True)
class JobQuery:
    """The List API's filters that ``batcher select`` offers.

    >>> JobQuery(states=("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED"), batch_name="b1").params()
    {'state': 'AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED', 'batch_name': 'b1'}
    """

    states: tuple[str, ...] = ()
    batch_name: str | None = None
    tag: str | None = None
    name: str | None = None
    created_since: str | None = None
    created_until: str | None = None
    updated_since: str | None = None
    updated_until: str | None = None

    def params(self) -> dict[str, str]:
        """The query parameters, as the API names them."""
        pairs = {
            "state": ",".join(self.states) if self.states else None,
            "batch_name": self.batch_name,
            "tag": self.tag,
            "name": self.name,
            "create_since": self.created_since,
            "create_until": self.created_until,
            "update_since": self.updated_since,
            "update_until": self.updated_until,
        }
        return {key: value for key, value in pairs.items() if value}

    def admits(self, job: dict[str, Any]) -> bool:
        """Whether ``job`` (as List shows it) meets the filters batcher can check itself:
        states, batch name, tag, creation and update times. A server that ignored one of
        them must not put a job into the manifest; a job that lacks a field a filter
        needs is not admitted either. (``name`` is the server's to match: it may not be
        an exact comparison.)

        >>> query = JobQuery(states=("AUTO_VERIFY_FAILED",), batch_name="b1")
        >>> query.admits({"state": "AUTO_VERIFY_FAILED", "batch_name": "b1"})
        True
        >>> query.admits({"state": "JOB_FINISH", "batch_name": "b1"})
        False
        """
        if self.states and job.get("state") not in self.states:
            return False
        if self.batch_name is not None and job.get("batch_name") != self.batch_name:
            return False
        if self.tag is not None:
            tags = job.get("tags")
            if not isinstance(tags, list) or self.tag not in tags:
                return False
        for key, since, until in (
            ("create_time", self.created_since, self.created_until),
            ("last_update_time", self.updated_since, self.updated_until),
        ):
            if since is None and until is None:
                continue
            when = _time(job.get(key))
            if when is None:
                return False
            if since is not None and when < _parsed(since):
                return False
            if until is not None and when > _parsed(until):
                return False
        return True

    def problems(self) -> list[str]:
        """What is wrong with the filters, checked before anything is sent."""
        found = []
        for state in self.states:
            if state not in JOB_STATES:
                close = difflib.get_close_matches(state.upper(), JOB_STATES, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else " (see --help for the list)"
                found.append(f"--state: unknown job state {state!r}{hint}")
        for flag, value in (
            ("--created-since", self.created_since),
            ("--created-until", self.created_until),
            ("--updated-since", self.updated_since),
            ("--updated-until", self.updated_until),
        ):
            if value is not None and not _is_rfc3339(value):
                found.append(
                    f"{flag} {value!r} is not an RFC 3339 time (e.g. 2026-11-24T00:00:00Z)"
                )
        return found


def _is_rfc3339(value: str) -> bool:
    if "T" not in value.upper():
        return False
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


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
#: orders jobs created in the same second differently on each request hides some of them
#: at page boundaries; each pass finds most of the rest).
MAX_PASSES = 4


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
    hide some at a page boundary), they are gone through again, up to :data:`MAX_PASSES`
    times; the jobs found then come after the others.

    Raises :class:`SelectHalted` when the API refuses (401/403, TLS) and
    :class:`SelectIncomplete` when a page cannot be read after retries, when the server
    does not page, when the selection changes faster than it can be listed, or when the
    passes never list as many jobs as the API counts.
    """
    paging = paging or Paging()
    seen = DigestSet()
    base = {**query.params(), "sort_key": "create_time", "sort_dir": "asc"}
    walk = _Walk()
    for passes in range(1, MAX_PASSES + 1):
        async for job in _one_pass(client, pacer, query, base, seen, walk, paging, project_id,
                                   on_page, first=passes == 1):  # fmt: skip
            yield job
        if paging.count is None or len(seen) >= paging.count:
            return
        log.warning(
            "select_listing_short", count=paging.count, listed=len(seen), passes=passes,
            hint="jobs were missing from the pages: going through them again",
        )  # fmt: skip
    raise SelectIncomplete(
        f"the List API says {paging.count} jobs match but {len(seen)} were listed after "
        f"{MAX_PASSES} passes through its pages (does it order jobs created in the same "
        "second differently on each request?)"
    )


@dataclass(slots=True)
class _Walk:
    """What one pass through the pages tells the next."""

    frontier: int = 0  # the furthest position read
    newest: datetime | None = None  # the latest creation time seen
    ordered: bool = True  # creation times never went backwards: the server keeps the order
    page_size: int = PAGE_SIZE  # halved while the server refuses it with a 400


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
    back = step_backs = idle = 0
    while paging.count is None or offset < paging.count:
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
        if jobs is None and count == 0:
            jobs = []  # nothing matches: some servers leave the empty list out
        if not isinstance(jobs, list) or not isinstance(count, int):
            raise SelectIncomplete("the List answer has no count or jobs list: not the API's shape")
        paging.pages += 1
        before, paging.count = paging.count, count
        if jobs:
            moved = not _continues(jobs[0], seen, walk.newest if walk.ordered else None)
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
        if end <= offset:
            overlap = False  # the page held only the job overlapped: go on unchecked
        offset = max(end, offset)


def _created(job: dict[str, Any]) -> datetime | None:
    """The job's ``create_time``, if it has a readable one."""
    return _time(job.get("create_time"))


def _parsed(value: str) -> datetime:
    """A filter's time, already checked to be RFC 3339."""
    parsed = _time(value)
    assert parsed is not None
    return parsed


def _time(value: Any) -> datetime | None:
    """An RFC 3339 time as the API writes it, or None."""
    if not isinstance(value, str):
        return None
    try:
        created = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return created if created.tzinfo is not None else created.replace(tzinfo=UTC)


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


def selection_problems(query: JobQuery, commands: tuple[str, ...]) -> list[str]:
    """What is wrong with the filters and the commands, checked before anything is sent."""
    from .entry import KNOWN_COMMANDS

    problems = query.problems()
    if not commands:
        problems.append("--command is required (one or more, in the order to run them)")
    for command in commands:
        if command not in KNOWN_COMMANDS:
            close = difflib.get_close_matches(command.upper(), KNOWN_COMMANDS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"--command {command!r} is not a known command{hint}")
    if len(set(commands)) != len(commands):
        problems.append("--command: the same command is given twice")
    return problems


async def select_to_manifest(
    query: JobQuery,
    commands: tuple[str, ...],
    options: Options,
    *,
    output: Path | None,
    format: str | None,
    force: bool,
    progress: Callable[[Paging], None] | None = None,
) -> SelectResult:
    """Check the selection and the settings, then page through the matches into a manifest
    (``output`` None: standard output); :func:`batcher.select_async`'s body."""
    # Every problem at once, as for run: the filters and the settings together.
    problems = selection_problems(query, commands)
    try:
        settings = resolve(options, need_project_id=True)
    except SettingsError as error:
        raise SettingsError([*problems, *error.problems]) from None
    if problems:
        raise SettingsError(problems)
    assert settings.project_id is not None
    fmt = format_of(output if output is not None else Path("-.csv"), format)
    paging = Paging()
    redactor = Redactor(settings.secrets())
    limiter = RateLimiter(rate=settings.rate, burst=settings.burst)
    pacer = Pacer(limiter, RetryPolicy(max_attempts=settings.options.max_attempts))
    project = settings.project_id
    try:
        async with (
            target(settings, population=SIMULATED_POPULATION) as (url, credentials),
            open_session(credentials, concurrency=1, timeout=settings.timeout) as session,
        ):
            client = MetaStudioClient(
                session,
                endpoint=url,
                project_id=project,
                app_user_id=settings.app_user_id,
                timeout=settings.timeout,
                redactor=redactor,
            )
            with open_output(output, force=force) as stream:
                writer = ManifestWriter(stream, fmt, project_id=project, header=_header(query))
                jobs = list_jobs(
                    client, pacer, query, project_id=project, paging=paging, on_page=progress
                )
                async for job in jobs:
                    for command in commands:
                        writer.write(
                            {"job_id": job["job_id"], "command": command, "project_id": project}
                        )
                entries = writer.close()
    except BatcherError as error:  # an answer may quote a credential
        raise type(error)(redactor.text(str(error))) from None
    if paging.not_matching:
        log.warning(
            "select_jobs_not_matching",
            jobs=paging.not_matching,
            hint="the List API returned jobs that do not meet the filters (it may not apply "
            "one of them); they were left out of the manifest",
        )
    return SelectResult(
        jobs=paging.jobs,
        entries=entries,
        by_state=dict(paging.by_state),
        count=paging.count,
        pages=paging.pages,
        output=output,
        format=fmt,
        not_matching=paging.not_matching,
    )


def _header(query: JobQuery) -> str:
    filters = ", ".join(f"{key}={value}" for key, value in query.params().items()) or "all jobs"
    return f"selected by `batcher select` ({filters}) at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
