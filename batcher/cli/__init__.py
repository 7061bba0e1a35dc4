"""The ``batcher`` command: parse flags, call the library, map errors to exit codes.

Sub-commands live in their own modules (``run``, ``validate``, ``select``, ``report``,
``simulate``),
each with ``add_parser(subparsers)`` and ``main(args) -> int``. Heavy imports happen inside
``main`` so that ``batcher --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import report, run, select, simulate, validate

_COMMANDS = (run, validate, select, report, simulate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batcher",
        description="Run MetaStudio training-job commands in bulk, under the tenant's rate "
        "limit, and report every outcome as JSON lines.",
    )
    parser.add_argument("--version", action="version", version=f"batcher {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)
    for command in _COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..errors import BatcherError, ManifestError

    try:
        return int(args.handler(args))
    except ManifestError as error:
        tail = " (only the first ones are shown)" if error.truncated else ""
        if _json_logs(args):
            import structlog

            log = structlog.get_logger("batcher")
            for problem in error.problems:
                log.error(
                    "manifest_problem",
                    problem=str(problem),
                    file=problem.file,
                    line=problem.line,
                    field=problem.field,
                    message=problem.message,
                )
            log.error(
                "manifest_invalid", problems=len(error.problems), truncated=error.truncated, sent=0
            )
        else:
            for problem in error.problems:
                print(f"error: {problem}", file=sys.stderr)
            print(f"batcher: {error.args[0]}{tail}; nothing was sent", file=sys.stderr)
        return int(error.exit_code)
    except BatcherError as error:
        if _json_logs(args):
            import structlog

            structlog.get_logger("batcher").error(
                "batcher_error", message=str(error), exit_code=int(error.exit_code)
            )
        else:
            print(f"batcher: {error}", file=sys.stderr)
        return int(error.exit_code)
    except KeyboardInterrupt:
        print("batcher: interrupted", file=sys.stderr)
        return 3
    except BaseExceptionGroup as group:
        # anyio wraps errors raised inside a task group; show the first one plainly.
        leaf = _first_leaf(group)
        if isinstance(leaf, BatcherError):
            print(f"batcher: {leaf}", file=sys.stderr)
            return int(leaf.exit_code)
        if isinstance(leaf, OSError):
            print(
                f"batcher: stopped: {leaf}; the report holds every entry finished before "
                "this: fix the cause, then continue with the same command plus --resume",
                file=sys.stderr,
            )
            return 3
        raise


def _json_logs(args: argparse.Namespace) -> bool:
    # Once a sub-command has chosen JSON logs, stderr carries nothing but JSON lines.
    return getattr(args, "resolved_log_format", None) == "json"


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error
