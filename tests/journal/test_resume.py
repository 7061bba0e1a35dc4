"""What --resume reads from a report: entries done, entries ambiguous (and since when),
checked against a plain dict over the same lines, whatever the lines' layout."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from report_lines import report_line, write_report

from batcher.entry import key_digest
from batcher.journal import Ambiguous, ReportIndex, completed_keys
from batcher.journal.line import FIELDS

STATUSES = ("succeeded", "failed", "skipped")


def writer_layout(line: dict[str, Any]) -> str:
    """A line exactly as the writer makes it: every field, in schema order, no spaces."""
    full = {name: line.get(name) for name in FIELDS}
    full["ambiguous"] = bool(line.get("ambiguous"))
    return orjson.dumps(full).decode()


def random_report(rng: random.Random, count: int) -> tuple[list[str], dict[tuple[str, str], Any]]:
    """Lines in several layouts, and the expected latest state per key."""
    texts: list[str] = []
    latest: dict[tuple[str, str], Any] = {}
    for i in range(count):
        job = f"job-{rng.randrange(count // 3 + 1)}"
        command = rng.choice(["SUBMITVERIFYING", "CONFIRM_ACCEPT"])
        status = rng.choice(STATUSES)
        ambiguous = status == "failed" and rng.random() < 0.3
        started = f"2026-11-24T13:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
        line = report_line(job, command, status=status, ambiguous=ambiguous, started_at=started)
        layout = rng.random()
        if layout < 0.6:
            text = writer_layout(line)
        elif layout < 0.8:
            text = json.dumps(line)  # spaces after separators: another writer
        else:
            text = json.dumps(dict(reversed(list(line.items()))), ensure_ascii=False)
        texts.append(text)
        before = latest.get((job, command))
        if status == "skipped" and before is not None and before[1]:
            continue  # nothing was sent: the earlier doubt stands
        if ambiguous and before is not None and before[1]:
            started = min(started, before[2])  # doubt keeps its earliest moment
        latest[job, command] = (status, ambiguous, started)
    return texts, latest


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_a_dict_over_every_layout(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    texts, latest = random_report(rng, 3000)
    texts.insert(5, "not json")
    texts.insert(9, json.dumps({"job_id": "x"}))
    path = write_report(tmp_path / "r.jsonl", texts, torn='{"job_id":"job-1","command":"SUB')
    bad: list[int] = []
    state = completed_keys(path, on_bad_line=lambda n, why: bad.append(n))
    assert bad == [6, 10, len(texts) + 1]
    done = {key for key, (status, _, _) in latest.items() if status == "succeeded"}
    ambiguous = {key: started for key, (_, amb, started) in latest.items() if amb}
    assert len(state) == len(done) and state.entries == len(latest)
    assert state.ambiguous_count == len(ambiguous)
    for key in latest:
        digest = key_digest(*key)
        assert (digest in state) == (key in done), key
        found = state.ambiguous(digest)
        if key in ambiguous:
            assert found == Ambiguous(datetime.fromisoformat(ambiguous[key]))
        else:
            assert found is None
    assert set(state.ambiguous_keys()) == {key_digest(*key) for key in ambiguous}


def test_an_ambiguous_line_superseded_is_not_ambiguous(tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "r.jsonl",
        [
            writer_layout(report_line("a", status="failed", ambiguous=True)),
            writer_layout(report_line("a")),
            writer_layout(report_line("b", status="failed", ambiguous=True, started_at=None)),
        ],
    )
    state = completed_keys(path)
    assert key_digest("a", "SUBMITVERIFYING") in state
    assert state.ambiguous(key_digest("a", "SUBMITVERIFYING")) is None
    assert state.ambiguous(key_digest("b", "SUBMITVERIFYING")) == Ambiguous(None)
    assert (len(state), state.ambiguous_count, bool(state)) == (1, 1, True)


def test_only_ambiguous_entries_still_make_the_state_true(tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "r.jsonl", [writer_layout(report_line("a", status="failed", ambiguous=True))]
    )
    state = completed_keys(path)
    assert len(state) == 0 and bool(state)
    assert not completed_keys(tmp_path / "missing.jsonl")


def test_old_reports_without_the_newer_fields(tmp_path: Path) -> None:
    old = report_line("a")
    path = write_report(tmp_path / "r.jsonl", [json.dumps(old, separators=(",", ":"))])
    assert key_digest("a", "SUBMITVERIFYING") in completed_keys(path)


def test_started_at_is_read_as_utc(tmp_path: Path) -> None:
    line = report_line("a", status="failed", ambiguous=True, started_at="2026-11-24T13:00:00")
    state = completed_keys(write_report(tmp_path / "r.jsonl", [writer_layout(line)]))
    found = state.ambiguous(key_digest("a", "SUBMITVERIFYING"))
    assert found is not None and found.started_at == datetime(2026, 11, 24, 13, tzinfo=UTC)


def test_a_table_that_grows_keeps_every_key() -> None:
    state = ReportIndex(capacity=4, digest=key_digest)
    for i in range(5000):
        state.record(f"j{i}", "C", "succeeded" if i % 2 else "failed")
    assert len(state) == 2500 and state.entries == 5000
    assert all((key_digest(f"j{i}", "C") in state) == bool(i % 2) for i in range(5000))


@pytest.mark.parametrize("layout", [writer_layout, json.dumps])
def test_a_skipped_line_does_not_clear_an_earlier_doubt(tmp_path: Path, layout: Any) -> None:
    """A run halted before reaching an entry in doubt sent nothing: the doubt stands."""
    since = "2026-11-24T13:00:05.000Z"
    path = write_report(
        tmp_path / "r.jsonl",
        [
            layout(report_line("a", status="failed", ambiguous=True, started_at=since)),
            layout(report_line("a", status="skipped", started_at=None)),
            layout(report_line("b", status="skipped", ambiguous=True, started_at=since)),
            layout(report_line("c", status="failed", ambiguous=True, started_at=since)),
            layout(report_line("c", status="succeeded")),
        ],
    )
    state = completed_keys(path)
    when = Ambiguous(datetime.fromisoformat(since))
    assert state.ambiguous(key_digest("a", "SUBMITVERIFYING")) == when
    assert state.ambiguous(key_digest("b", "SUBMITVERIFYING")) == when
    assert state.ambiguous(key_digest("c", "SUBMITVERIFYING")) is None
    assert state.ambiguous_count == 2 and len(state) == 1


def test_a_resume_that_leaves_an_entry_in_doubt_writes_its_earliest_moment() -> None:
    """The line of an entry an earlier run left in doubt, sent again by this run and still
    in doubt, says since when it may have executed: the earlier moment, not this run's."""
    from batcher.entry import Entry, Outcome
    from batcher.send.attempts import Attempts
    from batcher.send.recorder import Recorder
    from batcher.send.stats import RunStats

    earlier = datetime(2026, 11, 24, 13, 0, 5, tzinfo=UTC)
    now = datetime(2026, 11, 24, 15, 0, 0, tzinfo=UTC)
    lines: list[dict[str, Any]] = []
    recorder = Recorder(lines.append, run_id="r2", project_id="p", stats=RunStats(),
                        doubts=None, on_write_error=lambda error: None)  # fmt: skip
    lost = Outcome(succeeded=False, retryable=True, ambiguous=True, reason="answer lost")
    result = Attempts(outcome=lost, count=1, first_sent=now, doubt_since=earlier)
    recorder.record(Entry(job_id="j", command="SUBMITVERIFYING"), result)
    (line,) = lines
    assert line["ambiguous"] and line["started_at"] == "2026-11-24T15:00:00.000Z"
    assert line["doubt_since"] == "2026-11-24T13:00:05.000Z"
    index = ReportIndex(digest=key_digest)
    index.record(
        "j", "SUBMITVERIFYING", "failed", ambiguous=True, started_at="2026-11-24T13:00:05Z"
    )
    index.take([orjson.dumps(line) + b"\n"], on_bad_line=lambda n, why: None)
    assert index.doubts() == {key_digest("j", "SUBMITVERIFYING"): earlier}
