"""batcher status: real processes against a server whose jobs change state over time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from jobserver import job_server
from support import PROJECT, aksk_env, batcher, write_csv

pytestmark = pytest.mark.slow


def _args(url: str, *more: str) -> list[str]:
    return [
        "status",
        *more,
        "--endpoint",
        url,
        "--project-id",
        PROJECT,
        "--no-progress",
        "--log-format",
        "json",
    ]


def _manifest(tmp_path: Path, *ids: str) -> Path:
    return write_csv(
        tmp_path / "jobs.csv", ({"job_id": j, "command": "SUBMITVERIFYING"} for j in ids)
    )


async def test_wait_until_returns_once_every_job_is_there(tmp_path: Path) -> None:
    timelines = {
        "j1": [(0, "AUTO_VERIFYING"), (0.5, "MANUAL_VERIFYING"), (1.5, "JOB_SUCCESS")],
        "j2": [(0, "TRAINING"), (2.0, "JOB_SUCCESS")],
    }
    async with job_server(timelines) as server:
        manifest = _manifest(tmp_path, "j1", "j2")
        args = [
            str(manifest),
            "--wait-until",
            "JOB_SUCCESS",
            "--timeout",
            "60s",
            "--poll-every",
            "0.3s",
            "--format",
            "json",
        ]
        result = await batcher(_args(server.url, *args), aksk_env())
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert document["by_state"] == {"JOB_SUCCESS": 2}
    assert document["wait"]["reached"] == 2 and not document["wait"]["timed_out"]
    assert document["wait"]["passes"] >= 2  # it looked again, and only while jobs moved
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "status_pass" for e in events)


async def test_a_job_that_cannot_reach_is_reported_at_once(tmp_path: Path) -> None:
    timelines = {
        "ok": [(0, "AUTO_VERIFYING"), (0.5, "JOB_SUCCESS")],
        "bad": [(0, "AUTO_VERIFYING"), (0.5, "AUTO_VERIFY_FAILED")],
    }
    async with job_server(timelines) as server:
        manifest = _manifest(tmp_path, "ok", "bad")
        began = time.monotonic()
        args = [
            str(manifest),
            "--wait-until",
            "JOB_SUCCESS",
            "--timeout",
            "10m",
            "--poll-every",
            "0.3s",
        ]
        result = await batcher(_args(server.url, *args), aksk_env())
        took = time.monotonic() - began
    assert result.code == 1, result.output
    assert took < 30  # not the ten minutes of --timeout
    assert "cannot reach it without someone acting: AUTO_VERIFY_FAILED 1" in result.stdout
    # Why the review failed: the latest log entry's code and description.
    assert "MSS.20001" in result.stdout and "face not visible in the video" in result.stdout
    assert "status_cannot_reach" in result.stderr


async def test_the_timeout_lists_the_jobs_still_elsewhere(tmp_path: Path) -> None:
    timelines = {"slow": [(0, "TRAINING")], "done": [(0, "JOB_SUCCESS")]}
    async with job_server(timelines) as server:
        manifest = _manifest(tmp_path, "slow", "done")
        args = [
            str(manifest),
            "--wait-until",
            "JOB_SUCCESS",
            "--timeout",
            "1.5s",
            "--poll-every",
            "0.3s",
        ]
        result = await batcher(_args(server.url, *args), aksk_env())
        shows = server.requests["show"]
    assert result.code == 1, result.output
    assert "still elsewhere at the timeout: TRAINING 1" in result.stdout
    # Only the job still on its way is read again.
    assert shows < 2 + 12


async def test_a_report_with_state_picks_and_writes_a_manifest_for_run(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text(
        "".join(
            json.dumps(
                {
                    "job_id": j,
                    "command": "SUBMITVERIFYING",
                    "status": "succeeded",
                    "project_id": PROJECT,
                }
            )
            + "\n"
            for j in ("a", "b", "c")
        )
    )
    timelines = {
        "a": [(0, "AUTO_VERIFY_FAILED")],
        "b": [(0, "TRAINING")],
        "c": [(0, "MANUAL_VERIFY_FAILED")],
    }
    out = tmp_path / "again.csv"
    async with job_server(timelines) as server:
        args = [
            str(report),
            "--state",
            "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED",
            "--output",
            str(out),
            "--command",
            "CONFIRM_MULTIPART_UPLOADED",
            "--command",
            "SUBMITVERIFYING",
            "--format",
            "csv",
        ]
        result = await batcher(_args(server.url, *args), aksk_env())
    assert result.code == 0, result.output
    rows = result.stdout.splitlines()
    assert rows[0].startswith("job_id,project_id,state,last_update_time")
    assert sorted(r.split(",")[0] for r in rows[1:]) == ["a", "c"]
    validated = await batcher(["validate", str(out)], aksk_env())
    assert validated.code == 0, validated.output
    assert out.read_text().count("SUBMITVERIFYING") == 2


async def test_a_query_is_read_from_list_not_show(tmp_path: Path) -> None:
    timelines = {f"j{i}": [(0, "TRAINING")] for i in range(30)}
    batch = {f"j{i}": "b1" for i in range(10)}
    async with job_server(timelines, batch) as server:
        result = await batcher(
            _args(server.url, "--batch-name", "b1", "--format", "json"), aksk_env()
        )
        requests = dict(server.requests)
        queries = list(server.queries)
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["by_state"] == {"TRAINING": 10}
    assert requests["show"] == 0 and requests["list"] >= 1
    assert all(q.get("batch_name") == "b1" for q in queries)


async def test_many_named_jobs_are_listed_rather_than_shown(tmp_path: Path) -> None:
    timelines = {f"j{i:03d}": [(0, "TRAINING")] for i in range(150)}
    timelines["gone"] = [(0, "TRAINING")]
    async with job_server(timelines) as server:
        del server.timelines["gone"]  # named by the manifest, no longer known to the API
        manifest = _manifest(tmp_path, *[f"j{i:03d}" for i in range(120)], "gone")
        result = await batcher(_args(server.url, str(manifest), "--format", "json"), aksk_env())
        requests = dict(server.requests)
    document = json.loads(result.stdout)
    assert document["by_state"] == {"TRAINING": 120, "(not found)": 1}
    assert requests["show"] == 1  # the one the listing did not meet
    # A few pages (select's listing reads same-second groups again), not 120 Shows.
    assert requests["list"] < 20


async def test_bad_flags_exit_2_and_nothing_is_read(tmp_path: Path) -> None:
    async with job_server({"j": [(0, "TRAINING")]}) as server:
        manifest = _manifest(tmp_path, "j")
        bad = [str(manifest), "--wait-until", "JOB_SUCESS", "--output", str(tmp_path / "o.csv")]
        result = await batcher(_args(server.url, *bad), aksk_env())
        requests = dict(server.requests)
    assert result.code == 2, result.output
    assert "did you mean 'JOB_SUCCESS'" in result.stderr
    assert "--output needs --command" in result.stderr
    assert requests == {"list": 0, "show": 0}
    assert "Traceback" not in result.stderr


async def test_filters_that_would_widen_or_empty_the_listing_exit_2() -> None:
    """status lists by select's filter table, and refuses what select refuses."""
    async with job_server({"j": [(0, "TRAINING")]}) as server:
        bad = ["--job-id", "", "--state", "TRAINING,,JOB_SUCCESS", "--created-since",
               "2026-11-02T00:00:00Z", "--created-until", "2026-11-01T00:00:00Z"]  # fmt: skip
        result = await batcher(_args(server.url, *bad), aksk_env())
        requests = dict(server.requests)
    assert result.code == 2, result.output
    for words in ("--job-id is empty", "--state: an empty state", "is later than --created-until"):
        assert words in result.stderr
    assert requests == {"list": 0, "show": 0} and "Traceback" not in result.stderr


async def test_an_existing_output_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    out = tmp_path / "fix.csv"
    out.write_text("keep me\n")
    async with job_server({"j": [(0, "AUTO_VERIFY_FAILED")]}) as server:
        args = [str(_manifest(tmp_path, "j")), "--output", str(out), "--command", "SUBMITVERIFYING"]
        result = await batcher(_args(server.url, *args), aksk_env())
        requests = dict(server.requests)
    assert result.code == 2, result.output
    assert "already exists; add --force" in result.stderr
    assert requests == {"list": 0, "show": 0} and out.read_text() == "keep me\n"


async def test_a_report_page_carries_the_states_read_at_the_time(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    line = {
        "job_id": "a",
        "command": "SUBMITVERIFYING",
        "status": "succeeded",
        "project_id": PROJECT,
        "started_at": "2026-11-24T13:00:00.000Z",
        "finished_at": "2026-11-24T13:00:01.000Z",
    }
    report.write_text(json.dumps(line) + "\n")
    async with job_server({"a": [(0, "MANUAL_VERIFYING")]}) as server:
        args = [
            "report",
            str(report),
            "--html",
            str(tmp_path / "r.html"),
            "--with-states",
            "--endpoint",
            server.url,
            "--project-id",
            PROJECT,
        ]
        result = await batcher(args, aksk_env())
    assert result.code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert "Job states now" in page and "<td>MANUAL_VERIFYING</td>" in page


async def test_a_record_that_cannot_be_read_is_said_and_exits_1(tmp_path: Path) -> None:
    async with job_server({"ok": [(0, "TRAINING")], "bad": [(0, "TRAINING")]}) as server:
        server.failing.add("bad")
        manifest = _manifest(tmp_path, "ok", "bad")
        args = [str(manifest), "--format", "json", "--max-attempts", "2"]
        result = await batcher(_args(server.url, *args), aksk_env())
    assert result.code == 1, result.output
    jobs = {j["job_id"]: j for j in json.loads(result.stdout)["job_states"]}
    assert jobs["bad"]["state"] == "(unread)" and "500" in jobs["bad"]["reason"]
    assert jobs["ok"]["state"] == "TRAINING"  # never reported as known when it is not


async def test_a_bad_manifest_names_file_and_line_and_nothing_is_read(tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "bad.csv", [{"job_id": "ok"}, {"job_id": "no/slash"}])
    async with job_server({"ok": [(0, "TRAINING")]}) as server:
        result = await batcher(_args(server.url, str(bad)), aksk_env())
        requests = dict(server.requests)
    assert result.code == 2, result.output
    assert "bad.csv:3" in result.stderr and "job_id" in result.stderr
    assert requests == {"list": 0, "show": 0} and "Traceback" not in result.stderr


async def test_the_metrics_file_carries_the_state_counts(tmp_path: Path) -> None:
    timelines = {"a": [(0, "TRAINING")], "b": [(0, "TRAINING")], "c": [(0, "JOB_SUCCESS")]}
    metrics = tmp_path / "status.prom"
    async with job_server(timelines) as server:
        args = [str(_manifest(tmp_path, "a", "b", "c")), "--metrics-file", str(metrics)]
        result = await batcher(_args(server.url, *args), aksk_env())
    assert result.code == 0, result.output
    text = metrics.read_text()
    assert 'batcher_status_jobs{source="jobs.csv",state="TRAINING"} 2.0' in text
    assert 'batcher_status_jobs{source="jobs.csv",state="JOB_SUCCESS"} 1.0' in text


async def test_on_the_simulator_failed_reviews_say_why(tmp_path: Path) -> None:
    args = [
        "status",
        "--simulate",
        "--state",
        "AUTO_VERIFY_FAILED",
        "--format",
        "json",
        "--no-progress",
        "--log-format",
        "json",
    ]
    result = await batcher(args, aksk_env())
    assert result.code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document["by_state"]) == {"AUTO_VERIFY_FAILED"}
    assert document["failed_reviews"] and document["failed_reviews"][0]["error_code"]
