"""The pieces every sub-command is built from: a command whose usage errors name the closest
flag or value, options shown in sections, and the flag groups ``run`` and ``select`` share.

Each sub-command module defines its options in one list (``OPTIONS``), so a flag added by
one change and a flag added by another merge as two lines of that list.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from types import SimpleNamespace

    from batcher.observe.logs import LogFormat

#: One section of a command's help: its title and its options.
Section = tuple[str, Sequence[click.Parameter]]

#: Log levels, as ``--log-level`` takes them.
LEVELS = ("debug", "info", "warning", "error")


def closest(word: str, known: Sequence[str]) -> str:
    """`` (did you mean X?)`` for the known word closest to ``word``, else nothing.

    >>> closest("--concurency", ["--concurrency", "--rate"])
    ' (did you mean --concurrency?)'
    """
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class Choice(click.Choice[str]):
    """A choice whose refusal names the closest allowed value."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as error:
            hint = closest(str(value), [str(choice) for choice in self.choices])
            raise click.BadParameter(error.message + hint, ctx, param) from None


#: Every command takes -h as well as --help, as argparse's did.
CONTEXT = {"help_option_names": ["-h", "--help"]}


class Command(click.Command):
    """A sub-command with its options in titled sections and a lower-case ``usage:`` line
    (as the README and scripts grepping for it know it)."""

    def __init__(
        self,
        name: str,
        *,
        arguments: Sequence[click.Argument] = (),
        sections: Sequence[Section],
        run: Callable[..., int],
        **kwargs: Any,
    ) -> None:
        params = [*arguments, *(option for _, options in sections for option in options)]
        super().__init__(name, params=params, callback=run, context_settings=CONTEXT, **kwargs)
        self.sections = sections

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), "usage: ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, options in self.sections:
            rows = [row for option in options if (row := option.get_help_record(ctx))]
            with formatter.section(title):
                formatter.write_dl(rows)
        help_option = self.get_help_option(ctx)
        if help_option is not None and (row := help_option.get_help_record(ctx)):
            with formatter.section("other"):
                formatter.write_dl([row])


def option(*names: str, **kwargs: Any) -> click.Option:
    """A flag; ``choices=`` makes it a :class:`Choice`."""
    choices = kwargs.pop("choices", None)
    if choices is not None:
        kwargs["type"] = Choice(choices)
    return click.Option(names, **kwargs)


def flag(name: str, help: str) -> click.Option:
    return click.Option([name], is_flag=True, default=False, help=help)


def manifests() -> click.Argument:
    """One manifest or more; its meaning is told in the command's description."""
    return click.Argument(["manifests"], nargs=-1, required=True, metavar="MANIFEST...")


def where(*, simulate: str) -> list[click.Option]:
    """The where-to-send flags ``run`` and ``select`` share; ``simulate`` is its help."""
    return [
        option("--project-id", help="default: $HUAWEICLOUD_SDK_PROJECT_ID"),
        option("--region", help="cn-north-4 or cn-east-3; default: $HUAWEICLOUD_SDK_REGION"),
        option(
            "--endpoint",
            metavar="URL",
            help="base URL, overrides --region (plain http:// only for loopback)",
        ),
        flag("--simulate", simulate),
    ]


def logging() -> list[click.Option]:
    """The log and progress flags ``run`` and ``select`` share."""
    return [
        option(
            "--log-format",
            choices=("console", "json"),
            help="default: console on a terminal, json otherwise",
        ),
        option("--log-level", default="info", choices=LEVELS, show_default=True),
        flag("--quiet", "only warnings and errors"),
        flag("--no-progress", "no progress view or lines"),
    ]


def configure_logs(args: SimpleNamespace) -> LogFormat:
    """Set up logging from the flags :func:`logging` defines; the format chosen is kept
    for the command's last word, so that errors are told in it too."""
    from batcher.observe import logs

    chosen = logs.configure(fmt=args.log_format, level=args.log_level, quiet=args.quiet)
    click.get_current_context().meta["batcher.log_format"] = chosen
    return chosen
