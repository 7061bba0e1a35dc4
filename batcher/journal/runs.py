"""The run record: one JSON line per run in ``REPORT.runs.jsonl``, beside the report.

The report's own lines stay one record type (an entry's outcome), which DuckDB and pandas
read with one call; what a run was — its id, batcher version, endpoint, project, manifests
with their SHA-256, options, start and end, exit code, counts, rates, why it halted — goes to
this sidecar (as S3 Batch Operations leaves a manifest.json beside its completion report).

A run adds its line when it starts (``finished_at`` null) and completes it when it ends, so
a run that crashed shows as started and never finished. The sidecar is rewritten whole
each time — a temporary file, then a rename, mode 0600 — while the run holds the report's
lock, so a reader sees either the old file or the new one, and it always holds one line per
run. It sits beside the report's real path (symlinks resolved); a report reached through a
hard link has its own sidecar.

>>> record = RunRecord(run_id="r1", version="0.2.0", started_at="2026-11-24T13:00:00.000Z")
>>> RunRecord.from_dict(record.to_dict()) == record
True
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from batcher.errors import ReportWriteError, UsageError
from batcher.journal.atomic import atomic_bytes
from batcher.journal.writer import ReportWriter

__all__ = [
    "RUNS_SUFFIX",
    "ManifestInfo",
    "RunRecord",
    "finish_run",
    "read_runs",
    "refuse_other_manifests",
    "runs_path",
    "start_run",
]

RUNS_SUFFIX = ".runs.jsonl"


@dataclass(slots=True)
class ManifestInfo:
    """A manifest a run read: where, its SHA-256, and how many entries it held."""

    path: str
    sha256: str | None = None
    entries: int | None = None

    @classmethod
    def of(
        cls, path: str | os.PathLike[str], *, entries: int | None, read_from: Path | None = None
    ) -> ManifestInfo:
        """Describe a manifest, hashing its bytes (``read_from``: where they are when
        ``path`` is ``"-"`` — the spooled standard input).

        >>> ManifestInfo.of("-", entries=0).to_dict()
        {'path': '-', 'sha256': None, 'entries': 0}
        """
        name = os.fspath(path)
        source = read_from if read_from is not None else (None if name == "-" else Path(name))
        digest = None
        if source is not None:
            hasher = hashlib.sha256()
            with open(source, "rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 20), b""):
                    hasher.update(chunk)
            digest = hasher.hexdigest()
        shown = name if name == "-" else os.path.abspath(name)
        return cls(path=shown, sha256=digest, entries=entries)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class RunRecord:
    """One run of ``batcher run`` on a report, as its sidecar line."""

    run_id: str
    version: str
    #: When the run started and finished (RFC 3339, UTC); ``finished_at`` is None while it
    #: runs, and stays None after a crash.
    started_at: str
    finished_at: str | None = None
    exit_code: int | None = None
    endpoint: str | None = None
    project_id: str | None = None
    manifests: list[ManifestInfo] = field(default_factory=list)
    #: The options it ran with (rate, burst, concurrency, max_attempts, timeout, resume,
    #: limit, ...): whatever the caller passes, never a secret.
    options: dict[str, Any] = field(default_factory=dict)
    #: Entries by outcome and other counts (succeeded, failed, skipped, already_done,
    #: attempts, throttled, ambiguous, confirmed, ...).
    counts: dict[str, int] = field(default_factory=dict)
    rate_limit: float | None = None
    settled_rate: float | None = None
    halted_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in self.__dataclass_fields__},
            "manifests": [m.to_dict() for m in self.manifests],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """A record from its line; unknown fields are ignored, missing ones take defaults,
        and a field of the wrong type (a sidecar edited by hand) is read as missing.

        >>> RunRecord.from_dict({"run_id": "r1", "version": 1, "settled_rate": "x"}).version
        ''
        """

        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else None

        def number(name: str) -> float | None:
            value = data.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            return None

        exit_code = data.get("exit_code")
        options, counts = data.get("options"), data.get("counts")
        manifests = data.get("manifests")
        return cls(
            run_id=text("run_id") or "",
            version=text("version") or "",
            started_at=text("started_at") or "",
            finished_at=text("finished_at"),
            exit_code=exit_code if type(exit_code) is int else None,
            endpoint=text("endpoint"),
            project_id=text("project_id"),
            manifests=[
                ManifestInfo(
                    path=m["path"],
                    sha256=m.get("sha256") if isinstance(m.get("sha256"), str) else None,
                    entries=m.get("entries") if type(m.get("entries")) is int else None,
                )
                for m in (manifests if isinstance(manifests, list) else [])
                if isinstance(m, dict) and isinstance(m.get("path"), str)
            ],
            options=options if isinstance(options, dict) else {},
            counts={
                k: v
                for k, v in (counts if isinstance(counts, dict) else {}).items()
                if type(v) is int
            },
            rate_limit=number("rate_limit"),
            settled_rate=number("settled_rate"),
            halted_reason=text("halted_reason"),
        )


def runs_path(report: str | os.PathLike[str]) -> Path:
    """The sidecar of ``report``: ``REPORT.runs.jsonl`` beside its real path.

    >>> runs_path("/data/r.jsonl").name
    'r.jsonl.runs.jsonl'
    """
    real = Path(os.path.realpath(report))
    return real.with_name(real.name + RUNS_SUFFIX)


def start_run(writer: ReportWriter, record: RunRecord) -> None:
    """Add ``record`` (not finished yet) to the sidecar of the report ``writer`` holds.

    Call it after :meth:`ReportWriter.open` and before anything is sent: it raises
    UsageError (exit 2, nothing sent) when the sidecar cannot be written, or when a file
    that is no run record is in its place.
    """
    try:
        _rewrite(writer, record, strict=True)
    except OSError as error:
        raise UsageError(
            f"cannot write the run record {runs_path(writer.real_path)}: {error.strerror}"
        ) from None


def finish_run(writer: ReportWriter, record: RunRecord) -> None:
    """Replace the run's line with ``record`` (now with ``finished_at``, ``exit_code``,
    ``counts``, ``settled_rate``, ``halted_reason``), before the writer is closed.

    Raises :class:`~batcher.journal.ReportWriteError` when it cannot be written; every
    entry's line is in the report all the same.
    """
    try:
        _rewrite(writer, record, strict=False)
    except (OSError, UsageError) as error:
        why = error.strerror if isinstance(error, OSError) else str(error)
        raise ReportWriteError(
            f"cannot write the run record {runs_path(writer.real_path)}: {why}"
        ) from None


def read_runs(
    report: str | os.PathLike[str], *, on_bad_line: Callable[[int, str], None] | None = None
) -> list[RunRecord] | None:
    """The run records of ``report``, oldest first; None when it has no sidecar.

    >>> read_runs("/nonexistent/r.jsonl") is None
    True
    """
    path = runs_path(report)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        if on_bad_line is not None:
            on_bad_line(0, f"cannot read {path}: {error.strerror}")
        return None
    records = []
    for lineno, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = RunRecord.from_dict(_parse(raw))
        except (ValueError, TypeError) as error:
            if on_bad_line is not None:
                on_bad_line(lineno, f"not a run record: {error}")
            continue
        records.append(record)
    return records


def refuse_other_manifests(report: Path, digests: Sequence[str | None]) -> None:
    """Raise UsageError (exit 2) when ``report``'s earlier runs all read other manifests
    (by SHA-256) than ``digests``: resuming would mix two manifests' entries in one report
    without a word. Runs whose manifests were not hashed (none recorded) say nothing.

    >>> refuse_other_manifests(Path("/nonexistent/r.jsonl"), ["ab"])
    """
    current = sorted(d for d in digests if d)
    earlier = [
        (record, sorted(m.sha256 for m in record.manifests if m.sha256))
        for record in read_runs(report) or ()
    ]
    earlier = [(record, theirs) for record, theirs in earlier if theirs]
    if not current or not earlier or any(theirs == current for _, theirs in earlier):
        return
    record, theirs = earlier[-1]
    names = ", ".join(m.path for m in record.manifests) or "?"
    raise UsageError(
        f"report {report} was written from other manifests (its run {record.run_id} read "
        f"{names}, SHA-256 {', '.join(d[:12] for d in theirs)}; these are "
        f"{', '.join(d[:12] for d in current)}): resuming would mix their entries in one "
        "report. Run the same manifests, choose another --report, or add "
        "--allow-other-manifest to continue it with these on purpose"
    )


def _parse(raw: bytes) -> dict[str, Any]:
    data = orjson.loads(raw)
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        raise ValueError("no run_id")
    for name in ("version", "started_at"):
        data.setdefault(name, "")
    return data


def _rewrite(writer: ReportWriter, record: RunRecord, *, strict: bool) -> None:
    path = runs_path(writer.real_path)
    if writer.closed:  # the sidecar is only ever written under the report's lock
        raise ReportWriteError(f"report {writer.path} is closed; its run record was not written")
    kept: list[bytes] = []
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = b""
    for lineno, raw in enumerate(existing.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = _parse(raw)
        except ValueError:
            if strict:
                raise UsageError(
                    f"{path}:{lineno} is not a batcher run record; the run record of report "
                    f"{writer.path} goes there: move that file away"
                ) from None
            continue
        if data["run_id"] != record.run_id:
            kept.append(raw.rstrip(b"\r\n"))
    line = writer.redact(orjson.dumps(record.to_dict()))
    _atomic_replace(path, b"".join(raw + b"\n" for raw in [*kept, line]))


def _atomic_replace(path: Path, data: bytes) -> None:
    with atomic_bytes(path, replace=True) as stream:  # 0600, as mkstemp makes it
        stream.write(data)
