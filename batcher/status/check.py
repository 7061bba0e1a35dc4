"""``batcher.status_async``'s body: what is asked checked, the jobs read (and waited for),
the result counted, a manifest of the jobs shown written."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from batcher.config import Options
from batcher.journal.times import epoch
from batcher.select.query import JobQuery
from batcher.select.selector import resolved, selection_problems
from batcher.select.writer import Format, ManifestWriter, format_of, output
from batcher.status.fetch import NOT_FOUND, UNREAD, JobView, by_state, open_reader
from batcher.status.look import FIRST_PAUSE, Progress, Waited, look, wait_until
from batcher.status.source import Targets, named_jobs

log = structlog.get_logger("batcher.status")


@dataclass(frozen=True, slots=True, kw_only=True)
class Ask:
    """What status is asked: which jobs, whether to wait and for what, what to write."""

    source: str | None = None  #: a report or a manifest; None: the jobs ``query`` lists
    query: JobQuery = field(default_factory=JobQuery)
    wait_for: tuple[str, ...] = ()
    wait_timeout: float | None = None
    poll: float = FIRST_PAUSE
    stuck_after: float | None = None
    commands: tuple[str, ...] = ()  #: for the manifest written to ``output``
    output: Path | None = None
    force: bool = False

    def problems(self) -> list[str]:
        """Every problem with what is asked, found before anything is read."""
        query, commands = self.query, self.commands
        found = selection_problems(query, commands) if commands else query.problems()
        found += [
            "--wait-until" + p.removeprefix("--state")
            for p in JobQuery({"states": self.wait_for}).problems()
        ]
        if self.source is not None and any(f.name != "states" for f, _ in self.query.given()):
            found.append(
                "a SOURCE names its jobs: the List filters other than --state are "
                "for a status without one"
            )
        if self.output is not None and not self.commands:
            found.append("--output needs --command (one or more): the manifest's commands")
        if self.output is not None and self.output.exists() and not self.force:
            found.append(f"--output {self.output} already exists; add --force to replace it")
        return found


@dataclass(slots=True)
class StatusResult:
    """Where the jobs are: every job's view, the ones shown, and how a wait ended.

    ``exit_code``: 0 when every job was read (and, waiting, reached a wanted state);
    1 when some could not be read, or a wait timed out or met jobs that cannot reach.
    """

    source: str
    jobs: list[JobView]
    #: The jobs ``--state`` picks (all when none given), as shown and written.
    shown: list[JobView]
    read_at: float  #: epoch seconds, by the server's clock where it sent one
    reads: int
    stuck_after: float | None = None
    wait: Waited | None = None
    output: Path | None = None
    entries: int = 0

    @property
    def by_state(self) -> dict[str, int]:
        return by_state(self.jobs)

    def in_state_for(self, view: JobView) -> float | None:
        """Seconds since the job's ``last_update_time``."""
        when = epoch(view.last_update_time)
        return None if when is None else max(0.0, self.read_at - when)

    def is_stuck(self, view: JobView) -> bool:
        since = self.in_state_for(view)
        return self.stuck_after is not None and since is not None and since > self.stuck_after

    def stuck(self) -> list[JobView]:
        """Jobs in one state longer than ``stuck_after``, longest first."""
        found = (v for v in self.shown if self.is_stuck(v))
        return sorted(found, key=lambda v: -(self.in_state_for(v) or 0.0))

    @property
    def exit_code(self) -> int:
        waited = self.wait is not None and (self.wait.timed_out or bool(self.wait.blocked))
        return int(waited or any(v.state == UNREAD for v in self.jobs))


async def check_status(
    ask: Ask, options: Options, *, progress: Callable[[Progress], None] | None = None
) -> StatusResult:
    """Check everything, read every job (waiting with ``ask.wait_for``), write the manifest."""
    settings = resolved(ask.problems(), options)
    assert settings.project_id is not None
    fmt = None if ask.output is None else format_of(ask.output)
    if ask.source is None:
        targets = Targets("the List query", settings.project_id, query=ask.query)
    else:
        targets = named_jobs(ask.source, project_id=settings.project_id)
    async with open_reader(settings) as reader:
        waited = None
        if ask.wait_for:
            waited = await wait_until(
                reader,
                targets,
                ask.wait_for,
                deadline_s=ask.wait_timeout,
                first_pause=ask.poll,
                progress=progress,
            )
        views = waited.views if waited else await look(reader, targets, progress=progress)
    jobs = list(views.values())
    picked = set(ask.query.values.get("states") or ()) if ask.source is not None else set()
    shown = [v for v in jobs if not picked or v.state in picked]
    result = StatusResult(
        targets.source,
        jobs,
        shown,
        read_at=reader.server_now or time.time(),
        reads=reader.reads,
        stuck_after=ask.stuck_after,
        wait=waited,
        output=ask.output,
    )
    if ask.output is not None and fmt is not None:
        result.entries = _write_manifest(ask, ask.output, fmt, shown, targets.source)
    log.info(
        "status_read",
        jobs=len(jobs),
        shown=len(shown),
        reads=result.reads,
        by_state=by_state(shown),
        exit_code=result.exit_code,
    )
    return result


def _write_manifest(ask: Ask, path: Path, fmt: Format, shown: list[JobView], source: str) -> int:
    """A manifest of the jobs shown (those read), one entry per job per command."""
    with output(path, force=ask.force) as stream:
        writer = ManifestWriter(stream, fmt, header=f"jobs shown by `batcher status` ({source})")
        for view in shown:
            if view.state not in (NOT_FOUND, UNREAD):
                for command in ask.commands:
                    writer.write(
                        {"job_id": view.job_id, "command": command, "project_id": view.project_id}
                    )
        return writer.close()
