"""Every line says ``succeeded`` exactly when the command took effect on the server.

Real ``batcher`` processes against the simulator with real job states, where answers are
lost after the command ran (the connection dropped, or the answer came after --timeout),
and runs are killed with SIGKILL and resumed.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import (
    PROJECT,
    aksk_env,
    batcher,
    latest,
    read_report,
    run_args,
    spawn,
    wait_for_lines,
    write_csv,
)

from batcher.simulator.config import JobSpec

SUBMITTED = "USER_VERIFYING_SUBMITTED"
#: Every doubtful answer now waits --timeout before "did not" is believed: keep it short.
SETTLE = ("--timeout", "2")


def seeded(
    count: int, state: str, *, video: bool = True, reopened: bool = False
) -> dict[str, JobSpec]:
    spec = JobSpec(state=state, video_confirmed=video, reopened=reopened)  # type: ignore[arg-type]
    return {f"job{i:05d}": spec for i in range(count)}


def intent_files() -> list[Path]:
    """The intent files in this test's state directory (see tests/conftest.py)."""
    return sorted(Path(os.environ["BATCHER_STATE_DIR"]).glob("*.intents"))


def took_effect(sim: Any, job_id: str, log_type: str) -> bool:
    job = sim.jobs.lookup(PROJECT, job_id)
    return job is not None and any(e.log_type == log_type for e in job.operation_logs)


def assert_truthful(sim: Any, lines: dict[tuple[str, str], dict[str, Any]], log_of: dict[str, str],
                    ) -> None:  # fmt: skip
    for (job_id, command), line in lines.items():
        effect = took_effect(sim, job_id, log_of[command])
        assert (line["status"] == "succeeded") == effect, (line, effect)
        if line["status"] == "failed":
            assert not effect


@pytest.mark.slow
async def test_lost_answers_are_confirmed_from_the_record_not_reported_as_failures(
    tmp_path: Path, start_simulator: Any
) -> None:
    jobs = seeded(300, "WAIT_FILE_UPLOAD")
    sim = await start_simulator(
        jobs=jobs, seed=11, drop_after_execute_rate=0.08, late_answer_rate=0.05,
        late_answer_ms=1500,
    )  # fmt: skip
    manifest = submissions(tmp_path, jobs)
    report = tmp_path / "r.jsonl"
    result = await batcher(
        ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "16",
         "--timeout", "0.5", *run_args(sim.url)],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 0, result.output
    lines = latest(read_report(report))
    assert len(lines) == 300 and all(line["status"] == "succeeded" for line in lines.values())
    assert_truthful(sim, lines, {"SUBMITVERIFYING": SUBMITTED})
    confirmed = [line for line in lines.values() if line["confirmed_by"] == "operation_log"]
    assert len(confirmed) >= 10  # ~13% of the answers were lost after the command ran
    assert all(n == 1 for n in sim.stats.executions.values())
    assert sim.stats.shows.requests >= len(confirmed)


@pytest.mark.slow
async def test_resubmitting_failed_reviews_with_lost_answers_runs_both_commands(
    tmp_path: Path, start_simulator: Any
) -> None:
    # Updated (out of band) after a failed review: the new video is confirmed, then submitted.
    jobs = seeded(120, "AUTO_VERIFY_FAILED", video=False, reopened=True)
    sim = await start_simulator(jobs=jobs, seed=5, drop_after_execute_rate=0.15)
    rows = []
    for job in jobs:
        rows += [{"job_id": job, "command": "CONFIRM_MULTIPART_UPLOADED",
                  "command_message": "UPDATE_VIDEO"},
                 {"job_id": job, "command": "SUBMITVERIFYING"}]  # fmt: skip
    manifest = write_csv(tmp_path / "m.csv", rows)
    report = tmp_path / "r.jsonl"
    result = await batcher(
        ["run", str(manifest), "--report", str(report), "--rate", "0", *run_args(sim.url, *SETTLE)],
        aksk_env(),
    )
    assert result.code == 0, result.output
    lines = latest(read_report(report))
    assert len(lines) == 240
    log_of = {"CONFIRM_MULTIPART_UPLOADED": "USER_UPDATE_VIDEO", "SUBMITVERIFYING": SUBMITTED}
    assert_truthful(sim, lines, log_of)
    assert all(sim.jobs.lookup(PROJECT, job).state.value == "AUTO_VERIFYING" for job in jobs)


async def test_a_refusal_after_a_lost_answer_that_did_nothing_stays_failed(
    tmp_path: Path, start_simulator: Any
) -> None:
    # The video was never confirmed: SUBMITVERIFYING is refused, the answer to the refusal
    # is lost, the record shows no submission, and the line must still say failed.
    jobs = seeded(40, "WAIT_FILE_UPLOAD", video=False)
    sim = await start_simulator(jobs=jobs, seed=3, drop_after_execute_rate=0.5)
    manifest = submissions(tmp_path, jobs)
    report = tmp_path / "r.jsonl"
    result = await batcher(
        ["run", str(manifest), "--report", str(report), "--rate", "0", *run_args(sim.url, *SETTLE)],
        aksk_env(),
    )
    assert result.code == 1, result.output
    lines = latest(read_report(report))
    assert all(line["status"] == "failed" and not line["ambiguous"] for line in lines.values())
    assert not sim.stats.executions


async def test_a_command_that_leaves_no_trace_is_reported_ambiguous_not_failed(
    tmp_path: Path, start_simulator: Any
) -> None:
    jobs = seeded(30, "WAIT_FILE_UPLOAD", video=False)
    sim = await start_simulator(jobs=jobs, seed=8, drop_after_execute_rate=1.0)
    manifest = write_csv(
        tmp_path / "m.csv",
        ({"job_id": job, "command": "CONFIRM_AUTHORIZATION_LETTER"} for job in jobs),
    )
    report = tmp_path / "r.jsonl"
    result = await batcher(
        ["run", str(manifest), "--report", str(report), "--rate", "0", "--max-attempts", "2",
         *run_args(sim.url, *SETTLE)],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 1
    lines = latest(read_report(report)).values()
    # Every answer was lost: each line is a failure that says it may have executed.
    assert all(line["status"] == "failed" and line["ambiguous"] for line in lines)
    assert all("may have executed" in line["reason"] for line in lines)


def submissions(tmp_path: Path, jobs: Iterable[str]) -> Path:
    """A manifest of SUBMITVERIFYING for each of ``jobs``."""
    return write_csv(
        tmp_path / "m.csv", ({"job_id": job, "command": "SUBMITVERIFYING"} for job in jobs)
    )


@pytest.mark.slow
async def test_kill_9_with_answers_in_flight_then_resume_tells_the_truth(
    tmp_path: Path, start_simulator: Any
) -> None:
    jobs = seeded(400, "WAIT_FILE_UPLOAD")
    # Every answer comes 400 ms after the command ran: a kill always catches some executed
    # commands whose answers never arrived.
    sim = await start_simulator(jobs=jobs, seed=2, latency_ms=0, late_answer_rate=1.0,
                                late_answer_ms=400)  # fmt: skip
    manifest = submissions(tmp_path, jobs)
    report = tmp_path / "r.jsonl"
    args = ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "16",
            *run_args(sim.url, *SETTLE)]  # fmt: skip
    process = await spawn(args, aksk_env())
    await wait_for_lines(report, 40)
    process.kill()
    await process.wait()
    assert process.returncode == -signal.SIGKILL
    (in_flight,) = intent_files()

    result = await batcher([*args, "--resume"], aksk_env())
    assert result.code == 0, result.output
    lines = latest(read_report(report))
    assert len(lines) == 400
    assert_truthful(sim, lines, {"SUBMITVERIFYING": SUBMITTED})
    assert all(n == 1 for n in sim.stats.executions.values())  # nothing ran twice
    confirmed = [line for line in lines.values() if line["confirmed_by"]]
    assert confirmed, "the killed run's requests in flight were decided from the record"
    assert intent_files() == [in_flight]  # the resume's own is gone; the killed run's kept


@pytest.mark.parametrize("how", ["hard link", "mv", "copy"])
async def test_kill_9_then_resume_under_another_name_still_checks_what_was_in_flight(
    tmp_path: Path, start_simulator: Any, how: str
) -> None:
    """A report resumed through a hard link or moved into another directory, or a copy of
    it, finds the killed run's intents by its content: nothing runs twice, no line lies."""
    jobs = seeded(300, "WAIT_FILE_UPLOAD")
    sim = await start_simulator(jobs=jobs, seed=2, latency_ms=0, late_answer_rate=1.0,
                                late_answer_ms=400)  # fmt: skip
    manifest = submissions(tmp_path, jobs)
    report = tmp_path / "r.jsonl"
    common = ["--rate", "0", "--concurrency", "16", *run_args(sim.url, *SETTLE)]
    process = await spawn(["run", str(manifest), "--report", str(report), *common], aksk_env())
    await wait_for_lines(report, 40)
    process.kill()
    await process.wait()
    assert len(intent_files()) == 1
    (tmp_path / "elsewhere").mkdir()
    other = tmp_path / "elsewhere" / "other.jsonl"
    if how == "hard link":
        os.link(report, other)
    elif how == "mv":
        report.rename(other)
    else:
        other.write_bytes(report.read_bytes())
    result = await batcher(
        ["run", str(manifest), "--report", str(other), "--resume", *common], aksk_env()
    )
    assert result.code == 0, result.output
    lines = latest(read_report(other))
    assert len(lines) == 300
    assert_truthful(sim, lines, {"SUBMITVERIFYING": SUBMITTED})
    assert all(n == 1 for n in sim.stats.executions.values())  # nothing ran twice
    assert any(line["confirmed_by"] for line in lines.values())


async def test_kill_9_before_any_line_then_resume_renamed_still_checks_what_was_in_flight(
    tmp_path: Path, start_simulator: Any
) -> None:
    jobs = seeded(2, "WAIT_FILE_UPLOAD")
    sim = await start_simulator(jobs=jobs, seed=2, latency_ms=0, late_answer_rate=1.0,
                                late_answer_ms=5000)  # fmt: skip
    manifest = submissions(tmp_path, jobs)
    report = tmp_path / "r.jsonl"
    common = ["--rate", "0", "--concurrency", "2", *run_args(sim.url, *SETTLE)]
    process = await spawn(["run", str(manifest), "--report", str(report), *common], aksk_env())
    for _ in range(200):  # both commands sent (their answers come 5 s later)
        found = b"".join(path.read_bytes() for path in intent_files())
        if all(job.encode() in found for job in jobs):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # and executed on the server
    process.kill()
    await process.wait()
    assert report.read_text() == ""  # no line yet
    renamed = tmp_path / "renamed.jsonl"
    report.rename(renamed)  # and the run that created it is gone: only its content tells
    result = await batcher(
        ["run", str(manifest), "--report", str(renamed), "--resume", *common], aksk_env()
    )
    # Nothing this report ran measures the record's clock (no line at all): the entries
    # dated at the sends cannot be told from an earlier action's. In doubt, not resent.
    assert result.code == 1, result.output
    lines = latest(read_report(renamed))
    assert all(line["status"] == "skipped" and line["ambiguous"] for line in lines.values())
    assert all("clocks as measured" in line["reason"] for line in lines.values())
    assert all(n == 1 for n in sim.stats.executions.values())  # checked, not sent again


async def test_a_doubt_not_reached_by_a_limited_resume_is_kept_for_the_next(
    tmp_path: Path, start_simulator: Any
) -> None:
    """An in-flight request of a killed run that a ``--limit`` resume does not reach stays in
    the in-flight file, so the resume after it still reads the job's record first."""
    from batcher.journal.intents import Fingerprint, InFlight, IntentFile, state_dir

    jobs = seeded(6, "WAIT_FILE_UPLOAD")
    sim = await start_simulator(jobs=jobs, seed=4, latency_ms=0)
    report = tmp_path / "r.jsonl"
    first = write_csv(
        tmp_path / "first.csv", [{"job_id": "job00000", "command": "SUBMITVERIFYING"}]
    )
    args = [
        "--report",
        str(report),
        "--rate",
        "0",
        "--concurrency",
        "1",
        *run_args(sim.url, *SETTLE),
    ]
    assert (await batcher(["run", str(first), *args], aksk_env())).code == 0
    # As a kill -9 leaves it: job00005's command was sent, its answer never arrived.
    data = report.read_bytes()
    mark = Fingerprint.of(io.BytesIO(data), len(data))
    slots = IntentFile.create(state_dir(), "killed-run", mark, manifests=[], slots=1)
    slots.note(0, InFlight("job00005", "SUBMITVERIFYING", PROJECT, "2026-11-24T13:00:05.000Z"))
    slots.close()
    manifest = submissions(tmp_path, jobs)
    # The first run read another manifest: continuing its report with this one is on purpose.
    more = ["--resume", "--allow-other-manifest", "--limit", "2"]
    limited = await batcher(["run", str(manifest), *args, *more], aksk_env())
    assert limited.code == 0, limited.output
    assert "job00005" not in {line["job_id"] for line in read_report(report)}
    assert intent_files() == [slots.path]
    shows_before = sim.stats.shows.requests

    result = await batcher(["run", str(manifest), *args, "--resume"], aksk_env())
    assert result.code == 0, result.output
    line = latest(read_report(report))[("job00005", "SUBMITVERIFYING")]
    assert line["status"] == "succeeded" and line["attempts"] == 1
    assert sim.stats.shows.requests == shows_before + 1  # its record was read before sending
    assert intent_files() == [slots.path]  # kept: a copy of the report may still need it


# --------------------------------------------------------------------------- hostile servers


class ErringAfterExecution:
    """The command interface as documented, with a service that errs: DELETE_JOB_VIDEO is
    accepted every time it is sent; for one job in three it runs and then answers 500
    MSS.00000004, for one in five it answers 500 without running. The service writes its log
    ``log_skew`` seconds from our clock, the gateway dates answers ``date_skew`` from it."""

    def __init__(self, jobs: list[str], *, log_skew: float, date_skew: float) -> None:
        self.logs: dict[str, list[dict[str, str]]] = {job: [] for job in jobs}
        self.executions: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.log_skew, self.date_skew = timedelta(seconds=log_skew), timedelta(seconds=date_skew)

    def fate(self, job: str) -> str:
        number = int(job[3:])
        return "after" if number % 3 == 0 else "before" if number % 5 == 0 else "ok"

    def headers(self) -> dict[str, str]:
        return {"Date": format_datetime(datetime.now(UTC) + self.date_skew, usegmt=True)}

    async def handle(self, request: web.Request) -> web.Response:
        job = request.path.split("/jobs/")[1].split("/")[0]
        if request.method == "GET":
            record = {"job_id": job, "state": "JOB_SUCCESS", "operation_logs": self.logs[job]}
            return web.json_response(record, headers=self.headers())
        self.sent[job] = self.sent.get(job, 0) + 1
        first = self.sent[job] == 1
        fate = self.fate(job) if first else "ok"
        if fate != "before":
            self.executions[job] = self.executions.get(job, 0) + 1
            when = (datetime.now(UTC) + self.log_skew).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.logs[job].append(
                {"log_type": "USER_DELETE_JOB_VIDEO", "operate_user": "USER", "operate_time": when}
            )
        if fate == "ok":
            return web.json_response({"commond_result": "EXCUTE_SUCCESS"}, headers=self.headers())
        error = {"error_code": "MSS.00000004", "error_msg": "Internal Error"}
        return web.json_response(error, status=500, headers=self.headers())


@asynccontextmanager
async def serving(handler: Any) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("log_skew", "date_skew"),
    [
        (-30, 0),
        (150, -150),  # the log 5 minutes ahead of the Date header
        (-120, 180),  # and 5 minutes behind it
    ],
)
async def test_a_500_after_the_command_ran_is_not_a_failure_and_nothing_runs_twice(
    tmp_path: Path, log_skew: int, date_skew: int
) -> None:
    jobs = [f"job{i:03d}" for i in range(45)]
    server = ErringAfterExecution(jobs, log_skew=log_skew, date_skew=date_skew)
    manifest = write_csv(
        tmp_path / "m.csv", ({"job_id": job, "command": "DELETE_JOB_VIDEO"} for job in jobs)
    )
    report = tmp_path / "r.jsonl"
    async with serving(server.handle) as url:
        result = await batcher(
            ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "2",
             "--max-attempts", "1", *run_args(url, *SETTLE)],
            aksk_env(),
        )  # fmt: skip
    assert result.code == 1, result.output
    lines = latest(read_report(report))
    assert all(n == 1 for n in server.executions.values())  # repeatable, and run once
    for (job, _), line in lines.items():
        ran = server.executions.get(job, 0) == 1
        assert line["status"] in ("succeeded", "failed"), line
        if line["status"] == "succeeded":
            assert ran, line
        elif line["ambiguous"]:
            assert not line["retryable"] and "may have executed" in line["reason"], line
        else:
            assert not ran, line  # "failed" only when the record shows it did not run
    confirmed = [job for (job, _), line in lines.items() if line["confirmed_by"]]
    # The log clock, measured on the jobs that answered, tells most that ran from the rest.
    assert len(confirmed) >= 12, lines
    exported = tmp_path / "again.csv"
    done = await batcher(
        ["report", str(report), "--export-manifest", str(exported), "--retryable-only"],
        aksk_env(),
    )
    assert done.code == 0, done.output
    again = (
        {row["job_id"] for row in csv.DictReader(exported.open())} if exported.exists() else set()
    )
    assert not again & set(server.executions), "a command that ran is exported to be sent again"


class _ShowFails:
    """The simulator's fault planner, but every List and Show answers 500."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def draw(self) -> Any:
        return self.real.draw()

    def draw_read(self) -> Any:
        from batcher.simulator.faults import Faults

        return Faults(error=True)


@pytest.mark.slow
async def test_doubt_keeps_its_earliest_moment_through_three_resumes(
    tmp_path: Path, start_simulator: Any
) -> None:
    """Commands that ran ten minutes ago (by the service's log clock) without their answer:
    three resumes that cannot read the record leave them in doubt, each line carrying that
    first moment (and its own run's times); the fourth reads the record from it. One command
    of the first run was answered: its record measures the log clock (without a measurement
    an entry a second from the attempt cannot be placed before or after it)."""
    from datetime import UTC, datetime, timedelta

    from batcher.journal.times import parse_time

    jobs = seeded(4, "WAIT_FILE_UPLOAD")
    witness = ("job00003", "SUBMITVERIFYING")
    sim = await start_simulator(jobs=jobs, latency_ms=0)
    sim.clock = lambda: datetime.now(UTC) - timedelta(minutes=10)
    manifest = submissions(tmp_path, jobs)
    report = tmp_path / "r.jsonl"
    args = [
        "run",
        str(manifest),
        "--report",
        str(report),
        "--rate",
        "0",
        *run_args(sim.url, *SETTLE),
    ]
    assert (await batcher(args, aksk_env())).code == 0
    sim.clock = lambda: datetime.now(UTC)
    # As the killed run would have left them: sent ten minutes ago, no answer heard.
    sent = (datetime.now(UTC) - timedelta(minutes=10, seconds=1)).isoformat(timespec="milliseconds")
    lines = [
        line if (line["job_id"], line["command"]) == witness else
        {**line, "status": "failed", "ambiguous": True, "started_at": sent, "run_id": "old",
         "reason": "the answer was lost"}
        for line in read_report(report)
    ]  # fmt: skip
    report.write_text("".join(json.dumps(line) + "\n" for line in lines))
    real = sim._planner
    sim._planner = _ShowFails(real)
    for _ in range(3):
        result = await batcher([*args, "--resume"], aksk_env())
        assert result.code != 2, result.output
        for key, line in latest(read_report(report)).items():
            if key == witness:
                continue
            assert line["status"] != "succeeded" and line["ambiguous"], line
            assert parse_time(line["doubt_since"]) == parse_time(sent), line
            assert line["started_at"] is None or line["run_id"] != "old"
    assert sum(sim.stats.executions.values()) == 4  # nothing sent again meanwhile
    sim._planner = real
    result = await batcher([*args, "--resume"], aksk_env())
    assert result.code == 0, result.output
    final = latest(read_report(report))
    assert {line["status"] for line in final.values()} == {"succeeded"}
    assert all(line["confirmed_by"] for key, line in final.items() if key != witness)
    assert all(n == 1 for n in sim.stats.executions.values())
