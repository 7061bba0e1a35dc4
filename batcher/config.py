"""A run's configuration: options, environment and credentials file, checked together.

One object per command holds what it was asked for (:class:`RunConfig` for a run,
:class:`Options` for a selection), built once from the flags or the Python API's keywords.
:func:`resolve` checks it against the environment and the credentials file and fills in
what they give, or raises one :class:`~batcher.errors.SettingsError` that lists everything
missing or invalid, so a first run does not take three tries. The
preflight then checks everything else a run needs before anything is sent, and the target
says where a run sends: the real endpoint and credentials, or a throwaway simulator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import secrets
import stat
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog
from yarl import URL

from batcher.entry import PATH_ID_RE, check_app_user_id
from batcher.errors import ManifestError, SettingsError, UsageError
from batcher.read import Manifests, ManifestSummary
from batcher.redact import MIN_SECRET, too_short
from batcher.send.credentials import (
    AkSkCredentials,
    Credentials,
    credentials_from_env,
    read_credentials_file,
)
from batcher.send.endpoint import endpoint_for
from batcher.send.quotas import paces, region_of
from batcher.send.stats import RunOptions

if TYPE_CHECKING:
    from batcher.redact import Redactor
    from batcher.send.client import MetaStudioClient

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

log = structlog.get_logger("batcher")

AnyOptions = TypeVar("AnyOptions", bound="Options")


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Where to send and at what pace: the options ``run`` and ``select`` share.

    Built once from the flags (or the Python API's keywords); :func:`resolve` checks it
    against the environment and the credentials file, and fills in what they give
    (``credentials``, ``url``, and ``project_id`` in effect), so one object goes down.
    """

    #: The project entries that name none go to: as asked; once resolved, the one in effect
    #: (the flag, else the environment, else the credentials file, else the simulator's).
    project_id: str | None = None
    region: str | None = None
    endpoint: str | None = None
    simulate: bool = False
    #: The command bucket's rate and the reads' (List, Show), 0 = unlimited; None: the
    #: region's documented quota (see :mod:`batcher.send.quotas`). :func:`resolve` fills in
    #: the rates in effect and where each came from.
    rate: float | None = None
    read_rate: float | None = None
    rate_source: str = ""
    read_rate_source: str = ""
    burst: int = 1
    max_attempts: int = 5
    timeout: float = 30.0
    app_user_id: str | None = None
    #: Filled in by :func:`resolve`: the credentials, and the endpoint's URL (None with
    #: ``simulate``, or for a dry run without a region).
    credentials: Credentials | None = None
    url: URL | None = None

    def secrets(self) -> tuple[str, ...]:
        return self.credentials.secrets() if self.credentials else ()

    @property
    def paces(self) -> tuple[float, float]:
        """The command and read rates in effect (0: unlimited); once :func:`resolve`d."""
        assert self.rate is not None and self.read_rate is not None, "not resolved"
        return self.rate, self.read_rate


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig(Options):
    """Everything ``batcher run`` (and :func:`batcher.run`) was asked for, in one object.

    >>> RunConfig(concurrency=4).runner().retry.max_attempts
    5
    """

    report: Path | None = None
    command: str | None = None
    resume: bool = False
    #: With ``resume``: continue a report written from other manifests, on purpose.
    allow_other_manifest: bool = False
    dry_run: bool = False
    concurrency: int = 16
    max_failures: int | None = None
    max_failure_rate: float | None = None
    grace_period: float = 10.0
    handle_signals: bool = True
    limit: int | None = None
    metrics_file: Path | None = None
    progress_interval: float | None = None

    def runner(self) -> RunOptions:
        """What the runner needs of it (the one place it is built)."""
        return RunOptions(
            concurrency=self.concurrency,
            max_attempts=self.max_attempts,
            max_failures=self.max_failures,
            max_failure_rate=self.max_failure_rate,
            grace_period=self.grace_period,
            handle_signals=self.handle_signals,
            limit=self.limit,
            settle=self.timeout,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SelectConfig(Options):
    """Everything ``batcher select`` (and :func:`batcher.select`) was asked for: the
    commands to write, the List filters, the output and where to send."""

    commands: Sequence[str] = ()
    states: Sequence[str] = ()
    batch_name: str | None = None
    tag: str | None = None
    name: str | None = None
    job_id: str | None = None
    model_resolution: str | None = None
    train_location: str | None = None
    is_flexus: bool | None = None
    is_live_copy: bool | None = None
    is_ondemand_resource: bool | None = None
    query_project_id: str | None = None
    created_since: str | None = None
    created_until: str | None = None
    updated_since: str | None = None
    updated_until: str | None = None
    sort_key: str | None = None
    sort_dir: str | None = None
    output: Path | None = None
    format: str | None = None
    force: bool = False


def _bounds(o: Options) -> list[str]:
    checks = [
        (o.rate is None or o.rate >= 0, "--rate must be 0 (unlimited) or more"),
        (o.read_rate is None or o.read_rate >= 0, "--read-rate must be 0 (unlimited) or more"),
        (1 <= o.burst <= MAX_BURST, f"--burst must be between 1 and {MAX_BURST:,}"),
        (
            1 <= o.max_attempts <= MAX_ATTEMPTS,
            f"--max-attempts must be between 1 and {MAX_ATTEMPTS}",
        ),
        (o.timeout > 0, "--timeout must be more than 0 seconds"),
    ]
    finite: list[tuple[str, float | None]] = [
        ("--rate", o.rate),
        ("--read-rate", o.read_rate),
        ("--timeout", o.timeout),
    ]
    if isinstance(o, RunConfig):
        checks += _run_bounds(o)
        finite += [("--grace-period", o.grace_period), ("--max-failure-rate", o.max_failure_rate)]
    problems = [message for ok, message in checks if not ok]
    problems += [f"{flag} must be a finite number" for flag, value in finite if not _finite(value)]
    return problems


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


def _run_bounds(o: RunConfig) -> list[tuple[bool, str]]:
    return [
        (
            1 <= o.concurrency <= MAX_CONCURRENCY,
            f"--concurrency must be between 1 and {MAX_CONCURRENCY:,}",
        ),
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


def resolve(
    options: AnyOptions,
    *,
    environ: Mapping[str, str] | None = None,
    need_endpoint: bool = True,
    need_credentials: bool = True,
    need_project_id: bool = False,
) -> AnyOptions:
    """Check ``options`` against each other and the environment; raise every problem at once.

    Credentials (and the project id) come from the environment, then the official SDK's
    credentials file. ``need_endpoint=False`` lets a missing region pass (a dry run
    without a place to send still plans); ``need_credentials=False`` a missing key;
    ``need_project_id=True`` makes a missing project id a problem (when no manifest can
    supply one).

    >>> resolve(Options(simulate=True)).project_id
    'simulated-project'
    >>> resolve(RunConfig(simulate=True, concurrency=0, rate=-1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    batcher.errors.SettingsError: --rate must be 0 (unlimited) or more; --concurrency must be ...
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
        if credentials is not None:
            problems += _unmaskable(credentials)
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
    return dataclasses.replace(
        options,
        credentials=credentials,
        url=endpoint,
        project_id=project_id,
        rate=command.rate,
        read_rate=read.rate,
        rate_source=command.source,
        read_rate_source=read.source,
    )


def _unmaskable(credentials: Credentials) -> list[str]:
    """Secrets too short for the redactor's rule to keep out of every output."""
    if isinstance(credentials, AkSkCredentials):
        named = [("SK", credentials.sk), ("security token", credentials.security_token)]
    else:
        named = [("token", credentials.token)]
    return [
        f"the {name} has {len(secret)} characters, too few to be masked safely in reports "
        f"and logs (batcher masks any {MIN_SECRET} consecutive characters of a secret, so "
        f"it takes secrets of at least {MIN_SECRET}; a real SK has 40)"
        for name, secret in named
        if secret and too_short(secret)
    ]


# Preflight: everything a run needs, checked before anything is sent, every problem at once.
#
# A cron line that is missing its region, project id and credentials learns all three in
# one run (exit 2), not in three. ``--dry-run`` does the same checks as the real run, so it
# exits 2 exactly when the real run would refuse, and its plan says what the real run would
# do: entries already done (``--resume``), entries in doubt, and what ``--limit`` leaves.
def check_run(
    config: RunConfig, paths: list[str], manifests: Manifests
) -> tuple[RunConfig, ManifestSummary]:
    """Check the settings, the report path and every manifest entry; return the config
    resolved and the manifests' summary, or raise :class:`~batcher.errors.SettingsError`
    listing every settings problem, or :class:`~batcher.errors.ManifestError` (with the
    settings problems too) when an entry is invalid."""
    problems: list[str] = []
    resolved: RunConfig | None = None
    try:
        resolved = resolve(config)
    except SettingsError as error:
        problems += error.problems
    report = config.report
    if report is None:
        if not config.dry_run:
            problems.append(
                "a report path is required: --report PATH (report= in Python), or a dry run"
            )
    else:
        problems += report_problems(report, resume=config.resume, manifests=paths)
    if config.metrics_file is not None:
        problems += metrics_problems(config.metrics_file, report=report, manifests=paths)
    try:
        summary = manifests.check()
    except ManifestError as error:
        error.settings_problems = problems
        raise
    lacking = summary.without_project_id is not None and (
        resolved is None or resolved.project_id is None
    )
    if lacking and not any(problem.startswith("no project id") for problem in problems):
        problems.append(
            f"no project id for {summary.without_project_id} (and every entry without "
            "one): pass --project-id, set HUAWEICLOUD_SDK_PROJECT_ID, put project_id in "
            "the credentials file, or give the manifest a project_id"
        )
    if problems:
        raise SettingsError(problems)
    assert resolved is not None
    return resolved, summary


def project_for_manifests(options: Options) -> str | None:
    """The run's project id as far as it can be known before the settings are checked (to
    fill entries whose manifest names none); None when unknown or malformed."""
    project = options.project_id or os.environ.get("HUAWEICLOUD_SDK_PROJECT_ID")
    if not project and not options.simulate:
        from_file = read_credentials_file(quiet=True)
        project = from_file.project_id if from_file else None
    if options.simulate and not project:
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
    """The run record beside the report must be a usable file."""
    from batcher.journal import runs_path

    problems = []
    for sidecar, what in ((runs_path(report), "run record"),):
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

    if not metrics.parent.is_dir():
        return [f"--metrics-file {metrics}: no directory {metrics.parent}"]
    theirs = [Path(m) for m in manifests if m != "-"]
    if report is not None:
        theirs += [report, runs_path(report)]
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


#: Jobs the simulated world of ``--simulate`` starts with, so ``select`` has something to
#: select (commands create the jobs they name that are not among them).
SIMULATED_POPULATION = 500


@contextlib.asynccontextmanager
async def target(
    options: Options, *, population: int = SIMULATED_POPULATION
) -> AsyncIterator[tuple[URL, Credentials]]:
    """The endpoint and credentials to use (``options`` resolved): the real ones, or an
    in-process simulator of the one simulated world every ``--simulate`` process shares (its
    file under ``$XDG_STATE_HOME/batcher/``, seeded with ``population`` jobs when it is first
    made; delete the file to reset the world)."""
    if not options.simulate:
        assert options.url is not None and options.credentials is not None
        yield options.url, options.credentials
        return
    from batcher.simulator import SimulatorConfig, default_world_path, run_simulator

    # Throwaway keys, so the demo exercises real signing end to end.
    credentials = AkSkCredentials(
        ak="SIM" + secrets.token_hex(8).upper(), sk=secrets.token_urlsafe(24)
    )
    config = SimulatorConfig(
        credentials={credentials.ak: credentials.sk},
        log_requests=False,
        population=population,
        seed=1,
        world_file=default_world_path(),
    )
    async with contextlib.AsyncExitStack() as stack:
        try:
            simulator = await stack.enter_async_context(run_simulator(config))
        except (OSError, ValueError) as error:  # the world file cannot be used
            raise UsageError(f"--simulate: {error}") from None
        log.info("simulator_started", url=str(simulator.url), world=str(config.world_file))
        yield URL(str(simulator.url)), credentials


@contextlib.asynccontextmanager
async def client_for(
    options: Options, *, concurrency: int, redactor: Redactor
) -> AsyncIterator[MetaStudioClient]:
    """A client of the API where ``options`` (resolved) point: the :func:`target` opened,
    and a session of ``concurrency`` connections (the one place a run, a selection and a
    status build theirs)."""
    from batcher.send.client import MetaStudioClient, open_session

    async with (
        target(options) as (url, credentials),
        open_session(concurrency=concurrency, timeout=options.timeout) as session,
    ):
        yield MetaStudioClient(
            session,
            endpoint=url,
            project_id=options.project_id,
            credentials=credentials,
            app_user_id=options.app_user_id,
            timeout=options.timeout,
            redactor=redactor,
        )
