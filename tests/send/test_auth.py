"""batcher.auth: our SDK-HMAC-SHA256 signer must agree byte-for-byte with the official SDK's."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from yarl import URL

from batcher.send.credentials import AkSkCredentials, TokenCredentials, credentials_from_env
from batcher.send.signing import (
    AkSkSigner,
    TokenAuth,
    authorization_header,
    signer_for,
    verify_request,
)

AK = "HPUAEXAMPLEAK0000001"
SK = "Sk-9f8e7d6c5b4a3928171605f4e3d2c1b0a9988776"
PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
HOST = "metastudio.cn-north-4.myhuaweicloud.com"
SDK_DATE = "20261124T130000Z"
SIGNED_AT = datetime(2026, 11, 24, 13, 0, 0, tzinfo=UTC)


def job_path(job_id: str, project_id: str = PROJECT) -> str:
    return f"/v1/{project_id}/digital-human-training-manage/user/jobs/{job_id}/command"


def chinese_body(**extra: Any) -> bytes:
    body = {
        "command": "CONFIRM_REJECT",
        "comment_data": {
            "comment_title": "驳回原因",
            "comment_message": "视频中人物侧脸过多，请重新录制。",
            "attachment_name": ["说明.pdf"],
        },
        **extra,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def base_headers(host: str = HOST, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json;charset=UTF-8",
        "X-Project-Id": PROJECT,
        "X-Sdk-Date": SDK_DATE,
        "Host": host,
        **extra,
    }


def official_authorization(
    *,
    ak: str,
    sk: str,
    host: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    query: list[tuple[str, str]] | None = None,
    method: str = "POST",
) -> str:
    """Sign with huaweicloudsdkcore's own Signer over exactly these headers."""
    request = SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        header_params=dict(headers),
        body=body,
        query_params=list(query or []),
    )
    # BasicCredentials.sign_request would add X-Project-Id; our headers already hold it
    # (same value), so both sides sign the same header set either way.
    creds = BasicCredentials(ak, sk, headers.get("X-Project-Id"))
    signed = creds.sign_request(request)
    return signed.header_params["Authorization"]


def ours(
    *,
    ak: str = AK,
    sk: str = SK,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    query: list[tuple[str, str]] | None = None,
    method: str = "POST",
) -> str:
    return authorization_header(
        ak=ak, sk=sk, method=method, path=path, query=query or [], headers=headers, body=body
    )


# --------------------------------------------------------------------------- vs the official SDK


def test_plain_body_matches_official_signer() -> None:
    body = b'{"command":"SUBMITVERIFYING"}'
    headers = base_headers()
    mine = ours(path=job_path("job-1"), headers=headers, body=body)
    theirs = official_authorization(
        ak=AK, sk=SK, host=HOST, path=job_path("job-1"), headers=headers, body=body
    )
    assert mine == theirs
    assert mine.startswith(
        f"SDK-HMAC-SHA256 Access={AK}, "
        "SignedHeaders=content-type;host;x-project-id;x-sdk-date, Signature="
    )


def test_chinese_body_matches_official_signer() -> None:
    body = chinese_body()
    assert "驳回原因".encode() in body  # really raw UTF-8, not \\u escapes
    headers = base_headers()
    assert ours(path=job_path("j_2"), headers=headers, body=body) == official_authorization(
        ak=AK, sk=SK, host=HOST, path=job_path("j_2"), headers=headers, body=body
    )


def test_empty_body_matches_official_signer() -> None:
    headers = base_headers()
    assert ours(path=job_path("j"), headers=headers, body=b"") == official_authorization(
        ak=AK, sk=SK, host=HOST, path=job_path("j"), headers=headers, body=b""
    )


def test_security_token_and_app_user_id_are_signed_like_official() -> None:
    headers = base_headers(**{"X-Security-Token": "tok/+=abc", "X-App-UserId": "user-42"})
    body = chinese_body()
    mine = ours(path=job_path("j"), headers=headers, body=body)
    assert (
        "SignedHeaders=content-type;host;x-app-userid;x-project-id;x-sdk-date;"
        "x-security-token," in mine
    )
    request = SdkRequest(
        method="POST",
        schema="https",
        host=HOST,
        resource_path=job_path("j"),
        header_params={k: v for k, v in headers.items() if k != "X-Security-Token"},
        body=body,
        query_params=[],
    )
    # The official credentials add X-Security-Token themselves, as for temporary AK/SK.
    creds = BasicCredentials(AK, SK, PROJECT).with_security_token("tok/+=abc")
    assert mine == creds.sign_request(request).header_params["Authorization"]


def test_host_with_port_matches_official_signer() -> None:
    host = "127.0.0.1:8443"
    headers = base_headers(host=host)
    body = chinese_body()
    assert ours(path=job_path("j"), headers=headers, body=body) == official_authorization(
        ak=AK, sk=SK, host=host, path=job_path("j"), headers=headers, body=body
    )


def test_query_parameters_sorted_and_encoded_like_official() -> None:
    query = [("b", "2 3"), ("a", "x/y"), ("a", "中"), ("c~", "~!*")]
    headers = base_headers()
    body = b"{}"
    mine = ours(path=job_path("j"), headers=headers, body=body, query=query)
    assert mine == official_authorization(
        ak=AK, sk=SK, host=HOST, path=job_path("j"), headers=headers, body=body, query=query
    )
    # And order of the input must not matter.
    assert mine == ours(path=job_path("j"), headers=headers, body=body, query=query[::-1])


def test_header_values_are_trimmed_like_official() -> None:
    headers = base_headers(**{"X-App-UserId": "  padded-user \t"})
    body = b"{}"
    mine = ours(path=job_path("j"), headers=headers, body=body)
    assert mine == official_authorization(
        ak=AK, sk=SK, host=HOST, path=job_path("j"), headers=headers, body=body
    )
    assert mine == ours(
        path=job_path("j"), headers={**headers, "X-App-UserId": "padded-user"}, body=body
    )


def test_header_names_are_case_insensitive() -> None:
    headers = base_headers()
    lower = {k.lower(): v for k, v in headers.items()}
    body = chinese_body()
    assert ours(path=job_path("j"), headers=lower, body=body) == ours(
        path=job_path("j"), headers=headers, body=body
    )


def test_unsignable_headers_are_not_signed() -> None:
    # User-Agent and friends may be rewritten by proxies: they must not enter the signature.
    headers = base_headers()
    body = b"{}"
    with_extra = {**headers, "User-Agent": "batcher/0.1.0", "Accept-Encoding": "gzip"}
    assert ours(path=job_path("j"), headers=with_extra, body=body) == ours(
        path=job_path("j"), headers=headers, body=body
    )


@settings(max_examples=150, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=512),
        st.text(max_size=200).map(
            lambda t: json.dumps(
                {"command": "X", "operation_reason": t}, ensure_ascii=False
            ).encode()
        ),
    ),
    job_id=st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
    sk=st.text(min_size=1, max_size=80),
    app_user_id=st.none() | st.from_regex(r"\A[\x21-\x7e]{1,32}\Z"),
    query=st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)), max_size=4),
)
def test_property_matches_official_signer(
    body: bytes, job_id: str, sk: str, app_user_id: str | None, query: list[tuple[str, str]]
) -> None:
    headers = base_headers()
    if app_user_id is not None:
        headers["X-App-UserId"] = app_user_id
    path = job_path(job_id)
    assert ours(sk=sk, path=path, headers=headers, body=body, query=query) == (
        official_authorization(
            ak=AK, sk=sk, host=HOST, path=path, headers=headers, body=body, query=query
        )
    )


# --------------------------------------------------------------------------- verify_request


def _signed(body: bytes, *, sk: str = SK) -> CIMultiDict[str]:
    headers = CIMultiDict(base_headers())
    headers["Authorization"] = ours(sk=sk, path=job_path("j"), headers=headers, body=body)
    return headers


def _verify(
    headers: Mapping[str, str], body: bytes, *, sk: str = SK, now: datetime = SIGNED_AT
) -> str | None:
    return verify_request(
        method="POST",
        path=job_path("j"),
        query=[],
        headers=headers,
        body=body,
        secret_for=lambda ak: sk if ak == AK else None,
        now=now,
    )


def test_verify_request_accepts_and_rejects() -> None:
    body = chinese_body()
    headers = _signed(body)
    assert _verify(headers, body) is None
    reasons = {
        "wrong sk": _verify(headers, body, sk="another-secret"),
        "tampered body": _verify(headers, body.replace("驳回".encode(), "通过".encode())),
        "skewed": _verify(headers, body, now=SIGNED_AT + timedelta(minutes=16)),
        "skewed back": _verify(headers, body, now=SIGNED_AT - timedelta(minutes=16)),
        "no auth": _verify(
            CIMultiDict((k, v) for k, v in headers.items() if k != "Authorization"), body
        ),
    }
    for name, reason in reasons.items():
        assert reason, name
        assert SK not in reason, name
    assert "signature does not match" in reasons["wrong sk"]
    assert "signature does not match" in reasons["tampered body"]
    assert "X-Sdk-Date" in reasons["skewed"] and "960s" in reasons["skewed"]
    assert "Authorization" in reasons["no auth"]
    # 14 minutes off is still within the limit.
    assert _verify(headers, body, now=SIGNED_AT + timedelta(minutes=14)) is None


def test_verify_request_rejects_unknown_ak_and_dropped_signed_header() -> None:
    body = b"{}"
    headers = _signed(body)
    unknown = verify_request(
        method="POST",
        path=job_path("j"),
        query=[],
        headers=headers,
        body=body,
        secret_for=lambda ak: None,
        now=SIGNED_AT,
    )
    assert unknown is not None and "access key" in unknown
    dropped = CIMultiDict((k, v) for k, v in headers.items() if k != "X-Project-Id")
    reason = _verify(dropped, body)
    assert reason is not None and "x-project-id" in reason


def test_verify_request_rejects_changed_signed_header_value() -> None:
    body = b"{}"
    headers = _signed(body)
    headers["X-Project-Id"] = "someone-else"
    assert _verify(headers, body) is not None


# --------------------------------------------------------------------------- middleware end to end


@dataclass
class Recorded:
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[URL, Recorded]]:
    """A real HTTP server on loopback that records every request exactly as received."""
    recorded = Recorded()

    async def handle(request: web.Request) -> web.Response:
        recorded.requests.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "path": request.rel_url.raw_path,
                "query": list(request.rel_url.query.items()),
                "headers": CIMultiDict(request.headers),
                "body": await request.read(),
            }
        )
        return web.json_response({"commond_result": "EXCUTE_SUCCESS"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield URL(f"http://127.0.0.1:{port}"), recorded
    finally:
        await runner.cleanup()


def _signed_headers_of(authorization: str) -> list[str]:
    part = authorization.split("SignedHeaders=", 1)[1].split(",", 1)[0]
    return part.split(";")


def _official_from_received(received: dict[str, Any], sk: str) -> str:
    """Re-sign what the server got with the official signer, over the same SignedHeaders."""
    names = _signed_headers_of(received["headers"]["Authorization"])
    headers = {name: received["headers"][name] for name in names}
    project = headers.get("x-project-id")
    request = SdkRequest(
        method=received["method"],
        schema="http",
        host=received["headers"]["Host"],
        resource_path=received["path"],
        header_params=headers,
        body=received["body"],
        query_params=received["query"],
    )
    # No project id and no token on the credentials: the header set must be exactly `names`.
    signed = Signer(BasicCredentials(AK, sk, None)).sign(request)
    assert project is None or signed.header_params["x-project-id"] == project
    return signed.header_params["Authorization"]


async def _send(
    base: URL,
    creds: AkSkCredentials,
    *,
    body: bytes,
    query: dict[str, str] | None = None,
    app_user_id: str | None = None,
) -> None:
    headers = {"Content-Type": "application/json;charset=UTF-8", "X-Project-Id": PROJECT}
    if app_user_id:
        headers["X-App-UserId"] = app_user_id
    async with (
        aiohttp.ClientSession(middlewares=(AkSkSigner(creds),)) as session,
        session.post(
            base.with_path(job_path("job-7")), data=body, headers=headers, params=query
        ) as response,
    ):
        assert response.status == 200


async def test_middleware_signature_verifies_as_received(
    recorder: tuple[URL, Recorded],
) -> None:
    base, recorded = recorder
    body = chinese_body()
    await _send(base, AkSkCredentials(ak=AK, sk=SK), body=body, app_user_id="u-1")
    (received,) = recorded.requests
    assert received["body"] == body
    headers = received["headers"]
    names = _signed_headers_of(headers["Authorization"])
    assert names == ["content-type", "host", "x-app-userid", "x-project-id", "x-sdk-date"]
    assert headers["Authorization"] == _official_from_received(received, SK)

    def check(h: Mapping[str, str], b: bytes, *, sk: str = SK, now: datetime | None = None):
        return verify_request(
            method=received["method"],
            path=received["path"],
            query=received["query"],
            headers=h,
            body=b,
            secret_for=lambda ak: sk if ak == AK else None,
            now=now,
        )

    signed_at = datetime.strptime(headers["X-Sdk-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert check(headers, body, now=signed_at) is None
    assert check(headers, body) is None  # the real clock: signed just now
    refusals = [
        check(headers, body, sk="not-the-sk", now=signed_at),
        check(headers, body + b" ", now=signed_at),
        check(headers, body, now=signed_at + timedelta(minutes=16)),
        check(CIMultiDict((k, v) for k, v in headers.items() if k != "Authorization"), body),
    ]
    for reason in refusals:
        assert isinstance(reason, str) and reason
        assert SK not in reason


async def test_middleware_with_query_and_security_token(
    recorder: tuple[URL, Recorded],
) -> None:
    base, recorded = recorder
    creds = AkSkCredentials(ak=AK, sk=SK, security_token="temporary-token-value")
    await _send(base, creds, body=b'{"command":"X"}', query={"z": "1 2", "a": "中文"})
    (received,) = recorded.requests
    assert received["headers"]["X-Security-Token"] == "temporary-token-value"
    assert "x-security-token" in _signed_headers_of(received["headers"]["Authorization"])
    assert received["headers"]["Authorization"] == _official_from_received(received, SK)


async def test_middleware_empty_body(recorder: tuple[URL, Recorded]) -> None:
    base, recorded = recorder
    await _send(base, AkSkCredentials(ak=AK, sk=SK), body=b"")
    (received,) = recorded.requests
    assert received["body"] == b""
    assert received["headers"]["Authorization"] == _official_from_received(received, SK)


async def test_secret_never_sent_in_any_header(recorder: tuple[URL, Recorded]) -> None:
    base, recorded = recorder
    await _send(base, AkSkCredentials(ak=AK, sk=SK), body=chinese_body())
    (received,) = recorded.requests
    for name, value in received["headers"].items():
        assert SK not in value, name
        assert SK not in name
    assert SK.encode() not in received["body"]
    assert SK not in received["raw_path"]


async def test_token_auth_sets_x_auth_token(recorder: tuple[URL, Recorded]) -> None:
    base, recorded = recorder
    async with (
        aiohttp.ClientSession(middlewares=(TokenAuth(TokenCredentials(token="iam-tok")),)) as s,
        s.post(base.with_path(job_path("j")), data=b"{}") as response,
    ):
        assert response.status == 200
    (received,) = recorded.requests
    assert received["headers"]["X-Auth-Token"] == "iam-tok"
    assert "Authorization" not in received["headers"]
    assert "X-Sdk-Date" not in received["headers"]


def test_signer_for_picks_by_credential_kind() -> None:
    assert isinstance(signer_for(AkSkCredentials(ak=AK, sk=SK)), AkSkSigner)
    assert isinstance(signer_for(TokenCredentials(token="t")), TokenAuth)


# --------------------------------------------------------------------------- environment


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        (
            {
                "HUAWEICLOUD_SDK_AK": "A1",
                "HUAWEICLOUD_SDK_SK": "S1",
                "CLOUD_SDK_AK": "A2",
                "CLOUD_SDK_SK": "S2",
            },
            AkSkCredentials(ak="A1", sk="S1"),
        ),
        ({"CLOUD_SDK_AK": "A2", "CLOUD_SDK_SK": "S2"}, AkSkCredentials(ak="A2", sk="S2")),
        (
            {
                "HUAWEICLOUD_SDK_AK": "A1",
                "HUAWEICLOUD_SDK_SK": "S1",
                "METASTUDIO_AUTH_TOKEN": "tok",
            },
            AkSkCredentials(ak="A1", sk="S1"),
        ),
        ({"METASTUDIO_AUTH_TOKEN": " tok "}, TokenCredentials(token="tok")),
        (
            {
                "HUAWEICLOUD_SDK_AK": "A1",
                "HUAWEICLOUD_SDK_SK": "S1",
                "HUAWEICLOUD_SDK_SECURITY_TOKEN": "st",
            },
            AkSkCredentials(ak="A1", sk="S1", security_token="st"),
        ),
        # Blank values count as unset.
        (
            {
                "HUAWEICLOUD_SDK_AK": "",
                "HUAWEICLOUD_SDK_SK": "",
                "CLOUD_SDK_AK": "A2",
                "CLOUD_SDK_SK": "S2",
            },
            AkSkCredentials(ak="A2", sk="S2"),
        ),
        (
            {
                "HUAWEICLOUD_SDK_AK": "  ",
                "HUAWEICLOUD_SDK_SK": " \t",
                "CLOUD_SDK_AK": "A2",
                "CLOUD_SDK_SK": "S2",
            },
            AkSkCredentials(ak="A2", sk="S2"),
        ),
        (
            {
                "HUAWEICLOUD_SDK_AK": "A1",
                "HUAWEICLOUD_SDK_SK": "S1",
                "HUAWEICLOUD_SDK_SECURITY_TOKEN": "  ",
            },
            AkSkCredentials(ak="A1", sk="S1"),
        ),
        ({"METASTUDIO_AUTH_TOKEN": "   "}, None),
        (
            {
                "HUAWEICLOUD_SDK_AK": "  ",
                "HUAWEICLOUD_SDK_SK": "  ",
                "METASTUDIO_AUTH_TOKEN": "tok",
            },
            TokenCredentials(token="tok"),
        ),
        # An AK without an SK is not AK/SK auth.
        (
            {"HUAWEICLOUD_SDK_AK": "A1", "METASTUDIO_AUTH_TOKEN": "tok"},
            TokenCredentials(token="tok"),
        ),
    ],
)
def test_credentials_from_env(env: dict[str, str], expected: object) -> None:
    assert credentials_from_env(env) == expected


def test_credentials_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HUAWEICLOUD_SDK_AK",
        "HUAWEICLOUD_SDK_SK",
        "CLOUD_SDK_AK",
        "CLOUD_SDK_SK",
        "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("METASTUDIO_AUTH_TOKEN", "from-env")
    assert credentials_from_env() == TokenCredentials(token="from-env")


def test_reprs_never_show_secrets() -> None:
    ak_sk = AkSkCredentials(ak=AK, sk=SK, security_token="SECRET-STS-TOKEN")
    token = TokenCredentials(token="SECRET-IAM-TOKEN")
    texts = [
        repr(ak_sk),
        str(ak_sk),
        ak_sk.describe(),
        repr(token),
        str(token),
        token.describe(),
        repr(AkSkSigner(ak_sk)),
        str(AkSkSigner(ak_sk)),
        repr(TokenAuth(token)),
        str(TokenAuth(token)),
        repr([ak_sk, token]),
        f"{ak_sk!r} {token}",
    ]
    for text in texts:
        for secret in (SK, "SECRET-STS-TOKEN", "SECRET-IAM-TOKEN"):
            assert secret not in text, text
        assert AK not in text, text  # the AK is only hinted at
    assert "temporary" in ak_sk.describe()
    assert set(ak_sk.secrets()) == {SK, "SECRET-STS-TOKEN"}
    assert token.secrets() == ("SECRET-IAM-TOKEN",)


@pytest.mark.parametrize(
    "query",
    [
        {"state": "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED", "offset": "0", "limit": "100"},
        {"create_since": "2026-11-10T00:00:00+08:00", "update_until": "2026-11-24T13:00:00Z"},
        {"batch_name": "批次-3", "tag": "夜间 a&b=c", "sort_key": "create_time"},
    ],
)
async def test_list_and_show_reads_are_signed_like_official(
    recorder: tuple[URL, Recorded], query: dict[str, str]
) -> None:
    """GETs through the client itself: commas, colons, '+', Chinese and spaces in the query."""
    from batcher.send.client import MetaStudioClient, open_session

    base, recorded = recorder
    creds = AkSkCredentials(ak=AK, sk=SK)
    async with open_session(concurrency=2, timeout=5) as session:
        client = MetaStudioClient(session, endpoint=base, project_id=PROJECT, credentials=creds)
        await client.list_jobs(query)
        await client.show_job("job-7")
    listing, show = recorded.requests
    assert listing["method"] == show["method"] == "GET"
    assert dict(listing["query"]) == query  # as sent, decoded by the server
    for received in (listing, show):
        assert received["headers"]["Authorization"] == _official_from_received(received, SK)


@pytest.mark.parametrize("app_user_id", [None, "ops-07"])
@pytest.mark.parametrize("security_token", [None, "SECRET-STS-TOKEN"])
async def test_commands_through_the_client_are_signed_like_official(
    recorder: tuple[URL, Recorded], app_user_id: str | None, security_token: str | None
) -> None:
    """The client signs its POSTs itself (no middleware): the official signer agrees."""
    from batcher.entry import CommentData, Entry
    from batcher.send.client import MetaStudioClient, open_session

    base, recorded = recorder
    creds = AkSkCredentials(ak=AK, sk=SK, security_token=security_token)
    entry = Entry(
        job_id="job-7",
        command="CONFIRM_REJECT",
        source="m.csv:2",
        comment_data=CommentData(comment_title="驳回原因", comment_message="视频中人物侧脸过多"),
        app_user_id=app_user_id,
    )
    async with open_session(concurrency=2, timeout=5) as session:
        client = MetaStudioClient(session, endpoint=base, project_id=PROJECT, credentials=creds)
        await client.execute(entry)
    (received,) = recorded.requests
    assert received["headers"]["Authorization"] == _official_from_received(received, SK)
    signed = _signed_headers_of(received["headers"]["Authorization"])
    assert {"host", "x-sdk-date", "x-project-id", "content-type"} <= set(signed)
    assert ("x-security-token" in signed) == (security_token is not None)
    assert ("x-app-userid" in signed) == (app_user_id is not None)
