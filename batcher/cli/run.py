"""``batcher run``: flags → :func:`batcher.run` → a summary and an exit code."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING

from batcher.cli._options import (
    Command,
    Section,
    api_keywords,
    configure_logs,
    flag,
    logging,
    manifests,
    option,
    where,
)

if TYPE_CHECKING:
    from batcher.execution import Plan, RunResult


OPTIONS: list[Section] = [
    (
        "report",
        [
            option("--report", metavar="PATH",
                   help="JSONL report to write (required unless --dry-run)"),
        ],
    ),
    ("where", where(simulate="run against an in-process simulator on loopback; no credentials")),
    (
        "pace",
        [
            option("--concurrency", type=int, default=16, metavar="N",
                   help="requests in flight at most (default 16)"),
            option("--rate", type=float, metavar="PER_SECOND",
                   help="command attempts per second, retries included (default: the region's "
                   "documented quota, 10 where unknown; 0 = unlimited)"),
            option("--read-rate", type=float, metavar="PER_SECOND",
                   help="reads (Show after a lost answer) per second, their own quota (default: "
                   "the region's documented quota, 10 where unknown; 0 = unlimited)"),
            option("--burst", type=int, default=1, metavar="N", help="default 1"),
            option("--max-attempts", type=int, default=5, metavar="N",
                   help="attempts per entry for retryable failures (default 5)"),
            option("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="per request (default 30)"),
        ],
    ),
    (
        "entries",
        [
            option("--command", metavar="CMD", help="command for entries that name none"),
            option("--app-user-id", metavar="ID", help="X-App-UserId for entries without one"),
            flag("--resume", "continue an existing report: entries already succeeded are not sent"),
            flag("--allow-other-manifest",
                 "with --resume: continue a report written from other manifests, on purpose"),
            flag("--dry-run", "print the plan, send nothing"),
            option("--limit", type=int, metavar="N",
                   help="run at most N entries not yet done, then stop (a canary; continue "
                   "with the same command plus --resume)"),
        ],
    ),
    (
        "halting",
        [
            option("--max-failures", type=int, metavar="N", help="halt once N entries have failed"),
            option("--max-failure-rate", type=float, metavar="F",
                   help="halt when the share of failed entries exceeds F (0-1), judged after "
                   "50 entries"),
            option("--grace-period", type=float, default=10.0, metavar="SECONDS",
                   help="on SIGINT/SIGTERM, how long requests in flight may take to finish "
                   "(default 10; a second signal cuts it short)"),
        ],
    ),
    (
        "output",
        [
            *logging(),
            option("--metrics-file", metavar="PATH",
                   help="keep Prometheus metrics of the run in PATH (text format, for "
                   "node_exporter's textfile collector), during the run and at the end"),
        ],
    ),
]  # fmt: skip


def command() -> Command:
    return Command(
        "run",
        arguments=[manifests()],
        sections=OPTIONS,
        run=lambda **flags: main(SimpleNamespace(**flags)),
        help="Validate the manifests (nothing is sent if any entry is invalid), then run "
        "every entry concurrently under the rate limit, appending one JSON line per entry to "
        "the report. MANIFEST is a YAML or CSV manifest; '-' reads CSV from standard input. "
        "Credentials come from the environment or the SDK's credentials file, never from a "
        "flag (see README).",
    )


def main(args: SimpleNamespace) -> int:
    import contextlib

    from batcher import api

    log_format = configure_logs(args)
    live = None
    if not (args.no_progress or args.quiet) and log_format == "console" and sys.stderr.isatty():
        from batcher.cli._display import LiveView

        live = LiveView()
    with live if live is not None else contextlib.nullcontext():
        result = api.run(
            list(args.manifests),
            progress=live if live is not None else not (args.no_progress or args.quiet),
            **api_keywords(args, ("manifests",)),
        )
    if result.plan is not None:
        from batcher.cli._stdout import emit

        emit(render_plan(result.plan))
        return result.exit_code
    # People get a few readable lines and the next step; machines (JSON logs) have had the
    # library's run_finished event, so that stderr stays pure JSON lines.
    if log_format == "console" and (not args.quiet or result.exit_code):
        print(render_summary(result), file=sys.stderr)
        print(next_step(result, args), file=sys.stderr)
    return result.exit_code


def render_plan(plan: Plan) -> str:
    from batcher.send.progress import format_duration

    lines = [f"plan: {plan.total} entries from {', '.join(plan.files)}"]
    lines += [f"  {command:<42} {count:>8}" for command, count in plan.commands.items()]
    if plan.already_done or plan.in_doubt:
        lines.append(
            f"resume:      {plan.already_done} already done (not sent again)"
            + (
                f", {plan.in_doubt} in doubt (their job's record is read first)"
                if plan.in_doubt
                else ""
            )
        )
    limited = f" (--limit {plan.limit})" if plan.limit is not None else ""
    lines.append(f"to send:     {plan.to_run} entries{limited}")
    lines.append(f"endpoint:    {plan.endpoint or '(no --endpoint or --region yet)'}")
    lines.append(f"project id:  {projects(plan.projects)}")
    lines.append(f"auth:        {plan.auth}")
    pace = "unlimited" if plan.rate == 0 else f"{plan.rate:g}/s (burst {plan.burst})"
    lines.append(f"rate:        {pace}, {plan.rate_source}; concurrency {plan.concurrency}")
    reads = "unlimited" if plan.read_rate == 0 else f"{plan.read_rate:g}/s"
    lines.append(f"read rate:   {reads}, {plan.read_rate_source}")
    if plan.expected_seconds is not None:
        lines.append(
            f"expected:    at least {format_duration(plan.expected_seconds)} at "
            f"{plan.rate:g}/s (one attempt each; retries add to it)"
        )
    lines.append("dry run: nothing was sent")
    return "\n".join(lines)


def projects(counts: dict[str | None, int]) -> str:
    """Where the entries go, most first.

    >>> projects({"a": 1, "b": 3, "": 2})
    'b (3 entries), a (1 entry), 2 entries to other projects'
    """
    named = sorted(((n, p) for p, n in counts.items() if p), key=lambda item: -item[0])
    said = [f"{project} ({n:,} entr{'y' if n == 1 else 'ies'})" for n, project in named]
    if counts.get(""):
        said.append(f"{counts['']:,} entries to other projects")
    return ", ".join(said) or "(none)"


def render_summary(result: RunResult) -> str:
    achieved = result.entries_per_second or 0.0
    parts = [
        f"run {result.run_id}: {result.succeeded} succeeded, {result.failed} failed, "
        f"{result.skipped} skipped"
        + (f", {result.already_done} already done" if result.already_done else "")
        + f" in {result.elapsed:.1f}s ({achieved:.1f} entries/s, {result.attempts} attempts"
        + (f", {result.throttled} throttled" if result.throttled else "")
        + ")",
    ]
    if result.confirmed or result.ambiguous:
        parts.append(
            f"answers lost: {result.confirmed} confirmed from the job's record"
            + (
                f", {result.ambiguous} failed in doubt (ambiguous: may have executed)"
                if result.ambiguous
                else ""
            )
        )
    if result.throttled and result.rate_limit:
        parts.append(
            f"the API throttled the run; the rate settled at "
            f"{result.settled_rate:.1f}/s (asked for {result.rate_limit:g}/s)"
        )
    if result.halted_reason:
        parts.append(f"halted: {result.halted_reason}")
    elif result.left_by_limit:
        parts.append("--limit reached: the rest waits for --resume (without --limit)")
    parts.append(f"report: {result.report}")
    return "\n".join(parts)


def next_step(result: RunResult, args: SimpleNamespace) -> str:
    """What to do now, as a command to copy."""
    import shlex

    report = shlex.quote(str(result.report))
    if result.halted_reason is not None or result.left_by_limit:
        again = [word for word in sys.argv[1:] if word != "--resume"]
        if result.left_by_limit:
            again = _without(again, "--limit")
        command = shlex.join(["batcher", *again, "--resume"])
        if "-" in args.manifests:  # standard input is spent: the same source must come again
            return f"next: feed the same manifest to standard input again: ... | {command}"
        return "next: " + command
    if result.failed or result.skipped:
        return f"next: batcher report {report} --status failed   (what failed, and why)"
    return f"next: batcher report {report}   (the summary)"


def _without(words: list[str], flag: str) -> list[str]:
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word == flag:
            skip = True
            continue
        if not word.startswith(flag + "="):
            kept.append(word)
    return kept
