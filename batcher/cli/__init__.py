"""The ``batcher`` command: parse flags (click), call the library, map errors to exit codes.

Sub-commands live in their own modules (``run``, ``validate``, ``select``, ``status``,
``report``, ``simulate``), each with ``command()`` (its flags, in one list) and
``main(args) -> int``.
A sub-command's module is imported only when it is asked for, and heavy imports happen
inside ``main``, so that ``batcher --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from batcher.cli._options import CONTEXT, closest

if TYPE_CHECKING:
    from batcher.errors import ManifestError

#: Each sub-command and its one-line help (shown by ``batcher --help`` without importing it).
_COMMANDS = {
    "run": "run the entries of one or more manifests",
    "validate": "check manifests (YAML or CSV) without sending anything",
    "select": "write a manifest of the jobs the List API matches",
    "status": "show where the jobs of a report, a manifest or a query are now",
    "report": "summarise a report; list or export entries by status",
    "simulate": "serve a local MetaStudio simulator (auth, job states, List/Show, faults)",
}


class _Batcher(click.Group):
    """The top-level command: sub-commands loaded on first use, "did you mean" for a
    mistyped one."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module = importlib.import_module(f"batcher.cli.{name}")
        command: click.Command = module.command()
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        if name not in _COMMANDS and not name.startswith("-"):
            raise click.UsageError(
                f"no such command {name!r}" + closest(name, list(_COMMANDS)), ctx
            )
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "COMMAND [ARGS]...", "usage: ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("options"):
            formatter.write_dl(
                [row for p in self.get_params(ctx) if (row := p.get_help_record(ctx))]
            )
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("commands"):
            formatter.write_dl(list(_COMMANDS.items()))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from batcher.observe.version import version

        click.echo(f"batcher {version()}")
        ctx.exit(0)


def _batcher() -> _Batcher:
    return _Batcher(
        "batcher",
        help="Run MetaStudio training-job commands in bulk, under the tenant's rate limit, "
        "and report every outcome as JSON lines.",
        params=[
            click.Option(
                ["--version"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_print_version,
                help="print the version and exit",
            )
        ],
        no_args_is_help=True,
        context_settings=CONTEXT,
    )


def main(argv: Sequence[str] | None = None) -> int:
    if sys.stderr is None:  # started with standard error closed (`2>&-`): logs go nowhere
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    words = list(sys.argv[1:] if argv is None else argv)
    # The whole command under one signal policy (the simulator keeps its own); as this
    # process's own command line (argv None), the signals stay ignored until it exits.
    if words[:1] == ["simulate"]:
        policy: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    else:
        from batcher.send.signals import signals_handled

        policy = signals_handled(keep=argv is None)
    with policy:
        return _invoke(words)


def _invoke(words: list[str]) -> int:
    meta: dict[str, Any] = {}
    try:
        group = _batcher()
        with group.make_context("batcher", words) as ctx:
            meta = ctx.meta
            return int(group.invoke(ctx))
    # As argparse did (scripts and tests know it): --help, --version and usage errors end
    # the process from here, with SystemExit.
    except click.exceptions.Exit as done:  # --help, --version
        raise SystemExit(done.exit_code) from None
    except click.UsageError as error:
        raise SystemExit(_usage_error(error)) from None
    except click.ClickException as error:
        print(f"batcher: {error.format_message()}", file=sys.stderr)
        return int(error.exit_code)
    except BaseException as error:
        return _failed(error, json=meta.get("batcher.log_format") == "json")


def _usage_error(error: click.UsageError) -> int:
    """The sub-command's usage, then what is wrong and the closest flag (exit 2)."""
    ctx = error.ctx
    if isinstance(error, click.exceptions.NoArgsIsHelpError) and ctx is not None:
        print(ctx.get_help(), file=sys.stderr)  # `batcher` alone: what it takes
        return 2
    message = error.format_message()
    if isinstance(error, click.NoSuchOption) and ctx is not None:
        known = [name for param in ctx.command.params for name in param.opts]
        message = f"no such option: {error.option_name}" + closest(error.option_name, known)
    if ctx is not None:
        print(ctx.get_usage(), file=sys.stderr)
        print(f"{ctx.command_path}: error: {message}", file=sys.stderr)
        print(f"(see {ctx.command_path} --help)", file=sys.stderr)
    else:
        print(f"batcher: error: {message}", file=sys.stderr)
    return 2


def _failed(error: BaseException, *, json: bool) -> int:
    """The exit code of an error the command raised, told on stderr (a JSON event with
    JSON logs); what is not ours is raised on."""
    from batcher.errors import BatcherError, ManifestError, SettingsError

    if isinstance(error, ManifestError):
        _manifest_problems(error, json)
    elif isinstance(error, SettingsError):
        _problems(error.problems, "settings_problem", json)
        _say(
            f"{len(error.problems)} problem(s) with the settings; nothing was sent",
            "settings_invalid",
            json,
            problems=len(error.problems),
            sent=0,
        )
    elif isinstance(error, BatcherError):
        _say(str(error), "batcher_error", json, exit_code=int(error.exit_code))
    elif isinstance(error, KeyboardInterrupt):
        _say("interrupted", "interrupted", json, exit_code=3)
        return 3
    elif isinstance(error, BaseExceptionGroup):
        # anyio wraps errors raised inside a task group; show the first one plainly.
        leaf = _first_leaf(error)
        if isinstance(leaf, BatcherError):
            return _failed(leaf, json=json)
        if not isinstance(leaf, OSError):
            raise error
        _say(
            f"stopped: {leaf}; the report holds every entry finished before this: fix the "
            "cause, then continue with the same command plus --resume",
            "batcher_error",
            json,
            exit_code=3,
        )
        return 3
    else:
        raise error
    return int(error.exit_code)


def _manifest_problems(error: ManifestError, json: bool) -> None:
    tail = " (only the first ones are shown)" if error.truncated else ""
    if json:
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
    _problems(error.settings_problems, "settings_problem", json)
    _say(
        f"{error.args[0]}{tail}; nothing was sent",
        "manifest_invalid",
        json,
        problems=len(error.problems),
        truncated=error.truncated,
        sent=0,
    )


def _problems(problems: list[str], event: str, json: bool) -> None:
    if json:
        import structlog

        log = structlog.get_logger("batcher")
        for problem in problems:
            log.error(event, problem=problem)
    else:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)


def _say(message: str, event: str, json: bool, **fields: object) -> None:
    """The last word on stderr: a JSON event with JSON logs, a plain line otherwise.
    (Once a sub-command has chosen JSON logs, stderr carries nothing but JSON lines.)"""
    if json:
        import structlog

        structlog.get_logger("batcher").error(event, message=message, **fields)
    else:
        print(f"batcher: {message}", file=sys.stderr)


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error
