"""The report writer: a lock that belongs to the file, refusals before anything is written,
and write failures that stop a run cleanly without tearing or gluing lines."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from report_lines import report_line

from batcher.errors import ExitCode, ReportLockedError, UsageError
from batcher.journal import ReportIndex, ReportWriteError, ReportWriter, file_id, same_file
from batcher.journal import writer as _writer


def spellings(tmp_path: Path, report: Path) -> dict[str, Path]:
    """Every way of naming one report file: itself, a symlink, a hard link, sub/../."""
    (tmp_path / "sub").mkdir(exist_ok=True)
    symlink, hard = tmp_path / "alias.jsonl", tmp_path / "hard.jsonl"
    symlink.symlink_to(report)
    os.link(report, hard)
    return {
        "same path": report,
        "symlink": symlink,
        "hard link": hard,
        "sub/..": tmp_path / "sub" / ".." / report.name,
    }


@pytest.fixture
def report(tmp_path: Path) -> Path:
    path = tmp_path / "r.jsonl"
    path.touch()
    return path


def test_every_name_of_a_held_report_meets_the_lock(report: Path, tmp_path: Path) -> None:
    with ReportWriter.open(report, resume=True):
        for how, name in spellings(tmp_path, report).items():
            with pytest.raises(ReportLockedError) as raised:
                ReportWriter.open(name, resume=True)
            assert raised.value.exit_code == ExitCode.LOCKED, how
            assert "in use by another batcher run" in str(raised.value), how
    # Released with the writer: any name opens now.
    with ReportWriter.open(tmp_path / "hard.jsonl", resume=True):
        pass


def test_the_lock_names_the_holders_pid(report: Path, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from batcher.journal import ReportWriter
                with ReportWriter.open(Path({str(report)!r}), resume=True):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        hard = tmp_path / "hard.jsonl"
        os.link(report, hard)
        with pytest.raises(ReportLockedError, match=f"PID {holder.pid}\\b"):
            ReportWriter.open(hard, resume=True)
    finally:
        holder.kill()
        holder.wait()
    # A killed holder leaves no stale lock.
    with ReportWriter.open(report, resume=True):
        pass


def test_no_lock_file_is_left_beside_the_report(report: Path, tmp_path: Path) -> None:
    with ReportWriter.open(report, resume=True) as writer:
        writer.write(report_line("a"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]


def test_an_old_versions_lock_file_is_respected(report: Path, tmp_path: Path) -> None:
    import fcntl

    lock = tmp_path / "r.jsonl.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, b"4242\n")
        with pytest.raises(ReportLockedError, match=r"older batcher run \(PID 4242"):
            ReportWriter.open(report, resume=True)
    finally:
        os.close(fd)
    with ReportWriter.open(report, resume=True):  # a stale one is no obstacle
        pass


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "sub/.."])
def test_a_report_that_is_a_manifest_is_refused_before_anything_changes(
    tmp_path: Path, how: str
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("job_id,command\nj1,SUBMITVERIFYING\n")
    manifest.chmod(0o644)
    name = spellings(tmp_path, manifest)[how]
    with pytest.raises(UsageError, match="is the manifest") as raised:
        ReportWriter.open(name, resume=True, manifests=[manifest])
    assert raised.value.exit_code == ExitCode.USAGE
    assert manifest.read_text() == "job_id,command\nj1,SUBMITVERIFYING\n"
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o644
    # Named the other way round too: the manifest by a link, the report by its path.
    with pytest.raises(UsageError, match="is the manifest"):
        ReportWriter.open(manifest, resume=True, manifests=[name])


def test_standard_input_as_the_manifest_is_compared_too(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    report.write_text("")
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from batcher.errors import UsageError
        from batcher.journal import ReportWriter
        try:
            ReportWriter.open(Path({str(report)!r}), resume=True, manifests=["-"])
        except UsageError as error:
            print(error)
        """
    )
    with open(report, "rb") as stdin:
        out = subprocess.run(
            [sys.executable, "-c", code], stdin=stdin, capture_output=True, text=True, check=True
        )
    assert "is the manifest -" in out.stdout


def test_same_file_and_file_id(report: Path, tmp_path: Path) -> None:
    names = spellings(tmp_path, report)
    assert all(same_file(report, name) for name in names.values())
    other = tmp_path / "other.jsonl"
    other.touch()
    assert not same_file(report, other)
    assert not same_file(report, tmp_path / "missing")
    assert file_id(report) == (report.stat().st_dev, report.stat().st_ino)


def test_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot open report"):
        ReportWriter.open(tmp_path, resume=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        ReportWriter.open(fifo, resume=True)
    with pytest.raises(UsageError, match="no directory"):
        ReportWriter.open(tmp_path / "missing" / "r.jsonl", resume=False)


def test_created_private_and_made_private(tmp_path: Path) -> None:
    new = tmp_path / "new.jsonl"
    with ReportWriter.open(new, resume=False):
        assert stat.S_IMODE(new.stat().st_mode) == 0o600
    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps(report_line("a")) + "\n")
    old.chmod(0o644)
    with ReportWriter.open(old, resume=True):
        assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_writer_identity_is_the_files(report: Path) -> None:
    with ReportWriter.open(report, resume=True) as writer:
        assert writer.identity == file_id(report)


def lines_of(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), data[-80:]
    return [json.loads(line) for line in data.splitlines()]


@pytest.mark.parametrize("done", [0, 7, 200])
def test_a_failed_write_cuts_its_partial_line_and_stops_every_later_write(
    report: Path, monkeypatch: pytest.MonkeyPatch, done: int
) -> None:
    with ReportWriter.open(report, resume=True) as writer:
        writer.write(report_line("a"))

        room = [done]

        def full(fd: int, data: bytes) -> int:  # a disk that fills up mid-line
            if room[0]:
                written, room[0] = os.write(fd, data[: room[0]]), 0
                return written
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(_writer, "_write", full)
        with pytest.raises(ReportWriteError, match="No space left on device") as raised:
            writer.write(report_line("b"))
        assert raised.value.exit_code == ExitCode.HALTED
        assert "--resume" in str(raised.value)
        monkeypatch.setattr(_writer, "_write", os.write)
        with pytest.raises(ReportWriteError):  # the writer stays failed
            writer.write(report_line("c"))
    assert [line["job_id"] for line in lines_of(report)] == ["a"]


def test_a_torn_line_is_cut_by_the_next_run_never_glued_to(
    report: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ReportWriter.open(report, resume=True)
    writer.write(report_line("a"))
    state = {"calls": 0}

    def tear(fd: int, data: bytes) -> int:
        state["calls"] += 1
        if state["calls"] == 1:
            return os.write(fd, data[:20])
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_writer, "_write", tear)
    monkeypatch.setattr(_writer.os, "ftruncate", _raise_eio)
    with pytest.raises(ReportWriteError, match="Input/output error"):
        writer.write(report_line("b"))
    monkeypatch.undo()
    with pytest.raises(ReportWriteError):
        writer.write(report_line("c"))
    writer.close()
    # The next run cuts the torn line off before its first line: every line is whole
    # JSON again (DuckDB's and pandas' one-call readers refuse a broken middle line).
    with ReportWriter.open(report, resume=True) as again:
        again.write(report_line("d"))
    raw = report.read_bytes().splitlines()
    assert [json.loads(line)["job_id"] for line in raw] == ["a", "d"]
    assert len(ReportIndex.read(report)) == 2


def test_a_whole_last_line_without_its_newline_is_kept(report: Path) -> None:
    report.write_bytes(json.dumps(report_line("a")).encode() + b"\n" + json.dumps(
        report_line("b")).encode())  # fmt: skip
    with ReportWriter.open(report, resume=True) as again:
        again.write(report_line("c"))
    assert [json.loads(line)["job_id"] for line in report.read_bytes().splitlines()] == [
        "a", "b", "c",
    ]  # fmt: skip


def _raise_eio(*args: Any) -> None:
    raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_a_real_file_size_limit_mid_run(tmp_path: Path) -> None:
    """The kernel refuses a write (EFBIG under RLIMIT_FSIZE, as ENOSPC would): the run gets
    one ReportWriteError and the report ends on its last whole line."""
    report = tmp_path / "r.jsonl"
    code = textwrap.dedent(
        f"""
        import json, resource, signal
        from pathlib import Path
        from batcher.journal import ReportWriter, ReportWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (5000, 5000))
        line = {json.dumps(report_line("j"))!r}
        with ReportWriter.open(Path({str(report)!r}), resume=False) as writer:
            try:
                for i in range(1000):
                    writer.write(dict(json.loads(line), job_id=f"j{{i}}"))
            except ReportWriteError as error:
                print("stopped:", error)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("stopped: cannot write report") and "File too large" in out.stdout
    lines = lines_of(report)
    assert 1 <= len(lines) < 1000
    assert [line["job_id"] for line in lines] == [f"j{i}" for i in range(len(lines))]


def test_a_report_deleted_or_replaced_mid_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_writer, "IDENTITY_CHECK_INTERVAL", 0.0)
    report = tmp_path / "r.jsonl"
    with ReportWriter.open(report, resume=False) as writer:
        writer.write(report_line("a"))
        report.unlink()
        with pytest.raises(ReportWriteError, match="was deleted"):
            writer.write(report_line("b"))
    with ReportWriter.open(report, resume=False) as writer:
        writer.write(report_line("a"))
        other = tmp_path / "other.jsonl"
        other.write_text("")
        os.replace(other, report)
        with pytest.raises(ReportWriteError, match="replaced by another file"):
            writer.write(report_line("b"))
    directory = tmp_path / "gone"
    directory.mkdir()
    with ReportWriter.open(directory / "r.jsonl", resume=False) as writer:
        (directory / "r.jsonl").unlink()
        directory.rmdir()
        time.sleep(0.01)
        with pytest.raises(ReportWriteError, match="directory removed"):
            writer.write(report_line("b"))
        with pytest.raises(ReportWriteError):
            writer.check()


def test_reading_through_the_locked_descriptor(report: Path) -> None:
    with ReportWriter.open(report, resume=True) as writer:
        writer.write(report_line("a"))
        writer.write(report_line("b", status="failed"))
        state = ReportIndex.read(writer.reader())
        writer.write(report_line("c"))  # appends still go to the end
    assert len(state) == 1
    assert [line["job_id"] for line in lines_of(report)] == ["a", "b", "c"]


def test_a_run_refused_by_the_lock_leaves_the_report_another_run_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A creates the report; run B opens it and locks it first; A is refused and must
    not remove the file B is about to write to."""
    path = tmp_path / "r.jsonl"
    real_lock = _writer.lock_exclusively
    held: list[ReportWriter] = []

    def b_locks_first(fd: int, name: Path) -> None:
        monkeypatch.setattr(_writer, "lock_exclusively", real_lock)
        held.append(ReportWriter.open(path, resume=False))  # run B
        real_lock(fd, name)  # run A meets B's lock

    monkeypatch.setattr(_writer, "lock_exclusively", b_locks_first)
    with pytest.raises(ReportLockedError):
        ReportWriter.open(path, resume=False)  # run A, which created the file
    (b,) = held
    b.write({"job_id": "j1", "command": "SUBMITVERIFYING", "status": "succeeded"})
    assert path.exists() and b.identity == file_id(path)
    b.close()
    assert b"j1" in path.read_bytes()


def test_a_run_refused_after_creating_and_locking_the_report_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, name: Path) -> None:
        raise UsageError(f"no space left on the file system of report {name}")

    monkeypatch.setattr(_writer, "_refuse_full_file_system", full)
    with pytest.raises(UsageError):
        ReportWriter.open(tmp_path / "r.jsonl", resume=False)
    assert os.listdir(tmp_path) == []


def test_a_line_with_text_utf8_cannot_carry_is_still_written(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with ReportWriter.open(path, resume=False) as writer:
        writer.write({**report_line("j1"), "multipart_data": [{"etag": "a\ud83db", "n": 2**70}]})
    (line,) = [json.loads(raw) for raw in path.read_bytes().splitlines()]
    assert line["multipart_data"] == [{"etag": "a?b", "n": 2**70}]


@pytest.mark.parametrize("at", ["write", "check"])
def test_a_report_that_shrinks_under_the_writer_stops_it(report: Path, at: str) -> None:
    with ReportWriter.open(report, resume=True) as writer:
        writer.write(report_line("a"))
        writer.write(report_line("b"))
        os.truncate(report, 0)  # ": > report", or logrotate's copytruncate
        if at == "write":
            writer.write(report_line("c"))  # lands in the emptied file, and is noticed
            with pytest.raises(ReportWriteError, match="shrank during the run"):
                writer.write(report_line("d"))
        else:
            with pytest.raises(ReportWriteError, match="shrank during the run"):
                writer.check()
    assert [line["job_id"] for line in lines_of(report)] == (["c"] if at == "write" else [])
