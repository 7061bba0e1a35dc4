"""``batcher status``: flags → :func:`batcher.status` → a table, JSON or CSV of job states."""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from batcher.cli._options import Command, Section, configure_logs, flag, logging, option, where
from batcher.cli._stdout import detach
from batcher.cli.select import _filters as select_filters
from batcher.errors import BatcherError
from batcher.select.query import FILTERS, split_states

if TYPE_CHECKING:
    from batcher.status.look import Progress

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``2h``, ``1d`` or ``1h30m``.

    >>> duration("1h30m"), duration("45")
    (5400.0, 45.0)
    """
    value = text.strip().lower()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 15m, 2h, 1d)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


class _Duration(click.ParamType[float]):
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return duration(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


DURATION = _Duration()

OPTIONS: list[Section] = [
    (
        "which jobs (the List filters, as select takes them; without SOURCE, but --state "
        "also picks among a SOURCE's jobs)",
        [o for o in select_filters() if o.name not in ("sort_key", "sort_dir")],
    ),
    (
        "waiting",
        [
            option(
                "--wait-until",
                metavar="STATE[,STATE...]",
                help="read again until every job is in one of these states",
            ),
            option(
                "--timeout",
                type=DURATION,
                metavar="DURATION",
                help="stop waiting after DURATION (e.g. 30m; default: no limit)",
            ),
            option(
                "--poll-every",
                type=DURATION,
                default=5.0,
                metavar="DURATION",
                help="between reads at first (default 5s); grows while nothing moves, to 2m",
            ),
            option(
                "--stuck-after",
                type=DURATION,
                metavar="DURATION",
                help="list the jobs in one state longer than DURATION (e.g. 2h)",
            ),
        ],
    ),
    (
        "output",
        [
            option(
                "--format", choices=("table", "json", "csv"), default="table", show_default=True
            ),
            option(
                "--output",
                metavar="PATH",
                help="also write a manifest (.csv/.yaml) of the jobs shown, for batcher run",
            ),
            option(
                "--command",
                "commands",
                multiple=True,
                metavar="CMD",
                help="the manifest's command for each job (repeat, in order)",
            ),
            flag("--force", "replace an existing --output"),
            option(
                "--metrics-file",
                metavar="PATH",
                help="write the state counts as Prometheus gauges (textfile collector)",
            ),
        ],
    ),
    (
        "where",
        [
            *where(simulate="read an in-process simulator's jobs; no credentials"),
            option("--app-user-id", metavar="ID", help="X-App-UserId"),
        ],
    ),
    (
        "pace",
        [
            option(
                "--read-rate",
                type=float,
                default=10.0,
                metavar="PER_SECOND",
                help="List and Show requests per second (default 10, the lower documented "
                "read quota; 0 = unlimited)",
            ),
            option(
                "--max-attempts",
                type=int,
                default=5,
                metavar="N",
                help="attempts per read for retryable failures (default 5)",
            ),
            option(
                "--request-timeout",
                type=float,
                default=30.0,
                metavar="SECONDS",
                help="per request (default 30)",
            ),
        ],
    ),
    ("logs", logging()),
]


def command() -> Command:
    return Command(
        "status",
        arguments=[click.Argument(["source"], required=False, metavar="[SOURCE]")],
        sections=OPTIONS,
        run=lambda **flags: main(SimpleNamespace(**flags)),
        help="Read the current state of every job SOURCE names (a report .jsonl, a manifest "
        ".csv/.yaml, or - for CSV on standard input) or, without SOURCE, every job the List "
        "filters match: a histogram of states, the jobs in one state longer than "
        "--stuck-after, and why failed reviews failed. With --wait-until, read again "
        "(backing off, within the read quota) until every job is in one of the states: exit "
        "0; at --timeout, or when a job rests in a state the wanted ones cannot follow, exit 1.",
    )


def _states(values: list[str] | str | None) -> list[str]:
    texts = [values] if isinstance(values, str) else values or []
    return [state for state in split_states(texts) if state]


def main(args: SimpleNamespace) -> int:
    import contextlib
    from pathlib import Path

    from batcher import api
    from batcher.status import show

    log_format = configure_logs(args)
    live = None
    if not (args.no_progress or args.quiet) and log_format == "console" and sys.stderr.isatty():
        live = _Live()
    with live or contextlib.nullcontext():
        result = api.status(
            args.source,
            **{f.name: getattr(args, f.name) for f in FILTERS if f.name != "states"},
            states=list(split_states(args.states)),  # empty ones too: refused, not dropped
            wait_until=_states(args.wait_until),
            wait_timeout=args.timeout,
            poll=args.poll_every,
            stuck_after=args.stuck_after,
            commands=list(args.commands),
            output=args.output,
            force=args.force,
            project_id=args.project_id,
            region=args.region,
            endpoint=args.endpoint,
            simulate=args.simulate,
            read_rate=args.read_rate,
            max_attempts=args.max_attempts,
            timeout=args.request_timeout,
            app_user_id=args.app_user_id,
            progress=live,
        )
    if args.metrics_file:
        show.write_metrics(result, Path(args.metrics_file))
    render = {"json": show.render_json, "csv": show.render_csv}.get(args.format)
    if render is None:
        import shutil

        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        text = show.render_table(result, width=width)
    else:
        text = render(result)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`status ... | head`): quietly, as report
        detach()
    except OSError as error:  # a full disk behind standard output
        detach()
        raise BatcherError(f"cannot write to standard output: {error.strerror or error}") from None
    if result.output is not None and not args.quiet:
        print(f"{result.entries:,} entries written to {result.output}", file=sys.stderr)
    return result.exit_code


class _Live:
    """Jobs read so far, per state, at the bottom of the terminal while status reads."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(
            console=Console(stderr=True), refresh_per_second=4, transient=True, redirect_stderr=True
        )

    def __enter__(self) -> _Live:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def __call__(self, progress: Progress) -> None:
        total = "?" if progress.total is None else f"{progress.total:,}"
        states = "  ".join(f"{s} {n:,}" for s, n in sorted(progress.by_state.items()))
        self._live.update(f"read {progress.read:,}/{total} jobs  {states}")
