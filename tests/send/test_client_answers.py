"""The client against real local servers: answers too big, lost, refused by TLS, and reads.

Each case is a real aiohttp server on 127.0.0.1 (or a raw socket server), so the client's
own reading, timeouts and connection handling are what is tested.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from batcher.entry import Entry
from batcher.send.client import MAX_ANSWER_BYTES, MetaStudioClient, open_session
from batcher.send.credentials import AkSkCredentials

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ENTRY = Entry(job_id="job-1", command="SUBMITVERIFYING", source="m.csv:2")
CREDENTIALS = AkSkCredentials(ak="AKTEST0001", sk="sk-test-secret-value")


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> str:
        app = web.Application(client_max_size=1024)
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        runners.append(runner)
        scheme = "https" if ssl_context else "http"
        return f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def call(url: str, *, timeout: float = 5.0) -> Any:
    async with open_session(concurrency=2, timeout=timeout) as session:
        client = MetaStudioClient(
            session, endpoint=URL(url), project_id="p1", credentials=CREDENTIALS, timeout=timeout
        )
        return await client.execute(ENTRY)


@pytest.mark.parametrize("declared", [True, False])
async def test_an_oversized_answer_is_cut_off_and_may_have_executed(
    serve: Any, declared: bool
) -> None:
    chunk = b"x" * (1 << 20)

    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        if declared:
            response.content_length = 100 * len(chunk)
        await response.prepare(request)
        for _ in range(100):  # 100 MB, unless the client hangs up first
            await response.write(chunk)
        return response

    outcome = await call(await serve(huge))
    assert not outcome.succeeded and outcome.ambiguous
    assert f"{MAX_ANSWER_BYTES // 1024} KiB" in (outcome.reason or "")


async def test_an_oversized_error_page_may_follow_the_execution(serve: Any) -> None:
    async def big_error(_: web.Request) -> web.Response:
        return web.Response(status=503, body=b"<html>" + b"z" * (2 * MAX_ANSWER_BYTES))

    outcome = await call(await serve(big_error))
    assert outcome.ambiguous and outcome.retryable and outcome.http_status == 503


@pytest.mark.parametrize(
    ("status", "retryable", "ambiguous", "halts"),
    [
        (401, False, False, True),
        (403, False, False, True),
        (400, False, True, False),  # unread, a 400 proves no refusal: the record decides
        (404, False, True, False),
        (429, True, False, False),
        (502, True, True, False),
        (504, True, True, False),
    ],
)
async def test_an_oversized_answer_is_judged_by_its_status(
    serve: Any, status: int, retryable: bool, ambiguous: bool, halts: bool
) -> None:
    """Unread, a page too big says what its status says: 401/403 halt the run, a 429 was
    refused at the gate; anything else (a 400 whose body is unread, a gateway's 502/504)
    may have followed the command's execution."""

    async def big(_: web.Request) -> web.Response:
        return web.Response(
            status=status,
            body=b"<html>" + b"z" * (2 * MAX_ANSWER_BYTES),
            headers={"Retry-After": "3"},
        )

    outcome = await call(await serve(big))
    assert not outcome.succeeded and outcome.http_status == status
    assert (outcome.retryable, outcome.ambiguous, outcome.auth_refused) == (
        retryable, ambiguous, halts,
    )  # fmt: skip
    assert outcome.throttled is (status == 429)
    if status == 429:
        assert outcome.retry_after == 3


@pytest.mark.parametrize(
    ("status", "ambiguous"),
    [(502, True), (504, True), (500, True), (503, True), (429, False), (408, False)],
)
async def test_which_error_answers_leave_the_outcome_unknown(
    serve: Any, status: int, ambiguous: bool
) -> None:
    async def answer(_: web.Request) -> web.Response:
        return web.json_response({"error_code": "X", "error_msg": "y"}, status=status)

    outcome = await call(await serve(answer))
    assert outcome.retryable and outcome.ambiguous is ambiguous


async def test_a_connection_dropped_after_the_request_may_have_executed(serve: Any) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        await request.read()
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    outcome = await call(await serve(drop))
    assert outcome.ambiguous and outcome.retryable


async def test_a_timeout_after_sending_may_have_executed(serve: Any) -> None:
    async def slow(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(5)
        return web.json_response({"commond_result": "EXCUTE_SUCCESS"})

    outcome = await call(await serve(slow), timeout=0.3)
    assert outcome.ambiguous and outcome.retryable and "timed out" in (outcome.reason or "")


async def test_a_refused_connection_sent_nothing() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = await call(f"http://127.0.0.1:{port}")
    assert outcome.retryable and not outcome.ambiguous and not outcome.fatal


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    folder: Path = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_a_certificate_that_does_not_verify_is_fatal(
    serve: Any, self_signed: ssl.SSLContext
) -> None:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({"commond_result": "EXCUTE_SUCCESS"})

    outcome = await call(await serve(ok, ssl_context=self_signed))
    assert outcome.fatal and not outcome.retryable and not outcome.ambiguous
    assert "TLS" in (outcome.reason or "") and "certificate" in (outcome.reason or "")


async def test_list_and_show_send_signed_gets_and_return_the_json(serve: Any) -> None:
    seen: list[web.Request] = []

    async def jobs(request: web.Request) -> web.Response:
        seen.append(request)
        if request.path.endswith("/jobs"):
            return web.json_response(
                {"count": 1, "jobs": [{"job_id": "j1"}]}, headers={"X-Request-Id": "r1"}
            )
        return web.json_response(
            {"job_id": "j1", "operation_logs": []},
            headers={"Date": "Wed, 25 Nov 2026 08:00:00 GMT"},
        )

    url = await serve(jobs)
    async with open_session(concurrency=2, timeout=5) as session:
        client = MetaStudioClient(
            session,
            endpoint=URL(url),
            project_id="p1",
            credentials=CREDENTIALS,
            app_user_id="user-7",
        )
        page = await client.list_jobs(
            {
                "state": "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED",
                "batch_name": "批次-1",
                "offset": "0",
                "limit": "100",
            }
        )
        shown = await client.show_job("j1", project_id="p2")
    assert page.outcome.succeeded and page.data == {"count": 1, "jobs": [{"job_id": "j1"}]}
    assert shown.outcome.succeeded and shown.server_date == "Wed, 25 Nov 2026 08:00:00 GMT"
    listing, showing = seen
    assert (
        listing.method == "GET" and listing.path == "/v1/p1/digital-human-training-manage/user/jobs"
    )
    assert listing.query["state"] == "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED"
    assert listing.query["batch_name"] == "批次-1"
    assert listing.headers["X-App-UserId"] == "user-7"
    assert "SDK-HMAC-SHA256" in listing.headers["Authorization"]
    assert showing.path == "/v1/p2/digital-human-training-manage/user/jobs/j1"
    assert showing.headers["X-Project-Id"] == "p2"


async def test_a_read_whose_answer_is_lost_is_not_ambiguous(serve: Any) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    url = await serve(drop)
    async with open_session(concurrency=2, timeout=5) as session:
        client = MetaStudioClient(
            session, endpoint=URL(url), project_id="p1", credentials=CREDENTIALS
        )
        reply = await client.show_job("j1")
    assert reply.data is None and reply.outcome.retryable and not reply.outcome.ambiguous


async def test_half_an_emoji_in_an_answer_is_carried_as_text(serve: Any) -> None:
    """A lone surrogate is valid JSON (an emoji cut in two by the server), but no UTF-8
    writer can carry it: it becomes "?" where the answer is read."""

    async def cut(_: web.Request) -> web.Response:
        body = (
            b'{"commond_result":"EXCUTE_FAILED","excute_failed_msg":"job locked \\ud83d by admin"}'
        )
        return web.Response(body=body, content_type="application/json")

    outcome = await call(await serve(cut))
    assert outcome.failed_msg == "job locked ? by admin"
    assert outcome.reason == "job locked ? by admin"


@pytest.mark.parametrize(
    ("status", "body", "ambiguous"),
    [
        (400, b'{"error_code": "MSS.00000003", "error_msg": "Invalid parameter"}', False),
        (400, b"<html>Bad Request</html>", True),  # not the API's error: who sent it?
        (400, b"", True),
        # Not a documented refusal, whatever its body: it may come after the command ran.
        (404, b'{"error_code": "APIGW.0101", "error_msg": "The API does not exist"}', True),
        (404, b'{"error_code": "MSS.00000001", "error_msg": "no such job"}', True),
        (400, b'{"error_code": "APIGW.0201", "error_msg": "Request body too large"}', True),
        (429, b"", False),  # refused at the gate, whatever the body
        (408, b"<html>Request Timeout</html>", False),
        (500, b'{"error_code": "MSS.00000004", "error_msg": "Internal Error"}', True),
        (200, b"<html>ok</html>", True),
    ],
)
async def test_only_the_apis_own_refusals_prove_a_command_did_not_run(
    serve: Any, status: int, body: bytes, ambiguous: bool
) -> None:
    async def answer(_: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    outcome = await call(await serve(answer))
    assert not outcome.succeeded and outcome.ambiguous is ambiguous


async def test_error_info_in_a_200_reaches_the_reason(serve: Any) -> None:
    async def answer(_: web.Request) -> web.Response:
        return web.json_response(
            {"commond_result": "EXCUTE_FAILED",
             "error_info": {"error_code": "MSS.00000023", "error_msg": "job is locked"}}
        )  # fmt: skip

    outcome = await call(await serve(answer))
    assert not outcome.ambiguous and not outcome.retryable
    assert (outcome.error_code, outcome.error_msg) == ("MSS.00000023", "job is locked")
    assert outcome.reason == "MSS.00000023: job is locked"
