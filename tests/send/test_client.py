"""batcher.client: one call, one Outcome; the request sent and every answer's mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from batcher.entry import CommentData, Entry, Outcome
from batcher.errors import UsageError
from batcher.send.answer import outcome_from_response, parse_retry_after
from batcher.send.client import MetaStudioClient
from batcher.send.endpoint import endpoint_for, is_loopback

BASE = URL("https://metastudio.cn-north-4.myhuaweicloud.com")


def command_url(job_id: str, project_id: str = "p1") -> URL:
    return BASE.with_path(
        f"/v1/{project_id}/digital-human-training-manage/user/jobs/{job_id}/command"
    )


def make_entry(**overrides: Any) -> Entry:
    fields: dict[str, Any] = {
        "job_id": "job-1",
        "command": "CONFIRM_REJECT",
        "comment_data": CommentData(
            comment_title="驳回", comment_message="请重新录制视频", attachment_name=("说明.pdf",)
        ),
        "operation_reason": "质检未通过",
        "source": "m.yaml:3",
    }
    fields.update(overrides)
    return Entry(**fields)


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer`` argument
    (pnuckowski/aioresponses#289): supply a finished writer so mocked responses build."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class _Mocked(aioresponses):
    def add(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with _Mocked() as m:
        yield m


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def client(session: aiohttp.ClientSession) -> MetaStudioClient:
    return MetaStudioClient(session, endpoint=BASE, project_id="p1", app_user_id=None, timeout=5)


def sent(mocked: aioresponses, url: URL) -> dict[str, Any]:
    """The keyword arguments of the single request made to ``url``."""
    calls = mocked.requests[("POST", url)]
    assert len(calls) == 1
    return calls[0].kwargs


# --------------------------------------------------------------------------- the request


async def test_request_path_body_and_headers(
    client: MetaStudioClient, mocked: aioresponses
) -> None:
    entry = make_entry()
    mocked.post(command_url("job-1"), payload={"commond_result": "EXCUTE_SUCCESS"})
    outcome = await client.execute(entry)
    assert outcome.succeeded
    kwargs = sent(mocked, command_url("job-1"))
    raw: bytes = kwargs["data"]
    assert json.loads(raw) == entry.request_body()
    assert "驳回".encode() in raw  # non-ASCII sent as UTF-8, not \\u escapes
    assert json.loads(raw) == {
        "command": "CONFIRM_REJECT",
        "comment_data": {
            "comment_title": "驳回",
            "comment_message": "请重新录制视频",
            "attachment_name": ["说明.pdf"],
        },
        "operation_reason": "质检未通过",
    }
    headers = kwargs["headers"]
    assert headers["X-Project-Id"] == "p1"
    assert headers["Content-Type"].startswith("application/json")
    assert "X-App-UserId" not in headers
    # No secret-bearing header is set by the client itself: that is the middleware's job.
    assert not {"Authorization", "X-Auth-Token", "X-Sdk-Date"} & set(headers)


async def test_minimal_entry_sends_only_command(
    client: MetaStudioClient, mocked: aioresponses
) -> None:
    entry = Entry(job_id="j_2", command="SUBMITVERIFYING", source="m.csv:2")
    mocked.post(command_url("j_2"), payload={"commond_result": "EXCUTE_SUCCESS"})
    await client.execute(entry)
    assert json.loads(sent(mocked, command_url("j_2"))["data"]) == {"command": "SUBMITVERIFYING"}


async def test_app_user_id_from_run_and_overridden_by_entry(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    client = MetaStudioClient(session, endpoint=BASE, project_id="p1", app_user_id="run-user")
    mocked.post(command_url("a"), payload={"commond_result": "EXCUTE_SUCCESS"})
    mocked.post(command_url("b"), payload={"commond_result": "EXCUTE_SUCCESS"})
    await client.execute(make_entry(job_id="a"))
    await client.execute(make_entry(job_id="b", app_user_id="entry-user"))
    assert sent(mocked, command_url("a"))["headers"]["X-App-UserId"] == "run-user"
    assert sent(mocked, command_url("b"))["headers"]["X-App-UserId"] == "entry-user"


async def test_entry_project_overrides_client_project(
    client: MetaStudioClient, mocked: aioresponses
) -> None:
    url = command_url("job-1", project_id="other-proj")
    mocked.post(url, payload={"commond_result": "EXCUTE_SUCCESS"})
    outcome = await client.execute(make_entry(project_id="other-proj"))
    assert outcome.succeeded
    assert sent(mocked, url)["headers"]["X-Project-Id"] == "other-proj"
    assert ("POST", command_url("job-1")) not in mocked.requests


async def test_no_project_id_is_a_usage_error(session: aiohttp.ClientSession) -> None:
    client = MetaStudioClient(session, endpoint=BASE, project_id=None)
    with pytest.raises(UsageError, match=r"m\.yaml:3"):
        await client.execute(make_entry())


def test_url_for_keeps_endpoint_port() -> None:
    client = MetaStudioClient(
        None,  # type: ignore[arg-type]  # url_for does not touch the session
        endpoint=URL("http://127.0.0.1:8080"),
        project_id="p1",
    )
    assert str(client.url_for(make_entry())) == (
        "http://127.0.0.1:8080/v1/p1/digital-human-training-manage/user/jobs/job-1/command"
    )


# --------------------------------------------------------------------------- 200 answers


async def test_success_keeps_request_id_and_upload_details(
    client: MetaStudioClient, mocked: aioresponses
) -> None:
    urls = ["https://obs.example.com/part1?sig=x", "https://obs.example.com/part2?sig=y"]
    # The SDK's part_number is a string: a server that sends a number gets one in the line.
    parts = [{"part_number": 1, "etag": "e1"}, {"part_number": "2", "etag": "e2"}]
    mocked.post(
        command_url("job-1"),
        payload={
            "commond_result": "EXCUTE_SUCCESS",
            "attachment_upload_url": urls,
            "multipart_data": parts,
        },
        headers={"X-Request-Id": "req-123"},
    )
    outcome = await client.execute(make_entry())
    assert outcome == Outcome(
        succeeded=True,
        http_status=200,
        request_id="req-123",
        command_result="EXCUTE_SUCCESS",
        attachment_upload_url=urls,
        multipart_data=[{"part_number": "1", "etag": "e1"}, {"part_number": "2", "etag": "e2"}],
    )


async def test_excute_failed_is_a_final_failure(
    client: MetaStudioClient, mocked: aioresponses
) -> None:
    mocked.post(
        command_url("job-1"),
        payload={"commond_result": "EXCUTE_FAILED", "excute_failed_msg": "任务状态不允许该操作"},
        headers={"X-Request-Id": "r2"},
    )
    outcome = await client.execute(make_entry())
    assert not outcome.succeeded
    assert not outcome.retryable
    assert not outcome.auth_refused
    assert outcome.reason == "任务状态不允许该操作"
    assert outcome.failed_msg == "任务状态不允许该操作"
    assert outcome.command_result == "EXCUTE_FAILED"
    assert outcome.request_id == "r2"
    assert outcome.http_status == 200


def test_excute_failed_without_message_still_has_reason() -> None:
    outcome = outcome_from_response(200, b'{"commond_result":"EXCUTE_FAILED"}', None, None)
    assert not outcome.succeeded and not outcome.retryable
    assert outcome.failed_msg is None
    assert outcome.reason and "EXCUTE_FAILED" in outcome.reason


@pytest.mark.parametrize(
    "payload",
    [{}, {"commond_result": "SOMETHING_NEW"}, {"commond_result": None}, {"command_result": "x"}],
)
def test_200_with_unknown_or_missing_result_is_not_success(payload: dict[str, Any]) -> None:
    outcome = outcome_from_response(200, json.dumps(payload).encode(), "r", None)
    assert not outcome.succeeded
    assert not outcome.retryable
    assert outcome.reason and "commond_result" in outcome.reason
    if payload.get("commond_result"):
        assert payload["commond_result"] in outcome.reason


def test_200_with_empty_body_is_not_success() -> None:
    outcome = outcome_from_response(200, b"", "r", None)
    assert not outcome.succeeded and outcome.reason


# --------------------------------------------------------------------------- error statuses


@pytest.mark.parametrize(
    ("status", "code", "msg"),
    [(400, "MSS.00000003", "Invalid parameter"), (404, "MSS.00000005", "Job not found")],
)
async def test_client_errors_are_final(
    client: MetaStudioClient, mocked: aioresponses, status: int, code: str, msg: str
) -> None:
    mocked.post(command_url("job-1"), status=status, payload={"error_code": code, "error_msg": msg})
    outcome = await client.execute(make_entry())
    assert not outcome.succeeded
    assert not outcome.retryable
    assert not outcome.auth_refused
    assert not outcome.throttled
    assert outcome.http_status == status
    assert (outcome.error_code, outcome.error_msg) == (code, msg)
    assert outcome.reason and code in outcome.reason and msg in outcome.reason


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_statuses_refuse(
    client: MetaStudioClient, mocked: aioresponses, status: int
) -> None:
    mocked.post(
        command_url("job-1"),
        status=status,
        payload={"error_code": "APIGW.0301", "error_msg": "Incorrect IAM authentication"},
    )
    outcome = await client.execute(make_entry())
    assert not outcome.succeeded
    assert outcome.auth_refused
    assert not outcome.retryable
    assert outcome.error_code == "APIGW.0301"
    assert outcome.reason and "authentication refused" in outcome.reason
    assert "APIGW.0301" in outcome.reason


async def test_429_with_retry_after_seconds(client: MetaStudioClient, mocked: aioresponses) -> None:
    mocked.post(
        command_url("job-1"),
        status=429,
        payload={
            "error_code": "APIGW.0308",
            "error_msg": "The throttling threshold has been reached",
        },
        headers={"Retry-After": "7"},
    )
    outcome = await client.execute(make_entry())
    assert not outcome.succeeded
    assert outcome.retryable
    assert outcome.throttled
    assert not outcome.auth_refused
    assert outcome.retry_after == 7.0
    assert outcome.error_code == "APIGW.0308"


async def test_429_with_retry_after_http_date(
    client: MetaStudioClient, mocked: aioresponses
) -> None:
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=120)
    mocked.post(
        command_url("job-1"),
        status=429,
        payload={"error_code": "APIGW.0308", "error_msg": "throttled"},
        headers={"Retry-After": format_datetime(when, usegmt=True)},
    )
    outcome = await client.execute(make_entry())
    assert outcome.throttled and outcome.retryable
    assert outcome.retry_after is not None
    # Real clock here: allow for the seconds the test itself takes.
    assert 100 < outcome.retry_after <= 120


async def test_429_without_retry_after(client: MetaStudioClient, mocked: aioresponses) -> None:
    mocked.post(command_url("job-1"), status=429, payload={"error_code": "APIGW.0308"})
    outcome = await client.execute(make_entry())
    assert outcome.throttled and outcome.retryable and outcome.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retryable(
    client: MetaStudioClient, mocked: aioresponses, status: int
) -> None:
    mocked.post(
        command_url("job-1"),
        status=status,
        payload={"error_code": "MSS.00000004", "error_msg": "Internal Error"},
        headers={"X-Request-Id": "r5"},
    )
    outcome = await client.execute(make_entry())
    assert not outcome.succeeded
    assert outcome.retryable
    assert not outcome.throttled
    assert not outcome.auth_refused
    assert outcome.http_status == status
    assert outcome.request_id == "r5"
    assert outcome.reason == f"HTTP {status} MSS.00000004: Internal Error"


async def test_html_proxy_page_is_handled(client: MetaStudioClient, mocked: aioresponses) -> None:
    page = (
        b"<html><head><title>502 Bad Gateway</title></head>"
        b"<body><center><h1>502 Bad Gateway</h1></center><hr>nginx</body></html>"
    )
    mocked.post(command_url("job-1"), status=502, body=page, content_type="text/html")
    outcome = await client.execute(make_entry())
    assert not outcome.succeeded
    assert outcome.retryable
    assert outcome.http_status == 502
    assert outcome.reason is not None
    assert "not JSON" in outcome.reason
    assert "text/html" in outcome.reason
    assert "502 Bad Gateway" in outcome.reason
    assert "<" not in outcome.reason  # tags stripped


@pytest.mark.parametrize(
    ("status", "retryable", "auth", "throttled"),
    [
        (200, False, False, False),
        (400, False, False, False),
        (401, False, True, False),
        (429, True, False, True),
        (503, True, False, False),
    ],
)
def test_non_json_bodies_keep_the_status_mapping(
    status: int, retryable: bool, auth: bool, throttled: bool
) -> None:
    outcome = outcome_from_response(status, b"<html>oops</html>", None, "3", "text/html")
    assert not outcome.succeeded
    assert (outcome.retryable, outcome.auth_refused, outcome.throttled) == (
        retryable,
        auth,
        throttled,
    )
    assert outcome.reason and "not JSON" in outcome.reason and "oops" in outcome.reason


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00garbage", b"[1, 2]", b'"just a string"', b"null"])
def test_bodies_that_are_not_json_objects(raw: bytes) -> None:
    outcome = outcome_from_response(500, raw, None, None, "application/json")
    assert not outcome.succeeded and outcome.retryable
    assert outcome.reason and "not JSON" in outcome.reason


def test_long_non_json_body_is_truncated() -> None:
    outcome = outcome_from_response(502, b"x" * 10_000, None, None, "text/plain")
    assert outcome.reason is not None and len(outcome.reason) < 300


def test_unknown_status_is_final_failure() -> None:
    outcome = outcome_from_response(409, b'{"error_code":"E","error_msg":"conflict"}', None, None)
    assert not outcome.succeeded and not outcome.retryable and not outcome.auth_refused
    assert outcome.reason == "HTTP 409 E: conflict"


# --------------------------------------------------------------------------- transport failures


@pytest.mark.parametrize(
    "error",
    [
        aiohttp.ClientConnectionError("Cannot connect to host metastudio:443"),
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
    ],
)
async def test_connection_errors_are_retryable(
    client: MetaStudioClient, mocked: aioresponses, error: Exception
) -> None:
    mocked.post(command_url("job-1"), exception=error)
    outcome = await client.execute(make_entry())
    assert not outcome.succeeded
    assert outcome.retryable
    assert not outcome.auth_refused
    assert outcome.http_status is None
    assert outcome.reason and outcome.reason.startswith("connection error: ")
    assert type(error).__name__ in outcome.reason


# asyncio.TimeoutError is TimeoutError on 3.11+; aiohttp's own timeout subclasses it.
@pytest.mark.parametrize("error", [TimeoutError(), aiohttp.ServerTimeoutError("read timeout")])
async def test_timeouts_are_retryable(
    client: MetaStudioClient, mocked: aioresponses, error: Exception
) -> None:
    mocked.post(command_url("job-1"), exception=error)
    outcome = await client.execute(make_entry())
    assert not outcome.succeeded
    assert outcome.retryable
    assert outcome.reason == "timed out after 5s waiting for the API"


async def test_client_timeout_is_applied_per_request(
    client: MetaStudioClient, mocked: aioresponses
) -> None:
    mocked.post(command_url("job-1"), payload={"commond_result": "EXCUTE_SUCCESS"})
    await client.execute(make_entry())
    timeout = sent(mocked, command_url("job-1")).get("timeout")
    assert isinstance(timeout, aiohttp.ClientTimeout) and timeout.total == 5


# --------------------------------------------------------------------------- endpoints


@pytest.mark.parametrize("region", ["cn-north-4", "cn-east-3"])
def test_region_endpoints(region: str) -> None:
    assert endpoint_for(region=region, endpoint=None) == URL(
        f"https://metastudio.{region}.myhuaweicloud.com"
    )


@pytest.mark.parametrize("region", ["cn-south-1", "", None, "CN-NORTH-4"])
def test_unknown_or_missing_region(region: str | None) -> None:
    with pytest.raises(UsageError):
        endpoint_for(region=region, endpoint=None)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.5.6.7:9000/", "http://127.5.6.7:9000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://metastudio.example.com", "https://metastudio.example.com"),
        ("https://10.0.0.1:8443", "https://10.0.0.1:8443"),
    ],
)
def test_endpoint_accepted(given: str, expected: str) -> None:
    # An explicit endpoint wins over the region.
    assert str(endpoint_for(region="cn-north-4", endpoint=given)) == expected


@pytest.mark.parametrize(
    "given",
    [
        "http://10.0.0.1",
        "http://example.com",
        "http://127.0.0.1.example.com",
        "http://[::2]:8080",
        "https://metastudio.example.com/v1",
        "http://127.0.0.1:8080/prefix",
        "https://metastudio.example.com/?x=1",
        "ftp://127.0.0.1",
        "metastudio.example.com",
    ],
)
def test_endpoint_refused(given: str) -> None:
    with pytest.raises(UsageError):
        endpoint_for(region="cn-north-4", endpoint=given)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("LOCALHOST", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


# --------------------------------------------------------------------------- Retry-After


NOW = datetime(2026, 11, 24, 13, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("0", 0.0),
        ("3", 3.0),
        (" 12 ", 12.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("Tue, 24 Nov 2026 13:00:30 GMT", 30.0),
        ("Tue, 24 Nov 2026 12:59:00 GMT", 0.0),  # in the past: go now
        ("Tue, 24 Nov 2026 21:00:30 +0800", 30.0),  # another zone, same instant
        ("Tue, 24 Nov 2026 13:00:30 -0000", 30.0),  # "-0000" parses as naive: taken as UTC
        ("Tue, 32 Nov 2026 13:00:30 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected
