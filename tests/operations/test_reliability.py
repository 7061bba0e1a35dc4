"""Settings that cannot work, servers that cannot be trusted, reports that cannot be written:
each ends clearly, loses nothing, and never hangs (real processes, real files)."""

from __future__ import annotations

import asyncio
import resource
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import (
    PROJECT,
    aksk_env,
    batcher,
    jobs_csv,
    latest,
    read_report,
    run_args,
)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
async def https_server(self_signed: ssl.SSLContext) -> AsyncIterator[str]:
    context = self_signed

    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"commond_result": "EXCUTE_SUCCESS"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_a_certificate_that_does_not_verify_halts_the_run(
    tmp_path: Path, https_server: str
) -> None:
    report = tmp_path / "r.jsonl"
    result = await batcher(
        ["run", str(jobs_csv(tmp_path / "m.csv", 50)), "--report", str(report),
         "--endpoint", https_server, "--project-id", PROJECT, "--no-progress",
         "--log-format", "console"],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 3, result.output
    assert "TLS verification failed" in result.stderr and "certificate" in result.stderr
    lines = read_report(report)
    assert len(lines) == 50  # one line per entry: the first failed, the rest skipped
    failed = [line for line in lines if line["status"] == "failed"]
    assert 1 <= len(failed) <= 16 and all(line["attempts"] == 1 for line in failed)
    assert all("TLS" in line["reason"] for line in lines)


@pytest.mark.parametrize(
    ("flag", "value"), [("--concurrency", "1000000"), ("--burst", "100000"),
                        ("--max-attempts", "100000"), ("--limit", "99999999999999999999999"),
                        ("--max-failures", "99999999999999999999999")],
)  # fmt: skip
async def test_settings_that_would_exhaust_the_machine_are_refused(
    tmp_path: Path, flag: str, value: str
) -> None:
    started = time.monotonic()
    result = await batcher(
        ["run", str(jobs_csv(tmp_path / "m.csv", 1)), "--report", str(tmp_path / "r.jsonl"),
         "--simulate", flag, value],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 2 and flag in result.stderr and "between" in result.stderr
    assert time.monotonic() - started < 30  # refused up front, not after building workers


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        # Writes beyond the limit fail with EFBIG, as on a full disk (SIGXFSZ ignored).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


async def test_a_report_that_cannot_be_written_stops_the_run_clearly_and_resume_finishes(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator(latency_ms=5)
    manifest = jobs_csv(tmp_path / "m.csv", 200)
    report = tmp_path / "r.jsonl"
    args = ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "4",
            "--log-format", "console", *run_args(sim.url)]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batcher", *args, env=aksk_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_limit_file_size(20_000),
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()
    assert process.returncode == 3, stderr
    assert f"cannot write report {report}" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    # Said once: the events name the cause, the last line says what to do.
    assert stderr.count("fix the cause, then continue") == 1, stderr
    assert "entries_per_s=None" not in stderr  # the run's time is known
    before = read_report(report)
    assert 0 < len(before) < 200

    result = await batcher([*args, "--resume"], aksk_env())
    assert result.code == 0, result.output
    final = latest(read_report(report))
    assert len(final) == 200 and all(line["status"] == "succeeded" for line in final.values())
    # Only what was in flight when the writes failed (4 workers) was sent twice.
    assert sum(n - 1 for n in sim.stats.reads.values()) <= 4


async def test_sigterm_ends_a_run_that_waits_on_a_long_retry_after(
    tmp_path: Path,
) -> None:
    async def throttle(_: web.Request) -> web.Response:
        return web.json_response(
            {"error_code": "APIGW.0308", "error_msg": "throttled"},
            status=429,
            headers={"Retry-After": "300"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", throttle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        report = tmp_path / "r.jsonl"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "batcher", "run", str(jobs_csv(tmp_path / "m.csv", 20)),
            "--report", str(report), "--grace-period", "2", *run_args(url), env=aksk_env(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        await asyncio.sleep(2.0)  # every entry is now asleep on a 300 s Retry-After
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        await asyncio.wait_for(process.communicate(), 30)
        assert time.monotonic() - started < 10
        assert process.returncode == 3
        lines = read_report(report)
        assert len(lines) == 20 and {line["status"] for line in lines} <= {"failed", "skipped"}
    finally:
        await runner.cleanup()


async def test_an_inflight_file_that_cannot_be_written_stops_the_run_like_the_report(
    tmp_path: Path, start_simulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The in-flight slots are what makes a crash recoverable: a run that cannot record a
    request before sending it stops (exit 3, no traceback) with every line it wrote."""
    import errno

    from support import batcher_in_thread

    from batcher.journal.intents import IntentFile
    from batcher.simulator.config import JobSpec

    jobs = {
        f"job{i:06d}": JobSpec(state="WAIT_FILE_UPLOAD", video_confirmed=True) for i in range(100)
    }
    sim = await start_simulator(jobs=jobs)
    manifest = jobs_csv(tmp_path / "m.csv", 100, command="SUBMITVERIFYING")
    report = tmp_path / "r.jsonl"
    note = IntentFile.note
    calls = 0

    def full_after_20(self: IntentFile, slot: int, item: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        note(self, slot, item)

    monkeypatch.setattr(IntentFile, "note", full_after_20)
    args = ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "2",
            *run_args(sim.url)]  # fmt: skip
    result = await batcher_in_thread(args, aksk_env(), capsys)
    assert result.code == 3, result.output
    assert "No space left on device" in result.stderr and "--resume" in result.stderr
    assert ".intents" in result.stderr and "Traceback" not in result.output
    assert sum(sim.stats.executions.values()) <= 21  # nothing sent without being recorded
    monkeypatch.setattr(IntentFile, "note", note)
    resumed = await batcher_in_thread([*args, "--resume"], aksk_env(), capsys)
    assert resumed.code == 0, resumed.output
    assert len(latest(read_report(report))) == 100


@pytest.mark.parametrize("how", ["replaced", "deleted"])
async def test_a_report_replaced_in_the_runs_last_second_loses_no_outcome(
    tmp_path: Path, start_simulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any,
    how: str,
) -> None:  # fmt: skip
    """An editor's save or an rsync (copy, then rename over) while the run ends: the lines
    written after the copy are only in the file the run wrote. The run must not end 0 as
    if all were well, and --resume must read those jobs' records, not resend blind."""
    import shutil

    from support import batcher_in_thread

    from batcher.journal import ReportWriter
    from batcher.simulator.config import JobSpec

    jobs = {f"job{i:06d}": JobSpec(state="WAIT_FILE_UPLOAD", video_confirmed=True)
            for i in range(60)}  # fmt: skip
    sim = await start_simulator(jobs=jobs)
    manifest = jobs_csv(tmp_path / "m.csv", 60, command="SUBMITVERIFYING")
    report = tmp_path / "r.jsonl"
    write = ReportWriter.write
    written = 0

    def write_then_meddle(self: ReportWriter, line: dict[str, Any]) -> None:
        nonlocal written
        write(self, line)
        written += 1
        if written == 40:
            if how == "replaced":  # copy now; the rename comes at the very end
                shutil.copy(report, tmp_path / "copy.jsonl")
            else:
                report.unlink()

    def rename_at_the_end(self: ReportWriter) -> None:
        if how == "replaced":
            (tmp_path / "copy.jsonl").rename(report)
        check(self)

    check = ReportWriter.check
    monkeypatch.setattr(ReportWriter, "write", write_then_meddle)
    monkeypatch.setattr(ReportWriter, "check", rename_at_the_end)
    args = ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "4",
            *run_args(sim.url)]  # fmt: skip
    result = await batcher_in_thread(args, aksk_env(), capsys)
    assert result.code == 3, result.output
    lost = 20 if how == "replaced" else 60  # a deleted report has none of them
    assert f"{lost} lines this run wrote are not in the file now" in result.stderr
    assert "Traceback" not in result.output

    monkeypatch.setattr(ReportWriter, "write", write)
    monkeypatch.setattr(ReportWriter, "check", check)
    resumed = await batcher_in_thread([*args, "--resume"], aksk_env(), capsys)
    final = latest(read_report(report))
    assert len(final) == 60
    assert all(n == 1 for n in sim.stats.executions.values())  # nothing sent twice
    if how == "replaced":
        assert resumed.code == 0, resumed.output
        assert all(line["status"] == "succeeded" for line in final.values())
        confirmed = [line for line in final.values() if line["confirmed_by"] == "operation_log"]
        assert len(confirmed) == lost
    else:
        # No line is left whose command measures the record's clock: an entry dated at the
        # send cannot be told from one an earlier action wrote. In doubt, not sent again.
        assert resumed.code == 1, resumed.output
        assert all(line["status"] == "skipped" and line["ambiguous"] for line in final.values())


@pytest.mark.parametrize("how", ["emptied", "copytruncate", "cut"])
async def test_a_report_that_shrinks_mid_run_halts_it_with_exit_3(
    tmp_path: Path, start_simulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any,
    how: str,
) -> None:  # fmt: skip
    """``: > report``, logrotate's copytruncate, ``truncate -s``: the lines the run wrote
    before are gone from the file. The run stops (exit 3) and says so, rather than go on
    as if the report still held every outcome."""
    import os
    import shutil

    from support import batcher_in_thread

    from batcher.journal import ReportWriter
    from batcher.simulator.config import JobSpec

    jobs = {f"job{i:06d}": JobSpec(state="WAIT_FILE_UPLOAD", video_confirmed=True)
            for i in range(60)}  # fmt: skip
    sim = await start_simulator(jobs=jobs)
    manifest = jobs_csv(tmp_path / "m.csv", 60, command="SUBMITVERIFYING")
    report = tmp_path / "r.jsonl"
    write = ReportWriter.write
    written = 0

    def write_then_shrink(self: ReportWriter, line: dict[str, Any]) -> None:
        nonlocal written
        write(self, line)
        written += 1
        if written == 20:
            if how == "copytruncate":
                shutil.copy(report, tmp_path / "r.jsonl.1")
            os.truncate(report, report.stat().st_size // 2 if how == "cut" else 0)

    monkeypatch.setattr(ReportWriter, "write", write_then_shrink)
    args = ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "2",
            *run_args(sim.url)]  # fmt: skip
    result = await batcher_in_thread(args, aksk_env(), capsys)
    assert result.code == 3, result.output
    assert f"report {report} shrank during the run" in result.stderr
    assert "copytruncate" in result.stderr and "Traceback" not in result.output
    assert sum(sim.stats.executions.values()) < 60  # it stopped
