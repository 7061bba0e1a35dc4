"""``batcher status``: flags → :func:`batcher.status` → a table, JSON or CSV of job states."""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import click

from batcher.cli._options import (
    Command,
    Section,
    api_keywords,
    configure_logs,
    flag,
    logging,
    option,
    where,
)
from batcher.cli._stdout import detach
from batcher.cli.select import filters
from batcher.errors import BatcherError
from batcher.select.query import split_states

if TYPE_CHECKING:
    from batcher.status.look import Progress

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class _Duration(click.ParamType[float]):
    """Seconds from ``90``, ``90s``, ``15m``, ``2h``, ``1d`` or ``1h30m``.

    >>> _Duration().convert("1h30m", None, None), _Duration().convert("45", None, None)
    (5400.0, 45.0)
    """

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip().lower()
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration (e.g. 90s, 15m, 2h, 1d)", param, ctx)
        return sum(float(n) * _UNITS[u] for n, u in parts)


DURATION = _Duration()

OPTIONS: list[Section] = [
    (
        "which jobs (the List filters, as select takes them; without SOURCE, but --state "
        "also picks among a SOURCE's jobs)",
        [o for o in filters() if o.name not in ("sort_key", "sort_dir")],
    ),
    (
        "waiting",
        [
            option("--wait-until", metavar="STATE[,STATE...]",
                   help="read again until every job is in one of these states"),
            # The issue names --timeout for the wait (unlike run and select, where it is the
            # per-request timeout): that one is --request-timeout here.
            option("--timeout", type=DURATION, metavar="DURATION",
                   help="how long --wait-until waits in all, e.g. 30m (default: no limit); "
                   "not the per-request timeout, which is --request-timeout"),
            option("--poll-every", type=DURATION, default=5.0, metavar="DURATION",
                   help="between reads at first (default 5s); grows while nothing moves, to 2m"),
            option("--stuck-after", type=DURATION, metavar="DURATION",
                   help="list the jobs in one state longer than DURATION (e.g. 2h)"),
        ],
    ),
    (
        "output",
        [
            option("--format", choices=("table", "json", "csv"), default="table",
                   show_default=True),
            option("--output", metavar="PATH",
                   help="also write a manifest (.csv/.yaml) of the jobs shown, for batcher run"),
            option("--command", "commands", multiple=True, metavar="CMD",
                   help="the manifest's command for each job (repeat, in order)"),
            flag("--force", "replace an existing --output"),
            option("--metrics-file", metavar="PATH",
                   help="write the state counts as Prometheus gauges (textfile collector)"),
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
            option("--read-rate", type=float, metavar="PER_SECOND",
                   help="List and Show requests per second (default: the region's documented "
                   "read quota, 10 where unknown; 0 = unlimited)"),
            option("--max-attempts", type=int, default=5, metavar="N",
                   help="attempts per read for retryable failures (default 5)"),
            option("--request-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="each request's, in seconds (default 30); --timeout is the wait's"),
        ],
    ),
    ("logs", logging()),
]  # fmt: skip


def command() -> Command:
    return Command(
        "status",
        arguments=[click.Argument(["source"], required=False, metavar="[SOURCE]")],
        sections=OPTIONS,
        run=lambda **flags: main(SimpleNamespace(**flags)),
        help="Where every job SOURCE names is now (a report .jsonl, a manifest .csv/.yaml, "
        "or - for CSV on standard input), or without SOURCE every job the List filters match: "
        "states, stuck jobs, why reviews failed. --wait-until reads again until every job is "
        "in one of the states (exit 0), or until --timeout or a job that cannot reach (exit 1).",
    )


def _states(values: tuple[str, ...] | str | None) -> list[str]:
    texts = [values] if isinstance(values, str) else values or []
    return [state for state in split_states(texts) if state]


#: Flags passed to the Python API under another name or form, and flags of the command's own.
_RENAMED = ("source", "states", "wait_until", "timeout", "poll_every", "request_timeout")
_OWN = ("format", "metrics_file")


def main(args: SimpleNamespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.live import Live

    from batcher import api
    from batcher.status import show

    log_format = configure_logs(args)
    live = None
    if not (args.no_progress or args.quiet) and log_format == "console" and sys.stderr.isatty():
        console = Console(stderr=True)
        live = Live(console=console, refresh_per_second=4, transient=True, redirect_stderr=True)
    with live or contextlib.nullcontext():
        result = api.status(
            args.source,
            states=list(split_states(args.states)),  # empty ones too: refused, not dropped
            wait_until=_states(args.wait_until),
            wait_timeout=args.timeout,
            poll=args.poll_every,
            timeout=args.request_timeout,
            progress=None if live is None else lambda p: live.update(_progress_line(p)),
            **api_keywords(args, _RENAMED + _OWN),
        )
    if args.metrics_file:
        show.write_metrics(result, Path(args.metrics_file))
    if args.format == "table":
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        text = show.render_table(result, width=width)
    else:
        text = (show.render_json if args.format == "json" else show.render_csv)(result)
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


def _progress_line(progress: Progress) -> str:
    """Jobs read so far, per state, at the bottom of the terminal while status reads."""
    total = "?" if progress.total is None else f"{progress.total:,}"
    states = "  ".join(f"{s} {n:,}" for s, n in sorted(progress.by_state.items()))
    return f"read {progress.read:,}/{total} jobs  {states}"
