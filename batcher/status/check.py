"""``batcher.status_async``'s body: settings checked, the jobs read (and waited for), the
result counted, a manifest of the jobs shown written."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batcher.config import SIMULATED_POPULATION, Options, resolve, target
from batcher.entry import KNOWN_COMMANDS
from batcher.errors import BatcherError, SettingsError
from batcher.journal.times import epoch
from batcher.redact import Redactor
from batcher.select.selector import JobQuery
from batcher.select.writer import ManifestWriter, format_of
from batcher.select.writer import output as open_output
from batcher.send.client import MetaStudioClient, open_session
from batcher.send.limiter import RateLimiter
from batcher.send.reads import Pacer
from batcher.send.retry import RetryPolicy
from batcher.send.vocabulary import JOB_STATES
from batcher.status.fetch import NOT_FOUND, UNREAD, JobView, StateReader
from batcher.status.look import FIRST_PAUSE, Progress, Views, Waited, look, wait_until
from batcher.status.source import Targets, named_jobs


@dataclass(slots=True)
class StatusResult:
    """Where the jobs are: every job's view, the ones shown, and how a wait ended.

    ``exit_code``: 0 when every job was read (and, waiting, reached a wanted state);
    1 when some could not be read, or a wait timed out or met jobs that cannot reach.
    """

    source: str
    jobs: list[JobView]
    #: The jobs ``states`` picks (all when none given), as shown and written.
    shown: list[JobView]
    read_at: float
    reads: int
    stuck_after: float | None = None
    wait: Waited | None = None
    output: Path | None = None
    entries: int = 0
    by_state: dict[str, int] = field(default_factory=dict)

    def in_state_for(self, view: JobView) -> float | None:
        """Seconds since the job's ``last_update_time`` (by the server's clock)."""
        when = epoch(view.last_update_time)
        return None if when is None else max(0.0, self.read_at - when)

    def stuck(self) -> list[JobView]:
        """Jobs in one state longer than ``stuck_after``, longest first."""
        if self.stuck_after is None:
            return []
        found = [
            (s, v)
            for v in self.shown
            if (s := self.in_state_for(v)) is not None and s > self.stuck_after
        ]
        return [v for _, v in sorted(found, key=lambda item: -item[0])]

    @property
    def exit_code(self) -> int:
        if any(v.state == UNREAD for v in self.jobs):
            return 1
        if self.wait is not None and (self.wait.timed_out or self.wait.blocked):
            return 1
        return 0


def _problems(
    query: JobQuery, wait_for: Sequence[str], commands: Sequence[str], output: Path | None
) -> list[str]:
    found = query.problems()
    found += [
        "--wait-until" + p.removeprefix("--state")
        for p in JobQuery(states=tuple(wait_for)).problems()
    ]
    if output is not None and not commands:
        found.append("--output needs --command (one or more): the manifest's commands")
    for command in commands:
        if command not in KNOWN_COMMANDS:
            found.append(f"--command {command!r} is not a known command")
    return found


async def check_status(
    source: str | None,
    query: JobQuery,
    options: Options,
    *,
    wait_for: Sequence[str] = (),
    wait_timeout: float | None = None,
    poll: float = FIRST_PAUSE,
    stuck_after: float | None = None,
    commands: Sequence[str] = (),
    output: Path | None = None,
    force: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> StatusResult:
    """Check everything, read every job (waiting with ``wait_for``), write ``output``."""
    problems = _problems(query, wait_for, commands, output)
    if source is not None and query != JobQuery(states=query.states):
        problems.append(
            "a SOURCE names its jobs: the List filters (other than --state) "
            "are for a status without one"
        )
    try:
        settings = resolve(options, need_project_id=True)
    except SettingsError as error:
        raise SettingsError([*problems, *error.problems]) from None
    if problems:
        raise SettingsError(problems)
    assert settings.project_id is not None
    fmt = None if output is None else format_of(output)
    if source is None:
        targets = Targets(source="the List query", project_id=settings.project_id, query=query)
    else:
        targets = named_jobs(source, project_id=settings.project_id)
    redactor = Redactor(settings.secrets())
    pacer = Pacer(
        RateLimiter(rate=settings.rate, burst=settings.burst),
        RetryPolicy(max_attempts=settings.options.max_attempts),
    )
    waited: Waited | None = None
    try:
        async with (
            target(settings, population=SIMULATED_POPULATION) as (url, credentials),
            open_session(credentials, concurrency=8, timeout=settings.timeout) as session,
        ):
            client = MetaStudioClient(
                session,
                endpoint=url,
                project_id=settings.project_id,
                app_user_id=settings.app_user_id,
                timeout=settings.timeout,
                redactor=redactor,
            )
            reader = StateReader(client, pacer)
            if wait_for:
                waited = await wait_until(
                    reader,
                    targets,
                    wait_for,
                    deadline_s=wait_timeout,
                    first_pause=poll,
                    progress=progress,
                )
                views: Views = waited.views
            else:
                views = await look(reader, targets, progress=progress)
    except BatcherError as error:  # an answer may quote a credential
        raise type(error)(redactor.text(str(error))) from None
    jobs = list(views.values())
    picked = set(query.states) if source is not None else set()
    shown = [v for v in jobs if not picked or v.state in picked]
    result = StatusResult(
        source=targets.source,
        jobs=jobs,
        shown=shown,
        wait=waited,
        read_at=reader.server_now or time.time(),
        reads=reader.reads,
        stuck_after=stuck_after,
        output=output,
        by_state=by_state(jobs),
    )
    if output is not None and fmt is not None:
        with open_output(output, force=force) as stream:
            writer = ManifestWriter(
                stream, fmt, header=f"jobs shown by `batcher status` ({targets.source})"
            )
            for view in shown:
                if view.state not in (NOT_FOUND, UNREAD):
                    for command in commands:
                        writer.write(
                            {
                                "job_id": view.job_id,
                                "command": command,
                                "project_id": view.project_id,
                            }
                        )
            result.entries = writer.close()
    return result


def by_state(jobs: Sequence[JobView]) -> dict[str, int]:
    """Jobs per state, in the API's order of states (unknown ones and read failures last)."""
    counts: dict[str, int] = {}
    for view in jobs:
        counts[view.state] = counts.get(view.state, 0) + 1
    order = {state: i for i, state in enumerate(JOB_STATES)}
    return dict(sorted(counts.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
