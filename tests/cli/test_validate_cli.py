"""Tests for `batcher validate`: exit codes and what the operator sees."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batcher.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_YAML = str(ROOT / "manifests" / "example.yaml")
EXAMPLE_CSV = str(ROOT / "manifests" / "example.csv")


def test_good_manifests_print_counts_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", EXAMPLE_YAML, EXAMPLE_CSV]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "OK: 2 manifests, 18 entries for 16 jobs"
    counts = dict(line.split() for line in lines[1:])
    assert counts["total"] == "18"
    assert counts["SUBMITVERIFYING"] == "2"
    assert sum(int(count) for name, count in counts.items() if name != "total") == 18


def test_problems_go_to_stderr_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("job_id,comand\na b,CONFIRM_ACCEPT\n", encoding="utf-8")
    good = tmp_path / "good.yaml"
    good.write_text(
        "jobs:\n  - job_id: a\n    command: SUBMITVERIFY\n  - job_id: b/c\n"
        "    command: CONFIRM_ACCEPT\n",
        encoding="utf-8",
    )
    assert main(["validate", str(bad), str(good)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {bad}:1: comand: unknown column 'comand'; did you mean 'command'?",
        f"error: {bad}:1: command: the header has no command column (add one, or give a "
        "default command with --command)",
        f"error: {good}:3: command: unknown command 'SUBMITVERIFY'; did you mean "
        "'SUBMITVERIFYING'?",
        f"error: {good}:4: job_id: must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-' "
        "(got 'b/c')",
        "batcher: 4 problem(s) in the manifest; nothing was sent",
    ]


def test_default_command_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("job_id\nj1\nj2\n", encoding="utf-8")
    assert main(["validate", str(ids)]) == 2
    capsys.readouterr()
    assert main(["validate", str(ids), "--command", "DELETE_JOB_VIDEO"]) == 0
    out, _ = capsys.readouterr()
    assert "DELETE_JOB_VIDEO" in out and "OK: 1 manifest, 2 entries for 2 jobs" in out


def test_unknown_default_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = tmp_path / "ids.csv"
    ids.write_text("job_id\nj1\n", encoding="utf-8")
    assert main(["validate", str(ids), "--command", "submitverifying"]) == 2
    _, err = capsys.readouterr()
    assert "did you mean 'SUBMITVERIFYING'?" in err


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"job_id,command\nj1,CONFIRM_ACCEPT\nj1,CONFIRM_ACCEPT\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert main(["validate", "-"]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("error: <stdin>:3: command: duplicate entry: job 'j1' already has ")
    assert "at <stdin>:2" in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.yaml"
    assert main(["validate", str(missing)]) == 2
    _, err = capsys.readouterr()
    assert err == f"batcher: cannot read manifest {missing}: No such file or directory\n"


def test_truncation_is_announced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many = tmp_path / "many.csv"
    many.write_text(
        "job_id,command\n" + "".join(f"x y{n},CONFIRM_ACCEPT\n" for n in range(150)),
        encoding="utf-8",
    )
    assert main(["validate", str(many)]) == 2
    _, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 101
    assert lines[-1] == (
        "batcher: 100 problem(s) in the manifest (more problems not shown) "
        "(only the first ones are shown); nothing was sent"
    )


def test_console_script_reads_stdin_and_never_tracebacks(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "batcher", "validate"]
    good = subprocess.run(
        [*command, "-", "--command", "SUBMITVERIFYING"],
        input="\ufeffjob_id\njob_1\njob_2\n".encode(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.decode().startswith("OK: 1 manifest, 2 entries for 2 jobs")

    broken = tmp_path / "broken.yaml"
    broken.write_bytes(b"jobs:\n  - job_id: \xff\xfe\n")
    bad = subprocess.run([*command, str(broken)], capture_output=True, check=False, timeout=60)
    assert bad.returncode == 2
    stderr = bad.stderr.decode()
    assert "Traceback" not in stderr
    assert f"{broken}:2: not valid UTF-8" in stderr


def test_hostile_yaml_exits_2_without_traceback(tmp_path: Path) -> None:
    # Two entries on one line, a value that contains itself, and nine lines of nested
    # aliases naming 10**9 values: each a located problem, promptly, in a real process.
    same_line = tmp_path / "70.yaml"
    same_line.write_text(
        "jobs: [{job_id: ok1, command: CONFIRM_MULTIPART_UPLOADED}, "
        "{job_id: ok1, command: CONFIRM_MULTIPART_UPLOADED}]\n",
        encoding="utf-8",
    )
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text(
        "jobs:\n  - &e {job_id: ok2, command: SUBMITVERIFYING, comment_data: *e}\n",
        encoding="utf-8",
    )
    bomb = tmp_path / "bomb.yaml"
    levels = [f"    a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 9)]
    bomb.write_text(
        "defaults:\n  comment_data:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(levels)
        + "jobs: []\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "batcher", "validate", str(same_line), str(recursive), str(bomb)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        f"error: {same_line}:1: command: duplicate entry: job 'ok1' already has command "
        f"'CONFIRM_MULTIPART_UPLOADED' at {same_line}:1 (each (job_id, command) pair may "
        "appear only once)",
        f"error: {recursive}:2: comment_data: recursive YAML alias: the value contains itself",
        f"error: {bomb}:1: defaults: too large: YAML alias expansion makes more than 10,000 values",
        "batcher: 3 problem(s) in the manifest; nothing was sent",
    ]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("extra", [["validate"], ["run", "--dry-run", "--simulate"]])
def test_a_full_disk_behind_standard_output_is_exit_2_not_a_traceback(
    extra: list[str],
) -> None:
    command = [sys.executable, "-m", "batcher", extra[0], EXAMPLE_CSV, *extra[1:]]
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False
        )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert "cannot write to standard output: No space left on device" in result.stderr


@pytest.mark.parametrize(
    "extra",
    [["validate", EXAMPLE_CSV], ["run", EXAMPLE_CSV, "--dry-run", "--simulate"],
     ["select", "--simulate", "--command", "SUBMITVERIFYING"]],
)  # fmt: skip
def test_closed_standard_output_is_exit_2_not_a_traceback(extra: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batcher", *extra],
        stdout=None, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        preexec_fn=lambda: os.close(1),  # `>&-`
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "standard output is closed" in result.stderr


def test_report_with_standard_output_closed(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    subprocess.run(
        [sys.executable, "-m", "batcher", "run", EXAMPLE_CSV, "--simulate", "--report",
         str(report), "--no-progress", "--quiet"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip

    def report_cmd(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "batcher", "report", str(report), *extra],
            stdout=None, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
            preexec_fn=lambda: os.close(1),
        )  # fmt: skip

    summary = report_cmd()
    assert summary.returncode == 2 and "standard output is closed" in summary.stderr
    assert "Traceback" not in summary.stderr
    page = tmp_path / "r.html"
    drawn = report_cmd("--html", str(page))
    assert drawn.returncode == 0, drawn.stderr  # the file is the output
    assert "Traceback" not in drawn.stderr and page.stat().st_size > 10_000


def test_a_run_with_standard_error_closed_still_runs_and_reports(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "batcher", "run", EXAMPLE_CSV, "--simulate", "--report",
         str(report), "--no-progress"],
        capture_output=False, stdout=subprocess.DEVNULL, timeout=60, check=False,
        preexec_fn=lambda: os.close(2),  # `2>&-`: logs go nowhere, the report is the product
    )  # fmt: skip
    assert result.returncode == 0
    assert len(report.read_text().splitlines()) == 8
