"""Operations against real ``batcher`` processes: kill -9 and resume, signals, locking,
failure thresholds and adaptive throttling. The simulator serves on this test's loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from support import (
    aksk_env,
    batcher,
    batcher_in_thread,
    jobs_csv,
    latest,
    read_report,
    run_args,
    spawn,
    wait_for_lines,
    write_csv,
)


@pytest.mark.slow
async def test_kill_9_then_resume_completes_without_resending_what_succeeded(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator(latency_ms=20, seed=5)
    manifest = jobs_csv(tmp_path / "m.csv", 400)
    report = tmp_path / "r.jsonl"
    args = [
        "run",
        str(manifest),
        "--report",
        str(report),
        "--rate",
        "0",
        "--concurrency",
        "8",
        *run_args(sim.url),
    ]
    process = await spawn(args, aksk_env())
    await wait_for_lines(report, 60)
    process.kill()  # SIGKILL: no chance to clean up
    await process.wait()
    assert process.returncode == -signal.SIGKILL

    before = read_report(report)
    succeeded_before = {
        (line["job_id"], line["command"]) for line in before if line["status"] == "succeeded"
    }
    assert 60 <= len(before) < 400

    result = await batcher([*args, "--resume"], aksk_env())
    assert result.code == 0, result.output
    final = latest(read_report(report))
    assert len(final) == 400 and all(line["status"] == "succeeded" for line in final.values())
    # Nothing recorded as succeeded was sent again; only what was in flight may have been.
    for key in succeeded_before:
        assert sim.stats.reads[key] == 1, key
    resent = [key for key, n in sim.stats.reads.items() if n > 1]
    assert len(resent) <= 8


@pytest.mark.slow
async def test_sigterm_stops_dispatch_skips_the_rest_and_resume_continues(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator(latency_ms=50, seed=2)
    manifest = jobs_csv(tmp_path / "m.csv", 300)
    report = tmp_path / "r.jsonl"
    args = [
        "run",
        str(manifest),
        "--report",
        str(report),
        "--rate",
        "0",
        "--concurrency",
        "4",
        *run_args(sim.url),
    ]
    process = await spawn(args, aksk_env())
    await wait_for_lines(report, 20)
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 3, err.decode()

    lines = read_report(report)
    by_key = latest(lines)
    assert len(lines) == len(by_key) == 300  # exactly one line per entry
    statuses = [line["status"] for line in lines]
    assert statuses.count("skipped") > 100 and "failed" not in statuses
    assert all("SIGTERM" in line["reason"] for line in lines if line["status"] == "skipped")
    assert "interrupted by SIGTERM" in err.decode()

    result = await batcher([*args, "--resume"], aksk_env())
    assert result.code == 0, result.output
    final = latest(read_report(report))
    assert all(line["status"] == "succeeded" for line in final.values())
    assert all(n == 1 for n in sim.stats.reads.values())  # in-flight ones finished, not resent


async def test_a_second_run_on_a_held_report_exits_4_at_once_naming_the_pid(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator(latency_ms=100)
    report = tmp_path / "r.jsonl"
    first = await spawn(
        [
            "run",
            str(jobs_csv(tmp_path / "a.csv", 100)),
            "--report",
            str(report),
            "--rate",
            "0",
            "--concurrency",
            "2",
            *run_args(sim.url),
        ],
        aksk_env(),
    )
    await wait_for_lines(report, 2)
    size_before = report.stat().st_size
    second = await batcher(
        [
            "run",
            str(jobs_csv(tmp_path / "b.csv", 5, prefix="other")),
            "--report",
            str(report),
            "--resume",
            *run_args(sim.url),
        ],
        aksk_env(),
        timeout=20,
    )
    assert second.code == 4, second.output
    assert f"PID {first.pid}" in second.stderr
    assert not any(key[0].startswith("other") for key in sim.stats.reads)
    first.send_signal(signal.SIGTERM)
    await asyncio.wait_for(first.communicate(), 30)
    assert report.stat().st_size >= size_before
    assert not any(line["job_id"].startswith("other") for line in read_report(report))


async def test_max_failures_halts_the_run(tmp_path: Path, simulator: Any, capsys: Any) -> None:
    # SUBMITVERIFYING on fresh jobs is refused by the state machine: every entry fails.
    manifest = write_csv(
        tmp_path / "m.csv", [{"job_id": f"j{i}", "command": "SUBMITVERIFYING"} for i in range(200)]
    )
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(manifest),
            "--report",
            str(report),
            "--rate",
            "0",
            "--concurrency",
            "2",
            "--max-failures",
            "10",
            *run_args(simulator.url),
        ],
        aksk_env(),
        capsys,
    )
    assert result.code == 3
    lines = read_report(report)
    failed = [line for line in lines if line["status"] == "failed"]
    assert 10 <= len(failed) <= 12 and len(lines) == 200
    assert "--max-failures 10" in result.stderr


async def test_max_failure_rate_halts_the_run(tmp_path: Path, simulator: Any, capsys: Any) -> None:
    rows = [
        {"job_id": f"j{i}", "command": "SUBMITVERIFYING" if i % 2 else "GET_MULTIPART_UPLOADED"}
        for i in range(400)
    ]
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(write_csv(tmp_path / "m.csv", rows)),
            "--report",
            str(report),
            "--rate",
            "0",
            "--concurrency",
            "2",
            "--max-failure-rate",
            "0.3",
            *run_args(simulator.url),
        ],
        aksk_env(),
        capsys,
    )
    assert result.code == 3
    assert "--max-failure-rate 0.3" in result.stderr
    skipped = [line for line in read_report(report) if line["status"] == "skipped"]
    assert len(skipped) > 200


@pytest.mark.slow
async def test_rate_three_times_the_quota_adapts_and_every_entry_succeeds(
    tmp_path: Path, start_simulator: Any, capsys: Any
) -> None:
    # A hidden quota of 40/s and --rate 120; the ratios are asserted, not the wall clock.
    sim = await start_simulator(quota=40, seed=9)
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 400)),
            "--report",
            str(report),
            "--rate",
            "120",
            "--concurrency",
            "16",
            *run_args(sim.url),
        ],
        aksk_env(),
        capsys,
    )
    assert result.code == 0, result.output
    lines = read_report(report)
    assert all(line["status"] == "succeeded" for line in lines) and len(lines) == 400
    throttled = sim.stats.by_status[429]
    assert throttled / sim.stats.requests <= 0.15, (throttled, sim.stats.requests)
    assert '"settled_rate"' in result.stderr


async def test_torn_last_line_is_ignored_with_a_warning_on_resume(
    tmp_path: Path, simulator: Any, capsys: Any
) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 3)
    report = tmp_path / "r.jsonl"
    report.write_text(
        '{"job_id":"job000000","command":"GET_MULTIPART_UPLOADED","status":"succeeded"}\n'
        '{"job_id":"job000001","command":"GET_MULTIPART_UP'
    )
    os.chmod(report, 0o644)
    result = await batcher_in_thread(
        [
            "run",
            str(manifest),
            "--report",
            str(report),
            "--resume",
            "--log-format",
            "json",
            *run_args(simulator.url),
        ],
        aksk_env(),
        capsys,
    )
    assert result.code == 0, result.output
    assert "report_torn_line_removed" in result.stderr
    for line in report.read_text().splitlines():  # every line whole again
        json.loads(line)
    assert ("job000000", "GET_MULTIPART_UPLOADED") not in simulator.stats.reads
    assert simulator.stats.reads[("job000001", "GET_MULTIPART_UPLOADED")] == 1
    final = latest(read_report(report))
    assert set(final) == {(f"job00000{i}", "GET_MULTIPART_UPLOADED") for i in range(3)}
    assert oct(report.stat().st_mode & 0o777) == "0o600"


async def test_resume_sends_again_an_entry_whose_latest_line_is_not_succeeded(
    tmp_path: Path, start_simulator: Any
) -> None:
    # The latest line wins: a key that succeeded once and failed later is not done.
    sim = await start_simulator()
    manifest = jobs_csv(tmp_path / "m.csv", 3)
    report = tmp_path / "r.jsonl"
    base = {"command": "GET_MULTIPART_UPLOADED", "run_id": "old", "attempts": 1}
    lines = [
        {**base, "job_id": "job000000", "status": "succeeded"},
        {**base, "job_id": "job000001", "status": "succeeded"},
        {**base, "job_id": "job000001", "status": "failed", "reason": "HTTP 500"},
        {**base, "job_id": "job000002", "status": "failed", "reason": "HTTP 500"},
        {**base, "job_id": "job000002", "status": "succeeded"},
    ]
    report.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = await batcher(
        [
            "run",
            str(manifest),
            "--report",
            str(report),
            "--resume",
            "--rate",
            "0",
            *run_args(sim.url),
        ],
        aksk_env(),
    )
    assert result.code == 0, result.output
    assert dict(sim.stats.reads) == {("job000001", "GET_MULTIPART_UPLOADED"): 1}
    assert latest(read_report(report))[("job000001", "GET_MULTIPART_UPLOADED")]["status"] == (
        "succeeded"
    )


@pytest.mark.slow
async def test_a_failed_entry_is_sent_again_on_resume(tmp_path: Path, start_simulator: Any) -> None:
    """End to end: a run refused by the job's state writes a failed line; once the job can
    take the command, --resume sends exactly that entry again and it succeeds."""
    from batcher.simulator.config import JobSpec

    sim = await start_simulator(
        jobs={"job-a": JobSpec(state="WAIT_USER_CONFIRM"), "job-b": JobSpec(state="TRAINING")}
    )
    manifest = tmp_path / "m.csv"
    manifest.write_text("job_id,command\njob-a,CONFIRM_ACCEPT\njob-b,CONFIRM_ACCEPT\n")
    report = tmp_path / "r.jsonl"
    args = ["run", str(manifest), "--report", str(report), "--rate", "0", *run_args(sim.url)]
    first = await batcher(args, aksk_env())
    assert first.code == 1, first.output
    before = latest(read_report(report))
    assert before[("job-b", "CONFIRM_ACCEPT")]["status"] == "failed"
    assert not before[("job-b", "CONFIRM_ACCEPT")]["ambiguous"]
    sim.jobs.set_state("job-b", "WAIT_USER_CONFIRM")
    resumed = await batcher([*args, "--resume"], aksk_env())
    assert resumed.code == 0, resumed.output
    after = latest(read_report(report))
    assert {line["status"] for line in after.values()} == {"succeeded"}
    assert (
        after[("job-a", "CONFIRM_ACCEPT")]["run_id"]
        == before[("job-a", "CONFIRM_ACCEPT")]["run_id"]
    )
    assert dict(sim.stats.executions) == {
        ("job-a", "CONFIRM_ACCEPT"): 1,
        ("job-b", "CONFIRM_ACCEPT"): 1,
    }


@pytest.mark.slow
async def test_resume_onto_a_report_of_another_manifest_is_refused_unless_on_purpose(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator()
    first, second = jobs_csv(tmp_path / "a.csv", 2), tmp_path / "b.csv"
    second.write_text("job_id,command\njob-x,GET_MULTIPART_UPLOADED\n")
    report = tmp_path / "r.jsonl"
    common = ["--report", str(report), "--rate", "0", *run_args(sim.url)]
    assert (await batcher(["run", str(first), *common], aksk_env())).code == 0
    before, requests = report.read_bytes(), sim.stats.requests
    for extra in ([], ["--dry-run"]):
        refused = await batcher(["run", str(second), *common, "--resume", *extra], aksk_env())
        assert refused.code == 2, refused.output
        assert "other manifests" in refused.stderr and "--allow-other-manifest" in refused.stderr
        assert "Traceback" not in refused.output
    assert report.read_bytes() == before and sim.stats.requests == requests
    again = await batcher(["run", str(first), *common, "--resume"], aksk_env())
    assert again.code == 0, again.output
    allowed = ["run", str(second), *common, "--resume", "--allow-other-manifest"]
    assert (await batcher(allowed, aksk_env())).code == 0
    assert ("job-x", "GET_MULTIPART_UPLOADED") in latest(read_report(report))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["emptied", "replaced"])
async def test_a_report_emptied_or_replaced_under_a_running_process_halts_it_with_exit_3(
    tmp_path: Path, start_simulator: Any, how: str
) -> None:
    """``: > report`` (or a new file moved over it) while a real run writes it: the run
    notices within a line or a second, stops with exit 3 and says what happened."""
    sim = await start_simulator(latency_ms=20, seed=5)
    manifest = jobs_csv(tmp_path / "m.csv", 2000)
    report = tmp_path / "r.jsonl"
    args = ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "4",
            *run_args(sim.url)]  # fmt: skip
    process = await spawn(args, aksk_env())
    await wait_for_lines(report, 30)
    if how == "emptied":
        report.write_bytes(b"")  # opens with O_TRUNC, as the shell's ": >" does
    else:
        (tmp_path / "new.jsonl").write_bytes(b"")
        (tmp_path / "new.jsonl").rename(report)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 3, stderr
    said = stderr.decode()
    assert ("shrank during the run" if how == "emptied" else "was replaced") in said
    assert "Traceback" not in said
    assert sum(sim.stats.reads.values()) < 2000  # it stopped
