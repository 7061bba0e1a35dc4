"""The public API: run manifests, validate them, summarise a report.

What the ``batcher`` command does, as functions: the CLI only parses flags into these
keyword arguments, prints what they return, and maps their exceptions to exit codes. The
same protections hold either way: every manifest is checked before anything is sent,
project ids are checked, ``resume`` skips what already succeeded, the report is locked,
and credentials come from the environment only.
"""

from __future__ import annotations

import asyncio
import functools
import os
import secrets as _secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import structlog

from .errors import ExitCode, UsageError
from .settings import Options, RunSettings, resolve

if TYPE_CHECKING:
    from .engine.progress import Display
    from .manifest import ManifestSummary
    from .report.summary import Summary

log = structlog.get_logger("batcher")

#: A manifest path, or ``"-"`` for CSV on standard input.
ManifestPath = str | os.PathLike[str]


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

    @property
    def expected_seconds(self) -> float | None:
        """At least this long at ``rate`` (one attempt per entry); None when unlimited."""
        return self.total / self.rate if self.rate > 0 else None


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
        if self.halted_reason is not None:
            return int(ExitCode.HALTED)
        if self.failed or self.skipped:
            return int(ExitCode.INCOMPLETE)
        return int(ExitCode.OK)

    @property
    def entries_per_second(self) -> float | None:
        """Entries attempted (succeeded or failed) per second; skipped lines are not work."""
        attempted = self.succeeded + self.failed
        return attempted / self.elapsed if self.elapsed > 0 else None


def run(
    manifests: Sequence[ManifestPath],
    *,
    report: str | os.PathLike[str] | None = None,
    project_id: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    simulate: bool = False,
    concurrency: int = 16,
    rate: float = 10.0,
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
    receives a :class:`~batcher.engine.progress.Snapshot` every ``progress_interval`` seconds
    (default 0.25), True for a ``progress`` log event every 10 s, or False for neither. Call
    :func:`run_async` from inside an event loop.

    >>> result = batcher.run(["manifests/example.yaml"], report=tmp / "r.jsonl",
    ...                      simulate=True)  # doctest: +SKIP
    >>> result.succeeded, result.exit_code  # doctest: +SKIP
    (10, 0)
    """
    _refuse_inside_a_loop("run")
    call = functools.partial(
        run_async,
        manifests,
        report=report,
        project_id=project_id,
        region=region,
        endpoint=endpoint,
        simulate=simulate,
        concurrency=concurrency,
        rate=rate,
        burst=burst,
        max_attempts=max_attempts,
        timeout=timeout,
        command=command,
        app_user_id=app_user_id,
        resume=resume,
        dry_run=dry_run,
        max_failures=max_failures,
        max_failure_rate=max_failure_rate,
        grace_period=grace_period,
        limit=limit,
        handle_signals=handle_signals,
        progress=progress,
        progress_interval=progress_interval,
    )
    return anyio.run(call)


async def run_async(
    manifests: Sequence[ManifestPath],
    *,
    report: str | os.PathLike[str] | None = None,
    project_id: str | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    simulate: bool = False,
    concurrency: int = 16,
    rate: float = 10.0,
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
    handle_signals: bool = True,
    progress: Display | bool = True,
    progress_interval: float | None = None,
) -> RunResult:
    """:func:`run`, for callers already in an event loop (same arguments, same result).

    >>> result = await batcher.run_async(["jobs.csv"], report="r.jsonl")  # doctest: +SKIP
    """
    from .execution import execute
    from .manifest import Manifests
    from .redact import Redactor

    options = Options(
        project_id=project_id,
        region=region,
        endpoint=endpoint,
        simulate=simulate,
        concurrency=concurrency,
        rate=rate,
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
    settings = resolve(options, need_endpoint=not dry_run)
    if not dry_run and report is None:
        raise UsageError("--report PATH is required (or use --dry-run)")
    paths = [os.fspath(path) for path in manifests]
    with Manifests(paths, default_command=command, project_id=settings.project_id) as checked:
        summary = checked.check()
        if summary.total == 0:
            log.warning(
                "no_entries",
                files=list(summary.files),
                hint="the manifests hold no entries: nothing to do",
            )
        if summary.without_project_id is not None:
            raise UsageError(
                f"{summary.without_project_id}: no project id for this entry: pass "
                "--project-id, set HUAWEICLOUD_SDK_PROJECT_ID, or give the manifest a "
                "project_id"
            )
        run_id = new_run_id()
        if dry_run:
            return RunResult(run_id=run_id, report=None, plan=_plan(summary, settings))
        if settings.credentials is None and not settings.simulate:
            raise UsageError(
                "no credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or "
                "CLOUD_SDK_AK/CLOUD_SDK_SK), or METASTUDIO_AUTH_TOKEN, or use --simulate"
            )
        assert report is not None
        report_path = Path(report)
        redactor = Redactor(settings.secrets())
        done = await execute(
            checked.entries(),
            settings=settings,
            report=report_path,
            resume=resume,
            run_id=run_id,
            total=summary.total,
            progress=progress,
            progress_interval=progress_interval,
            redactor=redactor,
        )
    stats = done.stats
    elapsed = (stats.finished or stats.started) - stats.started
    return RunResult(
        run_id=run_id,
        report=report_path,
        succeeded=stats.succeeded,
        failed=stats.failed,
        skipped=stats.skipped,
        already_done=stats.already_done,
        attempts=stats.attempts,
        throttled=stats.throttled,
        confirmed=stats.confirmed,
        ambiguous=stats.ambiguous,
        checks=stats.checks,
        left_by_limit=stats.left_by_limit,
        elapsed=elapsed,
        rate_limit=settings.rate,
        settled_rate=done.settled_rate,
        # The reason can quote a server's answer, and a server can echo a credential.
        halted_reason=None if stats.halted_reason is None else redactor.text(stats.halted_reason),
    )


def validate(manifests: Sequence[ManifestPath], *, command: str | None = None) -> ManifestSummary:
    """Check manifests without sending anything; return their counts.

    Raises :class:`~batcher.errors.ManifestError` whose ``problems`` name the file, line
    and field of every problem found (up to 100).

    >>> import batcher
    >>> batcher.validate(["manifests/example.csv"]).total
    8
    """
    from .manifest import Manifests

    with Manifests([os.fspath(path) for path in manifests], default_command=command) as checked:
        return checked.check()


def summarize(report: str | os.PathLike[str]) -> Summary:
    """Summarise a report: entries by status (latest line per entry), failure reasons,
    latency, runs. Streams the file, so a million lines take about 100 MB.

    >>> stats = batcher.summarize("r.jsonl")  # doctest: +SKIP
    >>> stats.status["failed"]  # doctest: +SKIP
    0
    """
    from .report.summary import summarize as summarize_report

    path = Path(report)
    if not path.is_file():
        raise UsageError(
            f"report {path} " + ("is not a file" if path.exists() else "does not exist")
        )
    return summarize_report(path)


def _refuse_inside_a_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"batcher.{name}() blocks, and this thread already runs an event loop: "
        f"use `await batcher.{name}_async(...)` instead"
    )


def new_run_id() -> str:
    """A run id: when it started (UTC), and six random hex digits.

    >>> len(new_run_id())
    23
    """
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + _secrets.token_hex(3)


def _plan(summary: ManifestSummary, settings: RunSettings) -> Plan:
    if settings.simulate:
        endpoint: str | None = "an in-process simulator on 127.0.0.1 (throwaway credentials)"
        auth = "AK/SK signing with throwaway simulator keys"
    else:
        endpoint = str(settings.endpoint) if settings.endpoint else None
        auth = (
            settings.credentials.describe()
            if settings.credentials
            else ("none found in the environment (a real run would refuse to start)")
        )
    return Plan(
        files=summary.files,
        total=summary.total,
        commands=dict(summary.commands),
        endpoint=endpoint,
        project_id=settings.project_id,
        auth=auth,
        rate=settings.rate,
        burst=settings.burst,
        concurrency=settings.options.concurrency,
    )


__all__ = ["Plan", "RunResult", "new_run_id", "run", "run_async", "summarize", "validate"]
