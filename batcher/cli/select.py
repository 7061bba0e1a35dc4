"""``batcher select``: flags → :func:`batcher.select` → a manifest and a count per state."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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
from batcher.select.query import FILTERS, SORT_DIRS, SORT_KEYS, split_states


def _bool_or_text(text: str) -> bool | str:
    """``true``/``false`` as a bool; anything else is left for the checks to name."""
    lowered = text.strip().lower()
    return lowered == "true" if lowered in ("true", "false") else text


#: How a flag takes each kind of filter, and what its help adds.
_KINDS: dict[str, tuple[dict[str, Any], str]] = {
    "states": ({"multiple": True, "metavar": "S1,S2"}, " (repeatable)"),
    "time": ({"metavar": "TIME"}, " TIME (RFC 3339, e.g. 2026-11-24T00:00:00Z)"),
    "bool": ({"type": _bool_or_text, "metavar": "true|false"}, ""),
}


def filters() -> list[click.Option]:
    """A flag for each List filter and sort option, from the one table of them."""
    made = []
    for f in FILTERS:
        kwargs, more = _KINDS.get(f.kind, ({"metavar": f.name.split("_")[-1].upper()}, ""))
        made.append(option(f.flag, f.name, help=f.help + more, **kwargs))
    order = "the listing's own; another is had by sorting once every page was read"
    return [
        *made,
        option("--sort-key", metavar="|".join(SORT_KEYS), help=f"default create_time ({order})"),
        option("--sort-dir", metavar="|".join(SORT_DIRS), help="default asc"),
    ]


OPTIONS: list[Section] = [
    (
        "what to select",
        [
            option("--command", "commands", multiple=True, required=True, metavar="CMD",
                   help="a command to write for each job (repeat, in the order to run them)"),
            *filters(),
        ],
    ),
    (
        "output",
        [
            option("--output", metavar="PATH",
                   help="write the manifest here (default: standard output)"),
            option("--format", choices=("csv", "yaml"),
                   help="default: from --output's extension, else csv"),
            flag("--force", "replace an existing --output"),
        ],
    ),
    (
        "where",
        [
            *where(simulate="list an in-process simulator's jobs; no credentials"),
            option("--app-user-id", metavar="ID", help="X-App-UserId"),
        ],
    ),
    (
        "pace",
        [
            option("--read-rate", type=float, metavar="PER_SECOND",
                   help="List requests per second (default: the region's documented quota for "
                   "List, 10 where unknown; 0 = unlimited)"),
            option("--rate", type=float, metavar="PER_SECOND",
                   help="the List pace when --read-rate is not given (select sends no commands)"),
            option("--max-attempts", type=int, default=5, metavar="N",
                   help="attempts per page for retryable failures (default 5)"),
            option("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="per request (default 30)"),
        ],
    ),
    ("logs", logging()),
]  # fmt: skip


def command() -> Command:
    return Command(
        "select",
        sections=OPTIONS,
        run=lambda **flags: main(SimpleNamespace(**flags)),
        help="Page through every job that matches the filters (List API) and write a "
        "manifest with one entry per job per --command, each job's commands in the order "
        "given: CSV on standard output by default, or to --output. Nothing is executed; "
        "`batcher select ... | batcher run - --report r.jsonl` runs it.",
    )


def main(args: SimpleNamespace) -> int:
    import contextlib

    from batcher import api

    log_format = configure_logs(args)
    if args.output is None and sys.stdout is None:
        from batcher.errors import UsageError

        raise UsageError("standard output is closed: give --output PATH for the manifest")
    states = list(split_states(args.states))  # empty ones too: refused, not dropped
    show = not (args.no_progress or args.quiet) and log_format == "console" and sys.stderr.isatty()
    live = None
    if show:
        from batcher.cli._display import LiveView

        live = LiveView()
    with live if live is not None else contextlib.nullcontext():
        result = api.select(
            states=states,
            progress=live.pages if live is not None else None,
            **api_keywords(args, ("states",)),
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


def next_step(args: SimpleNamespace, output: Path | None) -> str | None:
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
    select = ["batcher", "select", *(word for c in args.commands for word in ("--command", c))]
    select += [word for text in args.states for word in ("--state", text)]
    select += _given(args, *(f.name for f in FILTERS if f.kind != "states"), "sort_key", "sort_dir")
    run = ["batcher", "run", "-", "--report", "selected.report.jsonl", *where, "--dry-run"]
    return f"next: {shlex.join(select + where)} | {shlex.join(run)}   (then without --dry-run)"


def _given(args: SimpleNamespace, *names: str) -> list[str]:
    """``--flag value`` for each of ``names`` that was given."""
    given = [(name, getattr(args, name)) for name in names]
    pairs = [("--" + name.replace("_", "-"), _flag_text(v)) for name, v in given if v is not None]
    return [word for pair in pairs for word in pair]


def _flag_text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _piped(stream: object) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(stream.fileno()).st_mode)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
