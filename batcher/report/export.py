"""Write a manifest back out of report lines, so failed entries can be run again.

Every report line carries its entry's request fields, so the manifest rebuilt here asks
for exactly what the original did — including the project it went to: a YAML manifest gets
a top-level ``project_id`` when every exported entry shares one, and a per-entry
``project_id`` otherwise; a CSV manifest gets a ``project_id`` column when any entry has
one. The file appears atomically (temporary file, then a rename or a hard link), never
half-written, and never over an existing file unless forced.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import IO, Any

import yaml
from pydantic import ValidationError

from ..entry import Entry
from ..errors import UsageError
from ..manifest import CSV_COLUMNS
from .line import ReportLine

_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}

try:  # the C dumper is several times faster, when PyYAML was built with libyaml
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover
    _Dumper = yaml.SafeDumper


def manifest_format(path: Path) -> str:
    """``"yaml"`` or ``"csv"``, from the file name's extension.

    >>> manifest_format(Path("retry.yml"))
    'yaml'
    """
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the manifest format of {path}: name it .yaml, .yml or .csv")
    return fmt


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
        comment = line.comment_data.model_dump(mode="json", exclude_none=True)
        if comment:
            fields["comment_data"] = comment
    if line.app_user_id is not None:
        fields["app_user_id"] = line.app_user_id
    if line.project_id:
        fields["project_id"] = line.project_id
    try:
        Entry.model_validate(fields)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(
            f"entry {line.job_id} {line.command} cannot be exported: {where}: {first['msg']}"
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
    :class:`~batcher.report.selection.Selection` knows them: pass its ``project_ids``).

    >>> export_manifest(Selection(Path("out.jsonl")), Path("retry.yaml"))  # doctest: +SKIP
    12
    """
    fmt = manifest_format(out)
    if out.exists() and not force:
        raise UsageError(f"{out} already exists; add --force to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"cannot write {out}: no directory {out.parent}")
    if project_ids is None:
        if isinstance(lines, Iterator):
            lines = list(lines)
        project_ids = {line.project_id or None for line in lines}
    shared = next(iter(project_ids)) if len(project_ids) == 1 else None
    if fmt == "yaml":
        return _atomic_write(
            out, force=force, write=lambda stream: _write_yaml(stream, lines, header, shared)
        )
    with_column = any(project_ids)
    return _atomic_write(
        out, force=force, write=lambda stream: _write_csv(stream, lines, with_column)
    )


def _atomic_write(out: Path, *, force: bool, write: Callable[[IO[str]], int]) -> int:
    try:
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    tmp = Path(tmp_name)
    try:
        # newline="" so the csv module's own line endings pass through unchanged.
        with open(fd, "w", encoding="utf-8", newline="") as stream:
            count = write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if force:
            os.replace(tmp, out)
        else:
            # link() fails if ``out`` appeared meanwhile, where rename() would clobber it.
            try:
                os.link(tmp, out)
            except FileExistsError:
                raise UsageError(f"{out} already exists; add --force to replace it") from None
    except OSError as error:
        raise UsageError(f"cannot write {out}: {error.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return count


def _write_yaml(
    stream: IO[str], lines: Iterable[ReportLine], header: str | None, project_id: str | None
) -> int:
    if header:
        stream.writelines(f"# {text}\n" for text in header.splitlines())
    if project_id is not None:
        stream.write(_dump({"project_id": project_id}))
    count = 0
    for line in lines:
        if count == 0:
            stream.write("jobs:\n")
        fields = entry_fields(line)
        # Said once at the top; ``project_ids`` promised every entry is in that project.
        if project_id is not None and fields.pop("project_id", None) != project_id:
            raise ValueError(f"entry {line.job_id} {line.command} is not in {project_id}")
        # One entry at a time, so memory stays flat however many are exported; a block
        # sequence at column 0 under "jobs:" is valid YAML.
        stream.write(_dump([fields]))
        count += 1
    if count == 0:
        stream.write("jobs: []\n")
    return count


def _dump(data: Any) -> str:
    return str(
        yaml.dump(
            data,
            Dumper=_Dumper,
            allow_unicode=True,
            sort_keys=False,
            default_flow_style=False,
            width=1_000_000,
        )
    )


def csv_columns(*, project_id: bool) -> tuple[str, ...]:
    """The columns of an exported CSV manifest: the manifest's own, and ``project_id`` when
    an entry has one.

    >>> csv_columns(project_id=True)[-1]
    'project_id'
    """
    if project_id and "project_id" not in CSV_COLUMNS:
        return (*CSV_COLUMNS, "project_id")
    return CSV_COLUMNS


def _write_csv(stream: IO[str], lines: Iterable[ReportLine], project_id: bool) -> int:
    columns = csv_columns(project_id=project_id)
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for line in lines:
        writer.writerow(csv_row(entry_fields(line), columns))
        count += 1
    return count


def csv_row(fields: dict[str, Any], columns: tuple[str, ...] = CSV_COLUMNS) -> list[str]:
    """One CSV row for an entry's fields (``comment_data`` flattened, names ``;``-joined).

    >>> csv_row({"job_id": "j", "command": "C", "comment_data": {"attachment_name": ["a", "b"]}})
    ['j', 'C', '', '', '', '', 'a;b', '', '']
    """
    comment = fields.get("comment_data") or {}
    names = comment.get("attachment_name")
    where = f"entry {fields['job_id']} {fields['command']}"
    if names and any(";" in name for name in names):
        raise UsageError(
            f"{where}: an attachment name contains ';', which CSV uses to separate names; "
            "export to .yaml instead"
        )
    if names is not None and not names:
        raise UsageError(
            f"{where}: an empty attachment name list cannot be written as CSV; "
            "export to .yaml instead"
        )
    flat = {**fields, **comment, "attachment_name": ";".join(names or ())}
    texts = [flat.get(column) for column in columns if column != "attachment_name"]
    texts += names or []
    # The CSV reader trims cells and reads an empty cell as "not set": a value it would
    # read back differently must not be exported as CSV (every request field is kept).
    if any(isinstance(t, str) and (t != t.strip() or not t) for t in texts):
        raise UsageError(
            f"{where}: a value that is empty or starts or ends with white space cannot be "
            "kept exactly in CSV; export to .yaml instead"
        )
    return [str(flat.get(column) or "") for column in columns]
