"""``batcher select``: flags → :func:`batcher.select` → a manifest and a count per state."""

from __future__ import annotations

import argparse
import os
import shlex
import stat
import sys
from pathlib import Path

from batcher.cli._parsers import Subparsers, add_logging, add_where


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "select",
        help="write a manifest of the jobs the List API matches",
        description="Page through every job that matches the filters (List API) and write a "
        "manifest with one entry per job per --command, each job's commands in the order "
        "given: CSV on standard output by default, or to --output. Nothing is executed; "
        "`batcher select ... | batcher run - --report r.jsonl` runs it.",
    )
    what = parser.add_argument_group("what to select")
    what.add_argument(
        "--command",
        action="append",
        dest="commands",
        metavar="CMD",
        default=[],
        required=True,
        help="a command to write for each job (repeat, in the order to run them)",
    )
    add_filters(what)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output", metavar="PATH", help="write the manifest here (default: standard output)"
    )
    out.add_argument(
        "--format", choices=("csv", "yaml"), help="default: from --output's extension, else csv"
    )
    out.add_argument("--force", action="store_true", help="replace an existing --output")
    target = add_where(parser, simulate="list an in-process simulator's jobs; no credentials")
    target.add_argument("--app-user-id", metavar="ID", help="X-App-UserId")
    pace = parser.add_argument_group("pace")
    pace.add_argument(
        "--rate",
        type=float,
        default=10.0,
        metavar="PER_SECOND",
        help="requests per second (default 10; 0 = unlimited)",
    )
    pace.add_argument(
        "--max-attempts",
        type=int,
        default=5,
        metavar="N",
        help="attempts per page for retryable failures (default 5)",
    )
    pace.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="per request (default 30)"
    )
    add_logging(parser)
    parser.set_defaults(handler=main)


_RFC3339_EXAMPLE = "RFC 3339, e.g. 2026-11-24T00:00:00Z"


def add_filters(group: argparse._ArgumentGroup) -> None:
    """A flag for each List filter and sort option, from the one table of them."""
    from batcher.select.query import FILTERS, SORT_DIRS, SORT_KEYS

    for f in FILTERS:
        if f.kind == "states":
            group.add_argument(
                f.flag,
                action="append",
                dest=f.name,
                metavar="S1,S2",
                default=[],
                help=f"{f.help} (repeatable)",
            )
        elif f.kind == "time":
            group.add_argument(f.flag, metavar="TIME", help=f"{f.help} TIME ({_RFC3339_EXAMPLE})")
        elif f.kind == "bool":  # anything else is left for the checks to name, with the rest
            group.add_argument(f.flag, type=_bool_or_text, metavar="true|false", help=f.help)
        else:
            group.add_argument(f.flag, metavar=f.name.split("_")[-1].upper(), help=f.help)
    order = "the listing's own; another is had by sorting once every page was read"
    group.add_argument(
        "--sort-key", metavar="|".join(SORT_KEYS), help=f"default create_time ({order})"
    )
    group.add_argument("--sort-dir", metavar="|".join(SORT_DIRS), help="default asc")


def main(args: argparse.Namespace) -> int:
    import contextlib

    from batcher import api
    from batcher.observe import logs
    from batcher.select.query import FILTERS

    log_format = logs.configure(fmt=args.log_format, level=args.log_level, quiet=args.quiet)
    args.resolved_log_format = log_format
    if args.output is None and sys.stdout is None:
        from batcher.errors import UsageError

        raise UsageError("standard output is closed: give --output PATH for the manifest")
    states = [state.strip() for text in args.states for state in text.split(",") if state.strip()]
    show = not (args.no_progress or args.quiet) and log_format == "console" and sys.stderr.isatty()
    live = None
    if show:
        from batcher.cli._display import LiveView

        live = LiveView()
    with live if live is not None else contextlib.nullcontext():
        result = api.select(
            commands=args.commands,
            **{f.name: getattr(args, f.name) for f in FILTERS} | {"states": states},
            sort_key=args.sort_key,
            sort_dir=args.sort_dir,
            output=args.output,
            format=args.format,
            force=args.force,
            project_id=args.project_id,
            region=args.region,
            endpoint=args.endpoint,
            simulate=args.simulate,
            rate=args.rate,
            max_attempts=args.max_attempts,
            timeout=args.timeout,
            app_user_id=args.app_user_id,
            progress=live.pages if live is not None else None,
        )
    per_state = ", ".join(f"{state} {count:,}" for state, count in sorted(result.by_state.items()))
    where = str(result.output) if result.output is not None else "standard output"
    said = (
        f"{result.jobs:,} jobs matched ({per_state or 'none'}); {result.entries:,} entries "
        f"written to {where} as {result.format}"
    )
    if log_format == "json":  # stderr carries JSON lines only: the same words, as an event
        import structlog

        structlog.get_logger("batcher").info(
            "select_finished", message=said, jobs=result.jobs, entries=result.entries,
            by_state=dict(sorted(result.by_state.items())), not_matching=result.not_matching,
            output=None if result.output is None else str(result.output), format=result.format,
        )  # fmt: skip
    elif not args.quiet:
        print(said, file=sys.stderr)
        hint = next_step(args, result.output) if result.entries else None
        if hint is not None:
            print(hint, file=sys.stderr)
    return 0


def next_step(args: argparse.Namespace, output: Path | None) -> str | None:
    """The ``batcher run`` to try next, aimed where select listed (its where-to-send flags
    repeated, shell-quoted). A manifest on standard output is piped in again (``run -``
    alone would wait on the terminal); already piped, there is nothing to add."""
    where = [*_given(args, "endpoint", "region", "project_id"), *(["--simulate"] * args.simulate)]
    if output is not None:
        report = output.with_name(output.stem + ".report.jsonl")
        run = ["batcher", "run", str(output), "--report", str(report), *where, "--dry-run"]
        return f"next: {shlex.join(run)}   (then without --dry-run)"
    if _piped(sys.stdout):
        return None
    from batcher.select.query import FILTERS

    select = ["batcher", "select", *(word for c in args.commands for word in ("--command", c))]
    select += [word for text in args.states for word in ("--state", text)]
    select += _given(args, *(f.name for f in FILTERS if f.kind != "states"), "sort_key", "sort_dir")
    run = ["batcher", "run", "-", "--report", "selected.report.jsonl", *where, "--dry-run"]
    return f"next: {shlex.join(select + where)} | {shlex.join(run)}   (then without --dry-run)"


def _given(args: argparse.Namespace, *names: str) -> list[str]:
    """``--flag value`` for each of ``names`` that was given."""
    values = [(name, getattr(args, name)) for name in names]
    return [word for name, value in values if value is not None
            for word in ("--" + name.replace("_", "-"), _flag_text(value))]  # fmt: skip


def _flag_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _bool_or_text(text: str) -> bool | str:
    lowered = text.strip().lower()
    return lowered == "true" if lowered in ("true", "false") else text


def _piped(stream: object) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
