"""Intent records: what a run was about to send, found by every name its report goes by.

A ``kill -9`` (or a power cut) leaves no line for the entries whose requests were on the
wire, and those may have executed. Before a worker sends a state-changing command for the
first time it writes the entry and the time into its own fixed slot of its run's intent
file (one ``pwrite``, overwritten by its next entry); ``--resume`` treats every intent
with no report line written since as in doubt, and reads the job's record before sending
it again.

A report can be resumed under another name than the one that crashed: a hard link or an
``mv`` into another directory, a copy. So intent files do not sit beside a name: they live
in one state directory (``$BATCHER_STATE_DIR``, else ``$XDG_STATE_HOME/batcher``, else
``~/.local/state/batcher``), one per run (``RUN_ID.intents``), and each begins with the
report's fingerprint when the run began: its size and the SHA-256 of the bytes before that
point. A report only ever grows, so every name and every copy of it still begins with those
bytes, and a resume takes in each intent file whose fingerprint its report matches (a
report that was empty then matches only with the same manifests). A run that ends with
every intent settled removes its file; files of crashed runs are kept (another copy of the
report may still need them: an intent with a line after it is settled anyway) and pruned
after :data:`KEEP_DAYS`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import orjson

from batcher.errors import UsageError

if TYPE_CHECKING:
    from batcher.entry import Entry

#: Bytes per slot: a JSON line padded with spaces (ids are at most 64 characters).
SLOT_SIZE = 384
#: How much of the report before the run's start its fingerprint covers.
FINGERPRINT_BYTES = 1 << 16
#: Intent files of crashed runs older than this are removed.
KEEP_DAYS = 30
_SUFFIX = ".intents"
#: A file larger than this is not an intent file (10,000 workers' slots take 3.7 MiB).
_MAX_BYTES = 64 << 20


def state_dir() -> Path:
    """Where intent files live (see the module's text)."""
    chosen = os.environ.get("BATCHER_STATE_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local/state")
    return Path(base) / "batcher"


def check_state_dir() -> None:
    """Raise UsageError if intent files could not be written (what ``--dry-run`` checks): the
    state directory, or the nearest folder that would hold it, must be writable."""
    folder = state_dir()
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise UsageError(
            f"cannot write intent files in {state_dir()} ({folder} is not a writable "
            "directory); set BATCHER_STATE_DIR to a writable directory"
        )


@dataclass(frozen=True, slots=True)
class InFlight:
    """An entry that was sent, and when (UTC, as in report lines)."""

    job_id: str
    command: str
    project_id: str | None
    sent_at: str


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A report as a run found it: its size, and the SHA-256 of its last bytes before that."""

    size: int
    tail: str

    @classmethod
    def of(cls, stream: IO[bytes], size: int) -> Fingerprint:
        start = max(0, size - FINGERPRINT_BYTES)
        stream.seek(start)
        return cls(size, hashlib.sha256(stream.read(size - start)).hexdigest())

    def matches(self, stream: IO[bytes], size: int) -> bool:
        """Whether a report of ``size`` bytes (read from ``stream``) begins as this one did."""
        return size >= self.size and Fingerprint.of(stream, self.size) == self


class IntentFile:
    """A run's intent file, open for writing: :meth:`note` before a worker's first send.

    >>> import tempfile, io
    >>> folder = Path(tempfile.mkdtemp())
    >>> mark = Fingerprint.of(io.BytesIO(b""), 0)
    >>> intents = IntentFile.create(folder, "r1", mark, manifests=["ab"], slots=4)
    >>> intents.note(3, InFlight("job-1", "SUBMITVERIFYING", "p", "2026-11-25T08:00:00.000Z"))
    >>> [item.job_id for item in left_in_flight(io.BytesIO(b""), 0, ["ab"], folder=folder)]
    ['job-1']
    >>> left_in_flight(io.BytesIO(b""), 0, ["cd"], folder=folder)
    []
    >>> intents.remove()
    """

    def __init__(self, path: Path, fd: int, slots: int) -> None:
        self.path = path
        self._fd = fd
        self.slots = slots
        #: Whether anything was noted (if not, nothing was sent).
        self.used = False

    @classmethod
    def create(
        cls,
        folder: Path,
        run_id: str,
        mark: Fingerprint,
        *,
        manifests: Sequence[str | None],
        slots: int,
    ) -> IntentFile:
        """A new intent file for ``run_id`` in ``folder`` (made 0700 if missing), mode 0600:
        a header naming the report's fingerprint and the manifests' SHA-256, then ``slots``
        empty slots. Raises UsageError (nothing sent) when it cannot be made."""
        path = folder / f"{run_id}{_SUFFIX}"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise UsageError(
                f"cannot write the intent file {path}: {error.strerror or error}; set "
                "BATCHER_STATE_DIR to a writable directory. Nothing was sent"
            ) from None
        header = {"run": run_id, "size": mark.size, "tail": mark.tail, "manifests": manifests}
        os.pwrite(fd, _slot(orjson.dumps(header)), 0)
        _prune(folder)
        return cls(path, fd, slots)

    def note(self, slot: int, entry: InFlight) -> None:
        """Write ``entry`` into ``slot`` (in the kernel, safe from a crash, on return)."""
        self.used = True
        data = orjson.dumps(
            {
                "job_id": entry.job_id,
                "command": entry.command,
                "project_id": entry.project_id,
                "sent_at": entry.sent_at,
            }
        )
        os.pwrite(self._fd, _slot(data), (slot + 1) * SLOT_SIZE)

    def sent(self, slot: int, entry: Entry, sent_at: datetime) -> None:
        """Note that ``entry`` is about to be sent from ``slot`` (what the runner is handed:
        it writes down, into the journal, with no detour through the layer above). A slot
        that cannot be written stops the run, as a report line that cannot be written does."""
        from batcher.errors import ReportWriteError

        stamp = sent_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        try:
            self.note(slot, InFlight(entry.job_id, entry.command, entry.project_id, stamp))
        except OSError as error:
            cause = f"cannot write {self.path}: {error.strerror or error}"
            raise ReportWriteError(
                f"{cause}; the run stops. Every line written before this is in the "
                "report: fix the cause, then continue with the same command plus --resume",
                cause=cause,
            ) from None

    def carry(self, items: Sequence[InFlight]) -> None:
        """Keep ``items`` (entries in doubt) after the workers' slots; once no worker writes."""
        for i, item in enumerate(items):
            self.note(self.slots + i, item)
        self.slots += len(items)

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        """Close and delete the file: every intent in it is settled by a report line."""
        self.close()
        self.path.unlink(missing_ok=True)


def _slot(data: bytes) -> bytes:
    return data.ljust(SLOT_SIZE - 1)[: SLOT_SIZE - 1] + b"\n"


def left_in_flight(
    report: IO[bytes], size: int, manifests: Sequence[str | None], *, folder: Path | None = None
) -> list[InFlight]:
    """The intents of every run of this report (read from ``report``, ``size`` bytes long)
    found in the state directory. A slot that cannot be read (a crash mid-``pwrite``) is
    left out: the entry's send had not started, since the slot is written before it."""
    found: list[InFlight] = []
    for mark, theirs, items in _intent_files(folder or state_dir()):
        if mark.size == 0 and theirs != list(manifests):
            continue  # an empty report then: only the same manifests make it this one
        with contextlib.suppress(OSError):
            if mark.matches(report, size):
                found += items
    return found


def _intent_files(folder: Path) -> list[tuple[Fingerprint, list[object], list[InFlight]]]:
    """Each intent file's fingerprint, manifests' SHA-256 and intents."""
    try:
        paths = sorted(folder.glob(f"*{_SUFFIX}"))
    except OSError:
        return []
    files = []
    for path in paths:
        try:
            if not path.is_file() or path.stat().st_size > _MAX_BYTES:
                continue
            raw = path.read_bytes()
        except OSError:
            continue
        slots = [_parsed(raw[i : i + SLOT_SIZE]) for i in range(0, len(raw), SLOT_SIZE)]
        header = slots[0] if slots else None
        size, tail = (None, None) if header is None else (header.get("size"), header.get("tail"))
        if header is None or type(size) is not int or not isinstance(tail, str):
            continue
        theirs = header.get("manifests")
        files.append(
            (
                Fingerprint(size, tail),
                theirs if isinstance(theirs, list) else [],
                [item for slot in slots[1:] if (item := _intent(slot))],
            )
        )
    return files


def _parsed(chunk: bytes) -> dict[str, object] | None:
    try:
        value = orjson.loads(chunk.strip(b" \n\x00") or b"null")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _intent(item: dict[str, object] | None) -> InFlight | None:
    if item is None:
        return None
    job_id, command, sent_at = item.get("job_id"), item.get("command"), item.get("sent_at")
    project = item.get("project_id")
    if isinstance(job_id, str) and isinstance(command, str) and isinstance(sent_at, str):
        return InFlight(job_id, command, project if isinstance(project, str) else None, sent_at)
    return None


def _prune(folder: Path) -> None:
    cutoff = time.time() - KEEP_DAYS * 86400
    with contextlib.suppress(OSError):
        for path in folder.glob(f"*{_SUFFIX}"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
