"""The simulator over real HTTP on 127.0.0.1: shapes, auth, state machine, faults."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog

from batcher.errors import UsageError
from batcher.send.credentials import AkSkCredentials, TokenCredentials
from batcher.send.signing import AkSkSigner, TokenAuth
from batcher.simulator import JobState, Simulator, SimulatorConfig, load_jobs_file
from batcher.simulator.gateway import Quota

AK = "SIMTESTAK0000000001"  # the values tests/conftest.py configures
SK = "simulator-test-secret-key-0001"
TOKEN = "simulator-test-iam-token-0001"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
INVALID = {"error_code": "MSS.00000003", "error_msg": "Invalid parameter"}
INTERNAL = {"error_code": "MSS.00000004", "error_msg": "Internal Error"}


def signer(ak: str = AK, sk: str = SK, **kwargs: Any) -> AkSkSigner:
    return AkSkSigner(
        AkSkCredentials(ak=ak, sk=sk, security_token=kwargs.pop("token", None)), **kwargs
    )


async def call(
    sim: Simulator,
    job_id: str = "job-1",
    body: Any = None,
    *,
    auth: Any = "sign",
    project_id: str = "sim-project",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    """POST one command; returns (status, parsed JSON body, headers)."""
    if isinstance(auth, tuple):
        middlewares = auth
    elif auth == "sign":
        middlewares = (signer(),)
    elif auth == "token":
        middlewares = (TokenAuth(TokenCredentials(TOKEN)),)
    else:
        middlewares = () if auth is None else (auth,)
    if not isinstance(body, bytes):
        body = json.dumps(body or cmd("GET_MULTIPART_UPLOADED"))
    async with (
        aiohttp.ClientSession(middlewares=middlewares) as session,
        session.post(
            sim.command_url(job_id, project_id=project_id),
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response,
    ):
        return response.status, await response.json(content_type=None), response.headers


def cmd(command: str, **extra: Any) -> dict[str, Any]:
    return {"command": command, **extra}


# --------------------------------------------------------------------------- shapes


async def test_success_shape_and_request_id(simulator: Simulator) -> None:
    status, body, headers = await call(simulator, "job-1", cmd("CONFIRM_MULTIPART_UPLOADED"))
    assert status == 200
    assert body == {"commond_result": "EXCUTE_SUCCESS"}
    assert HEX32.match(headers["X-Request-Id"])
    assert simulator.job_state("job-1") is JobState.WAIT_FILE_UPLOAD
    assert simulator.jobs.get("sim-project", "job-1").video_confirmed
    assert simulator.stats.executions == Counter({("job-1", "CONFIRM_MULTIPART_UPLOADED"): 1})


async def test_request_ids_are_unique(simulator: Simulator) -> None:
    ids = {(await call(simulator))[2]["X-Request-Id"] for _ in range(5)}
    assert len(ids) == 5


async def test_multipart_data_keeps_state(simulator: Simulator) -> None:
    status, body, _ = await call(simulator, "job-1", cmd("GET_MULTIPART_UPLOADED"))
    assert status == 200 and body["commond_result"] == "EXCUTE_SUCCESS"
    assert [p["part_number"] for p in body["multipart_data"]] == ["1", "2"]  # strings
    assert all(HEX32.match(p["etag"]) for p in body["multipart_data"])
    _, again, _ = await call(simulator, "job-1", cmd("GET_MULTIPART_UPLOADED"))
    assert again == body  # stable
    _, action, _ = await call(simulator, "job-1", cmd("GET_ACTION_VIDEO_MULTIPART_UPLOADED"))
    assert [p["part_number"] for p in action["multipart_data"]] == ["1"]
    assert simulator.job_state("job-1") is JobState.WAIT_FILE_UPLOAD
    assert not simulator.stats.executions
    assert simulator.stats.reads[("job-1", "GET_MULTIPART_UPLOADED")] == 2


async def test_attachment_upload_urls(simulator: Simulator) -> None:
    names = ["letter.pdf", "face photo.png"]
    body = cmd("CONFIRM_AUTHORIZATION_LETTER", comment_data={"attachment_name": names})
    status, answer, _ = await call(simulator, "job-1", body)
    assert status == 200 and answer["commond_result"] == "EXCUTE_SUCCESS"
    urls = answer["attachment_upload_url"]
    assert len(urls) == 2
    assert all(u.startswith("https://obs.example.invalid/sim-project/job-1/") for u in urls)
    assert all("Signature=" in u and "Expires=" in u for u in urls)
    assert "face%20photo.png?" in urls[1]


async def test_no_attachment_urls_when_refused(simulator: Simulator) -> None:
    body = cmd("SUBMITVERIFYING", comment_data={"attachment_name": ["a.pdf"]})
    _, answer, _ = await call(simulator, "job-1", body)
    assert answer["commond_result"] == "EXCUTE_FAILED"
    assert "attachment_upload_url" not in answer


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[]",
        b"{}",
        {"command": ""},
        {"command": "X" * 65},
        {"command": "NO_SUCH_COMMAND"},
        {"command": 5},
        {"command": None},
        cmd("CONFIRM_MULTIPART_UPLOADED", command_message=5),
        cmd("CONFIRM_MULTIPART_UPLOADED", command_message="M" * 65),
        cmd("CONFIRM_MULTIPART_UPLOADED", operation_reason=["x"]),
        cmd("CONFIRM_MULTIPART_UPLOADED", comment_data="x"),
        cmd("CONFIRM_MULTIPART_UPLOADED", comment_data={"comment_title": 1}),
        cmd("CONFIRM_MULTIPART_UPLOADED", comment_data={"attachment_name": "a.pdf"}),
        cmd("CONFIRM_MULTIPART_UPLOADED", comment_data={"attachment_name": [1]}),
    ],
)
async def test_invalid_bodies(simulator: Simulator, body: Any) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, answer, headers = await call(simulator, "job-1", raw)
    assert (status, answer) == (400, INVALID)
    assert HEX32.match(headers["X-Request-Id"])
    assert simulator.job_state("job-1") is None  # nothing ran
    assert not simulator.stats.executions


async def test_optional_fields_accepted(simulator: Simulator) -> None:
    body = cmd(
        "CONFIRM_MULTIPART_UPLOADED",
        command_message="UPLOAD_VIDEO",
        operation_reason="re-shot",
        comment_data={"comment_title": "t", "comment_message": "m", "attachment_name": None},
    )
    status, answer, _ = await call(simulator, "job-1", body)
    assert (status, answer) == (200, {"commond_result": "EXCUTE_SUCCESS"})


@pytest.mark.parametrize(
    ("project_id", "job_id"),
    [
        ("sim-project", "j" * 65),
        ("sim-project", "a.b"),
        ("bad.project", "job-1"),
        ("sim-project", "%E4%BB%BB%E5%8A%A1"),
    ],
)
async def test_invalid_ids(simulator: Simulator, project_id: str, job_id: str) -> None:
    status, answer, _ = await call(simulator, job_id, project_id=project_id)
    assert (status, answer) == (400, INVALID)


async def test_invalid_app_user_id(simulator: Simulator) -> None:
    status, answer, _ = await call(simulator, headers={"X-App-UserId": "has space"})
    assert (status, answer) == (400, INVALID)
    status, _, _ = await call(simulator, headers={"X-App-UserId": "user-42"})
    assert status == 200


async def test_unknown_route_has_request_id(simulator: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(simulator.url + "/v1/nothing") as response,
    ):
        assert response.status == 404
        assert HEX32.match(response.headers["X-Request-Id"])


async def test_health_stats_and_jobs_endpoints(simulator: Simulator) -> None:
    await call(simulator, "job-1", cmd("CONFIRM_MULTIPART_UPLOADED"))
    await call(simulator, "job-1", cmd("GET_MULTIPART_UPLOADED"))
    await call(simulator, "job-1", cmd("NOPE"))
    async with aiohttp.ClientSession(base_url=simulator.url) as session:
        async with session.get("/__simulator/health") as response:
            assert await response.json() == {"status": "ok"}
        async with session.get("/__simulator/stats") as response:
            stats = await response.json()
        async with session.get("/__simulator/jobs") as response:
            jobs = (await response.json())["jobs"]
    assert stats == simulator.stats.as_dict()
    assert stats["requests"] == 3
    assert stats["by_status"] == {"200": 2, "400": 1}
    assert stats["executions"] == {"job-1": {"CONFIRM_MULTIPART_UPLOADED": 1}}
    assert stats["reads"] == {"job-1": {"GET_MULTIPART_UPLOADED": 1}}
    assert stats["results"] == {"EXCUTE_SUCCESS": 2}
    assert jobs == [simulator.jobs.get("sim-project", "job-1").as_dict()]
    assert jobs[0]["state"] == "WAIT_FILE_UPLOAD" and jobs[0]["video_confirmed"]
    assert jobs[0]["log_types"] == ["USER_CREATE_JOD"]  # the confirmation writes no entry


# --------------------------------------------------------------------------- auth


async def test_wrong_sk_refused(simulator: Simulator) -> None:
    status, answer, headers = await call(simulator, auth=signer(sk="not-the-secret-key"))
    assert status == 401
    assert answer["error_code"] == "APIGW.0301"
    assert answer["error_msg"].startswith("Incorrect IAM authentication information: ")
    assert "signature does not match" in answer["error_msg"]
    assert SK not in json.dumps(answer)
    assert HEX32.match(headers["X-Request-Id"])
    assert simulator.job_state("job-1") is None


async def test_unknown_ak_refused(simulator: Simulator) -> None:
    status, answer, _ = await call(simulator, auth=signer(ak="OTHERAK"))
    assert (status, answer["error_code"]) == (401, "APIGW.0301")
    assert "access key is not known" in answer["error_msg"]


@pytest.mark.parametrize("minutes", [-20, 16])
async def test_stale_sdk_date_refused(simulator: Simulator, minutes: int) -> None:
    clock = lambda: datetime.now(UTC) + timedelta(minutes=minutes)  # noqa: E731
    status, answer, _ = await call(simulator, auth=signer(clock=clock))
    assert (status, answer["error_code"]) == (401, "APIGW.0301")
    assert "X-Sdk-Date" in answer["error_msg"] and "15 minutes" in answer["error_msg"]


async def test_sdk_date_within_skew_accepted(simulator: Simulator) -> None:
    clock = lambda: datetime.now(UTC) - timedelta(minutes=10)  # noqa: E731
    status, _, _ = await call(simulator, auth=signer(clock=clock))
    assert status == 200


async def test_tampered_body_refused(simulator: Simulator) -> None:
    async def tamper(request: aiohttp.ClientRequest, handler: Any) -> aiohttp.ClientResponse:
        request.body = b'{"command": "CONFIRM_MULTIPART_UPLOADED"}'  # after signing
        return await handler(request)

    status, answer, _ = await call(simulator, auth=(tamper, signer()))
    assert status == 200  # sanity: tamper runs before signing here
    status, answer, _ = await call(simulator, auth=(signer(), tamper))
    assert (status, answer["error_code"]) == (401, "APIGW.0301")


async def test_token_accepted_and_wrong_token_refused(simulator: Simulator) -> None:
    status, answer, _ = await call(simulator, auth="token")
    assert status == 200 and answer["commond_result"] == "EXCUTE_SUCCESS"
    wrong = TokenAuth(TokenCredentials("some-other-token"))
    status, answer, _ = await call(simulator, auth=wrong)
    assert status == 401
    assert answer == {
        "error_code": "APIGW.0303",
        "error_msg": "Incorrect token authentication information: the token is not valid",
    }


async def test_no_auth_refused(simulator: Simulator) -> None:
    status, answer, _ = await call(simulator, auth=None)
    assert (status, answer["error_code"]) == (401, "APIGW.0305")
    assert "neither an AK/SK signature" in answer["error_msg"]


async def test_token_refused_when_only_aksk_configured(start_simulator: Any) -> None:
    sim = await start_simulator(tokens=())
    status, answer, _ = await call(sim, auth="token")
    assert (status, answer["error_code"]) == (401, "APIGW.0303")
    assert "not enabled" in answer["error_msg"]


async def test_project_id_header_must_match_path(simulator: Simulator) -> None:
    status, _, _ = await call(simulator, headers={"X-Project-Id": "sim-project"})
    assert status == 200
    status, answer, _ = await call(simulator, headers={"X-Project-Id": "other-project"})
    assert status == 403
    assert answer["error_code"] == "APIGW.0306"
    assert "X-Project-Id does not match" in answer["error_msg"]
    assert "other-project" not in answer["error_msg"]  # no header value echoed


async def test_security_token_required_when_configured(start_simulator: Any) -> None:
    sim = await start_simulator(security_token="temporary-security-token-1")
    status, _, _ = await call(sim, auth=signer(token="temporary-security-token-1"))
    assert status == 200
    status, answer, _ = await call(sim, auth=signer())
    assert (status, answer["error_code"]) == (401, "APIGW.0301")
    assert "X-Security-Token is missing" in answer["error_msg"]
    status, answer, _ = await call(sim, auth=signer(token="another-token-22222"))
    assert "X-Security-Token does not match" in answer["error_msg"]


async def test_open_mode_accepts_any_well_formed_auth(start_simulator: Any) -> None:
    sim = await start_simulator(credentials={}, tokens=())
    assert sim.config.open_auth
    assert (await call(sim, auth=signer(ak="ANY", sk="anything")))[0] == 200
    assert (await call(sim, auth=TokenAuth(TokenCredentials("whatever"))))[0] == 200
    status, answer, _ = await call(sim, auth=None)
    assert (status, answer["error_code"]) == (401, "APIGW.0305")
    status, answer, _ = await call(sim, auth=None, headers={"Authorization": "Bearer x"})
    assert (status, answer["error_code"]) == (401, "APIGW.0301")
    stale = signer(clock=lambda: datetime.now(UTC) - timedelta(hours=1))
    assert (await call(sim, auth=stale))[0] == 401
    status, answer, _ = await call(sim, auth=None, headers={"X-Auth-Token": " "})
    assert (status, answer["error_code"]) == (401, "APIGW.0303")


# --------------------------------------------------------------------------- state machine


async def run(
    sim: Simulator, job: str, command: str, headers: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    status, body, _ = await call(sim, job, cmd(command, **extra), headers=headers)
    assert status == 200, body
    return body


async def test_happy_path_to_job_finish(simulator: Simulator) -> None:
    sim = simulator
    for command in (
        "GET_MULTIPART_UPLOADED",
        "CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED",
        "CONFIRM_AUTHORIZATION_LETTER",
        "CONFIRM_MULTIPART_UPLOADED",
        "SUBMITVERIFYING",
    ):
        assert (await run(sim, "j", command))["commond_result"] == "EXCUTE_SUCCESS", command
    assert sim.job_state("j") is JobState.AUTO_VERIFYING
    refused = await run(sim, "j", "CONFIRM_ACCEPT")
    assert refused["commond_result"] == "EXCUTE_FAILED"
    assert refused["excute_failed_msg"] == (
        "command CONFIRM_ACCEPT is not allowed in state AUTO_VERIFYING: an NA-whitelist command, "
        "for a trained job awaiting the user (WAIT_USER_CONFIRM, JOB_PENDING, JOB_REJECT); "
        "no command is accepted here"
    )
    sim.jobs.set_state("j", "WAIT_USER_CONFIRM")  # review and training finish off-line
    assert (await run(sim, "j", "CONFIRM_ACCEPT"))["commond_result"] == "EXCUTE_SUCCESS"
    assert sim.job_state("j") is JobState.JOB_FINISH
    job = sim.jobs.get("sim-project", "j")
    assert job.history == [
        "CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED",
        "CONFIRM_AUTHORIZATION_LETTER",
        "CONFIRM_MULTIPART_UPLOADED",
        "SUBMITVERIFYING",
        "CONFIRM_ACCEPT",
    ]
    assert [e.log_type for e in job.operation_logs] == [
        "USER_CREATE_JOD",
        "USER_VERIFYING_SUBMITTED",
    ]
    assert not sim.stats.duplicates()


async def test_submit_before_upload_refused_with_reason(simulator: Simulator) -> None:
    body = await run(simulator, "j", "SUBMITVERIFYING")
    assert body == {
        "commond_result": "EXCUTE_FAILED",
        "excute_failed_msg": "command SUBMITVERIFYING is not allowed in state WAIT_FILE_UPLOAD: "
        "confirm the video upload first (CONFIRM_MULTIPART_UPLOADED); allowed here: "
        "CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED, CONFIRM_AUTHORIZATION_LETTER, "
        "CONFIRM_MULTIPART_UPLOADED, DELETE_JOB_VIDEO, GET_ACTION_VIDEO_MULTIPART_UPLOADED, "
        "GET_MULTIPART_UPLOADED",  # never the refused command itself (issue 20)
    }
    assert simulator.job_state("j") is JobState.WAIT_FILE_UPLOAD
    assert simulator.stats.results == Counter({"EXCUTE_FAILED": 1})


async def test_confirmations_happen_once(simulator: Simulator) -> None:
    for command in (
        "CONFIRM_MULTIPART_UPLOADED",
        "CONFIRM_AUTHORIZATION_LETTER",
        "CONFIRM_ACTION_VIDEO_MULTIPART_UPLOADED",
    ):
        assert (await run(simulator, "j", command))["commond_result"] == "EXCUTE_SUCCESS"
        again = await run(simulator, "j", command)
        assert again["commond_result"] == "EXCUTE_FAILED"
        assert "already confirmed" in again["excute_failed_msg"]
    assert not simulator.stats.duplicates()


async def test_delete_video_undoes_the_upload(simulator: Simulator) -> None:
    await run(simulator, "j", "CONFIRM_MULTIPART_UPLOADED")
    assert (await run(simulator, "j", "DELETE_JOB_VIDEO"))["commond_result"] == "EXCUTE_SUCCESS"
    assert simulator.job_state("j") is JobState.WAIT_FILE_UPLOAD
    assert (await run(simulator, "j", "SUBMITVERIFYING"))["commond_result"] == "EXCUTE_FAILED"


async def update(
    sim: Simulator, job_id: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """PUT (Update) one job; returns (status, parsed JSON body)."""
    async with (
        aiohttp.ClientSession(middlewares=(signer(),)) as session,
        session.put(sim.show_url(job_id), json=body or {}) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_a_failed_review_is_updated_then_confirmed_and_resubmitted(
    start_simulator: Any,
) -> None:
    sim = await start_simulator(jobs={"a": "AUTO_VERIFY_FAILED", "m": "MANUAL_VERIFY_FAILED"})
    for job in ("a", "m"):
        refused = await run(sim, job, "CONFIRM_MULTIPART_UPLOADED")
        assert "update the job first" in refused["excute_failed_msg"]
        repair = await run(sim, job, "CONFIRM_REPAIR")  # not the fix for a failed review
        assert "one-time request for model optimisation" in repair["excute_failed_msg"]
        status, answer = await update(sim, job, {"video_multipart_count": 3, "name": "retake"})
        assert status == 200 and answer["job_id"] == job
        assert len(answer["training_video_upload_url"]) == 3
        assert answer["id_card_image1_upload_url"].startswith("https://obs.example.invalid/")
        assert sim.jobs.get("sim-project", job).name == "retake"
        for command in ("CONFIRM_MULTIPART_UPLOADED", "SUBMITVERIFYING"):
            assert (await run(sim, job, command))["commond_result"] == "EXCUTE_SUCCESS"
        assert sim.job_state(job) is JobState.AUTO_VERIFYING
        again = await run(sim, job, "SUBMITVERIFYING")  # a retry after a lost answer
        assert again["excute_failed_msg"] == (
            "command SUBMITVERIFYING is not allowed in state AUTO_VERIFYING: "
            "the job is already submitted and being reviewed; no command is accepted here"
        )
        assert (await update(sim, job))[0] == 400  # only a failed review is updated
    assert (await update(sim, "nobody"))[0] == 404
    assert (await update(sim, "a", {"video_multipart_count": "x"}))[0] == 400
    assert sim.stats.updates.by_status == Counter({200: 2, 400: 3, 404: 1})


async def test_confirm_repair_once_after_training(start_simulator: Any) -> None:
    sim = await start_simulator(jobs={"done": "JOB_SUCCESS"})
    user = {"X-App-UserId": "ops-01"}
    missing = await run(sim, "done", "CONFIRM_REPAIR")
    assert "X-App-UserId" in missing["excute_failed_msg"]
    assert (await run(sim, "done", "CONFIRM_REPAIR", headers=user))["commond_result"] == (
        "EXCUTE_SUCCESS"
    )
    again = await run(sim, "done", "CONFIRM_REPAIR", headers=user)
    assert "already requested" in again["excute_failed_msg"]
    assert "CONFIRM_REPAIR" not in again["excute_failed_msg"].partition("allowed here")[2]


async def test_refusals_can_carry_error_info(start_simulator: Any) -> None:
    sim = await start_simulator(error_info=True)
    body = await run(sim, "j", "SUBMITVERIFYING")
    assert body["error_info"] == {
        "error_code": "MSS.00000003",
        "error_msg": body["excute_failed_msg"],
    }


@pytest.mark.parametrize(
    ("start", "command", "end"),
    [
        ("WAIT_USER_CONFIRM", "CONFIRM_ACCEPT", "JOB_FINISH"),
        ("WAIT_USER_CONFIRM", "CONFIRM_REJECT", "JOB_REJECT"),
        ("WAIT_USER_CONFIRM", "CONFIRM_PENDING", "JOB_PENDING"),
        ("JOB_PENDING", "CONFIRM_ACTIVE", "WAIT_USER_CONFIRM"),
        ("JOB_REJECT", "CONFIRM_ANSWER", "JOB_REJECT"),
        ("JOB_SUCCESS", "DELETE_JOB_VIDEO", "JOB_SUCCESS"),
    ],
)
async def test_seeded_transitions(start_simulator: Any, start: str, command: str, end: str) -> None:
    sim = await start_simulator(jobs={"seeded": start})
    assert (await run(sim, "seeded", command))["commond_result"] == "EXCUTE_SUCCESS"
    assert sim.job_state("seeded") == JobState(end)
    assert sim.stats.executions[("seeded", command)] == 1


@pytest.mark.parametrize(
    ("start", "command", "why"),
    [
        ("JOB_FINISH", "CONFIRM_ACCEPT", "allowed here: DELETE_JOB_VIDEO"),
        ("AUTO_VERIFY_FAILED", "SUBMITVERIFYING", "update the job first"),
        ("WAIT_FILE_UPLOAD", "CONFIRM_REPAIR", "one-time request for model optimisation"),
        ("TRAINING", "CONFIRM_ACCEPT", "no command is accepted here"),
    ],
)
async def test_refusals_say_why(start_simulator: Any, start: str, command: str, why: str) -> None:
    sim = await start_simulator(jobs={"seeded": start})
    body = await run(sim, "seeded", command)
    assert body["commond_result"] == "EXCUTE_FAILED"
    prefix = f"command {command} is not allowed in state {start}"
    assert body["excute_failed_msg"].startswith(prefix)
    assert why in body["excute_failed_msg"]
    assert sim.job_state("seeded") == JobState(start)


async def test_state_is_per_project(simulator: Simulator) -> None:
    await call(simulator, "j", cmd("CONFIRM_MULTIPART_UPLOADED"), project_id="p1")
    assert simulator.jobs.get("p1", "j").video_confirmed
    _, body, _ = await call(simulator, "j", cmd("SUBMITVERIFYING"), project_id="p2")
    assert body["commond_result"] == "EXCUTE_FAILED"
    with pytest.raises(LookupError):
        simulator.job_state("j")


async def test_concurrent_duplicates_execute_once(start_simulator: Any) -> None:
    sim = await start_simulator(latency_ms=5, latency_jitter_ms=20, seed=4)
    results = await asyncio.gather(
        *(call(sim, "j", cmd("CONFIRM_MULTIPART_UPLOADED")) for _ in range(20))
    )
    outcomes = Counter(body["commond_result"] for _, body, _ in results)
    assert outcomes == Counter({"EXCUTE_SUCCESS": 1, "EXCUTE_FAILED": 19})
    assert sim.stats.executions[("j", "CONFIRM_MULTIPART_UPLOADED")] == 1


# --------------------------------------------------------------------------- faults


async def test_error_rate_one(start_simulator: Any) -> None:
    sim = await start_simulator(error_rate=1.0)
    status, body, headers = await call(sim, "j", cmd("CONFIRM_MULTIPART_UPLOADED"))
    assert (status, body) == (500, INTERNAL)
    assert HEX32.match(headers["X-Request-Id"])
    assert sim.job_state("j") is None and not sim.stats.executions


async def test_invalid_input_is_400_even_under_errors(start_simulator: Any) -> None:
    sim = await start_simulator(error_rate=1.0)
    assert (await call(sim, "j", cmd("NOPE")))[:2] == (400, INVALID)


async def statuses(sim: Simulator, n: int) -> list[int]:
    async with aiohttp.ClientSession(middlewares=(signer(),)) as session:
        out = []
        for _ in range(n):
            async with session.post(sim.command_url("j"), json=cmd("GET_MULTIPART_UPLOADED")) as r:
                out.append(r.status)
        return out


async def test_error_and_throttle_rates_are_statistical_and_seeded(start_simulator: Any) -> None:
    fields = {"seed": 11, "error_rate": 0.2, "throttle_rate": 0.1}
    first = await statuses(await start_simulator(**fields), 1000)
    counts = Counter(first)
    assert 60 <= counts[429] <= 150  # ~10%
    assert 120 <= counts[500] <= 250  # ~20% of the ~90% not throttled
    second = await statuses(await start_simulator(**fields), 1000)
    assert first == second  # same seed, same sequence


async def test_throttle_rate_one(start_simulator: Any) -> None:
    sim = await start_simulator(throttle_rate=1.0)
    status, body, headers = await call(sim, "j", cmd("CONFIRM_MULTIPART_UPLOADED"))
    assert status == 429
    assert body == {
        "error_code": "APIGW.0308",
        "error_msg": "The throttling threshold has been reached: "
        "policy user over ratelimit,limit:10,time:1 second",
    }
    assert headers["Retry-After"] == "1"
    assert sim.job_state("j") is None


async def test_auth_comes_before_throttling(start_simulator: Any) -> None:
    sim = await start_simulator(throttle_rate=1.0)
    assert (await call(sim, auth=signer(sk="wrong-secret-key")))[0] == 401


@pytest.mark.slow
async def test_quota_per_second(start_simulator: Any) -> None:
    sim = await start_simulator(quota=3)
    await asyncio.sleep(1.02 - time.monotonic() % 1)  # start at the top of a second
    results = await asyncio.gather(*(call(sim, f"j{i}") for i in range(10)))
    by_status = Counter(status for status, _, _ in results)
    assert by_status == Counter({200: 3, 429: 7})
    for status, body, headers in results:
        if status == 429:
            assert body["error_code"] == "APIGW.0308"
            assert "limit:3,time:1 second" in body["error_msg"]
            assert int(headers["Retry-After"]) >= 1
    await asyncio.sleep(1.0)
    assert (await call(sim, "later"))[0] == 200  # a new window


def test_quota_window_arithmetic() -> None:
    ticks = iter([5.0, 5.1, 5.2, 5.99, 6.0, 6.5])
    quota = Quota(2, clock=lambda: next(ticks))
    assert [quota.admit() for _ in range(6)] == [None, None, 1, 1, None, None]


async def test_latency(start_simulator: Any) -> None:
    sim = await start_simulator(latency_ms=150)
    started = time.perf_counter()
    assert (await call(sim))[0] == 200
    assert time.perf_counter() - started >= 0.15


async def test_latency_jitter_is_bounded(start_simulator: Any) -> None:
    sim = await start_simulator(latency_ms=10, latency_jitter_ms=40, seed=2)
    for _ in range(5):
        started = time.perf_counter()
        await call(sim)
        assert 0.01 <= time.perf_counter() - started < 1.0


async def test_drop_closes_connection(start_simulator: Any) -> None:
    sim = await start_simulator(drop_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await asyncio.wait_for(call(sim, "j", cmd("CONFIRM_MULTIPART_UPLOADED")), 5)
    assert sim.job_state("j") is None  # nothing ran
    assert sim.stats.dropped == 1 and sim.stats.requests == 1
    assert not sim.stats.by_status and not sim.stats.executions


async def test_drop_after_execute_changes_state(start_simulator: Any) -> None:
    sim = await start_simulator(drop_after_execute_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await asyncio.wait_for(call(sim, "j", cmd("CONFIRM_MULTIPART_UPLOADED")), 5)
    job = sim.jobs.get("sim-project", "j")
    assert job.video_confirmed  # executed, answer lost
    assert job.history == ["CONFIRM_MULTIPART_UPLOADED"]
    assert sim.stats.executions[("j", "CONFIRM_MULTIPART_UPLOADED")] == 1
    assert sim.stats.dropped == sim.stats.dropped_after_execute == 1
    # refused requests are answered: the drop models a lost answer, not a lost request
    assert (await call(sim, auth=None))[0] == 401


async def test_drop_rate_statistical(start_simulator: Any) -> None:
    sim = await start_simulator(drop_rate=0.3, seed=5)
    dropped = 0
    async with aiohttp.ClientSession(middlewares=(signer(),)) as session:
        for _ in range(300):
            try:
                async with session.post(
                    sim.command_url("j"),
                    json=cmd("GET_MULTIPART_UPLOADED"),
                    timeout=aiohttp.ClientTimeout(total=5),
                ) as r:
                    assert r.status == 200
            except aiohttp.ServerDisconnectedError:
                dropped += 1
    assert 50 <= dropped <= 130
    assert sim.stats.dropped == dropped


async def test_faulted_requests_never_change_state(start_simulator: Any) -> None:
    sim = await start_simulator(seed=3, error_rate=0.4, throttle_rate=0.3, drop_rate=0.2)
    ran = 0
    for _ in range(60):
        try:
            status, _, _ = await asyncio.wait_for(
                call(sim, "j", cmd("CONFIRM_AUTHORIZATION_LETTER")), 5
            )
        except aiohttp.ServerDisconnectedError:
            continue
        if status == 200:
            ran += 1
    assert ran >= 2
    assert sim.stats.executions[("j", "CONFIRM_AUTHORIZATION_LETTER")] == 1
    assert sim.stats.results["EXCUTE_FAILED"] == ran - 1


# --------------------------------------------------------------------------- logs, config


async def test_request_log_has_fields_and_no_secrets(start_simulator: Any) -> None:
    sim = await start_simulator(log_requests=True)
    with structlog.testing.capture_logs() as logs:
        await call(sim, "job-1", cmd("CONFIRM_MULTIPART_UPLOADED"))
        await call(sim, "job-1", auth="token")
        await call(sim, "job-1", auth=signer(sk="wrong-secret-key-xyz"))
    events = [e for e in logs if e["event"] == "simulator request"]
    assert [e["status"] for e in events] == [200, 200, 401]
    first = events[0]
    assert first["job_id"] == "job-1" and first["command"] == "CONFIRM_MULTIPART_UPLOADED"
    assert first["method"] == "POST" and first["latency_ms"] >= 0
    text = json.dumps(logs)
    for secret in (SK, TOKEN, "wrong-secret-key-xyz", "SDK-HMAC-SHA256"):
        assert secret not in text


def test_config_repr_hides_secrets() -> None:
    config = SimulatorConfig(credentials={AK: SK}, tokens=(TOKEN,), security_token="sectok")
    assert SK not in repr(config) and TOKEN not in repr(config) and "sectok" not in repr(config)
    assert set(config.secrets()) == {SK, TOKEN, "sectok"}


def test_config_from_env() -> None:
    env = {
        "CLOUD_SDK_AK": "ak1",
        "CLOUD_SDK_SK": "sk1",
        "METASTUDIO_AUTH_TOKEN": " tok ",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN": "st",
    }
    config = SimulatorConfig.from_env(env, port=9000)
    assert config.credentials == {"ak1": "sk1"}
    assert config.tokens == ("tok",) and config.security_token == "st"
    assert config.port == 9000
    assert SimulatorConfig.from_env({}).open_auth
    creds = config.signing_credentials()
    assert creds is not None and creds.ak == "ak1" and creds.security_token == "st"


@pytest.mark.parametrize("field", ["error_rate", "throttle_rate", "drop_rate"])
def test_config_rejects_bad_rates(field: str) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**{field: 1.5})


def test_load_jobs_file(tmp_path: Path) -> None:
    yml = tmp_path / "jobs.yaml"
    yml.write_text("job-1: WAIT_USER_CONFIRM\njob_2: TRAINING\n")
    assert load_jobs_file(yml) == {
        "job-1": JobState.WAIT_USER_CONFIRM,
        "job_2": JobState.TRAINING,
    }
    js = tmp_path / "jobs.json"
    js.write_text('{"j": "JOB_FINISH"}')
    assert load_jobs_file(js) == {"j": JobState.JOB_FINISH}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_jobs_file(empty) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("j: NOT_A_STATE", "unknown state 'NOT_A_STATE'"),
        ("j: FILE_UPLOADED", "unknown state 'FILE_UPLOADED'"),  # the old invented names
        ("j: SUCCEED", "unknown state 'SUCCEED'"),
        ("j: {state: TRAINING, batch: x}", "job j: batch: Extra inputs are not permitted"),
        ("- j\n", "expected a mapping"),
        ("'a.b': TRAINING", "job_id 'a.b' must be"),
        ("{unclosed", "not valid JSON or YAML"),
    ],
)
def test_load_jobs_file_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=re.escape(message)):
        load_jobs_file(path)
