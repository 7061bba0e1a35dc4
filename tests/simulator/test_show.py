"""Show over real HTTP: the job with its operation log; 404s; faults and stats on reads;
and the two faults that leave an outcome ambiguous (drop after execute, a late answer)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from batcher.send.credentials import AkSkCredentials
from batcher.send.signing import AkSkSigner
from batcher.simulator import Simulator
from batcher.simulator.listing import parse_rfc3339

AK = "SIMTESTAK0000000001"
SK = "simulator-test-secret-key-0001"
PROJECT = "sim-project"
INVALID = {"error_code": "MSS.00000003", "error_msg": "Invalid parameter"}


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(middlewares=(AkSkSigner(AkSkCredentials(ak=AK, sk=SK)),))


async def show(sim: Simulator, job_id: str, **kw: Any) -> tuple[int, Any]:
    async with session() as s, s.get(sim.show_url(job_id, **kw)) as response:
        assert len(response.headers["X-Request-Id"]) == 32
        return response.status, await response.json()


async def command(
    sim: Simulator, job_id: str, name: str, *, timeout: float = 10, **body: Any
) -> dict[str, Any]:
    async with (
        session() as s,
        s.post(
            sim.command_url(job_id),
            json={"command": name, **body},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response,
    ):
        assert response.status == 200
        return await response.json()  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- Show


async def test_show_has_the_record_of_what_commands_did(simulator: Simulator) -> None:
    sent = datetime.now(UTC) - timedelta(milliseconds=1)
    await command(simulator, "j1", "CONFIRM_MULTIPART_UPLOADED")
    await command(simulator, "j1", "SUBMITVERIFYING", operation_reason="第二次提交")
    await command(simulator, "j1", "SUBMITVERIFYING")  # refused: leaves no entry
    status, job = await show(simulator, "j1")
    assert status == 200
    assert job["job_id"] == "j1" and job["project_id"] == PROJECT
    assert job["state"] == "AUTO_VERIFYING"
    logs = job["operation_logs"]
    assert [(e["log_type"], e["operate_user"]) for e in logs] == [
        ("USER_CREATE_JOD", "USER"),
        ("USER_VERIFYING_SUBMITTED", "USER"),
    ]
    assert logs[1]["log_description"] == "SUBMITVERIFYING: 第二次提交"
    times = [parse_rfc3339(e["operate_time"]) for e in logs]
    assert all(t.tzinfo is not None and sent <= t <= datetime.now(UTC) for t in times)
    assert times == sorted(times)
    assert job["last_update_time"] == logs[-1]["operate_time"]
    assert job["training_video_download_url"].startswith("https://obs.example.invalid/")
    assert "Signature=" in job["training_video_download_url"]
    assert job["comment_logs"] == []


async def test_show_uses_the_simulator_clock(simulator: Simulator) -> None:
    simulator.clock = lambda: datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=UTC)
    await command(simulator, "j", "DELETE_JOB_VIDEO")
    _, job = await show(simulator, "j")
    assert [e["operate_time"] for e in job["operation_logs"]] == ["2026-11-25T08:00:00.123Z"] * 2
    assert job["create_time"] == "2026-11-25T08:00:00.123Z"


async def test_show_a_seeded_job_with_comments(start_simulator: Any) -> None:
    sim = await start_simulator(jobs={"trained": "WAIT_USER_CONFIRM"})
    comment = {"comment_title": "口型不自然", "attachment_name": ["截图 1.png"]}
    await command(sim, "trained", "CONFIRM_REJECT", comment_data=comment)
    status, job = await show(sim, "trained")
    assert status == 200 and job["state"] == "JOB_REJECT"
    assert job["operation_logs"][0]["log_type"] == "USER_CREATE_JOD"
    assert job["operation_logs"][-1]["log_type"] == "SYSTEM_INFERENCE_DATA_PREPROCESS_SUCCESS"
    assert "SYSTEM_TRAIN_SUCCESS" in [e["log_type"] for e in job["operation_logs"]]
    assert job["asset_id"] and job["cover_download_url"]
    [reject] = job["comment_logs"]
    assert reject["comment_type"] == "USER_REJECT" and reject["comment_title"] == "口型不自然"
    assert (
        reject["attachment_download_url"][0].split("?")[0].endswith("/%E6%88%AA%E5%9B%BE%201.png")
    )


async def test_unknown_job_is_404_and_bad_ids_400(simulator: Simulator) -> None:
    assert await show(simulator, "nobody") == (
        404,
        {"error_code": "MSS.00000005", "error_msg": "The training job does not exist"},
    )
    assert simulator.job_state("nobody") is None
    assert await show(simulator, "a.b") == (400, INVALID)
    assert await show(simulator, "j", project_id="bad.project") == (400, INVALID)
    assert simulator.stats.shows.by_status == {404: 1, 400: 2}


async def test_show_is_per_project(simulator: Simulator) -> None:
    await command(simulator, "j", "CONFIRM_AUTHORIZATION_LETTER")
    assert (await show(simulator, "j"))[0] == 200
    assert (await show(simulator, "j", project_id="other"))[0] == 404


# --------------------------------------------------------------------------- faults on reads


async def test_reads_see_500_429_and_drops(start_simulator: Any) -> None:
    failing = await start_simulator(error_rate=1.0, jobs={"j": "TRAINING"})
    assert (await show(failing, "j"))[0] == 500
    async with session() as s, s.get(failing.list_url(), params={"limit": "101"}) as r:
        assert r.status == 400  # invalid input is 400 even under errors
    throttled = await start_simulator(throttle_rate=1.0, jobs={"j": "TRAINING"})
    status, body = await show(throttled, "j")
    assert (status, body["error_code"]) == (429, "APIGW.0308")
    dropping = await start_simulator(drop_rate=1.0, jobs={"j": "TRAINING"})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await asyncio.wait_for(show(dropping, "j"), 5)
    # aiohttp sends a GET again, once, when the connection drops: both are counted
    shows = dropping.stats.shows
    assert shows.dropped == shows.requests >= 1 and not shows.by_status
    assert dropping.stats.dropped == dropping.stats.requests == 0


async def test_read_faults_do_not_shift_the_command_faults(start_simulator: Any) -> None:
    async def statuses(sim: Simulator, reads: int) -> list[int]:
        out = []
        async with session() as s:
            for n in range(40):
                for _ in range(reads):
                    async with s.get(sim.list_url()):
                        pass
                async with s.post(
                    sim.command_url(f"j{n}"), json={"command": "GET_MULTIPART_UPLOADED"}
                ) as r:
                    out.append(r.status)
        return out

    fields = {"seed": 3, "error_rate": 0.3, "throttle_rate": 0.2}
    quiet = await statuses(await start_simulator(**fields), 0)
    busy = await statuses(await start_simulator(**fields), 2)
    assert quiet == busy and set(quiet) == {200, 429, 500}


async def test_stats_count_reads_apart(simulator: Simulator) -> None:
    await command(simulator, "j", "CONFIRM_MULTIPART_UPLOADED")
    await show(simulator, "j")
    await show(simulator, "j")
    async with session() as s, s.get(simulator.list_url()) as r:
        assert r.status == 200
    stats = simulator.stats.as_dict()
    assert stats["requests"] == 1 and stats["by_status"] == {"200": 1}
    assert stats["executions"] == {"j": {"CONFIRM_MULTIPART_UPLOADED": 1}}
    assert stats["show"] == {"requests": 2, "by_status": {"200": 2}, "dropped": 0}
    assert stats["list"] == {"requests": 1, "by_status": {"200": 1}, "dropped": 0}


# --------------------------------------------------------------------------- ambiguous outcomes


async def test_late_answer_executes_at_once_and_answers_after_the_delay(
    start_simulator: Any,
) -> None:
    sim = await start_simulator(late_answer_rate=1.0, late_answer_ms=5_000)
    with pytest.raises(TimeoutError):
        await command(sim, "j", "CONFIRM_MULTIPART_UPLOADED", timeout=0.3)
    # the client gave up; the job's record says the command took effect
    job = sim.jobs.get(PROJECT, "j")
    assert job.video_confirmed and job.history == ["CONFIRM_MULTIPART_UPLOADED"]
    assert sim.stats.executions[("j", "CONFIRM_MULTIPART_UPLOADED")] == 1
    assert sim.stats.late_answers == 1
    assert (await show(sim, "j"))[0] == 200  # reads are never late


async def test_a_patient_client_gets_the_late_answer(start_simulator: Any) -> None:
    sim = await start_simulator(late_answer_rate=1.0, late_answer_ms=50)
    body = await command(sim, "j", "CONFIRM_MULTIPART_UPLOADED")
    assert body == {"commond_result": "EXCUTE_SUCCESS"}
    refused = await command(sim, "j", "CONFIRM_MULTIPART_UPLOADED")  # late too: it is a 200
    assert refused["commond_result"] == "EXCUTE_FAILED"
    assert sim.stats.late_answers == 2 and sim.stats.by_status == {200: 2}


async def test_only_answers_that_reached_the_job_are_late(start_simulator: Any) -> None:
    sim = await start_simulator(late_answer_rate=1.0, late_answer_ms=60_000)
    async with (
        aiohttp.ClientSession() as s,
        s.post(sim.command_url("j"), json={"command": "SUBMITVERIFYING"}) as r,
    ):
        assert r.status == 401  # unauthenticated: answered at once
    assert sim.stats.late_answers == 0


async def test_drop_after_execute_wins_over_a_late_answer(start_simulator: Any) -> None:
    sim = await start_simulator(
        late_answer_rate=1.0, late_answer_ms=60_000, drop_after_execute_rate=1.0
    )
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await command(sim, "j", "CONFIRM_AUTHORIZATION_LETTER", timeout=5)
    assert sim.stats.dropped_after_execute == 1 and sim.stats.late_answers == 0
    assert sim.jobs.get(PROJECT, "j").authorization_letter_confirmed


async def test_late_answer_rate_is_seeded(start_simulator: Any) -> None:
    async def late_count() -> int:
        sim = await start_simulator(seed=8, late_answer_rate=0.25, late_answer_ms=1)
        for n in range(200):
            await command(sim, f"j{n}", "GET_MULTIPART_UPLOADED")
        return sim.stats.late_answers

    first = await late_count()
    assert 25 <= first <= 80
    assert await late_count() == first
