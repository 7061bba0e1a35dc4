"""One API call, one :class:`~batcher.outcome.Outcome`.

The client builds the request and reads the answer (:mod:`.answer` maps it);
authentication is an aiohttp middleware (:mod:`.auth`), so no secret passes through here.
"""

from __future__ import annotations

import json

import aiohttp
from yarl import URL

from .. import __version__
from ..entry import Entry
from ..errors import UsageError
from ..outcome import Outcome
from ..redact import Redactor
from .answer import brief, outcome_from_response, redirect_refused
from .auth import middleware_for
from .credentials import Credentials

_PATH = "/v1/{project_id}/digital-human-training-manage/user/jobs/{job_id}/command"
_USER_AGENT = f"batcher/{__version__}"


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
        redactor: Redactor | None = None,
    ) -> None:
        self._redactor = redactor
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
                url,
                data=body.encode(),
                headers=headers,
                timeout=self._client_timeout,
                allow_redirects=False,  # never carry credentials to another host
            ) as response:
                raw = await response.read()
                if 300 <= response.status < 400:
                    return redirect_refused(
                        response.status,
                        response.headers.get("Location"),
                        response.headers.get("X-Request-Id"),
                    )
                return outcome_from_response(
                    response.status,
                    raw,
                    response.headers.get("X-Request-Id"),
                    response.headers.get("Retry-After"),
                    response.content_type,
                    redactor=self._redactor,
                )
        except TimeoutError:
            return Outcome(
                succeeded=False,
                retryable=True,
                reason=f"timed out after {self._timeout:g}s waiting for the API",
            )
        except aiohttp.ClientError as error:
            return Outcome(
                succeeded=False,
                retryable=True,
                reason=f"connection error: {type(error).__name__}{brief(error)}",
            )
