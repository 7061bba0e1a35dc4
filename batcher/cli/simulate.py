"""``batcher simulate``: serve a local MetaStudio for trying runs and faults safely.

The first line on standard output is ``listening on http://HOST:PORT`` (useful with
``--port 0``); request logs go to standard error.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._parsers import Subparsers

if TYPE_CHECKING:
    from ..simulator import SimulatorConfig

_JOBS_HELP = (
    "JSON or YAML mapping of job_id to the state it starts in, e.g. "
    "'job-1: WAIT_CONFIRM'. States: WAIT_FILE_UPLOAD (default), FILE_UPLOADED (video "
    "confirmed, ready for SUBMITVERIFYING), AUTO_VERIFYING, MANUAL_VERIFYING, JOB_PENDING, "
    "AUTO_VERIFY_FAILED, MANUAL_VERIFY_FAILED, TRAINING, WAIT_CONFIRM, SUCCEED"
)

_EPILOG = """\
Credentials come from the environment: HUAWEICLOUD_SDK_AK/HUAWEICLOUD_SDK_SK (or
CLOUD_SDK_AK/CLOUD_SDK_SK) for AK/SK signatures, HUAWEICLOUD_SDK_SECURITY_TOKEN (then
required as X-Security-Token), METASTUDIO_AUTH_TOKEN (accepted as X-Auth-Token). With none
set, any well-formed signature or token is accepted. Rates are between 0 and 1; --seed makes
faults reproducible. Also serves GET /__simulator/health, /__simulator/stats and
/__simulator/jobs. Stop with Ctrl-C or SIGTERM.
"""


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="serve a local MetaStudio simulator (auth, job states, faults)",
        description="Serve the MetaStudio training-job command API locally, with the "
        "gateway's auth checks, per-job state and seeded faults.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=8080, help="port; 0 picks a free one (default 8080)")
    add("--seed", type=int, default=None, help="seed for faults and jitter")
    add("--latency-ms", type=float, default=0.0, metavar="MS", help="delay per request")
    add(
        "--latency-jitter-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="extra uniform random delay in [0, MS]",
    )
    add(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="share of requests answered 500 MSS.00000004",
    )
    add(
        "--throttle-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="share of requests answered 429 APIGW.0308 at random",
    )
    add(
        "--quota",
        type=int,
        default=None,
        metavar="PER_SECOND",
        help="requests admitted per second; beyond it 429 with Retry-After",
    )
    add(
        "--quota-window",
        choices=("calendar", "sliding"),
        default="calendar",
        help="count the quota per calendar second (default) or over any sliding second",
    )
    add(
        "--quota-change",
        dest="quota_changes",
        action="append",
        default=[],
        metavar="PER_SECOND@SECONDS",
        help="from SECONDS after the first request, only PER_SECOND are left (another "
        "client shares the quota; the 429s still state --quota); repeatable",
    )
    add(
        "--drop-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="share of connections closed with no answer (nothing executed)",
    )
    add(
        "--drop-after-execute-rate",
        type=float,
        default=0.0,
        metavar="F",
        help="share executed and then closed with no answer (the answer is lost)",
    )
    add("--jobs", metavar="FILE", default=None, help=_JOBS_HELP)
    add(
        "--log-format",
        choices=("console", "json"),
        default=None,
        help="log format (default: console on a terminal, else json)",
    )
    add("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    parser.set_defaults(handler=main)


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
)


_FLAG_NAMES = {"quota_changes": "quota_change"}


def main(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from ..errors import UsageError
    from ..logs import configure
    from ..simulator import SimulatorConfig, load_jobs_file

    fields = {name: getattr(args, name) for name in _FLAG_FIELDS}
    if args.jobs:
        fields["jobs"] = load_jobs_file(args.jobs)
    try:
        config = SimulatorConfig.from_env(**fields)
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "quota_changes"
        flag = "--" + _FLAG_NAMES.get(name, name).replace("_", "-")
        message = first["msg"].removeprefix("Value error, ")
        raise UsageError(f"{flag}: {message}") from None
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

    from ..simulator import run_simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with run_simulator(config) as sim:
        print(f"listening on {sim.url}", flush=True)
        log = structlog.get_logger("batcher.simulator")
        auth = "open (no credentials configured)" if config.open_auth else "credentials"
        log.info("simulator listening", url=sim.url, auth=auth, seed=config.seed)
        await stop.wait()
        log.info("simulator stopping", requests=sim.stats.requests)
