"""The ``batcher`` command: parse flags, call the library, map errors to exit codes.

Sub-commands live in their own modules (``run``, ``validate``, ``select``, ``report``,
``simulate``), each with ``add_parser(subparsers)`` and ``main(args) -> int``. Heavy
imports happen inside ``main`` so that ``batcher --help`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from batcher import __version__
from batcher.cli import report, run, select, simulate, validate

if TYPE_CHECKING:
    from batcher.errors import ManifestError

_COMMANDS = (run, validate, select, report, simulate)


class _Parser(argparse.ArgumentParser):
    """An argument parser that names the closest flag or command to a mistyped one."""

    def error(self, message: str) -> NoReturn:
        hint = self._suggestion(message)
        super().error(message + hint)

    def _suggestion(self, message: str) -> str:
        if "unrecognized arguments:" in message:
            words = message.split("unrecognized arguments:", 1)[1].split()
            known = [flag for action in self._actions for flag in action.option_strings]
            for word in words:
                if word.startswith("-"):
                    close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
                    if close:
                        return f" (did you mean {close[0]}?)"
        if "invalid choice:" in message:
            chosen = message.split("invalid choice:", 1)[1].split("'")
            choices = [c for a in self._actions if a.choices for c in a.choices]
            if len(chosen) > 1:
                close = difflib.get_close_matches(chosen[1], [str(c) for c in choices], n=1)
                if close:
                    return f" (did you mean {close[0]}?)"
        return ""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="batcher",
        description="Run MetaStudio training-job commands in bulk, under the tenant's rate "
        "limit, and report every outcome as JSON lines.",
    )
    parser.add_argument("--version", action="version", version=f"batcher {__version__}")
    subparsers = parser.add_subparsers(
        dest="subcommand", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for command in _COMMANDS:
        command.add_parser(subparsers)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown flag is reported by its sub-command's parser (its usage,
    and the closest flag it has), not by the top-level one."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = _subparser(parser, getattr(args, "subcommand", None))
        (sub or parser).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            chosen = action.choices[name]
            return chosen if isinstance(chosen, argparse.ArgumentParser) else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stderr is None:  # started with standard error closed (`2>&-`): logs go nowhere
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    parser = build_parser()
    args = _parse(parser, argv)
    # The whole command under one signal policy (the simulator keeps its own); as this
    # process's own command line (argv None), the signals stay ignored until it exits.
    if getattr(args, "subcommand", None) == "simulate":
        policy: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        from batcher.send.signals import signals_handled

        policy = signals_handled(keep=argv is None)
    with policy:
        try:
            return _handle(args)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM, before a run took them over
            _say(args, "interrupted", "interrupted", exit_code=3)
            return 3


def _handle(args: argparse.Namespace) -> int:
    from batcher.errors import BatcherError, ManifestError, SettingsError

    try:
        return int(args.handler(args))
    except ManifestError as error:
        _manifest_problems(args, error)
        return int(error.exit_code)
    except SettingsError as error:
        _problems(args, error.problems, "settings_problem")
        _say(
            args,
            f"{len(error.problems)} problem(s) with the settings; nothing was sent",
            "settings_invalid",
            problems=len(error.problems),
            sent=0,
        )
        return int(error.exit_code)
    except BatcherError as error:
        _say(args, str(error), "batcher_error", exit_code=int(error.exit_code))
        return int(error.exit_code)
    except BaseExceptionGroup as group:
        # anyio wraps errors raised inside a task group; show the first one plainly.
        leaf = _first_leaf(group)
        if isinstance(leaf, BatcherError):
            _say(args, str(leaf), "batcher_error", exit_code=int(leaf.exit_code))
            return int(leaf.exit_code)
        if isinstance(leaf, OSError):
            _say(
                args,
                f"stopped: {leaf}; the report holds every entry finished before this: fix the "
                "cause, then continue with the same command plus --resume",
                "batcher_error",
                exit_code=3,
            )
            return 3
        raise


def _manifest_problems(args: argparse.Namespace, error: ManifestError) -> None:
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
    else:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
    _problems(args, error.settings_problems, "settings_problem")
    _say(
        args,
        f"{error.args[0]}{tail}; nothing was sent",
        "manifest_invalid",
        problems=len(error.problems),
        truncated=error.truncated,
        sent=0,
    )


def _problems(args: argparse.Namespace, problems: list[str], event: str) -> None:
    if _json_logs(args):
        import structlog

        log = structlog.get_logger("batcher")
        for problem in problems:
            log.error(event, problem=problem)
    else:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)


def _say(args: argparse.Namespace, message: str, event: str, **fields: object) -> None:
    """The last word on stderr: a JSON event with JSON logs, a plain line otherwise."""
    if _json_logs(args):
        import structlog

        structlog.get_logger("batcher").error(event, message=message, **fields)
    else:
        print(f"batcher: {message}", file=sys.stderr)


def _json_logs(args: argparse.Namespace) -> bool:
    # Once a sub-command has chosen JSON logs, stderr carries nothing but JSON lines.
    return getattr(args, "resolved_log_format", None) == "json"


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error
