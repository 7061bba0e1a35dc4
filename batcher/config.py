"""A run's configuration: options, environment and credentials file, checked together.

:func:`resolve` turns the options of :func:`batcher.run` (the CLI's flags) and the
environment into :class:`RunSettings`, or raises one :class:`~batcher.errors.UsageError`
that lists everything missing or invalid, so a first run does not take three tries. The
preflight then checks everything else a run needs before anything is sent, and the target
says where a run sends: the real endpoint and credentials, or a throwaway simulator.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import stat
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from yarl import URL

from batcher.entry import PATH_ID_RE, check_app_user_id
from batcher.errors import ManifestError, SettingsError, UsageError
from batcher.read import Manifests, ManifestSummary
from batcher.send.credentials import (
    AkSkCredentials,
    Credentials,
    credentials_from_env,
    read_credentials_file,
)
from batcher.send.endpoint import endpoint_for
from batcher.send.quotas import UNKNOWN_RATE, paces, region_of
from batcher.send.runner import RunOptions

#: The project id runs against the in-process simulator use when none is given.
SIMULATED_PROJECT_ID = "simulated-project"

#: Upper bounds on settings that size memory or time: far beyond any real use, well short
#: of what would exhaust a machine (a million workers took 3.45 GB before a single request).
#: The most a count of entries can be (--limit, --max-failures): far beyond any manifest,
#: and within what every JSON reader takes as an integer.
MAX_COUNT = 10**15
MAX_CONCURRENCY = 10_000
MAX_BURST = 10_000
MAX_ATTEMPTS = 100


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything a run needs besides the entries and the report."""

    credentials: Credentials | None
    endpoint: URL | None  # None with ``simulate`` (the simulator's URL), or a dry run without one
    project_id: str | None
    app_user_id: str | None = None
    #: The command bucket's rate and the reads' (List, Show), 0 = unlimited, and where each
    #: came from (a flag, the region's documented quota, or the default for the unknown).
    rate: float = UNKNOWN_RATE
    read_rate: float = UNKNOWN_RATE
    rate_source: str = "--rate"
    read_rate_source: str = "--read-rate"
    burst: int = 1
    timeout: float = 30.0
    simulate: bool = False
    options: RunOptions = field(default_factory=RunOptions)

    def secrets(self) -> tuple[str, ...]:
        return self.credentials.secrets() if self.credentials else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """The options a run was asked for, before they are checked (see :func:`resolve`)."""

    project_id: str | None = None
    region: str | None = None
    endpoint: str | None = None
    simulate: bool = False
    concurrency: int = 16
    #: None: the region's documented quota (see :mod:`batcher.send.quotas`).
    rate: float | None = None
    read_rate: float | None = None
    burst: int = 1
    max_attempts: int = 5
    timeout: float = 30.0
    app_user_id: str | None = None
    max_failures: int | None = None
    max_failure_rate: float | None = None
    grace_period: float = 10.0
    handle_signals: bool = True
    limit: int | None = None


def _bounds(options: Options) -> list[str]:
    o = options
    checks = [
        (
            1 <= o.concurrency <= MAX_CONCURRENCY,
            f"--concurrency must be between 1 and {MAX_CONCURRENCY:,}",
        ),
        (o.rate is None or o.rate >= 0, "--rate must be 0 (unlimited) or more"),
        (o.read_rate is None or o.read_rate >= 0, "--read-rate must be 0 (unlimited) or more"),
        (1 <= o.burst <= MAX_BURST, f"--burst must be between 1 and {MAX_BURST:,}"),
        (
            1 <= o.max_attempts <= MAX_ATTEMPTS,
            f"--max-attempts must be between 1 and {MAX_ATTEMPTS}",
        ),
        (o.timeout > 0, "--timeout must be more than 0 seconds"),
        (
            o.max_failures is None or 1 <= o.max_failures <= MAX_COUNT,
            f"--max-failures must be between 1 and {MAX_COUNT:,}",
        ),
        (
            o.max_failure_rate is None or 0 < o.max_failure_rate <= 1,
            "--max-failure-rate must be more than 0 and at most 1",
        ),
        (o.grace_period >= 0, "--grace-period must be 0 or more"),
        (
            o.limit is None or 1 <= o.limit <= MAX_COUNT,
            f"--limit must be between 1 and {MAX_COUNT:,}",
        ),
    ]
    problems = [message for ok, message in checks if not ok]
    for flag, value in (
        ("--rate", o.rate or 0.0),
        ("--read-rate", o.read_rate or 0.0),
        ("--timeout", o.timeout),
        ("--grace-period", o.grace_period),
        ("--max-failure-rate", o.max_failure_rate or 0.0),
    ):
        if not math.isfinite(value):
            problems.append(f"{flag} must be a finite number")
    return problems


def resolve(
    options: Options,
    *,
    environ: Mapping[str, str] | None = None,
    need_endpoint: bool = True,
    need_credentials: bool = True,
    need_project_id: bool = False,
) -> RunSettings:
    """Check ``options`` against each other and the environment; raise every problem at once.

    Credentials (and the project id) come from the environment, then the official SDK's
    credentials file. ``need_endpoint=False`` lets a missing region pass (a dry run
    without a place to send still plans); ``need_credentials=False`` a missing key;
    ``need_project_id=True`` makes a missing project id a problem (when no manifest can
    supply one).

    >>> resolve(Options(simulate=True)).project_id
    'simulated-project'
    >>> resolve(Options(simulate=True, concurrency=0, rate=-1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    batcher.errors.SettingsError: --concurrency must be between 1 and 10,000; --rate must be ...
    """
    env = os.environ if environ is None else environ
    problems = _bounds(options)
    credentials: Credentials | None = None
    file_project: str | None = None
    if not options.simulate:
        unreadable = False
        try:
            credentials = credentials_from_env(env)
        except UsageError as error:
            problems.append(str(error))
            unreadable = True
        try:
            from_file = read_credentials_file(env)
        except UsageError as error:
            problems.append(str(error))
            from_file, unreadable = None, True
        if from_file is not None:
            file_project = from_file.project_id
            if credentials is None:
                credentials = from_file.credentials()
        half = from_file.half() if from_file is not None else None
        if credentials is None and need_credentials and half is not None:
            problems.append(half)
        elif credentials is None and need_credentials and not unreadable:
            problems.append(
                "no credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or "
                "CLOUD_SDK_AK/CLOUD_SDK_SK), or METASTUDIO_AUTH_TOKEN, or put ak and sk in the "
                "[basic] section of ~/.huaweicloud/credentials; or use --simulate"
            )

    if options.project_id:
        project_id: str | None = options.project_id
        source = "--project-id"
    elif env.get("HUAWEICLOUD_SDK_PROJECT_ID"):
        project_id, source = env["HUAWEICLOUD_SDK_PROJECT_ID"], "HUAWEICLOUD_SDK_PROJECT_ID"
    else:
        project_id, source = file_project, "project_id in the credentials file"
    if project_id is None and options.simulate:
        project_id = SIMULATED_PROJECT_ID
    if need_project_id and project_id is None:
        problems.append(
            "no project id: pass --project-id, set HUAWEICLOUD_SDK_PROJECT_ID, or put "
            "project_id in the [basic] section of ~/.huaweicloud/credentials"
        )
    if project_id is not None and not PATH_ID_RE.match(project_id):
        problems.append(f"{source} must be 1-64 characters of A-Z a-z 0-9 _ -")
    if options.app_user_id is not None:
        try:
            check_app_user_id(options.app_user_id)
        except ValueError as error:
            problems.append(f"--app-user-id {error}")

    endpoint = None
    region = options.region or env.get("HUAWEICLOUD_SDK_REGION") or None
    if not options.simulate and (need_endpoint or region or options.endpoint):
        try:
            endpoint = endpoint_for(region=region, endpoint=options.endpoint, environ=env)
        except UsageError as error:
            problems.append(str(error))
    if problems:
        raise SettingsError(problems)
    command, read = paces(
        region=region_of(region, endpoint), rate=options.rate, read_rate=options.read_rate
    )
    return RunSettings(
        credentials=credentials,
        endpoint=endpoint,
        project_id=project_id,
        app_user_id=options.app_user_id,
        rate=command.rate,
        read_rate=read.rate,
        rate_source=command.source,
        read_rate_source=read.source,
        burst=options.burst,
        timeout=options.timeout,
        simulate=options.simulate,
        options=RunOptions(
            concurrency=options.concurrency,
            max_attempts=options.max_attempts,
            max_failures=options.max_failures,
            max_failure_rate=options.max_failure_rate,
            grace_period=options.grace_period,
            handle_signals=options.handle_signals,
            limit=options.limit,
            settle=options.timeout,
        ),
    )


# Preflight: everything a run needs, checked before anything is sent, every problem at once.
#
# A cron line that is missing its region, project id and credentials learns all three in
# one run (exit 2), not in three. ``--dry-run`` does the same checks as the real run, so it
# exits 2 exactly when the real run would refuse, and its plan says what the real run would
# do: entries already done (``--resume``), entries in doubt, and what ``--limit`` leaves.
@dataclass(frozen=True, slots=True)
class Checked:
    """Settings and manifests that passed preflight."""

    settings: RunSettings
    summary: ManifestSummary


def check_run(
    paths: list[str],
    options: Options,
    *,
    manifests: Manifests,
    report: Path | None,
    resume: bool,
    dry_run: bool,
    metrics_file: Path | None = None,
) -> Checked:
    """Check the settings, the report path and every manifest entry; raise
    :class:`~batcher.errors.SettingsError` listing every settings problem, or
    :class:`~batcher.errors.ManifestError` (with the settings problems too) when an entry
    is invalid."""
    problems: list[str] = []
    settings: RunSettings | None = None
    try:
        settings = resolve(options)
    except SettingsError as error:
        problems += error.problems
    if report is None:
        if not dry_run:
            problems.append(
                "a report path is required: --report PATH (report= in Python), or a dry run"
            )
    else:
        problems += report_problems(report, resume=resume, manifests=paths)
    if metrics_file is not None:
        problems += metrics_problems(metrics_file, report=report, manifests=paths)
    try:
        summary = manifests.check()
    except ManifestError as error:
        error.settings_problems = problems
        raise
    lacking = summary.without_project_id is not None and (
        settings is None or settings.project_id is None
    )
    if lacking and not any(problem.startswith("no project id") for problem in problems):
        problems.append(
            f"no project id for {summary.without_project_id} (and every entry without "
            "one): pass --project-id, set HUAWEICLOUD_SDK_PROJECT_ID, put project_id in "
            "the credentials file, or give the manifest a project_id"
        )
    if problems:
        raise SettingsError(problems)
    assert settings is not None
    return Checked(settings, summary)


def project_for_manifests(options: Options) -> str | None:
    """The run's project id as far as it can be known before the settings are checked (to
    fill entries whose manifest names none); None when unknown or malformed."""
    from batcher.entry import PATH_ID_RE

    project = options.project_id or os.environ.get("HUAWEICLOUD_SDK_PROJECT_ID")
    if not project and not options.simulate:
        from_file = read_credentials_file(quiet=True)
        project = from_file.project_id if from_file else None
    if options.simulate and not project:
        from batcher.config import SIMULATED_PROJECT_ID

        project = SIMULATED_PROJECT_ID
    return project if project and PATH_ID_RE.match(project) else None


def report_problems(report: Path, *, resume: bool, manifests: list[str]) -> list[str]:
    """Why ``report`` cannot be this run's report (empty when it can)."""
    problems = []
    try:
        status = report.stat()
    except FileNotFoundError:
        status = None
    except OSError as error:
        return [f"report {report}: {error.strerror}"]
    # The in-flight file and the run record go beside the report's real path, so its
    # directory must be writable even when the report itself already exists.
    directory = Path(os.path.realpath(report)).parent
    if not directory.is_dir():
        return [f"report {report}: no directory {directory}"]
    if not os.access(directory, os.W_OK | os.X_OK):
        problems.append(f"report {report}: directory {directory} is not writable")
    if status is not None:
        if not stat.S_ISREG(status.st_mode):
            problems.append(f"report {report} exists and is not a regular file")
        elif status.st_size and not resume:
            problems.append(
                f"report {report} already exists and is not empty; add --resume to continue "
                "it, or choose another --report path"
            )
        for path in manifests:
            if path != "-" and _same_file(report, Path(path), status):
                problems.append(
                    f"report {report} is the manifest {path} (the same file by another name): "
                    "writing the report would destroy it; choose another --report path"
                )
        if stat.S_ISREG(status.st_mode) and not os.access(report, os.W_OK):
            problems.append(f"report {report} is not writable")
    problems += _file_system_problems(report)
    problems += _sidecar_problems(report)
    return problems


def _file_system_problems(report: Path) -> list[str]:
    """A report on a read-only or full file system fails at its first line: say so now."""
    from batcher.journal.writer import MIN_FREE_BYTES

    directory = Path(os.path.realpath(report)).parent
    try:
        fs = os.statvfs(directory)
    except OSError:
        return []
    if fs.f_flag & os.ST_RDONLY:
        return [f"report {report}: {directory} is on a read-only file system"]
    if fs.f_bavail * fs.f_frsize < MIN_FREE_BYTES:
        return [f"report {report}: no space left on the file system of {directory}"]
    return []


def _sidecar_problems(report: Path) -> list[str]:
    """The run record and the in-flight slots beside the report must be usable files."""
    from batcher.journal import runs_path
    from batcher.journal.intents import inflight_path

    problems = []
    for sidecar, what in (
        (runs_path(report), "run record"),
        (inflight_path(report), "in-flight file"),
    ):
        try:
            status = sidecar.stat()
        except FileNotFoundError:
            continue
        except OSError as error:
            problems.append(f"the {what} {sidecar} of report {report}: {error.strerror}")
            continue
        if not stat.S_ISREG(status.st_mode):
            problems.append(
                f"the {what} {sidecar} of report {report} is not a regular file: move it away"
            )
    runs = runs_path(report)
    if runs.is_file():
        from batcher.journal import read_runs

        bad: list[tuple[int, str]] = []
        read_runs(report, on_bad_line=lambda lineno, why: bad.append((lineno, why)))
        if bad and bad[0][0] == 0:
            problems.append(f"the run record of report {report}: {bad[0][1]}")
        elif bad:
            problems.append(
                f"{runs}:{bad[0][0]} is not a batcher run record; the run record of report "
                f"{report} goes there: move that file away"
            )
    return problems


def _same_file(report: Path, manifest: Path, report_status: os.stat_result) -> bool:
    try:
        other = manifest.stat()
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (report_status.st_dev, report_status.st_ino)


#: The start of a Prometheus text file: a HELP or TYPE comment, or a sample line.
_PROMETHEUS_TEXT = re.compile(
    rb"# (HELP|TYPE) [a-zA-Z_:]"
    rb"|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}\n]*\})?[ \t]+[-+0-9.eEaINnf]+[ \t]*(\d+)?\n"
)


def metrics_problems(metrics: Path, *, report: Path | None, manifests: list[str]) -> list[str]:
    """Why ``metrics`` cannot be the run's metrics file: it would overwrite the report, a
    manifest, a sidecar, or a file that is not Prometheus text."""
    from batcher.journal import runs_path
    from batcher.journal.intents import inflight_path

    if not metrics.parent.is_dir():
        return [f"--metrics-file {metrics}: no directory {metrics.parent}"]
    theirs = [Path(m) for m in manifests if m != "-"]
    if report is not None:
        theirs += [report, runs_path(report), inflight_path(report)]
    for other in theirs:
        if _same_path_or_file(metrics, other):
            return [
                f"--metrics-file {metrics} is {other}: writing metrics there would destroy "
                "it; choose another path"
            ]
    try:
        status = metrics.stat()
    except FileNotFoundError:
        return []
    except OSError as error:
        return [f"--metrics-file {metrics}: {error.strerror}"]
    if not stat.S_ISREG(status.st_mode):
        return [f"--metrics-file {metrics} exists and is not a regular file"]
    with open(metrics, "rb") as stream:
        head = stream.read(4096)
    if head.strip() and not _PROMETHEUS_TEXT.match(head.lstrip()):
        return [
            f"--metrics-file {metrics} exists and is not a Prometheus text file; batcher "
            "replaces only its own metrics files"
        ]
    return []


def _same_path_or_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        first, second = a.stat(), b.stat()
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


# Where a run or a selection sends: the real endpoint and credentials, or a throwaway
# simulator on loopback (``--simulate``) with keys made up for it.
log = structlog.get_logger("batcher")


#: Jobs the throwaway simulator of ``select --simulate`` holds, so there is something to
#: select (a run's simulator creates jobs as commands name them).
SIMULATED_POPULATION = 500


@contextlib.asynccontextmanager
async def target(
    settings: RunSettings, *, population: int = 0
) -> AsyncIterator[tuple[URL, Credentials]]:
    """The endpoint and credentials to use: the real ones, or a throwaway simulator (with
    ``population`` seeded jobs)."""
    if not settings.simulate:
        assert settings.endpoint is not None and settings.credentials is not None
        yield settings.endpoint, settings.credentials
        return
    from batcher.simulator import SimulatorConfig, run_simulator

    # Throwaway keys, so the demo exercises real signing end to end.
    credentials = AkSkCredentials(
        ak="SIM" + secrets.token_hex(8).upper(), sk=secrets.token_urlsafe(24)
    )
    config = SimulatorConfig(
        credentials={credentials.ak: credentials.sk},
        log_requests=False,
        population=population,
        seed=1 if population else None,
    )
    async with run_simulator(config) as simulator:
        log.info("simulator_started", url=str(simulator.url))
        yield URL(str(simulator.url)), credentials
