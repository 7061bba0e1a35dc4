"""`batcher report`: summarise a report, list entries by status, export a retry manifest,
or draw it as a page."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import click

from batcher.cli._options import Command, flag, option, where
from batcher.cli._stdout import detach
from batcher.entry import STATUSES
from batcher.errors import BatcherError

if TYPE_CHECKING:
    from batcher.journal.selection import Selection

#: Bad-line warnings printed to stderr; the rest are counted.
_MAX_WARNINGS = 20


_PATH = click.Path(path_type=Path)

OPTIONS = [
    option("--format", choices=("table", "json"), default="table",
           help="readable text (default) or one JSON document for scripts"),
    option("--status", multiple=True, choices=STATUSES,
           help="list the entries whose latest line has this status (repeatable); with "
           "--export-manifest, choose which entries to export"),
    flag("--retryable-only",
         "only failed entries whose failure is retryable (429, 5xx, network errors)"),
    option("--export-manifest", type=_PATH, metavar="OUT",
           help="write the selected entries (default: failed and skipped) as a manifest; "
           ".yaml, .yml or .csv"),
    flag("--include-ambiguous",
         "with --export-manifest: also export failed entries marked ambiguous (an earlier "
         "attempt may have executed; check the job first), and the skipped entries of their "
         "jobs"),
    option("--html", type=_PATH, metavar="OUT.html",
           help="write the report as one self-contained page (charts of outcomes, "
           "throughput, 429s and latency over time; failures by reason and command; the runs)"),
    flag("--force", "replace an existing OUT"),
    option("--top", type=int, default=20, metavar="N",
           help="failure reasons to show (default 20; 0 = all)"),
]  # fmt: skip


STATES = [
    flag(
        "--with-states",
        "with --html: read where the report's jobs are now (as `batcher status` does) and "
        "show the states on the page",
    ),
    *where(simulate="read an in-process simulator's jobs; no credentials"),
    option(
        "--read-rate",
        type=float,
        default=10.0,
        metavar="PER_SECOND",
        help="List and Show requests per second for --with-states (default 10)",
    ),
]


def command() -> Command:
    return Command(
        "report",
        arguments=[click.Argument(["report"], type=_PATH, metavar="REPORT.jsonl")],
        sections=[("options", OPTIONS), ("states on the page (--html)", STATES)],
        run=lambda **flags: main(SimpleNamespace(**flags)),
        help="Summarise a JSONL report (each entry counts by its latest line), list the "
        "entries with a given status, or write a manifest of them to run again.",
    )


def main(args: SimpleNamespace) -> int:
    from batcher.errors import UsageError
    from batcher.journal.reader import first_report_line

    path: Path = args.report
    if args.top < 0:
        raise UsageError("--top must be 0 or more")
    first = first_report_line(path)  # also: one clear error if it cannot be read
    if first == 0:
        raise UsageError(f"{path} is empty: it holds no report lines")
    if first is None:
        raise UsageError(
            f"{path} holds no report lines (none of its lines is a JSON object with "
            "job_id, command and status): is it a report? (a manifest, perhaps)"
        )
    if sys.stdout is None:  # started with standard output closed (`>&-`)
        if args.html is None and args.export_manifest is None:
            raise UsageError("standard output is closed: there is nowhere to write the summary")
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - only "wrote OUT" is lost
    on_bad_line = _BadLineWarnings(path)
    try:
        if args.html is not None:
            code = _html(args, on_bad_line)
        elif args.export_manifest is not None:
            code = _export(args, on_bad_line)
        elif args.status or args.retryable_only:
            code = _list(args, on_bad_line)
        else:
            code = _summary(args, on_bad_line)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # The reader went away (`batcher report R | head`): it had what it wanted, so stop
        # quietly with 0, as the summary does (a `set -o pipefail` script goes on), and
        # keep the interpreter's last flush from failing.
        detach()
        return 0
    except OSError as error:  # a full disk behind standard output, an I/O error
        detach()
        raise BatcherError(f"cannot write to standard output: {error.strerror or error}") from None
    finally:
        on_bad_line.finish()


class _BadLineWarnings:
    """Warn on stderr about unreadable lines: the first few by number, then a count."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0

    def __call__(self, lineno: int, why: str) -> None:
        self.count += 1
        if self.count <= _MAX_WARNINGS:
            print(f"warning: {self.path}:{lineno}: skipped: {why}", file=sys.stderr)

    def finish(self) -> None:
        if self.count > _MAX_WARNINGS:
            with contextlib.suppress(OSError):  # stderr may have gone away too
                print(
                    f"warning: {self.path}: {self.count - _MAX_WARNINGS} more unreadable "
                    "lines skipped",
                    file=sys.stderr,
                )


def _summary(args: SimpleNamespace, on_bad_line: _BadLineWarnings) -> int:
    from batcher.review.summary import summarize
    from batcher.review.text import render_text, terminal_safe

    summary = summarize(args.report, on_bad_line=on_bad_line)
    if args.format == "json":
        print(json.dumps(summary.to_dict(top=args.top), ensure_ascii=False, indent=2))
    else:
        import shutil

        # Reasons fit a terminal's width; piped, they are never cut.
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        sys.stdout.write(terminal_safe(render_text(summary, top=args.top, width=width)))
    return 0


def _selection(args: SimpleNamespace, on_bad_line: _BadLineWarnings) -> Selection:
    from batcher.journal.selection import Selection

    exporting = args.export_manifest is not None
    if args.status:
        statuses = set(args.status)
    elif args.retryable_only or not exporting:
        statuses = {"failed"}
    else:
        statuses = {"failed", "skipped"}
    return Selection(
        args.report,
        statuses=statuses,
        retryable_only=args.retryable_only,
        # A listing shows everything; an export leaves out what may have executed.
        include_ambiguous=args.include_ambiguous or not exporting,
        order="manifest" if exporting else "report",
        on_bad_line=on_bad_line,
    )


#: Fields shown for each listed entry (never the pre-signed upload URLs).
_LISTED = (
    "job_id", "command", "status", "reason", "retryable", "http_status", "error_code",
    "error_msg", "failed_msg", "attempts", "finished_at", "source", "run_id", "project_id",
    "confirmed_by", "ambiguous",
)  # fmt: skip


def _list(args: SimpleNamespace, on_bad_line: _BadLineWarnings) -> int:
    from batcher.review.text import terminal_safe

    selection = _selection(args, on_bad_line)
    out = sys.stdout
    if args.format == "json":
        # Streamed as one JSON array, so a million entries never sit in memory at once.
        out.write("[")
        for index, (lineno, line) in enumerate(selection.numbered()):
            record = {name: getattr(line, name) for name in _LISTED}
            record["line"] = lineno
            out.write(("\n  " if index == 0 else ",\n  ") + json.dumps(record, ensure_ascii=False))
        out.write("\n]\n" if selection.count else "]\n")
        return 0
    job_w, command_w = selection.job_id_width, selection.command_width
    out.write(f"{'job_id':<{job_w}}  {'command':<{command_w}}  {'status':<9}  reason\n")
    for line in selection:
        reason = " ".join((line.reason or "").split()) or "-"
        row = f"{line.job_id:<{job_w}}  {line.command:<{command_w}}  {line.status:<9}  {reason}"
        out.write(terminal_safe(row) + "\n")
    out.flush()  # so the count follows the listing on a terminal
    print(f"{selection.count:,} entries ({_counts(selection.by_status)})", file=sys.stderr)
    return 0


def _counts(by_status: dict[str, int]) -> str:
    return ", ".join(f"{status} {count:,}" for status, count in by_status.items() if count) or (
        "none"
    )


def _export(args: SimpleNamespace, on_bad_line: _BadLineWarnings) -> int:
    from batcher.errors import UsageError
    from batcher.review.export import export_manifest
    from batcher.select.writer import format_of

    out: Path = args.export_manifest
    format_of(out)  # a bad extension is an error before the report is read
    if out.exists() and not args.force:
        raise UsageError(f"{out} already exists; add --force to replace it")
    selection = _selection(args, on_bad_line)
    chosen = "retryable failed" if args.retryable_only else "/".join(sorted(selection.statuses))
    if args.retryable_only:
        chosen += " (and the skipped entries of their jobs)"
    if selection.count == 0:
        message = f"no {chosen} entries in {args.report}; {out} not written"
        count = 0
    else:
        header = (
            f"{selection.count} {chosen} entries exported by `batcher report` from {args.report}"
        )
        count = export_manifest(
            selection, out, force=args.force, header=header, project_ids=selection.project_ids
        )
        message = f"exported {count:,} entries ({_counts(selection.by_status)}) to {out}"
    left_out = selection.left_out_ambiguous + selection.left_out_dependents
    if args.format == "json":
        document: dict[str, object] = {
            "exported": count,
            "path": str(out) if count else None,
            **{status: selection.by_status[status] for status in STATUSES},
            "left_out_ambiguous": selection.left_out_ambiguous,
            "left_out_skipped_after_ambiguous": selection.left_out_dependents,
        }
        print(json.dumps(document, ensure_ascii=False))
    else:
        print(message)
        if left_out:
            print(
                f"left out {selection.left_out_ambiguous:,} ambiguous entries (an earlier "
                "attempt may have executed: check those jobs first)"
                + (
                    f" and {selection.left_out_dependents:,} skipped entries of their jobs"
                    if selection.left_out_dependents
                    else ""
                )
                + "; add --include-ambiguous to export them too"
            )
    return 0


def _html(args: SimpleNamespace, on_bad_line: _BadLineWarnings) -> int:
    from batcher.errors import UsageError
    from batcher.review.html import write_html

    out: Path = args.html
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"cannot tell that {out} is a page: name it .html")
    if out.exists() and not args.force:
        raise UsageError(f"{out} already exists; add --force to replace it")
    states = None
    if args.with_states:
        from batcher import api
        from batcher.status.show import page_states

        read = api.status(
            args.report,
            project_id=args.project_id,
            region=args.region,
            endpoint=args.endpoint,
            simulate=args.simulate,
            read_rate=args.read_rate,
        )
        states = page_states(read)
    size = write_html(args.report, out, force=args.force, on_bad_line=on_bad_line, states=states)
    if args.format == "json":
        print(json.dumps({"path": str(out), "bytes": size}))
    else:
        print(f"wrote {out} ({size / 1024:,.0f} KB): open it in a browser")
    return 0
