"""Jobs selected by the List API, written as a manifest: ``batcher select``.

"Every job of batch X that failed verification: CONFIRM_REPAIR, then SUBMITVERIFYING" is a
query, not a list of ids. This module checks the query (:class:`JobQuery`) and the commands
before anything is sent, has every match listed (:func:`batcher.select.paging.list_jobs`: in
creation order, in bounded memory, a job met twice written once), and writes the manifest
only when every page was read.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from batcher.api import SelectResult
from batcher.config import SIMULATED_POPULATION, Options, resolve, target
from batcher.errors import BatcherError, SettingsError
from batcher.redact import Redactor
from batcher.select.paging import Paging, _time, list_jobs
from batcher.select.writer import ManifestWriter, format_of
from batcher.select.writer import output as open_output
from batcher.send.client import MetaStudioClient, open_session
from batcher.send.limiter import RateLimiter
from batcher.send.reads import Pacer
from batcher.send.retry import RetryPolicy
from batcher.send.vocabulary import JOB_STATES

log = structlog.get_logger("batcher.select")


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


def _parsed(value: str) -> datetime:
    """A filter's time, already checked to be RFC 3339."""
    parsed = _time(value)
    assert parsed is not None
    return parsed


def selection_problems(query: JobQuery, commands: tuple[str, ...]) -> list[str]:
    """What is wrong with the filters and the commands, checked before anything is sent."""
    from batcher.entry import KNOWN_COMMANDS

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
    if options.read_rate is None and options.rate is not None:
        # select sends only List requests: a --rate given to it is the pace it always set.
        options = dataclasses.replace(options, read_rate=options.rate)
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
    # select only reads: List pages at the reads' pace (their own quota).
    limiter = RateLimiter(rate=settings.read_rate)
    pacer = Pacer(limiter, RetryPolicy(max_attempts=settings.options.max_attempts))
    project = settings.project_id
    try:
        async with (
            target(settings, population=SIMULATED_POPULATION) as (url, credentials),
            open_session(concurrency=1, timeout=settings.timeout) as session,
        ):
            client = MetaStudioClient(
                session,
                endpoint=url,
                project_id=project,
                credentials=credentials,
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
