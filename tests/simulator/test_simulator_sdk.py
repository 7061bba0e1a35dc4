"""The official SDK (``huaweicloudsdkmetastudio``), signing with the official signer, against
the simulator: in a background thread, and as a separate ``batcher simulate`` process.

The SDK is blocking, so the simulator runs outside the test's thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
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
    MetaStudioClient,
)

from batcher.simulator import JobState, Simulator, SimulatorConfig, run_simulator_in_thread

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
    # the SDK models part_number as a string; the simulator sends numbers
    assert [str(p.part_number) for p in parts] == ["1", "2"]
    assert all(len(p.etag) == 32 for p in parts)


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


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def simulate_process(tmp_path: Any) -> Iterator[tuple[subprocess.Popen[str], str]]:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("trained-job: WAIT_USER_CONFIRM\n")
    env = {k: v for k, v in os.environ.items() if "SDK" not in k and "METASTUDIO" not in k}
    env |= {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "batcher",
            "simulate",
            "--port",
            "0",
            "--jobs-file",
            str(jobs),
            "--log-format",
            "json",
            "--seed",
            "1",
        ],
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

    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    logs = [json.loads(line) for line in process.stderr.read().splitlines() if line.strip()]
    requests = [e for e in logs if e["event"] == "simulator request"]
    assert [e["status"] for e in requests] == [200, 401]
    assert SK not in json.dumps(logs)
    assert logs[-1]["event"] == "simulator stopping"


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
        "batcher: --jobs: Input should be less than or equal to 200000",
    )
    bad_state = tmp_path / "old.yaml"
    bad_state.write_text("j: FILE_UPLOADED\n")
    old_names = run_cli("--jobs-file", str(bad_state))
    assert old_names.returncode == 2 and "unknown state 'FILE_UPLOADED'" in old_names.stderr
