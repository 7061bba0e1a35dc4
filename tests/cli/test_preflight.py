"""Preflight as a new operator meets it: every problem at once, honest dry runs, the SDK's
own configuration (credentials file, per-region endpoints), and mistyped flags."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest
from support import (
    PROJECT,
    TEST_AK,
    TEST_SK,
    aksk_env,
    batcher,
    batcher_in_thread,
    clean_env,
    jobs_csv,
    read_report,
)


async def test_everything_missing_is_listed_in_one_run(tmp_path: Path) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 2)
    result = await batcher(
        ["run", str(manifest), "--report", str(tmp_path / "r.jsonl"), "--log-format", "console"],
        clean_env(HOME=str(tmp_path)),
    )
    assert result.code == 2
    assert "no credentials" in result.stderr
    assert "no region" in result.stderr
    assert "no project id" in result.stderr
    assert "3 problem(s) with the settings; nothing was sent" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "r.jsonl").exists()


async def test_settings_and_manifest_problems_come_together(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("job_id,command\nbad/id,SUBMITVERIFYING\n")
    result = await batcher(
        ["run", str(manifest), "--report", str(tmp_path / "r.jsonl"), "--rate", "-2",
         "--log-format", "console"],
        clean_env(HOME=str(tmp_path)),
    )  # fmt: skip
    assert result.code == 2
    assert "m.csv:2: job_id" in result.stderr and "--rate" in result.stderr


async def test_a_dry_run_exits_2_when_the_real_run_would_refuse(tmp_path: Path) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 2)
    result = await batcher(
        ["run", str(manifest), "--dry-run", "--region", "cn-north-4", "--project-id", PROJECT],
        clean_env(HOME=str(tmp_path)),
    )
    assert result.code == 2 and "no credentials" in result.stderr
    report = tmp_path / "r.jsonl"
    report.write_text('{"job_id": "x", "command": "SUBMITVERIFYING", "status": "failed"}\n')
    existing = await batcher(
        ["run", str(manifest), "--dry-run", "--region", "cn-north-4", "--project-id", PROJECT,
         "--report", str(report)],
        aksk_env(),
    )  # fmt: skip
    assert existing.code == 2 and "--resume" in existing.stderr


async def test_a_dry_run_plan_honours_resume_and_limit(tmp_path: Path) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 10)
    report = tmp_path / "r.jsonl"
    done = [
        {"job_id": f"job{i:06d}", "command": "GET_MULTIPART_UPLOADED", "status": "succeeded"}
        for i in range(4)
    ]
    report.write_text("".join(json.dumps(line) + "\n" for line in done))
    result = await batcher(
        ["run", str(manifest), "--dry-run", "--resume", "--limit", "3", "--report", str(report),
         "--region", "cn-north-4", "--project-id", PROJECT, "--rate", "1"],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 0, result.output
    assert "4 already done" in result.stdout
    assert "to send:     3 entries (--limit 3)" in result.stdout
    assert "at least 3s" in result.stdout  # 3 entries at 1/s


async def test_the_sdks_credentials_file_and_project_id_are_used(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator()
    home = tmp_path / "home"
    (home / ".huaweicloud").mkdir(parents=True)
    credentials = home / ".huaweicloud" / "credentials"
    credentials.write_text(f"[basic]\nak = {TEST_AK}\nsk = {TEST_SK}\nproject_id = {PROJECT}\n")
    credentials.chmod(0o600)
    report = tmp_path / "r.jsonl"
    args = ["run", str(jobs_csv(tmp_path / "m.csv", 3)), "--report", str(report),
            "--endpoint", sim.url, "--no-progress", "--log-level", "debug"]  # fmt: skip
    result = await batcher(args, clean_env(HOME=str(home)))
    assert result.code == 0, result.output
    assert sim.stats.requests == 3 and len(read_report(report)) == 3
    assert TEST_SK not in result.output + report.read_text()

    credentials.chmod(0o644)  # readable by others: refused, as ssh refuses such a key
    report.unlink()
    refused = await batcher(args, clean_env(HOME=str(home)))
    assert (
        refused.code == 2
        and "chmod 600" in refused.stderr
        and "readable by others" in (refused.stderr)
    )
    assert sim.stats.requests == 3 and not report.exists()


@pytest.mark.parametrize("present", ["ak", "sk"])
async def test_a_credentials_file_with_half_a_key_says_which_half(
    tmp_path: Path, present: str
) -> None:
    home = tmp_path / "home"
    (home / ".huaweicloud").mkdir(parents=True)
    credentials = home / ".huaweicloud" / "credentials"
    value = TEST_AK if present == "ak" else TEST_SK
    credentials.write_text(f"[basic]\n{present} = {value}\nproject_id = {PROJECT}\n")
    credentials.chmod(0o600)
    report = tmp_path / "r.jsonl"
    args = ["run", str(jobs_csv(tmp_path / "m.csv", 3)), "--report", str(report),
            "--endpoint", "http://127.0.0.1:9", "--no-progress"]  # fmt: skip
    result = await batcher(args, clean_env(HOME=str(home)))
    missing = "sk" if present == "ak" else "ak"
    assert result.code == 2, result.output
    assert f"has {present} but no {missing}" in result.stderr
    assert TEST_SK not in result.output and not report.exists()


async def test_the_environment_wins_over_the_credentials_file(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator()
    file = tmp_path / "creds.ini"
    file.write_text("[basic]\nak = WRONGAK000000\nsk = wrong-secret-key-0000\n")
    file.chmod(0o600)
    env = aksk_env()
    env["HUAWEICLOUD_SDK_CREDENTIALS_FILE"] = str(file)
    result = await batcher(
        ["run", str(jobs_csv(tmp_path / "m.csv", 2)), "--report", str(tmp_path / "r.jsonl"),
         "--endpoint", sim.url, "--project-id", PROJECT, "--no-progress"],
        env,
    )  # fmt: skip
    assert result.code == 0, result.output


async def test_an_endpoint_variable_opens_a_region_batcher_does_not_know(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator()
    env = aksk_env(
        HUAWEICLOUD_SDK_REGION="ap-southeast-9",
        HUAWEICLOUD_SDK_REGION_METASTUDIO_AP_SOUTHEAST_9=sim.url,
        HUAWEICLOUD_SDK_PROJECT_ID=PROJECT,
    )
    result = await batcher(
        ["run", str(jobs_csv(tmp_path / "m.csv", 2)), "--report", str(tmp_path / "r.jsonl"),
         "--no-progress"],
        env,
    )  # fmt: skip
    assert result.code == 0, result.output
    assert sim.stats.requests == 2
    unknown = await batcher(
        ["run", str(jobs_csv(tmp_path / "n.csv", 1)), "--dry-run", "--region", "mars-1"],
        env,
    )
    assert unknown.code == 2
    assert "HUAWEICLOUD_SDK_REGION_METASTUDIO_MARS_1" in unknown.stderr


async def test_a_mistyped_flag_shows_the_subcommands_usage_and_the_closest_flag(
    tmp_path: Path,
) -> None:
    result = await batcher(["run", "m.csv", "--concurency", "4"], clean_env())
    assert result.code == 2
    assert "usage: batcher run" in result.stderr and "did you mean --concurrency?" in result.stderr
    report = await batcher(["report", "r.jsonl", "--exprt-manifest", "x.csv"], clean_env())
    assert report.code == 2 and "did you mean --export-manifest?" in report.stderr


def simulated(report: Path, *more: str) -> list[str]:
    return ["--report", str(report), "--simulate", "--no-progress", *more]


async def test_a_dry_run_exits_4_when_another_run_holds_the_report(tmp_path: Path) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 2)
    report = tmp_path / "r.jsonl"
    fd = os.open(report, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a run in progress holds it
        dry = await batcher(["run", str(manifest), *simulated(report, "--dry-run")], clean_env())
        real = await batcher(["run", str(manifest), *simulated(report)], clean_env())
    finally:
        os.close(fd)
    assert dry.code == real.code == 4, (dry.output, real.output)
    assert "in use by another batcher run" in dry.stderr


@pytest.mark.parametrize("sidecar", ["directory", "foreign"])
async def test_a_bad_run_record_sidecar_is_refused_by_dry_and_real_runs_alike(
    tmp_path: Path, sidecar: str
) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 2)
    report = tmp_path / "r.jsonl"
    runs = tmp_path / "r.jsonl.runs.jsonl"
    if sidecar == "directory":
        runs.mkdir()
    else:
        runs.write_text("name,phone\nalice,123\n")
    dry = await batcher(["run", str(manifest), *simulated(report, "--dry-run")], clean_env())
    real = await batcher(["run", str(manifest), *simulated(report)], clean_env())
    assert dry.code == real.code == 2, (dry.output, real.output)
    assert str(runs) in dry.stderr and "Traceback" not in dry.output + real.output
    # Refused before anything was sent: no empty report or in-flight file is left behind.
    assert sorted(os.listdir(tmp_path)) == ["m.csv", "r.jsonl.runs.jsonl"]


@pytest.mark.parametrize(
    ("flag", "free", "message"),
    [(os.ST_RDONLY, 1 << 30, "read-only file system"), (0, 4096, "no space left")],
)
async def test_a_report_on_a_read_only_or_full_file_system_is_refused_before_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, flag: int, free: int,
    message: str,
) -> None:  # fmt: skip
    real_statvfs, real_fstatvfs = os.statvfs, os.fstatvfs

    def pretend(result: os.statvfs_result) -> os.statvfs_result:
        values = list(result)
        values[0] = values[1] = 1  # f_bsize, f_frsize
        values[4] = free  # f_bavail
        values[8] = result.f_flag | flag
        return os.statvfs_result(values)

    monkeypatch.setattr(os, "statvfs", lambda path: pretend(real_statvfs(path)))
    monkeypatch.setattr(os, "fstatvfs", lambda fd: pretend(real_fstatvfs(fd)))
    manifest = jobs_csv(tmp_path / "m.csv", 2)
    report = tmp_path / "r.jsonl"
    for extra in (["--dry-run"], []):
        result = await batcher_in_thread(
            ["run", str(manifest), *simulated(report, *extra)], clean_env(), capsys
        )
        assert result.code == 2 and message in result.stderr, result.output
    assert sorted(os.listdir(tmp_path)) == ["m.csv"]


async def test_an_existing_report_in_a_directory_that_cannot_be_written_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The in-flight file and the run record go beside the report: its directory must be
    writable even when the report exists (the real run used to crash at the first one)."""
    manifest = jobs_csv(tmp_path / "m.csv", 2)
    reports = tmp_path / "reports"
    reports.mkdir()
    report = reports / "r.jsonl"
    report.write_text("")
    real_access = os.access

    def read_only_dir(path: Any, mode: int, **kwargs: Any) -> bool:
        if Path(path) == reports and mode & os.W_OK:
            return False
        return real_access(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", read_only_dir)
    for extra in (["--dry-run"], []):
        result = await batcher_in_thread(
            ["run", str(manifest), *simulated(report, *extra)], clean_env(), capsys
        )
        assert result.code == 2, result.output
        assert f"directory {reports} is not writable" in result.stderr


def test_the_dry_runs_lock_check_takes_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real run starting while a dry run checks must never meet a lock of the dry run's."""
    from batcher.journal.lock import check_unlocked

    report = tmp_path / "r.jsonl"
    report.write_text("")
    taken: list[int] = []
    real_flock = fcntl.flock

    def spy(fd: int, operation: int) -> None:
        taken.append(operation)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", spy)
    check_unlocked(report)
    assert taken == []


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
async def test_a_credentials_file_that_is_not_a_file_is_refused_at_once(
    tmp_path: Path, special: str
) -> None:
    """/dev/zero used to be read until memory ran out; a FIFO with no writer hung for ever."""
    path = special
    if special == "fifo":
        path = str(tmp_path / "creds")
        os.mkfifo(path)
    manifest = jobs_csv(tmp_path / "m.csv", 2)
    result = await batcher(
        ["run", str(manifest), "--dry-run", "--region", "cn-north-4", "--project-id", PROJECT],
        aksk_env(HUAWEICLOUD_SDK_CREDENTIALS_FILE=path),
        timeout=20,
    )
    assert result.code == 2 and "not a regular file" in result.stderr, result.output


@pytest.mark.parametrize("command", ["run", "select"])
def test_a_secret_that_is_not_utf8_is_a_settings_error_not_a_traceback(
    tmp_path: Path, command: str
) -> None:
    import subprocess
    import sys

    env = {k.encode(): v.encode() for k, v in clean_env().items()}
    env[b"HUAWEICLOUD_SDK_AK"] = b"AKAKAKAKAKAK"
    env[b"HUAWEICLOUD_SDK_SK"] = b"abc\xffdefghijkl"  # not UTF-8
    args = [sys.executable, "-m", "batcher", command]
    if command == "run":
        args += [str(jobs_csv(tmp_path / "m.csv", 2)), "--report", str(tmp_path / "r.jsonl")]
    else:
        args += ["--command", "SUBMITVERIFYING"]
    args += ["--endpoint", "http://127.0.0.1:9", "--project-id", PROJECT]
    result = subprocess.run(args, env=env, capture_output=True, timeout=60, check=False)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, stderr
    assert "Traceback" not in stderr and "HUAWEICLOUD_SDK_SK" in stderr
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize(
    ("argv", "code", "said"),
    [
        ([], 2, "commands:"),  # `batcher` alone: what it takes
        (["reprot", "r.jsonl"], 2, "no such command 'reprot' (did you mean report?)"),
        (["select", "--comand", "X"], 2, "no such option: --comand (did you mean --command?)"),
        (["report", "r.jsonl", "--status", "faild"], 2, "(did you mean failed?)"),
        (["run", "-h"], 0, "--max-attempts N"),
    ],
)
def test_the_command_line_says_what_it_takes(
    argv: list[str], code: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from batcher.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == code
    captured = capsys.readouterr()
    assert said in captured.out + captured.err and "Traceback" not in captured.err


def test_the_version_is_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    from batcher.cli import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"batcher {version('batcher')}\n"
