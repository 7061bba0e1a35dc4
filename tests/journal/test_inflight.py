"""The in-flight slot file: what a crash leaves, and what a rewrite can never lose."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from batcher.journal import intents as inflight
from batcher.journal.intents import InFlight, InflightSlots, read_inflight

DOUBT = InFlight("job-5", "SUBMITVERIFYING", "p1", "2026-11-24T13:00:05.000Z")
OTHER = InFlight("job-6", "CONFIRM_REPAIR", None, "2026-11-24T13:00:06.000Z")


def test_carried_entries_follow_the_workers_slots_and_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.inflight"
    slots = InflightSlots.open(path, slots=3, carried=[DOUBT, OTHER])
    assert slots.slots == 5 and slots.used
    assert read_inflight(path) == [DOUBT, OTHER]  # on disk before any request goes out
    slots.note(1, InFlight("job-1", "SUBMITVERIFYING", "p1", "2026-11-25T08:00:00.000Z"))
    # No close: as a kill -9 leaves it.
    assert [item.job_id for item in read_inflight(path)] == ["job-1", "job-5", "job-6"]


def test_clear_keeps_only_what_is_still_in_doubt(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.inflight"
    slots = InflightSlots.open(path, slots=2, carried=[DOUBT, OTHER])
    slots.note(0, InFlight("job-1", "SUBMITVERIFYING", "p1", "2026-11-25T08:00:00.000Z"))
    slots.clear(keep=[OTHER])
    assert read_inflight(path) == [OTHER]
    slots.clear()
    assert read_inflight(path) == []
    slots.close()


@contextlib.contextmanager
def full_disk(path: Path, *, replace: bool) -> Iterator[IO[bytes]]:
    raise OSError(errno.ENOSPC, "No space left on device")
    yield  # pragma: no cover


@pytest.mark.parametrize("when", ["open", "clear"])
def test_a_rewrite_that_fails_loses_no_doubt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    path = tmp_path / "r.jsonl.inflight"
    slots = InflightSlots.open(path, slots=2, carried=[DOUBT, OTHER])
    monkeypatch.setattr(inflight, "atomic_bytes", full_disk)
    call: Any = (
        (lambda: InflightSlots.open(path, slots=2, carried=read_inflight(path)))
        if when == "open"
        else (lambda: slots.clear(keep=[OTHER]))
    )
    with pytest.raises(OSError, match="No space"):
        call()
    assert read_inflight(path) == [DOUBT, OTHER]


def _slots_of(path: Path, identity: str, run: str, *jobs: str) -> None:
    slots = InflightSlots.open(path, slots=len(jobs), report=identity, run=run)
    for slot, job in enumerate(jobs):
        slots.note(slot, InFlight(job, "SUBMITVERIFYING", "p", "2026-11-25T08:00:00.000Z"))
    slots.close()


def test_slots_left_under_another_name_are_found_when_the_report_holds_their_run(
    tmp_path: Path,
) -> None:
    from batcher.journal.intents import left_in_flight, report_identity

    report = tmp_path / "renamed.jsonl"
    report.write_text('{"job_id":"j0","command":"C","status":"succeeded","run_id":"run-1"}\n')
    st = report.stat()
    identity = report_identity((st.st_dev, st.st_ino))
    _slots_of(tmp_path / "old.jsonl.inflight", identity, "run-1", "j1", "j2")
    found, taken = left_in_flight(report, identity)
    assert [item.job_id for item in found] == ["j1", "j2"]
    assert [item.run for item in found] == ["run-1", "run-1"]
    assert taken == [tmp_path / "old.jsonl.inflight"]


def test_a_new_report_on_a_reused_inode_does_not_take_an_old_reports_slots(
    tmp_path: Path,
) -> None:
    """A deleted report's inode can go to the next file created: the same DEV:INO, another
    report. Its slots name a run the new report has no line of: they are left alone."""
    from batcher.journal.intents import left_in_flight, report_identity

    report = tmp_path / "new.jsonl"
    report.write_text('{"job_id":"j0","command":"C","status":"succeeded","run_id":"run-2"}\n')
    st = report.stat()
    identity = report_identity((st.st_dev, st.st_ino))
    _slots_of(tmp_path / "deleted.jsonl.inflight", identity, "run-1", "j1")
    assert left_in_flight(report, identity) == ([], [])
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    st = empty.stat()
    assert left_in_flight(empty, report_identity((st.st_dev, st.st_ino))) == ([], [])


def test_a_report_renamed_before_its_first_line_still_finds_its_slots(tmp_path: Path) -> None:
    """A run killed before it wrote a line leaves slots but no line of its run: a report
    that was there before this run (renamed) and is as long as then takes them; one that
    this run created (a new file on a reused inode) does not."""
    from batcher.journal.intents import left_in_flight, report_identity

    report = tmp_path / "renamed.jsonl"
    report.touch()
    st = report.stat()
    identity = report_identity((st.st_dev, st.st_ino))
    slots = InflightSlots.open(
        tmp_path / "old.jsonl.inflight", slots=1, report=identity, run="run-1", since_size=0
    )
    slots.note(0, InFlight("j1", "SUBMITVERIFYING", "p", "2026-11-25T08:00:00.000Z"))
    slots.close()
    found, taken = left_in_flight(report, identity)
    assert [item.job_id for item in found] == ["j1"] and len(taken) == 1
    assert left_in_flight(report, identity, created=True) == ([], [])
