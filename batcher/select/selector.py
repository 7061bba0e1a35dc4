"""Jobs selected by the List API, written as a manifest: ``batcher select``.

"Every job of batch X whose upload finished: CONFIRM_MULTIPART_UPLOADED, then
SUBMITVERIFYING" is a query, not a list of ids. This module checks the query
(:class:`batcher.select.query.JobQuery`) and the commands before anything is sent, has every
match listed (:func:`batcher.select.paging.list_jobs`: in creation order, a job met twice
written once), and writes the manifest only when every page was read.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from batcher.config import (
    AnyOptions,
    Options,
    SelectConfig,
    client_for,
    resolve,
)
from batcher.errors import BatcherError, SettingsError
from batcher.redact import Redactor
from batcher.select.paging import Paging, list_jobs
from batcher.select.query import FILTERS, JobQuery, near_miss, parse_time
from batcher.select.writer import ManifestWriter, format_of
from batcher.select.writer import output as open_output
from batcher.send.client import MetaStudioClient
from batcher.send.limiter import RateLimiter
from batcher.send.reads import Pacer
from batcher.send.retry import RetryPolicy

log = structlog.get_logger("batcher.select")


@dataclass(frozen=True, slots=True)
class SelectResult:
    """What :func:`select` wrote: jobs matched (per state), entries written, and where."""

    jobs: int
    entries: int
    by_state: dict[str, int]
    #: The number of matches the API reported (it can change while paging).
    count: int | None
    pages: int
    output: Path | None
    format: str
    #: Jobs the API listed that do not meet the filters (it ignored one): left out.
    not_matching: int = 0


def selection_problems(query: JobQuery, commands: tuple[str, ...]) -> list[str]:
    """What is wrong with the filters and the commands, checked before anything is sent."""
    from batcher.entry import KNOWN_COMMANDS

    problems = query.problems()
    if not commands:
        problems.append("--command is required (one or more, in the order to run them)")
    for command in commands:
        if command not in KNOWN_COMMANDS:
            hint = near_miss(command, KNOWN_COMMANDS)
            problems.append(f"--command {command!r} is not a known command{hint}")
    if len(set(commands)) != len(commands):
        problems.append("--command: the same command is given twice")
    return problems


async def select_to_manifest(
    config: SelectConfig, *, progress: Callable[[Paging], None] | None = None
) -> SelectResult:
    """Check the selection and the settings, then page through the matches into a manifest
    (``config.output`` None: standard output); :func:`batcher.select_async`'s body."""
    query = JobQuery(
        {f.name: getattr(config, f.name) for f in FILTERS} | {"states": tuple(config.states)},
        sort_key=config.sort_key,
        sort_dir=config.sort_dir,
    )
    commands, output = tuple(config.commands), config.output
    if config.read_rate is None and config.rate is not None:
        # select sends only List requests: a --rate given to it is the pace it always set.
        config = dataclasses.replace(config, read_rate=config.rate)
    settings = resolved(selection_problems(query, commands), config)
    project = settings.project_id
    assert project is not None
    fmt = format_of(output if output is not None else Path("-.csv"), config.format, flag="--format")
    paging = Paging()
    async with list_client(settings) as (client, pacer):
        with open_output(output, force=config.force) as stream:
            writer = ManifestWriter(stream, fmt, project_id=project, header=_header(query))
            jobs = list_jobs(
                client, pacer, query, project_id=project, paging=paging, on_page=progress
            )
            async for job in _in_order(jobs, query.order()):
                for command in commands:
                    writer.write(
                        {"job_id": job["job_id"], "command": command, "project_id": project}
                    )
            entries = writer.close()
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


def resolved(problems: list[str], options: AnyOptions) -> AnyOptions:
    """The settings, once they and what else was asked (``problems``) are all right: every
    problem at once, as for run (``batcher status`` checks its own this way)."""
    try:
        settings = resolve(options, need_project_id=True)
    except SettingsError as error:
        raise SettingsError([*problems, *error.problems]) from None
    if problems:
        raise SettingsError(problems)
    return settings


@contextlib.asynccontextmanager
async def list_client(
    settings: Options, *, concurrency: int = 1
) -> AsyncIterator[tuple[MetaStudioClient, Pacer]]:
    """A client for the List and Show API where the settings point, and the pace to read it
    at (``batcher status`` reads through it too); errors raised inside have any credential
    an answer quoted masked."""
    # Reads only: List and Show at the reads' pace (their own quota).
    limiter = RateLimiter(rate=settings.paces[1])
    pacer = Pacer(limiter, RetryPolicy(max_attempts=settings.max_attempts))
    redactor = Redactor(settings.secrets())
    try:
        async with client_for(settings, concurrency=concurrency, redactor=redactor) as client:
            yield client, pacer
    except BatcherError as error:  # an answer may quote a credential
        raise type(error)(redactor.text(str(error))) from None


async def _in_order(
    jobs: AsyncIterator[dict[str, Any]], order: tuple[str, bool] | None
) -> AsyncIterator[dict[str, Any]]:
    """The jobs in the order asked for. The listing goes by creation time, oldest first (it
    is what keeps it whole while jobs change); another order is had by sorting the jobs'
    ids once every page was read, which holds them all in memory. Jobs without the time
    sorted on come last, in listing order."""
    if order is None:
        async for job in jobs:
            yield job
        return
    key, descending = order
    far = datetime.max.replace(tzinfo=UTC) if not descending else datetime.min.replace(tzinfo=UTC)
    keyed = [(parse_time(job.get(key)) or far, job["job_id"]) async for job in jobs]
    keyed.sort(key=lambda pair: pair[0], reverse=descending)  # stable: ties keep listing order
    for _, job_id in keyed:
        yield {"job_id": job_id}


def _header(query: JobQuery) -> str:
    filters = ", ".join(f"{key}={value}" for key, value in query.params().items()) or "all jobs"
    return f"selected by `batcher select` ({filters}) at {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
