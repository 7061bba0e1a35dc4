"""The official SDK (``huaweicloudsdkmetastudio``), signing with the official signer, against
the simulator: in a background thread, and as a separate ``batcher simulate`` process.

The SDK is blocking, so the simulator runs outside the test's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("huaweicloudsdkmetastudio")

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import (
    ClientRequestException,
    ServerResponseException,
)
from huaweicloudsdkmetastudio.v1 import (
    CommentData,
    Execute2dModelTrainingCommandByUserReq,
    Execute2dModelTrainingCommandByUserRequest,
    List2dModelTrainingJobRequest,
    MetaStudioClient,
    Show2dModelTrainingJobRequest,
    Update2dModelTrainingJobReq,
    Update2dModelTrainingJobRequest,
)

from batcher.simulator import JobSpec, JobState, Simulator, SimulatorConfig, run_simulator
from batcher.simulator.listing import parse_rfc3339


@contextmanager
def run_simulator_in_thread(
    config: SimulatorConfig | None = None, *, timeout: float = 10.0
) -> Iterator[Simulator]:
    """Serve a simulator from a background thread with its own event loop, for the blocking
    SDK. Read ``sim.stats`` and job state only between requests: they belong to its thread."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        box["loop"], box["stop"] = asyncio.get_running_loop(), stop
        async with run_simulator(config) as sim:
            box["sim"] = sim
            ready.set()
            await stop.wait()

    def target() -> None:
        try:
            asyncio.run(serve())
        except BaseException as error:  # handed to the caller below
            box["error"] = error
        finally:
            ready.set()

    thread = threading.Thread(target=target, name="batcher-simulator", daemon=True)
    thread.start()
    ready.wait(timeout)
    if "sim" not in box:
        thread.join(timeout)
        raise RuntimeError("the simulator did not start") from box.get("error")
    try:
        yield box["sim"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(timeout)


AK = "SDKTESTAK00000000001"
SK = "sdk-test-secret-key-000000000001"
PROJECT = "0123456789abcdef0123456789abcdef"


def client(url: str, *, sk: str = SK, security_token: str | None = None) -> MetaStudioClient:
    credentials = BasicCredentials(AK, sk, PROJECT)
    if security_token:
        credentials.with_security_token(security_token)
    builder = MetaStudioClient.new_builder().with_credentials(credentials)
    return builder.with_endpoints([url]).build()


def execute(c: MetaStudioClient, job_id: str, command: str, **body: Any) -> Any:
    request = Execute2dModelTrainingCommandByUserRequest(
        job_id=job_id, body=Execute2dModelTrainingCommandByUserReq(command=command, **body)
    )
    return c.execute2d_model_training_command_by_user(request)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    config = SimulatorConfig(credentials={AK: SK}, log_requests=False)
    with run_simulator_in_thread(config) as simulator:
        yield simulator


def test_sdk_signature_accepted(sim: Simulator) -> None:
    response = execute(client(sim.url), "job-1", "CONFIRM_MULTIPART_UPLOADED")
    assert response.commond_result == "EXCUTE_SUCCESS"
    assert response.excute_failed_msg is None
    assert len(response.x_request_id) == 32
    assert sim.job_state("job-1", PROJECT) is JobState.WAIT_FILE_UPLOAD
    assert sim.jobs.get(PROJECT, "job-1").video_confirmed
    assert sim.stats.executions[("job-1", "CONFIRM_MULTIPART_UPLOADED")] == 1


def test_sdk_wrong_sk_refused(sim: Simulator) -> None:
    with pytest.raises(ClientRequestException) as caught:
        execute(client(sim.url, sk="not-the-right-secret-key"), "job-1", "SUBMITVERIFYING")
    error = caught.value
    assert error.status_code == 401
    assert error.error_code == "APIGW.0301"
    assert "signature does not match" in error.error_msg
    assert len(error.request_id) == 32
    assert sim.job_state("job-1", PROJECT) is None


def test_sdk_parses_refusal_and_multipart(sim: Simulator) -> None:
    c = client(sim.url)
    refused = execute(c, "job-2", "SUBMITVERIFYING")
    assert refused.commond_result == "EXCUTE_FAILED"
    assert "confirm the video upload first" in refused.excute_failed_msg
    parts = execute(c, "job-2", "GET_MULTIPART_UPLOADED").multipart_data
    assert [p.part_number for p in parts] == ["1", "2"]  # a string, as the SDK models it
    assert all(len(p.etag) == 32 for p in parts)


def field_for_field(response: Any) -> dict[str, Any]:
    """The raw answer, checked against the SDK's model of it: every field the simulator sent
    is one the model has, with the model's type (and nested models likewise)."""
    raw = json.loads(response.raw_content)
    theirs = response.to_dict()
    assert len(theirs.pop("x_request_id")) == 32
    lossless(theirs, raw)
    return dict(raw)


def test_sdk_models_every_command_answer_field_for_field() -> None:
    config = SimulatorConfig(credentials={AK: SK}, error_info=True, log_requests=False)
    with run_simulator_in_thread(config) as sim:
        c = client(sim.url)
        refused = field_for_field(execute(c, "j", "SUBMITVERIFYING"))
        assert set(refused) == {"commond_result", "excute_failed_msg", "error_info"}
        assert refused["error_info"]["error_msg"] == refused["excute_failed_msg"]
        parts = field_for_field(execute(c, "j", "GET_MULTIPART_UPLOADED"))
        assert parts["multipart_data"][0]["part_number"] == "1"
        comment = CommentData(comment_title="t", attachment_name=["a.png", "b.png"])
        letter = execute(c, "j", "CONFIRM_AUTHORIZATION_LETTER", comment_data=comment)
        assert len(field_for_field(letter)["attachment_upload_url"]) == 2
        assert field_for_field(execute(c, "j", "CONFIRM_MULTIPART_UPLOADED")) == {
            "commond_result": "EXCUTE_SUCCESS"
        }


def test_sdk_updates_a_failed_review_and_resubmits_it() -> None:
    config = SimulatorConfig(
        credentials={AK: SK}, jobs={"failed": "MANUAL_VERIFY_FAILED"}, log_requests=False
    )
    with run_simulator_in_thread(config) as sim:
        c = client(sim.url)
        body = Update2dModelTrainingJobReq(video_multipart_count=2, action_video_multipart_count=1)
        request = Update2dModelTrainingJobRequest(job_id="failed", body=body)
        answer = field_for_field(c.update2d_model_training_job(request))
        assert answer["job_id"] == "failed" and len(answer["training_video_upload_url"]) == 2
        assert len(answer["action_video_upload_url"]) == 1
        assert answer["id_card_image1_upload_url"] and answer["grant_file_upload_url"]
        for command in ("CONFIRM_MULTIPART_UPLOADED", "SUBMITVERIFYING"):
            assert execute(c, "failed", command).commond_result == "EXCUTE_SUCCESS", command
        assert sim.job_state("failed", PROJECT) is JobState.AUTO_VERIFYING
        with pytest.raises(ClientRequestException) as caught:  # no longer a failed review
            c.update2d_model_training_job(request)
        assert (caught.value.status_code, caught.value.error_code) == (400, "MSS.00000003")


def test_sdk_attachments_and_optional_fields(sim: Simulator) -> None:
    response = execute(
        client(sim.url),
        "job-3",
        "CONFIRM_AUTHORIZATION_LETTER",
        command_message="UPLOAD_VIDEO",
        operation_reason="signed letter",
        comment_data=CommentData(comment_title="t", attachment_name=["letter.pdf"]),
    )
    assert response.commond_result == "EXCUTE_SUCCESS"
    assert len(response.attachment_upload_url) == 1
    assert response.attachment_upload_url[0].startswith("https://obs.example.invalid/")


def test_sdk_invalid_command_is_400(sim: Simulator) -> None:
    with pytest.raises(ClientRequestException) as caught:
        execute(client(sim.url), "job-4", "NO_SUCH_COMMAND")
    assert (caught.value.status_code, caught.value.error_code) == (400, "MSS.00000003")
    assert caught.value.error_msg == "Invalid parameter"


def test_sdk_security_token() -> None:
    config = SimulatorConfig(
        credentials={AK: SK}, security_token="temporary-token-0001", log_requests=False
    )
    with run_simulator_in_thread(config) as sim:
        temporary = client(sim.url, security_token="temporary-token-0001")
        ok = execute(temporary, "j", "DELETE_JOB_VIDEO")
        assert ok.commond_result == "EXCUTE_SUCCESS"
        with pytest.raises(ClientRequestException) as caught:
            execute(client(sim.url), "j", "DELETE_JOB_VIDEO")
        assert caught.value.status_code == 401
        assert "X-Security-Token is missing" in caught.value.error_msg


def test_sdk_sees_throttle_and_internal_error() -> None:
    throttling = SimulatorConfig(credentials={AK: SK}, throttle_rate=1.0, log_requests=False)
    with run_simulator_in_thread(throttling) as sim:
        with pytest.raises(ClientRequestException) as caught:
            execute(client(sim.url), "j", "DELETE_JOB_VIDEO")
        assert (caught.value.status_code, caught.value.error_code) == (429, "APIGW.0308")
    failing = SimulatorConfig(credentials={AK: SK}, error_rate=1.0, log_requests=False)
    with run_simulator_in_thread(failing) as sim:
        with pytest.raises(ServerResponseException) as server_error:
            execute(client(sim.url), "j", "DELETE_JOB_VIDEO")
        assert (server_error.value.status_code, server_error.value.error_code) == (
            500,
            "MSS.00000004",
        )


# --------------------------------------------------------------------------- List and Show

UNTIL = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def populated() -> Iterator[Simulator]:
    config = SimulatorConfig(
        credentials={AK: SK},
        log_requests=False,
        population=300,
        seed=5,
        population_until=UNTIL,
        jobs={
            "sdk-job": JobSpec(
                state=JobState.WAIT_USER_CONFIRM, batch_name="华北-批次02", tags=("主播",)
            )
        },
    )
    with run_simulator_in_thread(config) as simulator:
        yield simulator


def lossless(sdk: Any, ours: Any) -> None:
    """The SDK's model (as a dict) holds every value we sent; its other fields are None."""
    if isinstance(ours, dict):
        assert isinstance(sdk, dict)
        for key, value in sdk.items():
            if key not in ours:
                assert value is None, key
        for key, value in ours.items():
            lossless(sdk[key], value)
    elif isinstance(ours, list):
        assert isinstance(sdk, list) and len(sdk) == len(ours)
        for theirs, mine in zip(sdk, ours, strict=True):
            lossless(theirs, mine)
    else:
        assert sdk == ours and type(sdk) is type(ours), (sdk, ours)


def expected(sim: Simulator, keep: Any) -> list[dict[str, Any]]:
    now = sim.clock()
    return [
        info
        for info in (job.basic_info(now=now) for job in sim.jobs.in_project(PROJECT))
        if keep(info)
    ]


def test_sdk_lists_with_commas_colons_and_chinese(populated: Simulator) -> None:
    since = "2026-10-01T00:00:00+08:00"
    request = List2dModelTrainingJobRequest(
        state="AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED,WAIT_USER_CONFIRM",
        batch_name="华北-批次02",
        create_since=since,
        update_until="2026-11-20T00:00:00Z",
        sort_key="update_time",
        sort_dir="desc",
        is_flexus=False,
        limit=100,
        offset=0,
    )
    response = client(populated.url).list2d_model_training_job(request)
    want = expected(
        populated,
        lambda j: (
            j["state"] in ("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED", "WAIT_USER_CONFIRM")
            and j["batch_name"] == "华北-批次02"
            and parse_rfc3339(j["create_time"]) >= parse_rfc3339(since)
            and parse_rfc3339(j["last_update_time"]) <= UNTIL
            and not j["is_flexus"]
        ),
    )
    want.sort(key=lambda j: (parse_rfc3339(j["last_update_time"]), j["job_id"]), reverse=True)
    assert len(want) >= 3 and any(j["job_id"] == "sdk-job" for j in want)
    assert len(want) < populated.jobs.seed_count
    assert response.count == len(want)
    assert len(response.x_request_id) == 32
    assert [job.job_id for job in response.jobs] == [job["job_id"] for job in want]
    for theirs, ours in zip(response.jobs, want, strict=True):
        lossless(theirs.to_dict(), ours)
    odd = List2dModelTrainingJobRequest(name="分身 & more=?/+", tag="a b", job_id="x")
    assert client(populated.url).list2d_model_training_job(odd).count == 0  # 200, verified
    assert populated.stats.lists.by_status == {200: 2}


def test_sdk_pages_through_a_tag(populated: Simulator) -> None:
    c = client(populated.url)
    seen: list[str] = []
    while True:
        page = c.list2d_model_training_job(
            List2dModelTrainingJobRequest(tag="主播", offset=len(seen), limit=7)
        )
        seen += [job.job_id for job in page.jobs]
        if len(seen) >= page.count:
            break
    want = expected(populated, lambda j: "主播" in j["tags"])
    assert len(seen) == len(set(seen)) == page.count == len(want) > 7
    assert set(seen) == {j["job_id"] for j in want}


def test_sdk_shows_a_job_with_its_log(populated: Simulator) -> None:
    c = client(populated.url)
    comment = CommentData(comment_title="效果不满意", attachment_name=["截图.png"])
    execute(c, "sdk-job", "CONFIRM_REJECT", comment_data=comment)
    response = c.show2d_model_training_job(Show2dModelTrainingJobRequest(job_id="sdk-job"))
    ours = populated.jobs.lookup(PROJECT, "sdk-job")
    assert ours is not None
    detail = ours.detail(now=populated.clock())
    theirs = response.to_dict()
    for key in ("cover_download_url", "training_video_download_url", "grant_file_download_url",
                "verify_video_download_url"):  # fmt: skip
        # signed for 24 hours from "now": the second may have turned between the two calls
        assert theirs.pop(key).split("Expires=")[0] == detail.pop(key).split("Expires=")[0]
    for log in detail["comment_logs"]:
        log.pop("attachment_download_url")
    for log in theirs["comment_logs"]:
        assert log.pop("attachment_download_url")[0].startswith("https://obs.example.invalid/")
    theirs.pop("x_request_id")
    lossless(theirs, detail)
    logs = response.operation_logs
    assert logs[0].log_type == "USER_CREATE_JOD"
    assert (logs[-1].log_type, logs[-1].operate_user) == (
        "SYSTEM_INFERENCE_DATA_PREPROCESS_SUCCESS",
        "SYSTEM",
    )
    assert response.state == "JOB_REJECT"
    assert response.comment_logs[-1].comment_type == "USER_REJECT"


def test_sdk_show_unknown_job_and_list_beyond_the_cap(populated: Simulator) -> None:
    c = client(populated.url)
    with pytest.raises(ClientRequestException) as caught:
        c.show2d_model_training_job(Show2dModelTrainingJobRequest(job_id="no-such-job"))
    assert (caught.value.status_code, caught.value.error_code) == (404, "MSS.00000005")
    with pytest.raises(ClientRequestException) as caught:
        c.list2d_model_training_job(List2dModelTrainingJobRequest(limit=101))
    assert (caught.value.status_code, caught.value.error_code) == (400, "MSS.00000003")
    with pytest.raises(ClientRequestException) as caught:
        client(populated.url, sk="wrong-secret").list2d_model_training_job(
            List2dModelTrainingJobRequest(state="A,B", batch_name="华北")
        )
    assert caught.value.status_code == 401


# --------------------------------------------------------------------------- the CLI


@contextlib.contextmanager
def simulate(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A ``batcher simulate --port 0`` process with the test AK/SK; yields it and its URL."""
    env = {k: v for k, v in os.environ.items() if "SDK" not in k and "METASTUDIO" not in k}
    env |= {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    process = subprocess.Popen(
        [sys.executable, "-m", "batcher", "simulate", "--port", "0", "--log-format", "json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = process.stdout.readline() if process.stdout else ""
        assert first.startswith("listening on http://127.0.0.1:"), first
        yield process, first.split()[-1]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


@pytest.fixture
def simulate_process(tmp_path: Any) -> Iterator[tuple[subprocess.Popen[str], str]]:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("trained-job: WAIT_USER_CONFIRM\n")
    with simulate("--jobs-file", str(jobs), "--seed", "1", "--jobs", "40") as running:
        yield running


def test_cli_simulator_with_sdk(simulate_process: tuple[subprocess.Popen[str], str]) -> None:
    process, url = simulate_process
    good = execute(client(url), "trained-job", "CONFIRM_ACCEPT")
    assert good.commond_result == "EXCUTE_SUCCESS"
    with pytest.raises(ClientRequestException) as caught:
        execute(client(url, sk="a-wrong-secret-key"), "trained-job", "CONFIRM_ACCEPT")
    assert caught.value.status_code == 401
    with urllib.request.urlopen(url + "/__simulator/stats", timeout=5) as response:
        stats = json.load(response)
    assert stats["executions"] == {"trained-job": {"CONFIRM_ACCEPT": 1}}
    assert stats["by_status"] == {"200": 1, "401": 1}
    listed = client(url).list2d_model_training_job(List2dModelTrainingJobRequest(limit=100))
    assert listed.count == 41 and {j.project_id for j in listed.jobs} == {PROJECT}
    finished = [j for j in listed.jobs if j.job_id == "trained-job"]
    assert finished[0].state == "JOB_FINISH"

    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    logs = [json.loads(line) for line in process.stderr.read().splitlines() if line.strip()]
    requests = [e for e in logs if e["event"] == "simulator request"]
    assert [(e["method"], e["status"]) for e in requests] == [
        ("POST", 200),
        ("POST", 401),
        ("GET", 200),
    ]
    assert requests[-1]["path"] == f"/v1/{PROJECT}/digital-human-training-manage/user/jobs"
    assert SK not in json.dumps(logs)
    assert logs[-1]["event"] == "simulator stopping"


def test_cli_population_is_reproducible_with_seed() -> None:
    def population(seed: str) -> list[tuple[str, str, str | None, list[str]]]:
        with simulate("--jobs", "60", "--seed", seed, "--jobs-days", "10") as (_, url):
            page = client(url).list2d_model_training_job(List2dModelTrainingJobRequest(limit=100))
        return [(j.job_id, j.state, j.batch_name, j.tags) for j in page.jobs]

    first = population("7")
    assert len(first) == 60 and len({state for _, state, _, _ in first}) > 5
    assert population("7") == first
    assert population("8") != first


def test_cli_simulate_stops_on_sigint(
    simulate_process: tuple[subprocess.Popen[str], str],
) -> None:
    process, _ = simulate_process
    process.send_signal(signal.SIGINT)
    assert process.wait(10) == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batcher", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_usage_errors_exit_2(sim: Simulator) -> None:
    busy = run_cli("--port", str(sim.port))
    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{sim.port}" in busy.stderr
    rate = run_cli("--error-rate", "1.5")
    assert (rate.returncode, rate.stderr.strip()) == (
        2,
        "batcher: --error-rate: Input should be less than or equal to 1",
    )


def test_cli_help_documents_jobs_and_faults() -> None:
    shown = run_cli("--help")
    assert shown.returncode == 0
    text = " ".join(shown.stdout.split())
    assert "--jobs N" in text and "--jobs-file FILE" in text and "WAIT_USER_CONFIRM" in text
    assert "--drop-after-execute-rate" in text and "--late-answer-rate F" in text
    assert "--late-answer-ms MS" in text


def test_cli_jobs_takes_a_number_and_points_files_elsewhere(tmp_path: Any) -> None:
    seed_file = tmp_path / "jobs.yaml"
    seed_file.write_text("j: WAIT_FILE_UPLOAD\n")
    old = run_cli("--jobs", str(seed_file))
    assert old.returncode == 2
    assert "a seed file goes to --jobs-file FILE" in old.stderr
    too_many = run_cli("--jobs", "1000000")
    assert (too_many.returncode, too_many.stderr.strip()) == (
        2,
        "batcher: --jobs: Input should be less than or equal to 100000",
    )
    bad_state = tmp_path / "old.yaml"
    bad_state.write_text("j: FILE_UPLOADED\n")
    old_names = run_cli("--jobs-file", str(bad_state))
    assert old_names.returncode == 2 and "unknown state 'FILE_UPLOADED'" in old_names.stderr
