"""``batcher run`` end to end against the simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from support import (
    PROJECT,
    TEST_SK,
    TEST_TOKEN,
    aksk_env,
    batcher,
    batcher_in_thread,
    clean_env,
    jobs_csv,
    latest,
    read_report,
    run_args,
    write_csv,
)

from batcher.simulator import JobState

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests"


@pytest.mark.slow
async def test_example_manifests_run_with_simulate_and_no_credentials(
    tmp_path: Path, capsys: Any
) -> None:
    for name in ("example.yaml", "example.csv"):
        report = tmp_path / f"{name}.jsonl"
        result = await batcher_in_thread(
            ["run", str(EXAMPLES / name), "--simulate", "--report", str(report), "--no-progress"],
            clean_env(),
            capsys,
        )
        assert result.code == 0, result.output
        lines = read_report(report)
        assert lines and all(line["status"] == "succeeded" for line in lines)
        assert all(line["request_id"] for line in lines)
        assert stat.S_IMODE(os.stat(report).st_mode) == 0o600


async def test_the_real_command_runs_mixed_commands_with_chinese_text(
    tmp_path: Path, simulator: Any
) -> None:
    manifest = tmp_path / "jobs.yaml"
    manifest.write_text(
        "jobs:\n"
        "  - job_id: job-a\n    command: CONFIRM_MULTIPART_UPLOADED\n"
        "  - job_id: job-a\n    command: SUBMITVERIFYING\n"
        "    comment_data:\n      comment_title: 训练视频已重新上传\n"
        "      comment_message: 请尽快审核，谢谢\n      attachment_name: [授权书.pdf]\n"
        "  - job_id: job-b\n    command: GET_MULTIPART_UPLOADED\n",
        encoding="utf-8",
    )
    report = tmp_path / "r.jsonl"
    result = await batcher(
        ["run", str(manifest), "--report", str(report), *run_args(simulator.url)], aksk_env()
    )
    assert result.code == 0, result.output
    got = latest(read_report(report))
    submit = got[("job-a", "SUBMITVERIFYING")]
    assert submit["status"] == "succeeded"
    assert submit["comment_data"]["comment_title"] == "训练视频已重新上传"
    assert len(submit["attachment_upload_url"]) == 1
    assert got[("job-b", "GET_MULTIPART_UPLOADED")]["multipart_data"]
    assert simulator.job_state("job-a", PROJECT) not in (None, JobState.WAIT_FILE_UPLOAD)
    # The manifest order held: confirm first, then submit (the simulator refuses otherwise).
    assert not simulator.stats.duplicates()


async def test_token_auth_run(tmp_path: Path, simulator: Any, capsys: Any) -> None:
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 5)),
            "--report",
            str(report),
            *run_args(simulator.url),
        ],
        clean_env(METASTUDIO_AUTH_TOKEN=TEST_TOKEN),
        capsys,
    )
    assert result.code == 0, result.output
    assert len(read_report(report)) == 5


async def test_state_machine_refusal_is_reported_with_its_reason_and_exit_1(
    tmp_path: Path, simulator: Any, capsys: Any
) -> None:
    manifest = write_csv(
        tmp_path / "m.csv",
        [
            {"job_id": "fresh1", "command": "SUBMITVERIFYING"},  # refused: nothing uploaded
            {"job_id": "fresh1", "command": "CONFIRM_ACCEPT"},  # so this one is skipped
            {"job_id": "fresh2", "command": "GET_MULTIPART_UPLOADED"},
        ],
    )
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        ["run", str(manifest), "--report", str(report), *run_args(simulator.url)],
        aksk_env(),
        capsys,
    )
    assert result.code == 1
    got = latest(read_report(report))
    refused = got[("fresh1", "SUBMITVERIFYING")]
    assert refused["status"] == "failed" and refused["command_result"] == "EXCUTE_FAILED"
    assert refused["reason"] == refused["failed_msg"] and "WAIT_FILE_UPLOAD" in refused["reason"]
    assert refused["retryable"] is False and refused["source"].endswith("m.csv:2")
    skipped = got[("fresh1", "CONFIRM_ACCEPT")]
    assert skipped["status"] == "skipped" and "SUBMITVERIFYING" in skipped["reason"]
    assert got[("fresh2", "GET_MULTIPART_UPLOADED")]["status"] == "succeeded"


@pytest.mark.slow
async def test_faults_are_retried_until_every_entry_succeeds(
    tmp_path: Path, start_simulator: Any, capsys: Any
) -> None:
    sim = await start_simulator(seed=11, error_rate=0.15, throttle_rate=0.1, drop_rate=0.05)
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 150)),
            "--report",
            str(report),
            "--rate",
            "0",
            "--max-attempts",
            "10",
            # Each doubtful answer waits --timeout before "did not" is believed.
            *run_args(sim.url, "--timeout", "2"),
        ],
        aksk_env(),
        capsys,
    )
    assert result.code == 0, result.output
    lines = read_report(report)
    assert len(lines) == 150 and len(latest(lines)) == 150
    assert all(line["status"] == "succeeded" for line in lines)
    assert sum(line["attempts"] for line in lines) > 150  # faults happened and were retried


async def test_wrong_sk_halts_with_exit_3_and_skips_the_rest(
    tmp_path: Path, simulator: Any, capsys: Any
) -> None:
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 300)),
            "--report",
            str(report),
            "--rate",
            "0",
            "--concurrency",
            "4",
            *run_args(simulator.url),
        ],
        aksk_env(sk="not-the-right-sk"),
        capsys,
    )
    assert result.code == 3, result.output
    lines = read_report(report)
    assert len(latest(lines)) == 300
    failed = [line for line in lines if line["status"] == "failed"]
    skipped = [line for line in lines if line["status"] == "skipped"]
    assert failed and all(line["http_status"] == 401 for line in failed)
    assert len(failed) <= 4 and len(failed) + len(skipped) == 300
    assert all("authentication refused" in line["reason"] for line in skipped)
    assert all(line["reason"].count("authentication refused") == 1 for line in skipped)
    # Said once, with the API's own code and message.
    halted = next(
        json.loads(line)["halted"] for line in result.stderr.splitlines() if "run_halted_" in line
    )
    assert halted.count("authentication refused") == 1 and "HTTP 401 APIGW." in halted
    assert simulator.stats.requests <= 4
    assert "--resume" in result.stderr
    assert "not-the-right-sk" not in result.output + report.read_text()


async def test_dry_run_prints_the_plan_and_sends_nothing(
    tmp_path: Path, simulator: Any, capsys: Any
) -> None:
    manifest = write_csv(
        tmp_path / "m.csv",
        [
            {"job_id": f"j{i}", "command": c}
            for i, c in enumerate(["SUBMITVERIFYING"] * 3 + ["CONFIRM_ACCEPT"] * 2)
        ],
    )
    result = await batcher_in_thread(
        ["run", str(manifest), "--dry-run", "--rate", "2", *run_args(simulator.url)],
        aksk_env(),
        capsys,
    )
    assert result.code == 0, result.output
    assert "SUBMITVERIFYING" in result.stdout and "3" in result.stdout
    assert simulator.url in result.stdout and "AK/SK" in result.stdout
    assert "2s" in result.stdout  # 5 entries at 2/s
    assert TEST_SK not in result.output
    assert simulator.stats.requests == 0


async def test_invalid_manifest_sends_nothing_and_exits_2(
    tmp_path: Path, simulator: Any, capsys: Any
) -> None:
    manifest = write_csv(
        tmp_path / "m.csv",
        [
            {"job_id": "ok1", "command": "SUBMITVERIFYING"},
            {"job_id": "bad/id", "command": "SUBMITVERIFYING"},
        ],
    )
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        ["run", str(manifest), "--report", str(report), *run_args(simulator.url)],
        aksk_env(),
        capsys,
    )
    assert result.code == 2
    assert "m.csv:3" in result.stderr and "job_id" in result.stderr
    assert "Traceback" not in result.output
    assert simulator.stats.requests == 0 and not report.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "http://example.com"], "loopback"),
        (["--concurrency", "0"], "--concurrency"),
        (["--rate", "-1"], "--rate"),
        (["--region", "mars-1"], "unknown region"),
        (["--project-id", "a/b"], "--project-id"),
    ],
)
async def test_usage_errors_exit_2(
    tmp_path: Path, args: list[str], message: str, capsys: Any
) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 1)
    base = ["run", str(manifest), "--report", str(tmp_path / "r.jsonl"), "--no-progress"]
    if "--region" not in args and "--endpoint" not in args:
        base += ["--region", "cn-north-4"]
    if "--project-id" not in args:
        base += ["--project-id", "p1"]
    result = await batcher_in_thread([*base, *args], aksk_env(), capsys)
    assert result.code == 2 and message in result.stderr
    assert "Traceback" not in result.output


async def test_no_credentials_is_a_usage_error(tmp_path: Path, capsys: Any) -> None:
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 1)),
            "--report",
            str(tmp_path / "r.jsonl"),
            "--region",
            "cn-north-4",
            "--project-id",
            "p1",
        ],
        clean_env(),
        capsys,
    )
    assert result.code == 2 and "HUAWEICLOUD_SDK_AK" in result.stderr


async def test_existing_report_is_refused_without_resume(
    tmp_path: Path, simulator: Any, capsys: Any
) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text('{"job_id": "x", "command": "Y", "status": "failed"}\n')
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 2)),
            "--report",
            str(report),
            *run_args(simulator.url),
        ],
        aksk_env(),
        capsys,
    )
    assert result.code == 2 and "--resume" in result.stderr
    assert simulator.stats.requests == 0


@pytest.mark.slow
async def test_secrets_never_appear_in_any_output_at_debug_level(
    tmp_path: Path, start_simulator: Any, capsys: Any
) -> None:
    sim = await start_simulator(seed=3, error_rate=0.2)
    report = tmp_path / "r.jsonl"
    token = "temporary-security-token-value-xyz"
    env = aksk_env()
    env["HUAWEICLOUD_SDK_SECURITY_TOKEN"] = token
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 30)),
            "--report",
            str(report),
            "--rate",
            "0",
            "--log-level",
            "debug",
            "--log-format",
            "json",
            *run_args(sim.url, "--timeout", "2"),
        ],
        env,
        capsys,
    )
    # The simulator knows no security token here, so it accepts or refuses; either way:
    everything = result.output + report.read_text()
    assert TEST_SK not in everything and token not in everything
    for line in result.stderr.splitlines():
        if line.startswith("{"):
            json.loads(line)  # JSON logs stay JSON


async def test_the_plan_and_run_started_name_where_each_entry_goes(
    tmp_path: Path, simulator: Any, capsys: Any
) -> None:
    # The environment's project is only the default: the manifest names its own.
    manifest = write_csv(
        tmp_path / "m.csv",
        [
            {"job_id": f"j{i}", "command": "SUBMITVERIFYING", "project_id": "theirs"}
            for i in range(3)
        ]
        + [{"job_id": "k", "command": "SUBMITVERIFYING", "project_id": ""}],
    )
    env = aksk_env(HUAWEICLOUD_SDK_PROJECT_ID="demo-project")
    base = ["run", str(manifest), "--endpoint", simulator.url, "--no-progress", "--rate", "0"]
    dry = await batcher_in_thread([*base, "--dry-run"], env, capsys)
    assert dry.code == 0, dry.output
    projects = next(line for line in dry.stdout.splitlines() if line.startswith("project"))
    assert projects.split(None, 2)[2] == "theirs (3 entries), demo-project (1 entry)"
    report = tmp_path / "r.jsonl"
    real = await batcher_in_thread(
        [*base, "--report", str(report), "--log-format", "json"], env, capsys
    )
    started = next(json.loads(line) for line in real.stderr.splitlines() if '"run_started"' in line)
    assert started["projects"] == {"theirs": 3, "demo-project": 1}
    assert started["project_id"] is None  # not one project: the default would mislead


def test_a_canary_fed_from_standard_input_says_to_feed_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from types import SimpleNamespace

    from batcher.cli.run import next_step
    from batcher.execution import RunResult

    monkeypatch.setattr("sys.argv", ["batcher", "run", "-", "--report", "r.jsonl", "--limit", "5"])
    result = RunResult(run_id="r", report=Path("r.jsonl"), succeeded=5, left_by_limit=True)
    step = next_step(result, SimpleNamespace(manifests=("-",)))
    assert step == (
        "next: feed the same manifest to standard input again: ... | "
        "batcher run - --report r.jsonl --resume"
    )
    monkeypatch.setattr("sys.argv", ["batcher", "run", "m.csv", "--limit=5", "--report", "r"])
    from_file = next_step(result, SimpleNamespace(manifests=("m.csv",)))
    assert from_file == "next: batcher run m.csv --report r --resume"
