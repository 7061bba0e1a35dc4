"""One API call, one :class:`~batcher.outcome.Outcome`.

The client builds the request and maps the answer; authentication is an aiohttp
middleware (see :mod:`batcher.auth`), so no secret passes through here.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from . import __version__
from .auth import Credentials, middleware_for
from .entry import Entry
from .errors import UsageError
from .outcome import Outcome

REGIONS = ("cn-north-4", "cn-east-3")
_PATH = "/v1/{project_id}/digital-human-training-manage/user/jobs/{job_id}/command"
_USER_AGENT = f"batcher/{__version__}"

#: Answers that say "not now" rather than "no": a later attempt may succeed.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})


def endpoint_for(*, region: str | None, endpoint: str | None) -> URL:
    """The base URL to call: ``--endpoint`` if given, else the region's public endpoint.

    Plain ``http://`` is accepted only for loopback hosts: anything else would send
    credentials and signed requests in clear text.

    >>> str(endpoint_for(region="cn-north-4", endpoint=None))
    'https://metastudio.cn-north-4.myhuaweicloud.com'
    """
    if endpoint:
        try:
            url = URL(endpoint)
            port = url.port  # yarl checks the port's range lazily
        except ValueError as error:
            raise UsageError(f"--endpoint {endpoint!r} is not a valid URL: {error}") from None
        if url.scheme not in ("http", "https") or not url.host or port is None:
            raise UsageError(f"--endpoint {endpoint!r} is not an http(s) URL")
        if url.user is not None or url.password is not None:
            raise UsageError(
                "--endpoint must not carry a user name or password (credentials come from "
                "the environment only)"
            )
        if url.scheme == "http" and not is_loopback(url.host):
            raise UsageError(
                f"--endpoint {endpoint!r}: plain http is allowed only for loopback hosts "
                "(127.0.0.1, ::1, localhost); use https"
            )
        if url.path not in ("", "/") or url.query_string:
            raise UsageError(f"--endpoint {endpoint!r} must be a base URL without a path")
        return url.with_path("")
    if not region:
        raise UsageError("no region: pass --region or set HUAWEICLOUD_SDK_REGION (or --endpoint)")
    if region not in REGIONS:
        raise UsageError(f"unknown region {region!r}: MetaStudio is in {', '.join(REGIONS)}")
    return URL(f"https://metastudio.{region}.myhuaweicloud.com")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_session(
    credentials: Credentials, *, concurrency: int, timeout: float
) -> aiohttp.ClientSession:
    """A session with the auth middleware, one connection per worker, TLS verified."""
    connector = aiohttp.TCPConnector(
        limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300, ssl=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        middlewares=(middleware_for(credentials),),
        # The API sets no cookies we need; a dummy jar skips cookie filtering on every call.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": _USER_AGENT},
        raise_for_status=False,
    )


class CommandClient:
    """Executes one entry's command and maps the answer to an :class:`Outcome`.

    >>> client = CommandClient(session, endpoint=URL("https://h"), project_id="p")  # doctest: +SKIP
    >>> outcome = await client.execute(entry)  # doctest: +SKIP
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        endpoint: URL,
        project_id: str | None,
        app_user_id: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._endpoint = endpoint
        self._project_id = project_id
        self._app_user_id = app_user_id
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)

    def url_for(self, entry: Entry) -> URL:
        project_id = entry.project_id or self._project_id
        if not project_id:
            raise UsageError(f"{entry.source}: no project id (set --project-id)")
        return self._endpoint.with_path(
            _PATH.format(project_id=project_id, job_id=entry.job_id), encoded=True
        )

    async def execute(self, entry: Entry) -> Outcome:
        url = self.url_for(entry)
        headers = {
            "Content-Type": "application/json;charset=UTF-8",
            "X-Project-Id": entry.project_id or self._project_id or "",
        }
        app_user_id = entry.app_user_id or self._app_user_id
        if app_user_id:
            headers["X-App-UserId"] = app_user_id
        body = json.dumps(entry.request_body(), ensure_ascii=False, separators=(",", ":"))
        try:
            # The per-request timeout makes the reason below true whatever the session's is.
            async with self._session.post(
                url, data=body.encode(), headers=headers,
                timeout=self._client_timeout,
                allow_redirects=False,  # never carry credentials to another host
            ) as response:
                raw = await response.read()
                if 300 <= response.status < 400:
                    return _redirect_refused(response.status, response.headers.get("Location"),
                                             response.headers.get("X-Request-Id"))
                return outcome_from_response(
                    response.status, raw, response.headers.get("X-Request-Id"),
                    response.headers.get("Retry-After"), response.content_type,
                )
        except TimeoutError:
            return Outcome(
                succeeded=False, retryable=True,
                reason=f"timed out after {self._timeout:g}s waiting for the API",
            )
        except aiohttp.ClientError as error:
            return Outcome(
                succeeded=False, retryable=True,
                reason=f"connection error: {type(error).__name__}{_brief(error)}",
            )


def _redirect_refused(status: int, location: str | None, request_id: str | None) -> Outcome:
    # The API never redirects; following one could hand the token or a signed request to
    # another host, over plain http even. Not retryable: it will redirect again.
    where = f" to {URL(location).with_query(None)}" if location else ""
    return Outcome(
        succeeded=False, http_status=status, request_id=request_id,
        reason=f"HTTP {status} redirect{where} not followed: batcher never follows redirects "
        "(they could carry credentials elsewhere); check --endpoint",
    )


def _brief(error: BaseException) -> str:
    # Connection errors name host and port, never headers; keep them short anyway.
    text = str(error).strip()
    return f" ({text[:160]})" if text else ""


def outcome_from_response(
    status: int,
    raw: bytes,
    request_id: str | None,
    retry_after: str | None,
    content_type: str = "application/json",
) -> Outcome:
    """Map an HTTP answer to an Outcome (pure, so every case is easy to test).

    >>> outcome_from_response(200, b'{"commond_result": "EXCUTE_SUCCESS"}', "r1", None).succeeded
    True
    """
    try:
        payload: Any = json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError):
        payload = None
    common: dict[str, Any] = {"http_status": status, "request_id": request_id}

    if not isinstance(payload, dict):
        snippet = _text_snippet(raw)
        kind = content_type or "unknown content type"
        return Outcome(
            succeeded=False,
            retryable=status in RETRYABLE_STATUSES,
            auth_refused=status in AUTH_STATUSES,
            throttled=status == 429,
            retry_after=parse_retry_after(retry_after),
            reason=f"HTTP {status} with a body that is not JSON ({kind}): {snippet}",
            **common,
        )

    error_code = _str_or_none(payload.get("error_code"))
    error_msg = _str_or_none(payload.get("error_msg"))
    if status == 200:
        result = _str_or_none(payload.get("commond_result"))
        details: dict[str, Any] = {
            "command_result": result,
            "attachment_upload_url": _strings_or_none(payload.get("attachment_upload_url")),
            "multipart_data": _mappings_or_none(payload.get("multipart_data")),
        }
        if result == "EXCUTE_SUCCESS":
            return Outcome(succeeded=True, **details, **common)
        failed_msg = _str_or_none(payload.get("excute_failed_msg"))
        if result == "EXCUTE_FAILED":
            reason = failed_msg or "the API answered EXCUTE_FAILED without saying why"
        else:
            reason = f"unexpected commond_result {result!r} in a 200 answer"
        return Outcome(succeeded=False, reason=reason, failed_msg=failed_msg, **details, **common)

    described = f"HTTP {status}" + (f" {error_code}" if error_code else "")
    described += f": {error_msg}" if error_msg else ""
    fields = {"error_code": error_code, "error_msg": error_msg, **common}
    if status in AUTH_STATUSES:
        return Outcome(
            succeeded=False, auth_refused=True,
            reason=f"authentication refused ({described})", **fields,
        )
    if status in RETRYABLE_STATUSES:
        return Outcome(
            succeeded=False, retryable=True, throttled=status == 429,
            retry_after=parse_retry_after(retry_after), reason=described, **fields,
        )
    return Outcome(succeeded=False, reason=described, **fields)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    >>> parse_retry_after("3")
    3.0
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # "inf"/"nan" parse as floats but are not delta-seconds: ignore them.
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG_RE = re.compile(r"<[^>]+>")


def _text_snippet(raw: bytes, limit: int = 120) -> str:
    if not raw:
        return "(empty)"
    title = _TITLE_RE.search(raw)
    text = (title.group(1) if title else raw).decode("utf-8", errors="replace")
    text = " ".join(_TAG_RE.sub(" ", text).split())
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


# The answer's lists are kept only in the shapes the report promises, whatever was sent.
def _strings_or_none(value: Any) -> list[str] | None:
    return [str(v) for v in value if v is not None] if isinstance(value, list) else None


def _mappings_or_none(value: Any) -> list[dict[str, Any]] | None:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else None
