"""SIGINT and SIGTERM against real ``batcher`` processes: any number of them ends a run with
exit 3 and a report a resume completes, the run record's exit code is the process's, and a
signal while a large manifest is still being checked ends the process at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BATCHER = [sys.executable, "-m", "batcher"]
SIMULATED = ["--simulate", "--project-id", "p1", "--no-progress"]


def _env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HUAWEICLOUD_SDK_", "CLOUD_SDK_", "METASTUDIO_"))
    }


def _manifest(path: Path, count: int) -> Path:
    with open(path, "w", encoding="utf-8") as stream:
        stream.write("job_id,command\n")
        stream.writelines(f"job{n:07d},GET_MULTIPART_UPLOADED\n" for n in range(count))
    return path


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*BATCHER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        # A shell without job control starts background jobs with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _lines(report: Path) -> list[dict[str, object]]:
    if not report.exists():
        return []
    text = report.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_storm_of_signals_ends_the_run_with_exit_3_and_a_resumable_report(
    tmp_path: Path, signum: int
) -> None:
    manifest = _manifest(tmp_path / "jobs.csv", 60)
    report = tmp_path / "r.jsonl"
    args = ["run", str(manifest), "--report", str(report), "--rate", "10", *SIMULATED]
    process = _start(args)
    try:
        deadline = time.monotonic() + 60
        while len(_lines(report)) < 3:
            assert process.poll() is None and time.monotonic() < deadline, "no lines"
            time.sleep(0.02)
        for _ in range(200):  # back to back, then on until the process is gone
            process.send_signal(signum)
        while process.poll() is None:
            process.send_signal(signum)
            time.sleep(0.002)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, stderr[-2000:]
    assert "Traceback" not in stderr
    lines = _lines(report)
    assert sorted(str(line["job_id"]) for line in lines) == [f"job{n:07d}" for n in range(60)]
    assert {line["status"] for line in lines} <= {"succeeded", "skipped"}
    (record,) = [json.loads(line) for line in Path(f"{report}.runs.jsonl").read_text().splitlines()]
    assert record["exit_code"] == process.returncode

    resumed = subprocess.run(
        [*BATCHER, *args, "--resume", "--rate", "0"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=_env(),
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_a_large_manifest_is_checked_ends_the_process_at_once(
    tmp_path: Path, signum: int
) -> None:
    # 300,000 entries take seconds to check; Ctrl-C used to wait for the check to finish.
    manifest = _manifest(tmp_path / "big.csv", 300_000)
    report = tmp_path / "r.jsonl"
    process = _start(["run", str(manifest), "--report", str(report), *SIMULATED])
    try:
        _wait_until_reading(process, manifest)
        sent = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not report.exists()
    # Well under a second unloaded; the margin is for a machine shared with other work.
    assert took < 1.0, f"{took:.2f} s from the signal to the end of the process"


def _wait_until_reading(process: subprocess.Popen[str], manifest: Path) -> None:
    """Until the process has the manifest open and has been checking it for a while."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-2000:]
        try:
            targets = [os.readlink(fd) for fd in Path(f"/proc/{process.pid}/fd").iterdir()]
        except OSError:
            targets = []
        if str(manifest) in targets:
            time.sleep(0.5)
            assert process.poll() is None, "the check ended before the signal: make it longer"
            return
        time.sleep(0.02)
    pytest.fail("batcher did not open the manifest")
