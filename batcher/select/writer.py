"""Manifests written out, entry by entry: what ``batcher select`` and report exports make.

A manifest written here is one ``batcher run`` takes as it is. It is streamed (memory flat
however many entries), and a file appears atomically (temporary file, then a link or a
rename): never half-written, and never over an existing file unless forced.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal

import yaml

from batcher.errors import BatcherError, UsageError
from batcher.journal.atomic import new_file
from batcher.read.csv_manifest import CSV_COLUMNS

Format = Literal["csv", "yaml"]

_FORMATS: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}

#: Bytes of a manifest for standard output kept in memory before it spills to a file.
_SPOOL_IN_MEMORY = 8 * 1024 * 1024

#: The columns written to a CSV manifest, in order: every column a manifest may have.
WRITE_COLUMNS: tuple[str, ...] = CSV_COLUMNS

try:  # the C dumper is several times faster, when PyYAML was built with libyaml
    _Dumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover
    _Dumper = yaml.SafeDumper


def format_of(path: Path, given: str | None = None, *, flag: str | None = None) -> Format:
    """``"yaml"`` or ``"csv"``: ``given``, else from the file name's extension; ``flag`` is
    the caller's flag that names a format, if it has one (the error offers it).

    >>> format_of(Path("retry.yml")), format_of(Path("x.txt"), "csv")
    ('yaml', 'csv')
    """
    if given is not None:
        if given not in ("csv", "yaml"):
            raise UsageError(f"unknown manifest format {given!r}: use csv or yaml")
        return "yaml" if given == "yaml" else "csv"
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        offer = f" (or give {flag})" if flag else ""
        raise UsageError(
            f"cannot tell the manifest format of {path}: name it .yaml, .yml or .csv{offer}"
        )
    return fmt


class ManifestWriter:
    """Writes entries (dicts of manifest fields) to ``stream`` as CSV or YAML.

    YAML gets ``project_id`` at the top when all entries share ``project_id`` (given up
    front); CSV carries it in a column.

    >>> import io
    >>> out = io.StringIO()
    >>> writer = ManifestWriter(out, "yaml", project_id="p1")
    >>> writer.write({"job_id": "j1", "command": "CONFIRM_REPAIR"})
    >>> print(out.getvalue(), end="")
    project_id: p1
    jobs:
    - job_id: j1
      command: CONFIRM_REPAIR
    """

    def __init__(
        self,
        stream: IO[str],
        fmt: Format,
        *,
        project_id: str | None = None,
        header: str | None = None,
    ) -> None:
        self._stream = stream
        self._fmt = fmt
        self._project_id = project_id
        self.count = 0
        if fmt == "yaml":
            if header:
                stream.writelines(f"# {text}\n" for text in header.splitlines())
            if project_id is not None:
                stream.write(f"project_id: {project_id}\n")
            self._csv: Any = None
        else:
            self._csv = csv.writer(stream, lineterminator="\n")
            self._csv.writerow(WRITE_COLUMNS)

    def write(self, fields: dict[str, Any]) -> None:
        """One entry: ``job_id``, ``command`` and any other manifest field."""
        if self._fmt == "yaml":
            if self.count == 0:
                self._stream.write("jobs:\n")
            entry = dict(fields)
            if self._project_id is not None and entry.get("project_id") == self._project_id:
                del entry["project_id"]
            # One entry at a time, so memory stays flat; a block sequence at column 0 under
            # "jobs:" is valid YAML.
            self._stream.write(
                yaml.dump(
                    [entry],
                    Dumper=_Dumper,
                    allow_unicode=True,
                    sort_keys=False,
                    default_flow_style=False,
                    width=1_000_000,
                )
            )
        else:
            self._csv.writerow(csv_row(fields))
        self.count += 1

    def close(self) -> int:
        """Finish the manifest; return how many entries it holds."""
        if self._fmt == "yaml" and self.count == 0:
            self._stream.write("jobs: []\n")
        return self.count


def csv_row(fields: dict[str, Any]) -> list[str]:
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
    texts = [flat.get(column) for column in WRITE_COLUMNS if column != "attachment_name"]
    texts += names or []
    # The CSV reader trims cells and reads an empty cell as "not set": a value it would
    # read back differently must not be written as CSV (every request field is kept).
    if any(isinstance(t, str) and (t != t.strip() or not t) for t in texts):
        raise UsageError(
            f"{where}: a value that is empty or starts or ends with white space cannot be "
            "kept exactly in CSV; export to .yaml instead"
        )
    return [str(flat.get(column) or "") for column in WRITE_COLUMNS]


@contextlib.contextmanager
def output(out: Path | None, *, force: bool = False) -> Iterator[IO[str]]:
    """A text stream to write a manifest to: standard output (``out`` None), or a file that
    appears atomically when the block ends without an error (and not at all otherwise).

    Standard output gets the manifest only once it is whole: a selection that fails half
    way must not feed ``batcher run -`` half a manifest, so it is spooled (in memory up to
    a few MB, then in a temporary file) and copied out at the end.
    """
    if out is None:
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            spooled = io.TextIOWrapper(spool, encoding="utf-8", newline="")
            try:
                try:
                    yield spooled
                    spooled.flush()
                except OSError as error:  # the spool spilled to a full TMPDIR
                    raise BatcherError(
                        f"cannot hold the manifest until it is whole: {error.strerror or error}"
                        f" (in {tempfile.gettempdir()}; set TMPDIR, or use --output); nothing "
                        "was written"
                    ) from None
                spool.seek(0)
                try:
                    _copy_to_stdout(spool)
                except OSError as error:  # a closed pipe, a full disk behind stdout
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush
                    os.close(devnull)
                    raise BatcherError(
                        f"cannot write the manifest to standard output: {error.strerror or error}"
                    ) from None
            finally:
                spooled.detach()
        return
    with new_file(out, force=force) as raw:
        # newline="" so the csv module's own line endings pass through unchanged.
        stream = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            yield stream
            stream.flush()
        finally:
            stream.detach()  # the raw stream is closed by new_file


def _copy_to_stdout(spool: tempfile.SpooledTemporaryFile[bytes]) -> None:
    sys.stdout.flush()
    binary = getattr(sys.stdout, "buffer", None)
    if binary is None:  # a text-only stream standing in for stdout
        sys.stdout.write(spool.read().decode("utf-8"))
    else:
        shutil.copyfileobj(spool, binary)
        binary.flush()
    sys.stdout.flush()
