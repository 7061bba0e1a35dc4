"""Preflight: a run's options and environment checked together, every problem at once.

:func:`resolve` turns the options of :func:`batcher.run` (the CLI's flags) and the
environment into :class:`RunSettings`, or raises one :class:`~batcher.errors.UsageError`
that lists everything missing or invalid, so a first run does not take three tries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from yarl import URL

from .engine.runner import RunOptions
from .entry import PATH_ID_RE, check_app_user_id
from .errors import SettingsError, UsageError
from .metastudio.credentials import Credentials, credentials_from_env, read_credentials_file
from .metastudio.endpoint import endpoint_for

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
    rate: float = 10.0
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
    rate: float = 10.0
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
        (o.rate >= 0, "--rate must be 0 (unlimited) or more"),
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
        ("--rate", o.rate),
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
    if not options.simulate:
        region = options.region or env.get("HUAWEICLOUD_SDK_REGION") or None
        if need_endpoint or region or options.endpoint:
            try:
                endpoint = endpoint_for(region=region, endpoint=options.endpoint, environ=env)
            except UsageError as error:
                problems.append(str(error))
    if problems:
        raise SettingsError(problems)
    return RunSettings(
        credentials=credentials,
        endpoint=endpoint,
        project_id=project_id,
        app_user_id=options.app_user_id,
        rate=options.rate,
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
