"""YAML read as a stream of events: settings found late, bounded memory and bounded work per
entry, anchors kept under a budget."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from manifest_helpers import load, problems, where, write

from batcher.errors import ManifestError
from batcher.read import Manifests, _text, _yaml_events


def test_settings_after_the_jobs_apply_to_every_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "late.yaml",
        """
        jobs:
          - {job_id: a}
          - {job_id: b, command: CONFIRM_REJECT}
        defaults:
          command: CONFIRM_ACCEPT
          operation_reason: late
        project_id: late_project
        """,
    )
    summary, entries = load([path])
    assert [(e.job_id, e.command, e.operation_reason, e.project_id) for e in entries] == [
        ("a", "CONFIRM_ACCEPT", "late", "late_project"),
        ("b", "CONFIRM_REJECT", "late", "late_project"),
    ]
    assert summary.commands == {"CONFIRM_ACCEPT": 1, "CONFIRM_REJECT": 1}


def test_late_settings_are_known_even_past_the_problem_cap(tmp_path: Path) -> None:
    # Without its defaults every entry would lack a command: 300 wrong problems, capped.
    rows = "".join(f"  - {{job_id: 'bad {n}'}}\n" for n in range(300))
    path = write(tmp_path, "late.yaml", f"jobs:\n{rows}defaults:\n  command: CONFIRM_ACCEPT\n")
    with Manifests([path], max_problems=10) as manifests, pytest.raises(ManifestError) as caught:
        manifests.check()
    found = caught.value.problems
    assert [problem.field for problem in found] == ["job_id"] * 10
    assert [problem.line for problem in found] == list(range(2, 12))


def test_jobs_merged_in_from_an_anchor(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "merged.yaml",
        """
        defaults: &base
          command: CONFIRM_ACCEPT
        <<: {jobs: [{job_id: a}, {job_id: b}]}
        """,
    )
    _, entries = load([path])
    assert [entry.key for entry in entries] == [("a", "CONFIRM_ACCEPT"), ("b", "CONFIRM_ACCEPT")]


def test_an_alias_to_the_streamed_list_is_a_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "alias.yaml",
        """
        jobs: &all
          - {job_id: a, command: CONFIRM_ACCEPT}
          - {job_id: b, command: CONFIRM_ACCEPT, operation_reason: *all}
        """,
    )
    found = problems([path])
    assert where(found)[0] == (3, "operation_reason")
    assert "names the list of entries, which is read as a stream" in found[0].message


def test_anchors_are_kept_under_a_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_yaml_events, "MAX_KEPT", 50)
    rows = "".join(f"  - &e{n} {{job_id: j{n}, command: CONFIRM_ACCEPT}}\n" for n in range(100))
    path = write(tmp_path, "anchors.yaml", f"jobs:\n{rows}")
    found = problems([path])
    assert len(found) == 1
    assert "anchors (&name) in this file hold more than 50 values" in found[0].message
    assert 10 < (found[0].line or 0) < 30


def test_the_second_pass_reads_one_entry_per_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = "".join(f"  - job_id: j{n}\n    command: CONFIRM_ACCEPT\n" for n in range(5000))
    path = write(tmp_path, "big.yaml", f"project_id: p\njobs:\n{rows}")
    events = 0

    class Counting(_yaml_events._Loader):  # type: ignore[misc, name-defined]
        def get_event(self) -> object:
            nonlocal events
            events += 1
            return super().get_event()

    monkeypatch.setattr(_yaml_events, "_Loader", Counting)
    with Manifests([path]) as manifests:
        manifests.check()
        stream = manifests.entries()
        events = 0
        next(stream)
        first = events
        events = 0
        next(stream)
    # An entry is 6 events (mapping start and end, two keys, two values); the first next()
    # also reads the stream and document starts, the top mapping, project_id and jobs:.
    assert (first, events) == (13, 6)


def test_checking_a_big_yaml_manifest_takes_flat_memory(tmp_path: Path) -> None:
    def manifest(count: int) -> str:
        rows = "".join(
            f"  - job_id: job{n:07d}\n    command: CONFIRM_MULTIPART_UPLOADED\n"
            "    command_message: UPLOAD_VIDEO\n"
            for n in range(count)
        )
        return write(tmp_path, f"m{count}.yaml", f"project_id: p\njobs:\n{rows}")

    def peak(path: str) -> int:
        tracemalloc.start()
        try:
            with Manifests([path]) as manifests:
                manifests.check()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, big = peak(manifest(1_000)), peak(manifest(10_000))
    # Only the duplicate check's digest tables grow (16-32 bytes per entry); the node tree
    # of the whole file, as before, took 1.9-5.7 KB per entry (17-50 MB more here).
    assert big - small < 2_000_000, (small, big)


def test_a_huge_value_is_refused_before_it_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # libyaml holds a scalar whole: a gigabyte-long one would take a gigabyte.
    monkeypatch.setattr(_text, "MAX_VALUE_BYTES", 100_000)
    path = write(
        tmp_path,
        "huge.yaml",
        "jobs:\n  - {job_id: a, command: SUBMITVERIFYING}\n"
        f"  - job_id: b\n    operation_reason: {'x' * 1_000_000}\n",
    )
    found = problems([path])
    assert where(found) == [(3, None)]
    assert "a single value takes more than 100,000 bytes of the file" in found[0].message


def test_a_file_that_is_not_yaml_further_on_is_reported_as_that_alone(tmp_path: Path) -> None:
    # The entries before a syntax error are read (as a stream must), but the file is
    # reported as before, when it was parsed whole first: by its syntax error alone. Even
    # when the problems before it pass the cap.
    rows = "".join(f"  - {{job_id: 'bad {n}', command: CONFIRM_ACCEPT}}\n" for n in range(300))
    path = write(tmp_path, "broken.yaml", f"jobs:\n{rows}  - {{job_id: [x}}\n")
    other = write(tmp_path, "other.csv", "job_id,command\nj/1,CONFIRM_ACCEPT\n")
    found = problems([path, other], max_problems=50)
    assert where(found) == [(302, None)]
    assert found[0].message.startswith("YAML syntax error: ")
