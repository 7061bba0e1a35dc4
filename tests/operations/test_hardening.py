"""Hostile servers and odd inputs: redirects, echoed secrets, malformed answers, paths."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import (
    PROJECT,
    TEST_SK,
    aksk_env,
    batcher,
    batcher_in_thread,
    clean_env,
    jobs_csv,
    read_report,
    run_args,
    spawn,
    wait_for_lines,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SECRET_TOKEN = "SECRETTOKEN-abcdef-123456"


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            {"path": request.path, "headers": dict(request.headers), "body": await request.read()}
        )
        return await self.handler(request)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        server.url = f"http://127.0.0.1:{port}"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_redirects_are_never_followed(tmp_path: Path, serve: Any, capsys: Any) -> None:
    async def collect(_: web.Request) -> web.Response:
        return web.json_response({"commond_result": "EXCUTE_SUCCESS"})

    thief = await serve(collect)

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(thief.url + "/steal")

    server = await serve(redirect)
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 3)),
            "--report",
            str(report),
            *run_args(server.url),
        ],
        clean_env(METASTUDIO_AUTH_TOKEN=SECRET_TOKEN),
        capsys,
    )
    assert result.code == 1
    assert thief.requests == []  # the token went nowhere else
    lines = read_report(report)
    assert len(lines) == 3 and all(line["status"] == "failed" for line in lines)
    assert all(
        "not followed" in line["reason"]
        and line["http_status"] == 307
        and line["retryable"] is False
        for line in lines
    )


@pytest.mark.parametrize("log_format", ["console", "json"])
async def test_a_secret_echoed_by_the_server_is_masked_everywhere(
    tmp_path: Path, serve: Any, capsys: Any, log_format: str
) -> None:
    async def echo(request: web.Request) -> web.Response:
        token = request.headers.get("X-Auth-Token", "")
        message = f"bad token {token} in {dict(request.headers)}"
        return web.json_response(
            {"error_code": "APIGW.0301", "error_msg": message},
            status=401,
            headers={"X-Request-Id": token},
        )

    server = await serve(echo)
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 5)),
            "--report",
            str(report),
            "--log-level",
            "debug",
            "--log-format",
            log_format,
            *run_args(server.url),
        ],
        clean_env(METASTUDIO_AUTH_TOKEN=SECRET_TOKEN),
        capsys,
    )
    assert result.code == 3
    assert server.requests  # it really echoed the token at us
    everything = result.output + report.read_text()
    assert SECRET_TOKEN not in everything
    assert "***" in report.read_text()


@pytest.mark.parametrize(
    "payload",
    [
        {"commond_result": "EXCUTE_SUCCESS", "multipart_data": [1, 2]},
        {"commond_result": "EXCUTE_SUCCESS", "attachment_upload_url": [3, None]},
        {"commond_result": "EXCUTE_SUCCESS", "multipart_data": "not a list"},
    ],
)
async def test_oddly_typed_answers_still_give_every_entry_its_line(
    tmp_path: Path, serve: Any, capsys: Any, payload: dict[str, Any]
) -> None:
    async def odd(_: web.Request) -> web.Response:
        return web.json_response(payload)

    server = await serve(odd)
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 20)),
            "--report",
            str(report),
            "--rate",
            "0",
            *run_args(server.url),
        ],
        aksk_env(),
        capsys,
    )
    assert result.code == 0, result.output
    lines = read_report(report)
    assert len(lines) == 20 and all(line["status"] == "succeeded" for line in lines)


async def test_a_symlink_to_a_held_report_is_locked_too(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator(latency_ms=100)
    report = tmp_path / "r.jsonl"
    alias = tmp_path / "alias.jsonl"
    report.touch()
    alias.symlink_to(report)
    first = await spawn(
        [
            "run",
            str(jobs_csv(tmp_path / "a.csv", 60)),
            "--report",
            str(report),
            "--resume",
            "--concurrency",
            "2",
            "--rate",
            "0",
            *run_args(sim.url),
        ],
        aksk_env(),
    )
    await wait_for_lines(report, 1)
    second = await batcher(
        [
            "run",
            str(jobs_csv(tmp_path / "b.csv", 3, prefix="b")),
            "--report",
            str(alias),
            "--resume",
            *run_args(sim.url),
        ],
        aksk_env(),
    )
    first.terminate()
    await first.communicate()
    assert second.code == 4, second.output
    assert not any(line["job_id"].startswith("b") for line in read_report(report))


async def test_a_control_character_in_a_credential_is_a_usage_error(
    tmp_path: Path, capsys: Any
) -> None:
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 1)),
            "--report",
            str(tmp_path / "r.jsonl"),
            "--region",
            "cn-north-4",
            "--project-id",
            PROJECT,
        ],
        clean_env(METASTUDIO_AUTH_TOKEN="abc\ninjected: yes"),
        capsys,
    )
    assert result.code == 2
    assert "METASTUDIO_AUTH_TOKEN" in result.stderr and "injected" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--endpoint", "http://127.0.0.1:99999"], "not a valid URL"),
        (["--endpoint", "https://user:pw@metastudio.cn-north-4.myhuaweicloud.com"], "password"),
        (["--endpoint", "http://127.0.0.1.nip.io"], "loopback"),
        (["--timeout", "inf"], "--timeout must be a finite number"),
        (["--rate", "nan"], "--rate"),
    ],
)
async def test_more_usage_errors(
    tmp_path: Path, args: list[str], message: str, capsys: Any
) -> None:
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 1)),
            "--report",
            str(tmp_path / "r.jsonl"),
            "--project-id",
            PROJECT,
            "--log-format",
            "console",
            *args,
        ],
        aksk_env(),
        capsys,
    )
    assert result.code == 2 and message in result.stderr, result.output
    assert "Traceback" not in result.output and "pw@" not in result.output


async def test_with_json_logs_manifest_problems_are_json_lines(tmp_path: Path, capsys: Any) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("job_id,command\nbad/id,SUBMITVERIFYING\nok,SUBMITVERYFYING\n")
    result = await batcher_in_thread(
        [
            "run",
            str(manifest),
            "--simulate",
            "--report",
            str(tmp_path / "r.jsonl"),
            "--log-format",
            "json",
        ],
        clean_env(),
        capsys,
    )
    assert result.code == 2
    events = [json.loads(line) for line in result.stderr.splitlines()]
    problems = [e for e in events if e["event"] == "manifest_problem"]
    assert [(p["line"], p["field"]) for p in problems] == [(2, "job_id"), (3, "command")]
    assert "did you mean 'SUBMITVERIFYING'" in problems[1]["message"]
    assert events[-1]["event"] == "manifest_invalid" and events[-1]["sent"] == 0
    assert TEST_SK not in result.output


QUOTED_TOKEN = 'tok"en\\with-quote-and-backslash-0001'


@pytest.mark.parametrize("log_format", ["console", "json"])
async def test_a_secret_with_json_special_characters_is_masked_in_every_spelling(
    tmp_path: Path, serve: Any, capsys: Any, log_format: str
) -> None:
    # The server echoes the token three ways: decoded inside a JSON string, still escaped
    # inside a JSON string (a double-encoding proxy), and raw in an HTML page.
    escaped = json.dumps(QUOTED_TOKEN)[1:-1]
    seen = {"n": 0}

    async def echo(request: web.Request) -> web.Response:
        seen["n"] += 1
        token = request.headers.get("X-Auth-Token", "")
        if seen["n"] % 3 == 1:
            body = json.dumps({"error_code": "MSS.00000003", "error_msg": f"bad {token} x"})
        elif seen["n"] % 3 == 2:
            twice = json.dumps(json.dumps(token)[1:-1])[1:-1]
            body = '{"error_code": "MSS.00000003", "error_msg": "bad ' + twice + ' x"}'
        else:
            return web.Response(
                text=f"<html><title>proxy saw {token}</title></html>",
                status=400,
                content_type="text/html",
            )
        return web.Response(text=body, status=400, content_type="application/json")

    server = await serve(echo)
    report = tmp_path / "r.jsonl"
    result = await batcher_in_thread(
        [
            "run",
            str(jobs_csv(tmp_path / "m.csv", 6)),
            "--report",
            str(report),
            "--log-level",
            "debug",
            "--log-format",
            log_format,
            *run_args(server.url),
        ],
        clean_env(METASTUDIO_AUTH_TOKEN=QUOTED_TOKEN),
        capsys,
    )
    assert result.code == 1, result.output
    # The six commands, and a Show for each whose 400 page was not the API's own error
    # (that proves no refusal: the job's record is read before anything else is decided).
    assert seen["n"] >= 6
    everything = result.output + report.read_text()
    spellings = {QUOTED_TOKEN, escaped, json.dumps(escaped)[1:-1], repr(QUOTED_TOKEN)[1:-1]}
    for spelling in spellings:
        assert spelling not in everything, spelling
    # Nor a recognisable piece of it (a snippet cut mid-secret).
    assert "with-quote-and-backslash" not in everything
    assert report.read_text().count("***") >= 6


STS_TOKEN = "MIIEsts+token/with=signs&<lt>-0001"


async def test_a_secret_echoed_url_encoded_as_html_or_in_base64_is_masked(
    tmp_path: Path, serve: Any, capsys: Any
) -> None:
    """Tokens carry + / = (STS/IAM tokens do); proxies and gateways echo them
    percent-encoded (either case), as HTML text, or inside a base64 header value."""
    import base64
    import html
    from urllib.parse import quote, quote_plus

    def lower_hex(text: str) -> str:
        return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)

    echoes = [
        lambda t: quote(t, safe=""),
        lambda t: quote(t),  # Python's default: "/" left as it is
        lambda t: quote(t, safe="!~*'();,/?:@&=+$#"),  # JavaScript's encodeURI
        lambda t: lower_hex(quote_plus(t)),
        lambda t: html.escape(t),
        lambda t: base64.b64encode(f"user:{t}".encode()).decode(),
        lambda t: base64.b64encode(f"u:{t}".encode()).decode(),
        lambda t: base64.b64encode(f"x{t}".encode()).decode(),
    ]
    seen = {"n": 0}

    async def echo(request: web.Request) -> web.Response:
        token = request.headers.get("X-Auth-Token", "")
        spelled = echoes[seen["n"] % len(echoes)](token)
        seen["n"] += 1
        body = json.dumps({"error_code": "MSS.00000003", "error_msg": f"bad {spelled} x"})
        return web.Response(text=body, status=400, content_type="application/json")

    server = await serve(echo)
    report = tmp_path / "r.jsonl"
    env = clean_env(METASTUDIO_AUTH_TOKEN=STS_TOKEN)
    result = await batcher_in_thread(
        ["run", str(jobs_csv(tmp_path / "m.csv", len(echoes))), "--report", str(report),
         "--log-level", "debug", "--log-format", "json", *run_args(server.url)],
        env, capsys,
    )  # fmt: skip
    assert result.code == 1, result.output
    listed = await batcher_in_thread(["report", str(report), "--status", "failed"], env, capsys)
    page = tmp_path / "r.html"
    await batcher_in_thread(["report", str(report), "--html", str(page)], env, capsys)
    everything = result.output + report.read_text() + listed.output + page.read_text()
    for i, spell in enumerate(echoes):
        assert spell(STS_TOKEN)[8:-8] not in everything, i
    assert "with%3Dsigns" not in everything and "with%3dsigns" not in everything
    assert report.read_text().count("***") >= len(echoes)
