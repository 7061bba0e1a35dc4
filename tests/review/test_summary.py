"""The streaming report summary: numbers checked against a small hand-computed report."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from report_lines import THROTTLED, at, report_line, resumed_lines, write_report

from batcher.entry import KeyTable
from batcher.journal.selection import Selection
from batcher.review import summary as review
from batcher.review.compact import LogHistogram
from batcher.review.summary import summarize
from batcher.review.text import render_text


@pytest.fixture
def resumed(tmp_path: Path) -> Path:
    return write_report(tmp_path / "report.jsonl", resumed_lines())


def test_statuses_count_the_latest_line_of_each_entry(resumed: Path) -> None:
    summary = summarize(resumed)
    assert summary.lines == 11
    assert summary.total == 8
    assert summary.status == {"succeeded": 2, "failed": 5, "skipped": 1}
    assert summary.retryable_failed == 3  # job-5, job-6, job-7 (job-2 succeeded later)


def test_by_command(resumed: Path) -> None:
    assert summarize(resumed).by_command == {
        "SUBMITVERIFYING": {"succeeded": 2, "failed": 3, "skipped": 0},
        "CONFIRM_ACCEPT": {"succeeded": 0, "failed": 2, "skipped": 1},
    }


def test_failure_reasons_grouped_by_error_code_then_failed_msg_then_reason(
    resumed: Path,
) -> None:
    groups = [
        (g.kind, g.label, g.count, g.example_job_id, g.example_command)
        for g in summarize(resumed).failure_reasons
    ]
    assert groups == [
        # job-2's 429 no longer counts: its latest line succeeded.
        ("error_code", "APIGW.0308", 2, "job-6", "CONFIRM_ACCEPT"),
        ("error_code", "MSS.00000003", 1, "job-3", "SUBMITVERIFYING"),
        ("failed_msg", "job state does not allow this command", 1, "job-4", "CONFIRM_ACCEPT"),
        ("reason", "connection reset", 1, "job-5", "SUBMITVERIFYING"),
    ]
    assert summarize(resumed).failure_reasons[0].detail == THROTTLED["error_msg"]


def test_skip_reasons(resumed: Path) -> None:
    (group,) = summarize(resumed).skip_reasons
    assert (group.label, group.count, group.example_job_id) == (
        "SUBMITVERIFYING failed for this job",
        1,
        "job-3",
    )


def test_http_status_and_attempts_count_latest_lines(resumed: Path) -> None:
    summary = summarize(resumed)
    assert summary.http_status == {"none": 2, "200": 3, "400": 1, "429": 2}
    assert summary.attempts == {0: 1, 1: 3, 2: 1, 3: 1, 5: 2}


def test_latency_of_latest_sent_lines(resumed: Path) -> None:
    latency = summarize(resumed).latency
    # Latest, not skipped: 10, 60, 20, 30, 80, 70, 90 -> sorted 10 20 30 60 70 80 90.
    assert latency.count == 7
    assert latency.quantile(0.5) == pytest.approx(60, rel=0.01)  # rank ceil(3.5) = 4
    assert latency.quantile(0.9) == pytest.approx(90, rel=0.01)  # rank ceil(6.3) = 7
    assert latency.quantile(0.99) == pytest.approx(90, rel=0.01)
    assert latency.max == 90
    assert latency.total / latency.count == pytest.approx(360 / 7)


def test_span_rate_and_runs(resumed: Path) -> None:
    summary = summarize(resumed)
    assert summary.span.first_started_at == "2026-11-24T13:00:00.000Z"
    assert summary.span.last_finished_at == "2026-11-24T14:00:03.000Z"
    assert summary.span.seconds() == 3603
    assert summary.span.rate() == pytest.approx(11 / 3603)
    runs = {name: (run.lines, run.seconds(), run.rate()) for name, run in summary.runs.items()}
    assert runs == {"r1": (8, 8.0, 1.0), "r2": (3, 3.0, 1.0)}


def test_to_dict_has_the_documented_keys(resumed: Path) -> None:
    document = summarize(resumed).to_dict()
    json.dumps(document)  # JSON-ready
    assert (document["total"], document["succeeded"], document["failed"]) == (8, 2, 5)
    assert document["skipped"] == 1
    assert document["latency_ms"]["p50"] == pytest.approx(60, rel=0.01)
    assert document["attempts"] == {"0": 1, "1": 3, "2": 1, "3": 1, "5": 2}
    assert document["runs"]["r2"]["lines"] == 3
    assert document["span"]["seconds"] == 3603
    assert document["failure_reasons"][0]["reason"] == "APIGW.0308"
    assert document["failure_reasons_more"] == {"groups": 0, "entries": 0}
    assert document["bad_lines"] == []
    capped = summarize(resumed).to_dict(top=1)
    assert len(capped["failure_reasons"]) == 1
    assert capped["failure_reasons_more"] == {"groups": 3, "entries": 3}


def test_render_text(resumed: Path) -> None:
    text = render_text(summarize(resumed), top=2)
    assert text.startswith("Report ")
    assert "11 lines, 8 entries" in text
    assert "latest line" in text
    lines = text.splitlines()
    assert any(
        line.split()[:2] == ["failed", "(retryable"] and line.endswith(" 5") for line in lines
    )
    assert any(
        line.startswith("APIGW.0308 The throttling") and "2  job-6 CONFIRM_ACCEPT" in line
        for line in lines
    )
    assert "… 2 more reasons (2 entries)" in text
    assert any(line.split() == ["SUBMITVERIFYING", "2", "3", "0"] for line in lines)
    assert any(line.split() == ["r1", "8", at(0), at(8), "1.00/s"] for line in lines)


def test_a_later_line_wins_whatever_its_status(tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a"),
            report_line("b", **THROTTLED),
            report_line("a", status="failed", reason="boom", http_status=500),
            report_line("b"),
        ],
    )
    summary = summarize(path)
    assert summary.status == {"succeeded": 1, "failed": 1, "skipped": 0}
    assert [(g.label, g.example_job_id) for g in summary.failure_reasons] == [("boom", "a")]


def test_an_example_whose_entry_later_succeeded_is_replaced(tmp_path: Path) -> None:
    # "b" is the latest line of the APIGW group when read, but later succeeds; "a" still
    # stands, so the example must become "a" (found by a second, targeted read).
    path = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a", **THROTTLED),
            report_line("b", **THROTTLED),
            report_line("b"),
            report_line("c", status="skipped", reason="x", http_status=None),
            report_line("d", status="skipped", reason="x", http_status=None),
            report_line("d", status="failed", reason="y", http_status=None),
        ],
    )
    summary = summarize(path)
    (throttled, other) = summary.failure_reasons
    assert (throttled.label, throttled.count, throttled.example_job_id) == ("APIGW.0308", 1, "a")
    assert (other.label, other.example_job_id) == ("y", "d")
    (skipped,) = summary.skip_reasons
    assert (skipped.label, skipped.count, skipped.example_job_id) == ("x", 1, "c")


def test_reason_groups_are_capped_with_an_other_bucket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(review, "MAX_GROUPS", 3)
    path = write_report(
        tmp_path / "r.jsonl",
        [report_line(f"j{i}", status="failed", reason=f"r{i % 5}") for i in range(10)],
    )
    groups = {g.label: g.count for g in summarize(path).failure_reasons}
    assert groups == {"r0": 2, "r1": 2, "r2": 2, "(other)": 4}


def test_malformed_and_torn_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a"),
            "this is not JSON",
            json.dumps({"job_id": "b"}),  # JSON, but not a report line
            report_line("c", status="failed", reason="no"),
        ],
        torn='{"job_id": "d", "command": "SUBMITVERI',
    )
    seen: list[tuple[int, str]] = []
    summary = summarize(path, on_bad_line=lambda n, why: seen.append((n, why)))
    assert summary.status == {"succeeded": 1, "failed": 1, "skipped": 0}
    assert summary.lines == 2  # a and c
    assert [n for n, _ in summary.bad_lines] == [2, 3, 5]
    assert summary.bad_lines_total == 3
    assert "torn" in summary.bad_lines[2][1]
    assert seen == summary.bad_lines
    document = summary.to_dict()
    assert [bad["line"] for bad in document["bad_lines"]] == [2, 3, 5]
    assert "Unreadable lines skipped: 3" in render_text(summary)


def test_bad_lines_are_counted_beyond_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(review, "MAX_BAD_LINES", 2)
    path = write_report(tmp_path / "r.jsonl", ["{", "{", "{", report_line("a")])
    summary = summarize(path, on_bad_line=lambda n, why: None)
    assert summary.bad_lines_total == 3
    assert [n for n, _ in summary.bad_lines] == [1, 2]


def test_empty_report(tmp_path: Path) -> None:
    summary = summarize(write_report(tmp_path / "r.jsonl", []))
    document = summary.to_dict()
    assert (document["total"], document["succeeded"], document["failed"]) == (0, 0, 0)
    assert document["skipped"] == 0
    assert document["latency_ms"]["p50"] is None
    assert document["rate_per_second"] is None
    render_text(summary)


# -- percentiles ----------------------------------------------------------------------------


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(round(q * len(ordered), 9))) - 1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_log_histogram_is_within_one_percent(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(3, 1.5) for _ in range(50_000)]
    values += [rng.uniform(0.01, 30_000) for _ in range(10_000)]
    histogram = LogHistogram()
    for value in values:
        histogram.add(value)
    for q in (0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0):
        assert histogram.quantile(q) == pytest.approx(exact(values, q), rel=0.01)
    assert histogram.max == max(values)
    # Fixed memory: a bucket per 2% of range, not one per value.
    assert len(histogram._buckets) < 1000


def test_log_histogram_small_cases() -> None:
    histogram = LogHistogram()
    assert histogram.quantile(0.5) is None
    for value in (0.0, 0.0, 5.0):
        histogram.add(value)
    assert histogram.quantile(0.5) == 0.0
    assert histogram.quantile(0.99) == pytest.approx(5.0, rel=0.01)


# -- the key table --------------------------------------------------------------------------


def test_key_table_agrees_with_a_dict() -> None:
    rng = random.Random(5)
    table, expected = KeyTable(capacity=4), {}
    digests = [0, 1, *(rng.getrandbits(64) for _ in range(20_000))]
    digests += digests[:5000]  # repeats must find their first row
    for digest in digests:
        row = expected.setdefault(digest or 1, len(expected))
        assert table.setdefault(digest, len(table)) == row
    assert len(table) == len(expected)


# -- selections -----------------------------------------------------------------------------


def test_selection_yields_the_latest_line_of_selected_entries(resumed: Path) -> None:
    selection = Selection(resumed)
    assert selection.count == 6
    assert selection.by_status == {"succeeded": 0, "failed": 5, "skipped": 1}
    listed = [(n, line.job_id, line.command, line.attempts) for n, line in selection.numbered()]
    assert listed == [
        (3, "job-3", "SUBMITVERIFYING", 1),
        (4, "job-3", "CONFIRM_ACCEPT", 0),
        (5, "job-4", "CONFIRM_ACCEPT", 1),
        (8, "job-7", "SUBMITVERIFYING", 5),
        (10, "job-6", "CONFIRM_ACCEPT", 5),  # not line 7: the resume's line is the latest
        (11, "job-5", "SUBMITVERIFYING", 3),
    ]
    assert [line.job_id for line in selection] == [
        "job-3",
        "job-3",
        "job-4",
        "job-7",
        "job-6",
        "job-5",
    ]


def test_selection_by_status_and_retryable(resumed: Path) -> None:
    succeeded = Selection(resumed, statuses={"succeeded"})
    assert [(line.job_id, line.attempts) for line in succeeded] == [("job-1", 1), ("job-2", 2)]
    retryable = Selection(resumed, statuses={"failed", "skipped"}, retryable_only=True)
    assert [line.job_id for line in retryable] == ["job-7", "job-6", "job-5"]
    assert retryable.by_status == {"succeeded": 0, "failed": 3, "skipped": 0}
    assert Selection(resumed, statuses={"skipped"}, retryable_only=True).count == 0
    assert Selection(resumed).job_id_width == len("job_id")
    assert Selection(resumed).command_width == len("SUBMITVERIFYING")
    with pytest.raises(ValueError, match="unknown status"):
        Selection(resumed, statuses={"failed", "lost"})


def test_selection_skips_bad_lines(tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "r.jsonl",
        [report_line("a", status="failed"), "{oops"],
        torn=json.dumps(report_line("b", status="failed"))[:-3],
    )
    seen: list[int] = []
    selection = Selection(path, on_bad_line=lambda n, why: seen.append(n))
    assert [line.job_id for line in selection] == ["a"]
    assert seen == [2, 3]


def test_skips_group_by_cause_not_by_the_manifest_line_they_quote(tmp_path: Path) -> None:
    # The runner names the failed command's manifest line, which differs for every job.
    def skip(job: str, source: str) -> dict[str, Any]:
        reason = (
            f"not attempted: the job's earlier command CONFIRM_ACCEPT ({source}) did not succeed"
        )
        return report_line(job, status="skipped", reason=reason, http_status=None)

    path = write_report(
        tmp_path / "r.jsonl",
        [skip("a", "jobs.yaml:3"), skip("b", "jobs.yaml:9"), skip("c", "其他.csv:12")],
    )
    (group,) = summarize(path).skip_reasons
    assert group.label == "not attempted: the job's earlier command CONFIRM_ACCEPT did not succeed"
    assert (group.count, group.example_job_id) == (3, "c")


# -- lost answers, wait time, odd fields ----------------------------------------------------


def test_confirmed_ambiguous_and_wait_count_latest_lines(tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a", confirmed_by="operation_log", duration_ms=40.0, wait_ms=5.0),
            report_line("b", status="failed", ambiguous=True, reason="may have executed",
                        duration_ms=50.0, wait_ms=15.0),
            report_line("c", status="failed", ambiguous=True, reason="may have executed"),
            report_line("c", confirmed_by="operation_log", duration_ms=30.0, wait_ms=25.0),
            report_line("d", status="skipped", reason="x", duration_ms=None, wait_ms=None),
        ],
    )  # fmt: skip
    summary = summarize(path)
    assert (summary.confirmed, summary.ambiguous) == (2, 1)
    assert summary.latency.count == 3 and summary.latency.max == 50.0
    assert summary.wait.count == 3 and summary.wait.max == 25.0
    document = summary.to_dict()
    assert (document["confirmed"], document["ambiguous"]) == (2, 1)
    assert document["wait_ms"]["count"] == 3
    text = render_text(summary)
    rows = [line.split() for line in text.splitlines() if line.strip()]
    assert any(row[-1] == "2" and "confirmed" in row for row in rows)
    assert any(row[-1] == "1" and "ambiguous" in row for row in rows)
    assert "Wait for the rate limiter" in text


def test_a_field_of_the_wrong_type_counts_as_absent(tmp_path: Path) -> None:
    path = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a", attempts="two", http_status=[200], duration_ms="fast"),
            report_line("b", retryable="yes", status="failed", reason={"x": 1}),
        ],
    )
    summary = summarize(path)
    assert summary.status == {"succeeded": 1, "failed": 1, "skipped": 0}
    assert summary.attempts == {0: 1, 1: 1} and summary.http_status == {"200": 1, "none": 1}
    assert summary.retryable_failed == 0 and summary.latency.count == 1
