"""What was in flight: one fixed slot per worker, beside the report (``REPORT.inflight``).

A ``kill -9`` (or a power cut) leaves no line for the entries whose requests were on the
wire, and those may have executed. Before a worker sends a state-changing command for the
first time it writes the entry and the time into its own slot (one ``pwrite``); the slot
is simply overwritten by the worker's next entry. After a crash the file holds at most one
entry per worker, and ``--resume`` treats every slot whose entry has no report line written
since as in doubt: it checks the job's record before sending it again. Entries still in
doubt that a run does not reach (``--limit``, a halt) are carried into its own file, which
replaces the old one whole; a run that ends with none removes the file.

Each slot names the report file it belongs to by identity (device and inode), so a report
renamed, or resumed through another hard link in its directory, still finds the slots its
crashed run left under the old name (:func:`strays`).
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from batcher.journal.atomic import atomic_bytes

if TYPE_CHECKING:
    from batcher.entry import Entry

#: Bytes per slot: the entry as a JSON line, padded with spaces (ids are at most 64 chars).
SLOT_SIZE = 384
#: A file larger than this is not a slot file (10,000 workers' slots take 3.7 MiB).
_MAX_STRAY_BYTES = 64 << 20


def inflight_path(report: Path) -> Path:
    """``REPORT.inflight``, beside the report's real path (a symlink to the report finds
    the same file, as it finds the same run record).

    >>> inflight_path(Path("/data/r.jsonl")).name
    'r.jsonl.inflight'
    """
    real = Path(os.path.realpath(report))
    return real.with_name(real.name + ".inflight")


@dataclass(frozen=True, slots=True)
class InFlight:
    """An entry that was sent, and when (UTC, as in report lines)."""

    job_id: str
    command: str
    project_id: str | None
    sent_at: str
    #: The report file's identity, ``"DEV:INO"`` (None in slots written before it was kept).
    report: str | None = None
    #: The run that sent it (its lines carry this ``run_id``).
    run: str | None = None
    #: The report's size when that run began (a report renamed since is at least as long).
    since_size: int | None = None


class InflightSlots:
    """The slot file, open for writing: :meth:`note` before a worker's first send.

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "r.jsonl.inflight"
    >>> slots = InflightSlots.open(path, slots=4)
    >>> slots.note(3, InFlight("job-1", "SUBMITVERIFYING", "p", "2026-11-25T08:00:00.000Z"))
    >>> [(item.job_id, item.sent_at) for item in read_inflight(path)]
    [('job-1', '2026-11-25T08:00:00.000Z')]
    >>> slots.close()
    """

    def __init__(
        self, path: Path, fd: int, slots: int, report: str | None = None, run: str | None = None,
        since_size: int | None = None,
    ) -> None:  # fmt: skip
        self._path = path
        self._fd = fd
        self.slots = slots
        self._report = report
        self._run = run
        self._since_size = since_size
        #: Whether anything was ever noted (if not, nothing was sent).
        self.used = False

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        slots: int,
        carried: Sequence[InFlight] = (),
        report: str | None = None,
        run: str | None = None,
        since_size: int | None = None,
    ) -> InflightSlots:
        """Open the slot file afresh (0600): ``slots`` empty ones for the workers, then
        ``carried`` (entries still in doubt from an earlier run, which the caller read from
        the old file). The new file replaces the old one whole, so a crash at any moment
        leaves one or the other, and no doubt is ever lost. ``report`` (``"DEV:INO"``) and
        ``run`` (the run id) are written into every slot (a carried entry keeps its run)."""
        items = [(slots + i, item) for i, item in enumerate(carried)]
        fd = _replace(path, items, report, run, since_size)
        opened = cls(path, fd, slots + len(carried), report, run, since_size)
        opened.used = bool(carried)
        return opened

    def note(self, slot: int, entry: InFlight) -> None:
        """Write ``entry`` into ``slot`` (it is in the kernel, safe from a crash, on return)."""
        self.used = True
        data = _encoded(entry, self._report, self._run, self._since_size)
        os.pwrite(self._fd, data, slot * SLOT_SIZE)

    def sent(self, slot: int, entry: Entry, sent_at: datetime) -> None:
        """Note that ``entry`` is about to be sent from ``slot`` (what the runner is handed:
        it writes down, into the journal, with no detour through the layer above). A slot
        that cannot be written stops the run, as a report line that cannot be written does."""
        from batcher.errors import ReportWriteError

        stamp = sent_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            self.note(slot, InFlight(entry.job_id, entry.command, entry.project_id, stamp))
        except OSError as error:
            cause = f"cannot write {self._path}: {error.strerror or error}"
            raise ReportWriteError(
                f"{cause}; the run stops. Every line written before this is in the "
                "report: fix the cause, then continue with the same command plus --resume",
                cause=cause,
            ) from None

    def clear(self, *, keep: Sequence[InFlight] = ()) -> None:
        """Empty the file (nothing is in flight: the run ended and every line is written),
        but for ``keep``, entries still in doubt: written into a new file that replaces
        this one whole."""
        if not keep:
            os.ftruncate(self._fd, 0)
            return
        fd = _replace(self._path, list(enumerate(keep)), self._report, self._run, self._since_size)
        os.close(self._fd)
        self._fd = fd

    def carry(self, items: Sequence[InFlight]) -> None:
        """Add ``items`` to the file (entries in doubt), keeping what it holds; the new
        file replaces the old one whole. Only once no worker writes to it any more."""
        held = read_inflight(self._path)
        items = [*held, *items]
        fd = _replace(self._path, list(enumerate(items)), self._report, self._run, self._since_size)
        os.close(self._fd)
        self._fd = fd
        self.used = True

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1


def _encoded(entry: InFlight, report: str | None, run: str | None, since_size: int | None) -> bytes:
    data = orjson.dumps(
        {
            "job_id": entry.job_id,
            "command": entry.command,
            "project_id": entry.project_id,
            "sent_at": entry.sent_at,
            "report": report,
            "run": entry.run or run,
            "since_size": entry.since_size if entry.run else since_size,
        }
    )
    return data.ljust(SLOT_SIZE - 1)[: SLOT_SIZE - 1] + b"\n"


def _replace(
    path: Path,
    items: Sequence[tuple[int, InFlight]],
    report: str | None,
    run: str | None,
    since_size: int | None,
) -> int:
    """Put a slot file holding ``items`` (slot, entry) at ``path`` in one rename; return
    a descriptor of it, open for writing."""
    size = (max(slot for slot, _ in items) + 1) * SLOT_SIZE if items else 0
    content = bytearray(size)
    for slot, item in items:
        content[slot * SLOT_SIZE : (slot + 1) * SLOT_SIZE] = _encoded(item, report, run, since_size)
    with atomic_bytes(path, replace=True) as stream:
        stream.write(content)
    return os.open(path, os.O_RDWR | os.O_CLOEXEC)


def read_inflight(path: Path) -> list[InFlight]:
    """The entries a crashed run left in its slots (none when the file is missing).

    A slot that cannot be read (a crash mid-``pwrite``) is left out: the entry's send had
    not started, since the slot is written before the request.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    found: list[InFlight] = []
    for start in range(0, len(raw), SLOT_SIZE):
        chunk = raw[start : start + SLOT_SIZE].strip(b" \n\x00")
        if not chunk:
            continue
        try:
            item = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            continue
        if isinstance(item, dict) and all(
            isinstance(item.get(name), str) for name in ("job_id", "command", "sent_at")
        ):
            project, report, run = item.get("project_id"), item.get("report"), item.get("run")
            size = item.get("since_size")
            found.append(
                InFlight(
                    item["job_id"],
                    item["command"],
                    project if isinstance(project, str) else None,
                    item["sent_at"],
                    report if isinstance(report, str) else None,
                    run if isinstance(run, str) else None,
                    size if type(size) is int else None,
                )
            )
    return found


def report_identity(file: tuple[int, int]) -> str:
    """A report file's identity ``(st_dev, st_ino)`` as the slots write it: ``"DEV:INO"``.

    >>> report_identity((8, 42))
    '8:42'
    """
    return f"{file[0]}:{file[1]}"


def strays(report: Path, identity: str) -> list[Path]:
    """Slot files beside ``report`` under another name that belong to the same file: left
    by a run of it under a name it no longer has (renamed, or reached through another hard
    link). Their entries are in doubt as much as those of ``REPORT.inflight``.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> old = InflightSlots.open(folder / "old.jsonl.inflight", slots=1, report="8:42")
    >>> old.note(0, InFlight("job-1", "SUBMITVERIFYING", "p", "2026-11-25T08:00:00.000Z"))
    >>> [path.name for path in strays(folder / "new.jsonl", "8:42")]
    ['old.jsonl.inflight']
    >>> strays(folder / "new.jsonl", "8:43")
    []
    """
    own = inflight_path(report)
    try:
        candidates = sorted(own.parent.glob("*.inflight"))
    except OSError:
        return []
    found = []
    for path in candidates:
        try:
            if path == own or not path.is_file() or path.stat().st_size > _MAX_STRAY_BYTES:
                continue
            items = read_inflight(path)
        except OSError:
            continue
        if any(item.report == identity for item in items):
            found.append(path)
    return found


def left_in_flight(
    report: Path, identity: str, *, created: bool = False
) -> tuple[list[InFlight], list[Path]]:
    """What crashed runs of the report left in flight: ``REPORT.inflight``'s entries and
    those of :func:`strays` that belong to this file; and the strays' paths.

    A stray belongs to this file when it names the file's identity, and the report holds
    lines of a run that wrote it, or (a run that crashed before its first line) was there
    before this run (not ``created`` by it) and is as long as when that run began. A new
    report on a deleted one's inode is not the same report: its slots are left alone."""
    found = read_inflight(inflight_path(report))
    taken = []
    for path in strays(report, identity):
        items = [item for item in read_inflight(path) if item.report == identity]
        runs = {item.run for item in items if item.run}
        if not runs:
            continue
        sizes = [item.since_size for item in items if item.since_size is not None]
        if _mentions_a_run(report, runs) or (not created and sizes and _size(report) >= max(sizes)):
            found += items
            taken.append(path)
    return found, taken


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _mentions_a_run(report: Path, runs: set[str]) -> bool:
    """Whether ``report`` has a line of one of ``runs`` (as the writer spells run_id)."""
    needles = [b'"run_id":' + orjson.dumps(run) for run in runs]
    try:
        with open(report, "rb") as stream:
            if os.fstat(stream.fileno()).st_size == 0:
                return False
            with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return any(view.find(needle) >= 0 for needle in needles)
    except (OSError, ValueError):
        return False
