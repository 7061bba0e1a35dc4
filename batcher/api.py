"""The public API: run manifests, select jobs, validate manifests, summarise a report.

Also what it returns: a run's result, a dry run's plan, a selection's result.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import anyio

from batcher.config import Options
from batcher.errors import ExitCode, UsageError


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run would do: the entries per command, where they go, and at what pace."""

    files: tuple[str, ...]
    total: int
    commands: dict[str, int]
    endpoint: str | None
    project_id: str | None
    auth: str
    rate: float
    burst: int
    concurrency: int
    #: The reads' pace (Show after a lost answer), and where each rate came from.
    read_rate: float = 0.0
    rate_source: str = ""
    read_rate_source: str = ""
    #: With ``resume``: entries an earlier run finished, and those it may have executed
    #: without hearing back (their job's record is read first).
    already_done: int = 0
    in_doubt: int = 0
    #: Entries the run would send (``limit`` caps them), and the limit.
    to_run: int = 0
    limit: int | None = None

    @property
    def expected_seconds(self) -> float | None:
        """At least this long at ``rate`` (one attempt per entry); None when unlimited."""
        return self.to_run / self.rate if self.rate > 0 else None


def exit_code_for(*, halted: bool, failed: int, skipped: int) -> int:
    """The exit code of a run: 3 halted, 1 some entries failed or were skipped, else 0.

    >>> exit_code_for(halted=False, failed=0, skipped=2)
    1
    """
    if halted:
        return int(ExitCode.HALTED)
    if failed or skipped:
        return int(ExitCode.INCOMPLETE)
    return int(ExitCode.OK)


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run did. ``exit_code`` is the one the ``batcher`` command exits with.

    >>> RunResult(run_id="r", report=None, succeeded=3).exit_code
    0
    """

    run_id: str
    report: Path | None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    #: Entries not sent because an earlier run of the report had them succeed (``resume``).
    already_done: int = 0
    attempts: int = 0
    #: Requests the API answered 429.
    throttled: int = 0
    #: Entries decided from the job's record after a lost answer, failures left in doubt
    #: (``ambiguous``), and the Show requests made to decide them.
    confirmed: int = 0
    ambiguous: int = 0
    checks: int = 0
    #: True when ``limit`` stopped the run with entries left for ``resume``.
    left_by_limit: bool = False
    elapsed: float = 0.0
    #: The rate asked for (0 = unlimited) and the rate the limiter ended at.
    rate_limit: float = 0.0
    settled_rate: float = 0.0
    #: Why the run stopped early (401/403, a failure threshold, a signal), else None.
    halted_reason: str | None = None
    #: A dry run's plan (nothing was sent); None for real runs.
    plan: Plan | None = None

    @property
    def exit_code(self) -> int:
        return exit_code_for(
            halted=self.halted_reason is not None, failed=self.failed, skipped=self.skipped
        )

    @property
    def entries_per_second(self) -> float | None:
        """Entries attempted (succeeded or failed) per second; skipped lines are not work."""
        attempted = self.succeeded + self.failed
        return attempted / self.elapsed if self.elapsed > 0 else None


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


# The public API: run manifests, select jobs, validate manifests, summarise a report.
#
# What the ``batcher`` command does, as functions: the CLI only parses flags into these
# keyword arguments, prints what they return, and maps their exceptions to exit codes. The
# same protections hold either way: every manifest is checked before anything is sent,
# project ids are checked, ``resume`` skips what already succeeded, the report is locked,
# and credentials come from the environment only.
if TYPE_CHECKING:
    from batcher.read import ManifestSummary
    from batcher.review.summary import Summary
    from batcher.select.paging import Paging
    from batcher.send.progress import Display

T = TypeVar("T")

#: A manifest path, or ``"-"`` for CSV on standard input.
ManifestPath = str | os.PathLike[str]

__all__ = [
    "Plan",
    "RunResult",
    "SelectResult",
    "run",
    "run_async",
    "select",
    "select_async",
    "summarize",
    "validate",
]


def run(
    manifests: Sequence[ManifestPath],
    *,
    report: str | os.PathLike[str] | None = None,
    project_id: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    simulate: bool = False,
    concurrency: int = 16,
    rate: float | None = None,
    read_rate: float | None = None,
    burst: int = 1,
    max_attempts: int = 5,
    timeout: float = 30.0,
    command: str | None = None,
    app_user_id: str | None = None,
    resume: bool = False,
    dry_run: bool = False,
    max_failures: int | None = None,
    max_failure_rate: float | None = None,
    grace_period: float = 10.0,
    limit: int | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    handle_signals: bool = True,
    progress: Display | bool = True,
    progress_interval: float | None = None,
) -> RunResult:
    """Run every entry of ``manifests``, one report line each; block until done.

    Every entry is checked first: an invalid manifest raises
    :class:`~batcher.errors.ManifestError` listing every problem, and nothing is sent.
    Credentials come from the environment (``HUAWEICLOUD_SDK_AK``/``_SK`` or
    ``METASTUDIO_AUTH_TOKEN``); ``simulate=True`` runs against an in-process simulator
    instead. The options are the ``batcher run`` flags. ``progress`` is a callable that
    receives a :class:`~batcher.send.progress.Snapshot` every ``progress_interval`` seconds
    (default 0.25), True for a ``progress`` log event every 10 s, or False for neither. Call
    :func:`run_async` from inside an event loop.

    >>> result = batcher.run(["manifests/example.yaml"], report=tmp / "r.jsonl",
    ...                      simulate=True)  # doctest: +SKIP
    >>> result.succeeded, result.exit_code  # doctest: +SKIP
    (10, 0)
    """
    arguments = dict(locals())  # exactly the parameters, which the async twin takes
    _refuse_inside_a_loop("run")
    return _run_blocking(functools.partial(run_async, **arguments))


async def run_async(
    manifests: Sequence[ManifestPath],
    *,
    report: str | os.PathLike[str] | None = None,
    project_id: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    simulate: bool = False,
    concurrency: int = 16,
    rate: float | None = None,
    read_rate: float | None = None,
    burst: int = 1,
    max_attempts: int = 5,
    timeout: float = 30.0,  # noqa: ASYNC109 - per request, not for this call
    command: str | None = None,
    app_user_id: str | None = None,
    resume: bool = False,
    dry_run: bool = False,
    max_failures: int | None = None,
    max_failure_rate: float | None = None,
    grace_period: float = 10.0,
    limit: int | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    handle_signals: bool = True,
    progress: Display | bool = True,
    progress_interval: float | None = None,
) -> RunResult:
    """:func:`run`, for callers already in an event loop (same arguments, same result).

    >>> result = await batcher.run_async(["jobs.csv"], report="r.jsonl")  # doctest: +SKIP
    """
    from batcher.execution import run_manifests
    from batcher.observe.logs import ensure_configured

    ensure_configured()
    options = Options(
        project_id=project_id,
        region=region,
        endpoint=endpoint,
        simulate=simulate,
        concurrency=concurrency,
        rate=rate,
        read_rate=read_rate,
        burst=burst,
        max_attempts=max_attempts,
        timeout=timeout,
        app_user_id=app_user_id,
        max_failures=max_failures,
        max_failure_rate=max_failure_rate,
        grace_period=grace_period,
        handle_signals=handle_signals,
        limit=limit,
    )
    return await run_manifests(
        [os.fspath(path) for path in manifests],
        options,
        report=None if report is None else Path(report),
        command=command,
        resume=resume,
        dry_run=dry_run,
        progress=progress,
        progress_interval=progress_interval,
        metrics_file=None if metrics_file is None else Path(metrics_file),
    )


def validate(manifests: Sequence[ManifestPath], *, command: str | None = None) -> ManifestSummary:
    """Check manifests without sending anything; return their counts.

    Raises :class:`~batcher.errors.ManifestError` whose ``problems`` name the file, line
    and field of every problem found (up to 100).

    >>> import batcher
    >>> batcher.validate(["manifests/example.csv"]).total
    8
    """
    from batcher.read import Manifests

    with Manifests([os.fspath(path) for path in manifests], default_command=command) as checked:
        return checked.check()


def summarize(report: str | os.PathLike[str]) -> Summary:
    """Summarise a report: entries by status (latest line per entry), failure reasons,
    latency, runs. Streams the file, so a million lines take about 100 MB.

    >>> stats = batcher.summarize("r.jsonl")  # doctest: +SKIP
    >>> stats.status["failed"]  # doctest: +SKIP
    0
    """
    from batcher.review.summary import summarize as summarize_report

    path = Path(report)
    if not path.is_file():
        raise UsageError(
            f"report {path} " + ("is not a file" if path.exists() else "does not exist")
        )
    return summarize_report(path)


def select(
    *,
    commands: Sequence[str],
    states: Sequence[str] = (),
    batch_name: str | None = None,
    tag: str | None = None,
    name: str | None = None,
    created_since: str | None = None,
    created_until: str | None = None,
    updated_since: str | None = None,
    updated_until: str | None = None,
    output: str | os.PathLike[str] | None = None,
    format: str | None = None,
    force: bool = False,
    project_id: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    simulate: bool = False,
    rate: float | None = None,
    read_rate: float | None = None,
    burst: int = 1,
    max_attempts: int = 5,
    timeout: float = 30.0,
    app_user_id: str | None = None,
    progress: Callable[[Paging], None] | None = None,
) -> SelectResult:
    """Write a manifest of every job the List API matches: one entry per job per command,
    each job's commands in the order given; CSV on standard output by default, or to
    ``output`` (format from its extension, or ``format``), never over an existing file
    unless ``force``. The manifest carries the project id, so ``batcher run`` takes it as
    it is.

    >>> batcher.select(commands=["CONFIRM_REPAIR", "SUBMITVERIFYING"],
    ...                states=["AUTO_VERIFY_FAILED"], batch_name="b-7",
    ...                output="nightly.csv")  # doctest: +SKIP
    SelectResult(jobs=42, entries=84, by_state={'AUTO_VERIFY_FAILED': 42}, ...)
    """
    arguments = dict(locals())  # exactly the parameters, which the async twin takes
    _refuse_inside_a_loop("select")
    return _run_blocking(functools.partial(select_async, **arguments))


async def select_async(
    *,
    commands: Sequence[str],
    states: Sequence[str] = (),
    batch_name: str | None = None,
    tag: str | None = None,
    name: str | None = None,
    created_since: str | None = None,
    created_until: str | None = None,
    updated_since: str | None = None,
    updated_until: str | None = None,
    output: str | os.PathLike[str] | None = None,
    format: str | None = None,
    force: bool = False,
    project_id: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    simulate: bool = False,
    rate: float | None = None,
    read_rate: float | None = None,
    burst: int = 1,
    max_attempts: int = 5,
    timeout: float = 30.0,  # noqa: ASYNC109 - per request, not for this call
    app_user_id: str | None = None,
    progress: Callable[[Paging], None] | None = None,
) -> SelectResult:
    """:func:`select`, for callers already in an event loop (same arguments, same result)."""
    from batcher.observe.logs import ensure_configured
    from batcher.select.selector import JobQuery, select_to_manifest

    ensure_configured()
    query = JobQuery(
        states=tuple(states),
        batch_name=batch_name,
        tag=tag,
        name=name,
        created_since=created_since,
        created_until=created_until,
        updated_since=updated_since,
        updated_until=updated_until,
    )
    options = Options(
        project_id=project_id,
        region=region,
        endpoint=endpoint,
        simulate=simulate,
        rate=rate,
        read_rate=read_rate,
        burst=burst,
        max_attempts=max_attempts,
        timeout=timeout,
        app_user_id=app_user_id,
    )
    out = None if output is None or os.fspath(output) == "-" else Path(output)
    return await select_to_manifest(
        query,
        tuple(commands),
        options,
        output=out,
        format=format,
        force=force,
        progress=progress,
    )


def _run_blocking(call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` in a new event loop: uvloop's when it is installed (the ``fast`` extra).

    uvloop runs the same aiohttp client with less CPU per request in the loop itself
    (socket reads, callbacks, timers); nothing else changes with it.
    """
    return anyio.run(call, backend_options={"use_uvloop": _uvloop_usable()})


def _uvloop_usable() -> bool:
    """uvloop is installed, and standard input, output and error are open: libuv aborts the
    process when it closes a descriptor of its own that took one of their numbers."""
    if importlib.util.find_spec("uvloop") is None:
        return False
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def _refuse_inside_a_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"batcher.{name}() blocks, and this thread already runs an event loop: "
        f"use `await batcher.{name}_async(...)` instead"
    )
