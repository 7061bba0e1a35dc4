"""Write a manifest back out of report lines, so failed entries can be run again.

Every report line carries its entry's request fields, so the manifest rebuilt here asks
for exactly what the original did — including the project it went to: a YAML manifest gets
a top-level ``project_id`` when every exported entry shares one, and a per-entry
``project_id`` otherwise; a CSV manifest has a ``project_id`` column. The manifest is
written by :mod:`batcher.select.writer` (atomically, never over a file unless forced).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from batcher.entry import Entry, EntryError
from batcher.errors import UsageError
from batcher.journal.line import ReportLine
from batcher.select.writer import ManifestWriter, format_of, output


def entry_fields(line: ReportLine) -> dict[str, Any]:
    """The manifest entry for a report line: its request fields, without empty ones.

    Checked against :class:`batcher.entry.Entry`, so what is written is what a manifest
    accepts; a line that would not make a valid entry raises UsageError.

    >>> entry_fields(ReportLine(job_id="j-1", command="CONFIRM_ACCEPT", status="failed",
    ...                         project_id="p1"))
    {'job_id': 'j-1', 'command': 'CONFIRM_ACCEPT', 'project_id': 'p1'}
    """
    fields: dict[str, Any] = {"job_id": line.job_id, "command": line.command}
    for name in ("command_message", "operation_reason"):
        value = getattr(line, name)
        if value is not None:
            fields[name] = value
    if line.comment_data is not None:
        comment = line.comment_data.to_api()
        if comment:
            fields["comment_data"] = comment
    if line.app_user_id is not None:
        fields["app_user_id"] = line.app_user_id
    if line.project_id:
        fields["project_id"] = line.project_id
    try:
        Entry.checked(fields)
    except EntryError as error:
        raise UsageError(
            f"entry {line.job_id} {line.command} cannot be exported: {error}"
        ) from None
    return fields


def export_manifest(
    lines: Iterable[ReportLine],
    out: Path,
    *,
    force: bool = False,
    header: str | None = None,
    project_ids: AbstractSet[str | None] | None = None,
) -> int:
    """Write ``lines`` as a manifest at ``out`` (YAML or CSV by extension); return the count.

    ``header`` becomes a comment at the top of a YAML manifest. Without ``force`` an existing
    ``out`` is refused (UsageError); with it, replaced atomically. ``project_ids``, the
    distinct ``project_id`` values of ``lines`` (None for a line without one), decides
    where the project goes; without it, ``lines`` is read twice to find them (a
    :class:`~batcher.journal.selection.Selection` knows them: pass its ``project_ids``).

    >>> export_manifest(Selection(Path("out.jsonl")), Path("retry.yaml"))  # doctest: +SKIP
    12
    """
    fmt = format_of(out)
    if project_ids is None:
        if isinstance(lines, Iterator):
            lines = list(lines)
        project_ids = {line.project_id or None for line in lines}
    shared = next(iter(project_ids)) if len(project_ids) == 1 else None
    with output(out, force=force) as stream:
        writer = ManifestWriter(stream, fmt, project_id=shared, header=header)
        for line in lines:
            writer.write(entry_fields(line))
        return writer.close()
