"""The public API: run manifests, select jobs, validate manifests, summarise a report."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

import anyio

from batcher.config import Options, RunConfig, SelectConfig
from batcher.errors import UsageError

# What the ``batcher`` command does, as functions: the CLI only parses flags into these
# keyword arguments, prints what they return, and maps their exceptions to exit codes. The
# same protections hold either way: every manifest is checked before anything is sent,
# project ids are checked, ``resume`` skips what already succeeded, the report is locked,
# and credentials come from the environment only. The keywords are declared once (below),
# and each function builds the one config object of its command from them, in one place.
if TYPE_CHECKING:
    from batcher.execution import RunResult
    from batcher.read import ManifestSummary
    from batcher.review.summary import Summary
    from batcher.select.paging import Paging
    from batcher.select.selector import SelectResult
    from batcher.send.progress import Display
    from batcher.status.check import Ask, StatusResult
    from batcher.status.look import Progress

T = TypeVar("T")

#: A manifest path, or ``"-"`` for CSV on standard input.
ManifestPath = str | os.PathLike[str]

__all__ = [
    "RunKeywords",
    "SelectKeywords",
    "WhereKeywords",
    "run",
    "run_async",
    "select",
    "select_async",
    "status",
    "status_async",
    "summarize",
    "validate",
]


class WhereKeywords(TypedDict, total=False):
    """Where to send and at what pace: keywords :func:`run` and :func:`select` share. Each
    is the ``batcher`` flag of the same name; the defaults are :class:`~batcher.config.Options`'s
    (``rate`` and ``read_rate`` None: the region's documented quotas; ``burst=1``,
    ``max_attempts=5``, ``timeout=30.0``)."""

    project_id: str | None
    region: str | None
    endpoint: str | None
    simulate: bool
    rate: float | None
    read_rate: float | None
    burst: int
    max_attempts: int
    timeout: float
    app_user_id: str | None


class RunKeywords(WhereKeywords, total=False):
    """The keywords of :func:`run` besides ``report``, ``metrics_file`` and ``progress``
    (defaults: :class:`~batcher.config.RunConfig`'s, as ``batcher run --help`` says)."""

    command: str | None
    resume: bool
    allow_other_manifest: bool
    dry_run: bool
    concurrency: int
    max_failures: int | None
    max_failure_rate: float | None
    grace_period: float
    handle_signals: bool
    limit: int | None
    progress_interval: float | None


class FilterKeywords(TypedDict, total=False):
    """The List API's filters, as :func:`select` and :func:`status` take them (each is the
    ``batcher select`` flag of the same name; ``is_flexus`` and the like take True/False)."""

    states: Sequence[str]
    batch_name: str | None
    tag: str | None
    name: str | None
    job_id: str | None
    model_resolution: str | None
    train_location: str | None
    is_flexus: bool | None
    is_live_copy: bool | None
    is_ondemand_resource: bool | None
    query_project_id: str | None
    created_since: str | None
    created_until: str | None
    updated_since: str | None
    updated_until: str | None


class SelectKeywords(WhereKeywords, FilterKeywords, total=False):
    """The keywords of :func:`select` besides ``commands``, ``output`` and ``progress``."""

    sort_key: str | None
    sort_dir: str | None
    format: str | None
    force: bool


def run(
    manifests: Sequence[ManifestPath],
    *,
    report: str | os.PathLike[str] | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    progress: Display | bool = True,
    **options: Unpack[RunKeywords],
) -> RunResult:
    """Run every entry of ``manifests``, one report line each; block until done.

    Every entry is checked first: an invalid manifest raises
    :class:`~batcher.errors.ManifestError` listing every problem, and nothing is sent.
    Credentials come from the environment (``HUAWEICLOUD_SDK_AK``/``_SK`` or
    ``METASTUDIO_AUTH_TOKEN``); ``simulate=True`` runs against an in-process simulator
    instead. The options are the ``batcher run`` flags (:class:`RunKeywords`). ``progress``
    is a callable that receives a :class:`~batcher.send.progress.Snapshot` every
    ``progress_interval`` seconds (default 0.25), True for a ``progress`` log event every
    10 s, or False for neither. Call :func:`run_async` from inside an event loop.

    >>> result = batcher.run(["manifests/example.yaml"], report=tmp / "r.jsonl",
    ...                      simulate=True, rate=8)  # doctest: +SKIP
    >>> result.succeeded, result.exit_code  # doctest: +SKIP
    (10, 0)
    """
    _refuse_inside_a_loop("run")
    config = _run_config(report, metrics_file, options)
    return _run_blocking(functools.partial(_run, manifests, config, progress))


async def run_async(
    manifests: Sequence[ManifestPath],
    *,
    report: str | os.PathLike[str] | None = None,
    metrics_file: str | os.PathLike[str] | None = None,
    progress: Display | bool = True,
    **options: Unpack[RunKeywords],
) -> RunResult:
    """:func:`run`, for callers already in an event loop (same arguments, same result).

    >>> result = await batcher.run_async(["jobs.csv"], report="r.jsonl")  # doctest: +SKIP
    """
    return await _run(manifests, _run_config(report, metrics_file, options), progress)


def _run_config(
    report: str | os.PathLike[str] | None,
    metrics_file: str | os.PathLike[str] | None,
    options: RunKeywords,
) -> RunConfig:
    """The one place a run's keywords become its config."""
    return RunConfig(
        report=None if report is None else Path(report),
        metrics_file=None if metrics_file is None else Path(metrics_file),
        **options,
    )


async def _run(
    manifests: Sequence[ManifestPath], config: RunConfig, progress: Display | bool
) -> RunResult:
    from batcher.execution import run_manifests
    from batcher.observe.logs import ensure_configured

    ensure_configured()
    return await run_manifests([os.fspath(path) for path in manifests], config, progress)


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
    output: str | os.PathLike[str] | None = None,
    progress: Callable[[Paging], None] | None = None,
    **options: Unpack[SelectKeywords],
) -> SelectResult:
    """Write a manifest of every job the List API matches: one entry per job per command,
    each job's commands in the order given; CSV on standard output by default, or to
    ``output`` (format from its extension, or ``format``), never over an existing file
    unless ``force``. The manifest carries the project id, so ``batcher run`` takes it as
    it is. The options are the ``batcher select`` flags (:class:`SelectKeywords`): every
    List filter (``is_flexus`` and the other booleans take True or False); ``sort_key`` /
    ``sort_dir`` order the manifest (the listing itself goes by creation time, oldest first;
    another order sorts the jobs once all are listed, and ``asset_order``, which listed jobs
    do not carry, is refused).

    >>> batcher.select(commands=["CONFIRM_REPAIR", "SUBMITVERIFYING"],
    ...                states=["AUTO_VERIFY_FAILED"], batch_name="b-7",
    ...                output="nightly.csv")  # doctest: +SKIP
    SelectResult(jobs=42, entries=84, by_state={'AUTO_VERIFY_FAILED': 42}, ...)
    """
    _refuse_inside_a_loop("select")
    config = _select_config(commands, output, options)
    return _run_blocking(functools.partial(_select, config, progress))


async def select_async(
    *,
    commands: Sequence[str],
    output: str | os.PathLike[str] | None = None,
    progress: Callable[[Paging], None] | None = None,
    **options: Unpack[SelectKeywords],
) -> SelectResult:
    """:func:`select`, for callers already in an event loop (same arguments, same result).

    >>> result = await batcher.select_async(commands=["SUBMITVERIFYING"],
    ...                                     tag="vip", output="vip.csv")  # doctest: +SKIP
    """
    return await _select(_select_config(commands, output, options), progress)


def _select_config(
    commands: Sequence[str], output: str | os.PathLike[str] | None, options: SelectKeywords
) -> SelectConfig:
    """The one place a selection's keywords become its config (``output`` ``-`` or None:
    standard output)."""
    out = None if output is None or os.fspath(output) == "-" else Path(output)
    return SelectConfig(commands=tuple(commands), output=out, **options)


async def _select(config: SelectConfig, progress: Callable[[Paging], None] | None) -> SelectResult:
    from batcher.observe.logs import ensure_configured
    from batcher.select.selector import select_to_manifest

    ensure_configured()
    return await select_to_manifest(config, progress=progress)


class StatusKeywords(WhereKeywords, FilterKeywords, total=False):
    """The keywords of :func:`status` besides ``source``, ``output`` and ``progress``: the
    List filters (``states`` also picks the jobs shown), the wait, the manifest's
    ``commands``, and where to send (``read_rate``: reads per second, List and Show having
    their own quota; ``rate`` sets nothing, status sending no command)."""

    wait_until: Sequence[str]
    wait_timeout: float | None
    poll: float
    stuck_after: float | None
    commands: Sequence[str]
    force: bool


def status(
    source: str | os.PathLike[str] | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    **options: Unpack[StatusKeywords],
) -> StatusResult:
    """Where every job ``source`` names is now: a report, a manifest, or (``source`` None)
    the jobs the List filters match (the same keywords as :func:`select`). ``states``
    picks the jobs shown (and, for a query, filters the listing). ``wait_until`` reads
    again, backing off, until every job is in one of those states, cannot reach one, or
    ``wait_timeout`` seconds pass (``poll`` seconds between reads at first, growing while
    nothing moves). ``output`` writes a manifest of the jobs shown, one entry per job per
    command of ``commands``. Reads are paced at ``read_rate`` per second.

    >>> result = batcher.status("r.jsonl", wait_until=["JOB_SUCCESS"],
    ...                         wait_timeout=3600)  # doctest: +SKIP
    >>> result.by_state, result.exit_code  # doctest: +SKIP
    ({'TRAINING': 3, 'JOB_SUCCESS': 117}, 1)
    """
    _refuse_inside_a_loop("status")
    return _run_blocking(
        functools.partial(status_async, source, output=output, progress=progress, **options)
    )


async def status_async(
    source: str | os.PathLike[str] | None = None,
    *,
    output: str | os.PathLike[str] | None = None,
    progress: Callable[[Progress], None] | None = None,
    **options: Unpack[StatusKeywords],
) -> StatusResult:
    """:func:`status`, for callers already in an event loop (same arguments, same result).

    >>> result = await batcher.status_async(batch_name="b-7")  # doctest: +SKIP
    """
    from batcher.observe.logs import ensure_configured
    from batcher.status.check import check_status

    ensure_configured()
    ask, where = _status_config(source, output, options)
    return await check_status(ask, where, progress=progress)


def _status_config(
    source: str | os.PathLike[str] | None,
    output: str | os.PathLike[str] | None,
    given: StatusKeywords,
) -> tuple[Ask, Options]:
    """The one place a status's keywords become what is asked and where to read."""
    from batcher.select.query import FILTERS, JobQuery
    from batcher.status.check import Ask

    kw: dict[str, Any] = dict(given)
    query = JobQuery({f.name: kw.pop(f.name, None) for f in FILTERS if f.name != "states"}
                     | {"states": tuple(kw.pop("states", ()))})  # fmt: skip
    ask = Ask(
        source=None if source is None else os.fspath(source),
        query=query,
        wait_for=tuple(kw.pop("wait_until", ())),
        wait_timeout=kw.pop("wait_timeout", None),
        poll=kw.pop("poll", 5.0),
        stuck_after=kw.pop("stuck_after", None),
        commands=tuple(kw.pop("commands", ())),
        output=None if output is None else Path(output),
        force=kw.pop("force", False),
    )
    return ask, Options(**kw)


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
