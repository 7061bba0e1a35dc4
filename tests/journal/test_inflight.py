"""Intent files: what a crash leaves, and which reports find it (by content, not by name)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from batcher.errors import UsageError
from batcher.journal import intents
from batcher.journal.intents import Fingerprint, InFlight, IntentFile, left_in_flight

DOUBT = InFlight("job-5", "SUBMITVERIFYING", "p1", "2026-11-24T13:00:05.000Z")
OTHER = InFlight("job-6", "CONFIRM_REPAIR", None, "2026-11-24T13:00:06.000Z")
BEFORE = b'{"job_id":"j0","command":"C","status":"succeeded"}\n' * 3


def _intents(folder: Path, report: bytes, *items: InFlight, manifests: list[str | None]) -> None:
    """A run that began on ``report`` and was killed with ``items`` in flight (no close)."""
    mark = Fingerprint.of(io.BytesIO(report), len(report))
    file = IntentFile.create(folder, f"run-{len(os.listdir(folder)) if folder.exists() else 0}",
                             mark, manifests=manifests, slots=len(items))  # fmt: skip
    for slot, item in enumerate(items):
        file.note(slot, item)


def _found(folder: Path, report: bytes, manifests: list[str | None]) -> list[InFlight]:
    return left_in_flight(io.BytesIO(report), len(report), manifests, folder=folder)


def test_every_copy_or_name_of_the_report_finds_its_intents(tmp_path: Path) -> None:
    _intents(tmp_path, BEFORE, DOUBT, OTHER, manifests=["m1"])
    later = BEFORE + b'{"job_id":"job-9","command":"C","status":"failed"}\n'
    assert _found(tmp_path, BEFORE, ["m1"]) == [DOUBT, OTHER]
    # Lines written since (by the crashed run, or a later one) do not hide them, nor do
    # other manifests: the report's own bytes say it is that report.
    assert _found(tmp_path, later, ["m2"]) == [DOUBT, OTHER]


def test_another_report_does_not_find_them(tmp_path: Path) -> None:
    _intents(tmp_path, BEFORE, DOUBT, manifests=["m1"])
    other = BEFORE.replace(b"j0", b"j1")
    assert _found(tmp_path, other, ["m1"]) == []
    assert _found(tmp_path, BEFORE[:-10], ["m1"]) == []  # shorter than when the run began


def test_a_report_empty_when_the_run_began_needs_the_same_manifests(tmp_path: Path) -> None:
    _intents(tmp_path, b"", DOUBT, manifests=["m1", None])
    assert _found(tmp_path, b"", ["m1", None]) == [DOUBT]
    assert _found(tmp_path, BEFORE, ["m1", None]) == [DOUBT]  # its lines came after
    assert _found(tmp_path, b"", ["m2"]) == []


def test_carried_entries_follow_the_workers_slots(tmp_path: Path) -> None:
    mark = Fingerprint.of(io.BytesIO(BEFORE), len(BEFORE))
    file = IntentFile.create(tmp_path, "run-1", mark, manifests=[], slots=2)
    file.note(1, DOUBT)
    file.carry([OTHER])
    assert file.slots == 3 and file.used
    assert _found(tmp_path, BEFORE, []) == [DOUBT, OTHER]
    file.remove()
    assert _found(tmp_path, BEFORE, []) == [] and not file.path.exists()


def test_a_torn_slot_or_a_stranger_file_is_left_out(tmp_path: Path) -> None:
    _intents(tmp_path, BEFORE, DOUBT, OTHER, manifests=[])
    (path,) = tmp_path.glob("*.intents")
    data = bytearray(path.read_bytes())
    data[intents.SLOT_SIZE : intents.SLOT_SIZE + 10] = b"\x00" * 10  # DOUBT's slot
    path.write_bytes(bytes(data))
    (tmp_path / "x.intents").write_bytes(b"not an intent file\n")
    assert _found(tmp_path, BEFORE, []) == [OTHER]


def test_a_state_directory_that_cannot_be_made_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    mark = Fingerprint.of(io.BytesIO(b""), 0)
    with pytest.raises(UsageError, match="BATCHER_STATE_DIR"):
        IntentFile.create(blocker / "state", "run-1", mark, manifests=[], slots=1)


def test_old_files_of_crashed_runs_are_pruned(tmp_path: Path) -> None:
    _intents(tmp_path, BEFORE, DOUBT, manifests=[])
    (old,) = tmp_path.glob("*.intents")
    past = old.stat().st_mtime - (intents.KEEP_DAYS + 1) * 86400
    os.utime(old, (past, past))
    _intents(tmp_path, BEFORE, OTHER, manifests=[])
    assert not old.exists() and _found(tmp_path, BEFORE, []) == [OTHER]


def test_the_state_directory_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHER_STATE_DIR", "/srv/state")
    assert intents.state_dir() == Path("/srv/state")
    monkeypatch.delenv("BATCHER_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", "/home/u/.state")
    assert intents.state_dir() == Path("/home/u/.state/batcher")


def test_a_dry_run_knows_when_intent_files_could_not_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHER_STATE_DIR", str(tmp_path / "new" / "state"))
    intents.check_state_dir()  # a folder it can make
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("BATCHER_STATE_DIR", str(blocker / "state"))
    with pytest.raises(UsageError, match="BATCHER_STATE_DIR"):
        intents.check_state_dir()
