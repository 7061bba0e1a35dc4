"""Manifests that are not plain files, through real ``batcher`` processes: named pipes read
once (and a wait for a writer that a signal ends), closed standard input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

BATCHER = [sys.executable, "-m", "batcher"]
ROWS = "job_id,command\n" + "".join(f"job{n:04d},GET_MULTIPART_UPLOADED\n" for n in range(40))


def _feed(path: Path, data: bytes) -> threading.Thread:
    def write_all() -> None:
        with open(path, "wb") as stream:
            stream.write(data)

    thread = threading.Thread(target=write_all, daemon=True)
    thread.start()
    return thread


def _without_credentials() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HUAWEICLOUD_SDK_", "CLOUD_SDK_", "METASTUDIO_"))
    }


@pytest.mark.parametrize("command", ["validate", "run"])
def test_closed_standard_input_is_a_usage_error(tmp_path: Path, command: str) -> None:
    report = tmp_path / "r.jsonl"
    args = [*BATCHER, command, "-"]
    if command == "run":
        args += ["--report", str(report), "--simulate", "--project-id", "p1"]
    result = subprocess.run(
        args,
        stdin=None,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=_without_credentials(),
        # `<&-`: the process starts with no file descriptor 0 at all.
        preexec_fn=lambda: os.close(0),
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "standard input is closed" in result.stderr
    assert not report.exists()


SIMULATED = ["--project-id", "p1", "--rate", "0", "--no-progress"]


def test_a_run_with_standard_input_closed_reads_its_manifest_file(tmp_path: Path) -> None:
    # cron can start a job with no descriptor 0: the run must not depend on it (uvloop's
    # libuv aborts when one of its own descriptors took number 0, so it is not used then).
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(ROWS, encoding="utf-8")
    report = tmp_path / "r.jsonl"
    result = subprocess.run(
        [*BATCHER, "run", str(manifest), "--report", str(report), "--simulate", *SIMULATED],
        stdin=None,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=_without_credentials(),
        preexec_fn=lambda: os.close(0),
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert [line["status"] for line in lines] == ["succeeded"] * 40


def test_run_reads_a_named_pipe_once_and_sends_every_entry(tmp_path: Path) -> None:
    pipe = tmp_path / "jobs.csv"
    os.mkfifo(pipe)
    writer = _feed(pipe, ROWS.encode())
    report = tmp_path / "r.jsonl"
    result = subprocess.run(
        [
            *BATCHER,
            *("run", str(pipe), "--report", str(report), "--simulate", "--project-id", "p1"),
            *("--rate", "0", "--no-progress", "--log-format", "json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=_without_credentials(),
    )
    writer.join(timeout=10)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["job_id"] for line in lines) == [f"job{n:04d}" for n in range(40)]
    assert {line["status"] for line in lines} == {"succeeded"}


def test_validate_reads_a_named_pipe(tmp_path: Path) -> None:
    pipe = tmp_path / "jobs.csv"
    os.mkfifo(pipe)
    writer = _feed(pipe, ROWS.encode())
    result = subprocess.run(
        [*BATCHER, "validate", str(pipe)], capture_output=True, text=True, check=False, timeout=60
    )
    writer.join(timeout=10)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK: 1 manifest, 40 entries for 40 jobs")


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_waiting_for_a_pipe_writer_ends_on_one_signal(
    tmp_path: Path, signum: int, command: str
) -> None:
    # Like `cat`, batcher waits for someone to write into the pipe; one signal must end the
    # wait (the issue: a second open() after the first pass ignored SIGTERM; and under the
    # event loop of `run`, the first SIGINT only cancels the main task).
    pipe = tmp_path / "jobs.csv"
    os.mkfifo(pipe)
    args = [*BATCHER, command, str(pipe)]
    if command == "run":
        args += ["--report", str(tmp_path / "r.jsonl"), "--simulate", "--project-id", "p1"]
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_without_credentials(),
        # A shell without job control starts background jobs with SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_until_waiting_on(process.pid, pipe)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Both end as the exit codes say of a halt by signal (SIGTERM used to kill silently).
    assert process.returncode == 3, stderr
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "r.jsonl").exists()


def _wait_until_waiting_on(pid: int, pipe: Path) -> None:
    """Until the process has the pipe open (it then waits for a writer to write)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            targets = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            targets = []
        if str(pipe) in targets:
            time.sleep(0.2)  # into the wait itself
            return
        time.sleep(0.05)
    pytest.fail("batcher did not open the pipe")


@pytest.mark.slow
def test_a_run_sends_exactly_what_it_validated_while_the_manifest_changes(
    tmp_path: Path,
) -> None:
    # Issue 10, case 3: a bad row appended during a run gave exit 2 after thousands of
    # requests. Now the run reads its own copy: every validated entry once, nothing else.
    manifest = tmp_path / "jobs.csv"
    # Rows of 1 KB, so that the file is far longer than any read buffer: a reader of the
    # file itself would meet the changes.
    reason = "r" * 1000
    manifest.write_text(
        "job_id,command,operation_reason\n"
        + "".join(f"job{n:04d},GET_MULTIPART_UPLOADED,{reason}\n" for n in range(40)),
        encoding="utf-8",
    )
    report = tmp_path / "r.jsonl"
    process = subprocess.Popen(
        [
            *BATCHER,
            *("run", str(manifest), "--report", str(report), "--simulate"),
            *("--project-id", "p1", "--rate", "20", "--no-progress", "--log-format", "json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_without_credentials(),
    )
    try:
        deadline = time.monotonic() + 60
        while not (report.exists() and report.stat().st_size) and process.poll() is None:
            assert time.monotonic() < deadline, "no report line in 60 s"
            time.sleep(0.02)
        with open(manifest, "a", encoding="utf-8") as stream:
            stream.write("bad id,NOPE\nextra1,GET_MULTIPART_UPLOADED\n")
        replacement = tmp_path / "new.csv"
        replacement.write_text("job_id,command\nother,GET_MULTIPART_UPLOADED\n", encoding="utf-8")
        os.replace(replacement, manifest)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in report.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["job_id"] for line in lines) == [f"job{n:04d}" for n in range(40)]


@pytest.mark.parametrize("command", ["validate", "run"])
def test_waiting_for_standard_input_ends_on_one_sigint(tmp_path: Path, command: str) -> None:
    # A producer that has not finished (`slow | batcher run - ...`): one SIGINT ends the
    # wait, nothing is sent and no report is started.
    report = tmp_path / "r.jsonl"
    args = [*BATCHER, command, "-"]
    if command == "run":
        args += ["--report", str(report), "--simulate", "--project-id", "p1"]
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_without_credentials(),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdin is not None
    try:
        process.stdin.write("job_id,command\njob1,GET_MULTIPART_UPLOADED\n")
        process.stdin.flush()
        _wait_until_polling(process.pid)
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() == 3, "one SIGINT did not end the wait"
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert not report.exists()


def _wait_until_polling(pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if "poll" in Path(f"/proc/{pid}/wchan").read_text():
                time.sleep(0.2)
                return
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail("batcher did not wait for standard input")
