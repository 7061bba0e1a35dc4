"""``batcher run``: validate the manifests, then run every entry and report each outcome."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the entries of one or more manifests",
        description="Validate the manifests (nothing is sent if any entry is invalid), then run "
        "every entry concurrently under the rate limit, appending one JSON line per entry to "
        "the report. Credentials come from the environment only (see README).",
    )
    parser.add_argument("manifests", nargs="+", metavar="MANIFEST",
                        help="YAML or CSV manifest; '-' reads CSV from standard input")
    parser.add_argument("--report", metavar="PATH",
                        help="JSONL report to write (required unless --dry-run)")
    target = parser.add_argument_group("where")
    target.add_argument("--project-id", help="default: $HUAWEICLOUD_SDK_PROJECT_ID")
    target.add_argument("--region",
                        help="cn-north-4 or cn-east-3; default: $HUAWEICLOUD_SDK_REGION")
    target.add_argument("--endpoint", metavar="URL",
                        help="base URL, overrides --region (plain http:// only for loopback)")
    target.add_argument("--simulate", action="store_true",
                        help="run against an in-process simulator on loopback; no credentials")
    pace = parser.add_argument_group("pace")
    pace.add_argument("--concurrency", type=int, default=16, metavar="N",
                      help="requests in flight at most (default 16)")
    pace.add_argument("--rate", type=float, default=10.0, metavar="PER_SECOND",
                      help="attempts per second, retries included (default 10; 0 = unlimited)")
    pace.add_argument("--burst", type=int, default=1, metavar="N", help="default 1")
    pace.add_argument("--max-attempts", type=int, default=5, metavar="N",
                      help="attempts per entry for retryable failures (default 5)")
    pace.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                      help="per request (default 30)")
    what = parser.add_argument_group("entries")
    what.add_argument("--command", metavar="CMD", help="command for entries that name none")
    what.add_argument("--app-user-id", metavar="ID", help="X-App-UserId for entries without one")
    what.add_argument("--resume", action="store_true",
                      help="continue an existing report: entries already succeeded are not sent")
    what.add_argument("--dry-run", action="store_true", help="print the plan, send nothing")
    halting = parser.add_argument_group("halting")
    halting.add_argument("--max-failures", type=int, metavar="N",
                         help="halt once N entries have failed")
    halting.add_argument("--max-failure-rate", type=float, metavar="F",
                         help="halt when the share of failed entries exceeds F (0-1), judged "
                         "after 50 entries")
    halting.add_argument("--grace-period", type=float, default=10.0, metavar="SECONDS",
                         help="on SIGINT/SIGTERM, how long requests in flight may take to finish "
                         "(default 10; a second signal cuts it short)")
    output = parser.add_argument_group("output")
    output.add_argument("--log-format", choices=("console", "json"),
                        help="default: console on a terminal, json otherwise")
    output.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warning", "error"))
    output.add_argument("--quiet", action="store_true", help="only warnings and errors")
    output.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    import anyio
    import structlog

    from .. import logs
    from ..auth import credentials_from_env
    from ..errors import ExitCode, UsageError
    from ..manifest import Manifests
    from ..redact import Redactor
    from ..report import ReportWriter, completed_keys
    from ..run import run_batch

    env = os.environ
    credentials = None if args.simulate else credentials_from_env(env)
    log_format = logs.configure(
        fmt=args.log_format, level=args.log_level, quiet=args.quiet,
        secrets=credentials.secrets() if credentials else (),
    )
    args.resolved_log_format = log_format  # so errors are reported in the same format
    settings = _settings(args, env, credentials)
    redactor = Redactor(credentials.secrets() if credentials else ())
    if not args.dry_run and not args.report:
        raise UsageError("--report PATH is required (or use --dry-run)")

    with Manifests(args.manifests, default_command=args.command,
                   project_id=settings.project_id) as manifests:
        summary = manifests.check()
        if summary.total == 0:
            structlog.get_logger("batcher.run").warning(
                "no_entries", files=list(summary.files),
                hint="the manifests hold no entries: nothing to do")
        if settings.project_id is None:
            _require_project_ids(manifests)
        if args.dry_run:
            print(_plan(summary, settings), file=sys.stdout)
            return int(ExitCode.OK)
        if settings.credentials is None and not settings.simulate:
            raise UsageError(
                "no credentials: set HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK (or "
                "CLOUD_SDK_AK/CLOUD_SDK_SK), or METASTUDIO_AUTH_TOKEN, or use --simulate"
            )
        from pathlib import Path

        report_path = Path(args.report)
        with ReportWriter.open(report_path, resume=args.resume, redactor=redactor) as writer:
            done = completed_keys(report_path) if args.resume else set()
            run_id = _new_run_id()
            stats, settled_rate = anyio.run(
                lambda: run_batch(
                    manifests.entries(), settings=settings, write=writer.write, run_id=run_id,
                    done_keys=done, total=summary.total,
                )
            )
    # People get a few readable lines; machines (JSON logs) get one structured event, so
    # that stderr stays pure JSON lines.
    if log_format == "console":
        if not args.quiet or stats.halted_reason:
            summary_text = _summary(stats, settled_rate, settings, report_path, run_id)
            print(redactor.text(summary_text), file=sys.stderr)
    else:
        _log_summary(stats, settled_rate, settings, run_id, report_path)
    if stats.halted_reason is not None:
        return int(ExitCode.HALTED)
    if stats.failed or stats.skipped:
        return int(ExitCode.INCOMPLETE)
    return int(ExitCode.OK)


def _new_run_id() -> str:
    import secrets
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _settings(args: argparse.Namespace, env: Any, credentials: Any) -> Any:
    import math

    from ..client import endpoint_for
    from ..entry import PATH_ID_RE, check_app_user_id
    from ..errors import UsageError
    from ..run import SIMULATED_PROJECT_ID, RunSettings
    from ..runner import RunOptions

    checks = [
        (args.concurrency >= 1, "--concurrency must be at least 1"),
        (args.rate >= 0, "--rate must be 0 (unlimited) or more"),
        (args.burst >= 1, "--burst must be at least 1"),
        (args.max_attempts >= 1, "--max-attempts must be at least 1"),
        (args.timeout > 0, "--timeout must be more than 0 seconds"),
        (args.max_failures is None or args.max_failures >= 1, "--max-failures must be at least 1"),
        (args.max_failure_rate is None or 0 < args.max_failure_rate <= 1,
         "--max-failure-rate must be more than 0 and at most 1"),
        (args.grace_period >= 0, "--grace-period must be 0 or more"),
    ]
    checks += [
        (math.isfinite(value), f"{flag} must be a finite number")
        for flag, value in (("--rate", args.rate), ("--timeout", args.timeout),
                            ("--grace-period", args.grace_period),
                            ("--max-failure-rate", args.max_failure_rate or 0.0))
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    project_id = args.project_id or env.get("HUAWEICLOUD_SDK_PROJECT_ID") or None
    if project_id is None and args.simulate:
        project_id = SIMULATED_PROJECT_ID
    if project_id is not None and not PATH_ID_RE.match(project_id):
        source = "--project-id" if args.project_id else "HUAWEICLOUD_SDK_PROJECT_ID"
        raise UsageError(f"{source} must be 1-64 characters of A-Z a-z 0-9 _ -")
    if args.app_user_id is not None:
        try:
            check_app_user_id(args.app_user_id)
        except ValueError as error:
            raise UsageError(f"--app-user-id {error}") from None
    endpoint = None
    if not args.simulate:
        region = args.region or env.get("HUAWEICLOUD_SDK_REGION") or None
        if args.dry_run and not (region or args.endpoint):
            endpoint = None
        else:
            endpoint = endpoint_for(region=region, endpoint=args.endpoint)
    return RunSettings(
        credentials=credentials,
        endpoint=endpoint,
        project_id=project_id,
        app_user_id=args.app_user_id,
        rate=args.rate,
        burst=args.burst,
        timeout=args.timeout,
        simulate=args.simulate,
        progress=not (args.no_progress or args.quiet),
        options=RunOptions(
            concurrency=args.concurrency,
            max_attempts=args.max_attempts,
            max_failures=args.max_failures,
            max_failure_rate=args.max_failure_rate,
            grace_period=args.grace_period,
        ),
    )


def _require_project_ids(manifests: Any) -> None:
    from ..errors import UsageError

    for entry in manifests.entries():
        if entry.project_id is None:
            raise UsageError(
                f"{entry.source}: no project id for this entry: pass --project-id, set "
                "HUAWEICLOUD_SDK_PROJECT_ID, or give the manifest a project_id"
            )


def _plan(summary: Any, settings: Any) -> str:
    if settings.simulate:
        where = "an in-process simulator on 127.0.0.1 (throwaway credentials)"
        auth = "AK/SK signing with throwaway simulator keys"
    else:
        where = str(settings.endpoint) if settings.endpoint else "(no --endpoint or --region yet)"
        auth = settings.credentials.describe() if settings.credentials else (
            "none found in the environment (a real run would refuse to start)"
        )
    lines = [f"plan: {summary.total} entries from {', '.join(map(str, summary.files))}"]
    for command, count in summary.commands.items():
        lines.append(f"  {command:<42} {count:>8}")
    lines.append(f"endpoint:    {where}")
    lines.append(f"project id:  {settings.project_id or '(from the manifests)'}")
    lines.append(f"auth:        {auth}")
    rate = settings.rate
    pace = "unlimited" if rate == 0 else f"{rate:g}/s (burst {settings.burst})"
    lines.append(f"rate:        {pace}, concurrency {settings.options.concurrency}")
    if rate > 0:
        from ..progress import format_duration

        lines.append(
            f"expected:    at least {format_duration(summary.total / rate)} at {rate:g}/s "
            "(one attempt each; retries add to it)"
        )
    lines.append("dry run: nothing was sent")
    return "\n".join(lines)


def _summary(stats: Any, settled_rate: float, settings: Any, report: Any, run_id: str) -> str:
    elapsed = (stats.finished or stats.started) - stats.started
    attempted = stats.succeeded + stats.failed  # skipped lines are not work done
    achieved = attempted / elapsed if elapsed > 0 else 0.0
    parts = [
        f"run {run_id}: {stats.succeeded} succeeded, {stats.failed} failed, "
        f"{stats.skipped} skipped"
        + (f", {stats.already_done} already done" if stats.already_done else "")
        + f" in {elapsed:.1f}s ({achieved:.1f} entries/s, {stats.attempts} attempts"
        + (f", {stats.throttled} throttled" if stats.throttled else "") + ")",
    ]
    if stats.throttled and settings.rate:
        parts.append(f"the API throttled the run; the rate settled at {settled_rate:.1f}/s "
                     f"(asked for {settings.rate:g}/s)")
    if stats.halted_reason:
        parts.append(f"halted: {stats.halted_reason}")
        parts.append("continue with the same command plus --resume")
    parts.append(f"report: {report}")
    return "\n".join(parts)


def _log_summary(stats: Any, settled_rate: float, settings: Any, run_id: str,
                 report: Any) -> None:
    import structlog

    elapsed = (stats.finished or stats.started) - stats.started
    fields: dict[str, Any] = {
        "run_id": run_id, "report": str(report), "succeeded": stats.succeeded,
        "failed": stats.failed, "skipped": stats.skipped, "already_done": stats.already_done,
        "attempts": stats.attempts, "throttled": stats.throttled,
        "elapsed_s": round(elapsed, 3),
        "entries_per_s": (
            round((stats.succeeded + stats.failed) / elapsed, 2) if elapsed > 0 else None
        ),
        "rate_limit": settings.rate, "settled_rate": round(settled_rate, 2),
    }
    log = structlog.get_logger("batcher.run")
    if stats.halted_reason:
        log.warning("run_halted_early", halted=stats.halted_reason,
                    hint="continue with the same command plus --resume", **fields)
    else:
        log.info("run_finished", **fields)
