"""``batcher validate``: check manifests without sending anything.

Exit 0 and a count per command when every entry is valid; exit 2 with every problem (file,
line, field) on standard error otherwise.
"""

from __future__ import annotations

from types import SimpleNamespace

from batcher.cli._options import Command, manifests, option

OPTIONS = [
    option(
        "--command",
        metavar="CMD",
        help="default command for entries that name none (e.g. a CSV without a command column)",
    ),
]


def command() -> Command:
    return Command(
        "validate",
        arguments=[manifests()],
        sections=[("options", OPTIONS)],
        run=lambda **flags: main(SimpleNamespace(**flags)),
        help="Check manifests without sending anything: every problem is reported with its "
        "file, line and field. MANIFEST is a .yaml/.yml or .csv manifest, or - for CSV on "
        "standard input. Exit 0 when all entries are valid, 2 otherwise.",
    )


def main(args: SimpleNamespace) -> int:
    # The manifest package alone (not batcher.api, which imports the HTTP stack): a check
    # of a small manifest starts and ends in well under 100 ms.
    from batcher.read import validate

    summary = validate(list(args.manifests), command=args.command)
    from batcher.cli._stdout import emit

    files = len(summary.files)
    lines = [
        f"OK: {files} manifest{'s' if files != 1 else ''}, {summary.total} "
        f"entr{'ies' if summary.total != 1 else 'y'} for {summary.jobs} "
        f"job{'s' if summary.jobs != 1 else ''}"
    ]
    width = max((len(command) for command in summary.commands), default=5)
    width = max(width, len("total"))
    lines += [f"  {command:<{width}}  {count:>8}" for command, count in summary.commands.items()]
    lines.append(f"  {'total':<{width}}  {summary.total:>8}")
    emit("\n".join(lines))
    return 0
