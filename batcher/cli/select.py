"""``batcher select``: flags → :func:`batcher.select` → a manifest and a count per state."""

from __future__ import annotations

import argparse
import sys

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
    what.add_argument(
        "--state",
        action="append",
        dest="states",
        metavar="S1,S2",
        default=[],
        help="job states, several separated by commas (repeatable)",
    )
    what.add_argument("--batch-name", metavar="B", help="the jobs' batch name")
    what.add_argument("--tag", metavar="T", help="a job tag")
    what.add_argument("--name", metavar="N", help="the model name")
    for flag, meaning in (
        ("--created-since", "created at or after"),
        ("--created-until", "created at or before"),
        ("--updated-since", "updated at or after"),
        ("--updated-until", "updated at or before"),
    ):
        what.add_argument(
            flag, metavar="TIME", help=f"{meaning} TIME (RFC 3339, e.g. 2026-11-24T00:00:00Z)"
        )
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
        "--read-rate",
        type=float,
        default=None,
        metavar="PER_SECOND",
        help="List requests per second (default: the region's documented quota for List, "
        "10 where unknown; 0 = unlimited)",
    )
    pace.add_argument(
        "--rate",
        type=float,
        default=None,
        metavar="PER_SECOND",
        help="the List pace when --read-rate is not given (select sends no commands)",
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


def main(args: argparse.Namespace) -> int:
    import contextlib
    import shlex

    from batcher import api
    from batcher.observe import logs

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
            states=states,
            batch_name=args.batch_name,
            tag=args.tag,
            name=args.name,
            created_since=args.created_since,
            created_until=args.created_until,
            updated_since=args.updated_since,
            updated_until=args.updated_until,
            output=args.output,
            format=args.format,
            force=args.force,
            project_id=args.project_id,
            region=args.region,
            endpoint=args.endpoint,
            simulate=args.simulate,
            rate=args.rate,
            read_rate=args.read_rate,
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
        if result.output is not None and result.entries:
            report = result.output.with_name(result.output.stem + ".report.jsonl")
            print(
                f"next: batcher run {shlex.quote(str(result.output))} "
                f"--report {shlex.quote(str(report))} --dry-run   (then without --dry-run)",
                file=sys.stderr,
            )
    return 0
