"""``batcher simulate``: serve a local MetaStudio for trying runs and faults safely.

The first line on standard output is ``listening on http://HOST:PORT`` (useful with
``--port 0``); request logs go to standard error.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from batcher.cli._options import LEVELS, Command, option

if TYPE_CHECKING:
    from batcher.simulator import SimulatorConfig

_JOBS_HELP = (
    "generate N jobs (default 0), spread over states (mostly WAIT_FILE_UPLOAD, "
    "AUTO_VERIFY_FAILED, MANUAL_VERIFY_FAILED, WAIT_USER_CONFIRM), batches and tags, created "
    "over the past --jobs-days; --seed makes them reproducible. They exist in every project "
    "the simulator is asked about (at most 100000; 10000 take about half a second)"
)
_JOBS_FILE_HELP = (
    "JSON or YAML mapping of job_id to the state it starts in, or to its fields, e.g. "
    "'job-1: AUTO_VERIFY_FAILED' or 'job-2: {state: WAIT_FILE_UPLOAD, video_confirmed: true, "
    "batch_name: b1, tags: [vip]}' ('reopened: true': a failed job already updated). States "
    "are the API's (WAIT_FILE_UPLOAD, AUTO_VERIFYING, "
    "AUTO_VERIFY_FAILED, MANUAL_VERIFY_FAILED, WAIT_USER_CONFIRM, JOB_PENDING, ...). Jobs a "
    "command names that are not seeded start in WAIT_FILE_UPLOAD"
)

_EPILOG = """\
\b
Credentials come from the environment: HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK (or
CLOUD_SDK_AK/CLOUD_SDK_SK) for AK/SK signatures, HUAWEICLOUD_SDK_SECURITY_TOKEN (then
required as X-Security-Token), METASTUDIO_AUTH_TOKEN (accepted as X-Auth-Token). With none
set, any well-formed signature or token is accepted. Rates are between 0 and 1; --seed makes
faults and the --jobs population reproducible. Serves the command endpoint, List
(GET .../user/jobs: offset, limit at most 100, state=A,B, sort_key, sort_dir, time ranges,
batch_name, tag, ...; a bad value is 400 MSS.00000003), Show (GET .../user/jobs/JOB_ID,
with operation_logs; 404 for an unknown job) and Update (PUT .../user/jobs/JOB_ID, after a
failed review: new upload URLs). Jobs follow the documented flows only. Also
GET /__simulator/health, /__simulator/stats and /__simulator/jobs. Stop with Ctrl-C or SIGTERM.
"""


class _JobCount(click.ParamType[int]):
    """``--jobs N``; a file name there is the old ``--jobs FILE``, now ``--jobs-file``."""

    name = "N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return int(value)
        except ValueError:
            self.fail(
                f"expected a number of jobs, not {value!r} (a seed file goes to --jobs-file FILE)",
                param,
                ctx,
            )


OPTIONS = [
    option("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"),
    option("--port", type=int, default=8080, help="port; 0 picks a free one (default 8080)"),
    option("--seed", type=int, default=None, help="seed for faults, jitter and --jobs"),
    option("--latency-ms", type=float, default=0.0, metavar="MS", help="delay per request"),
    option("--latency-jitter-ms", type=float, default=0.0, metavar="MS",
           help="extra uniform random delay in [0, MS]"),
    option("--error-rate", type=float, default=0.0, metavar="F",
           help="share of requests answered 500 MSS.00000004"),
    option("--throttle-rate", type=float, default=0.0, metavar="F",
           help="share of requests answered 429 APIGW.0308 at random"),
    option("--quota", type=int, default=None, metavar="PER_SECOND",
           help="requests admitted per second; beyond it 429 with Retry-After"),
    option("--quota-window", choices=("calendar", "sliding"), default="calendar",
           help="count the quota per calendar second (default) or over any sliding second"),
    option("--quota-change", "quota_changes", multiple=True, metavar="PER_SECOND@SECONDS",
           help="from SECONDS after the first request, only PER_SECOND are left (another "
           "client shares the quota; the 429s still state --quota); repeatable"),
    option("--drop-rate", type=float, default=0.0, metavar="F",
           help="share of connections closed with no answer (nothing executed)"),
    option("--drop-after-execute-rate", type=float, default=0.0, metavar="F",
           help="share executed and then closed with no answer (the answer is lost)"),
    option("--late-answer-rate", type=float, default=0.0, metavar="F",
           help="share executed and answered only after --late-answer-ms (a shorter client "
           "timeout never sees the answer)"),
    option("--late-answer-ms", type=float, default=60_000.0, metavar="MS",
           help="how late a late answer comes (default 60000, beyond batcher's default 30 s "
           "--timeout)"),
    option("--jobs", type=_JobCount(), default=0, metavar="N", help=_JOBS_HELP),
    option("--jobs-days", type=int, default=30, metavar="DAYS",
           help="the --jobs population is created over this many past days (default 30)"),
    option("--jobs-file", metavar="FILE", default=None, help=_JOBS_FILE_HELP),
    option("--log-format", choices=("console", "json"), default=None,
           help="log format (default: console on a terminal, else json)"),
    option("--log-level", choices=LEVELS, default="info"),
]  # fmt: skip


def command() -> Command:
    return Command(
        "simulate",
        sections=[("options", OPTIONS)],
        run=lambda **flags: main(SimpleNamespace(**flags)),
        help="Serve the MetaStudio training-job API (command, List, Show) locally, with the "
        "gateway's auth checks, the API's job states and operation logs, a seeded job "
        "population and seeded faults.",
        epilog=_EPILOG,
    )


#: Flags whose value is the config field of the same name.
_FLAG_FIELDS = (
    "host",
    "port",
    "seed",
    "latency_ms",
    "latency_jitter_ms",
    "error_rate",
    "throttle_rate",
    "quota",
    "quota_window",
    "quota_changes",
    "drop_rate",
    "drop_after_execute_rate",
    "late_answer_rate",
    "late_answer_ms",
)
#: Flags whose config field has another name.
_RENAMED = {"jobs": "population", "jobs_days": "population_days"}


_FLAG_NAMES = {"quota_changes": "quota_change"}


def main(args: SimpleNamespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from batcher.errors import UsageError
    from batcher.observe.logs import configure
    from batcher.simulator import SimulatorConfig, load_jobs_file

    fields = {name: getattr(args, name) for name in _FLAG_FIELDS}
    fields |= {field: getattr(args, flag) for flag, field in _RENAMED.items()}
    if args.jobs_file:
        fields["jobs"] = load_jobs_file(args.jobs_file)
    try:
        config = SimulatorConfig.from_env(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "quota_changes"
        flags = {"jobs": "jobs_file"} | {v: k for k, v in _RENAMED.items()} | _FLAG_NAMES
        flag = flags.get(field, field)
        message = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"--{flag.replace('_', '-')}: {message}") from None
    configure(fmt=args.log_format, level=args.log_level, secrets=config.secrets())
    try:
        asyncio.run(_serve(config))
    except OSError as error:
        raise UsageError(
            f"cannot listen on {config.host}:{config.port}: {error.strerror or error}"
        ) from None
    return 0


async def _serve(config: SimulatorConfig) -> None:
    import asyncio
    import signal

    import structlog

    from batcher.simulator import run_simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with run_simulator(config) as sim:
        print(f"listening on {sim.url}", flush=True)
        log = structlog.get_logger("batcher.simulator")
        auth = "open (no credentials configured)" if config.open_auth else "credentials"
        log.info(
            "simulator listening",
            url=sim.url,
            auth=auth,
            seed=config.seed,
            seeded_jobs=sim.jobs.seed_count,
        )
        await stop.wait()
        log.info("simulator stopping", requests=sim.stats.requests)
