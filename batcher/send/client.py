"""The API's three calls: run a command (POST), list jobs (GET), show one job (GET).

The client builds each request, has it signed (:mod:`.signing` adds the headers, so no
secret passes through here) and reads the answer (:mod:`.answer` maps it). What it reads
of an answer is capped: the API's answers are small, and a server that sends megabytes
must not take the process's memory with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from batcher.entry import Entry, Outcome
from batcher.errors import UsageError
from batcher.observe.version import version
from batcher.redact import Redactor
from batcher.send.answer import (
    AUTH_STATUSES,
    RETRYABLE_STATUSES,
    brief,
    outcome_from_response,
    parse_retry_after,
    proves_refusal,
    redirect_refused,
    reply_from_response,
)
from batcher.send.credentials import Credentials
from batcher.send.signing import signer_for

_JOBS_PATH = "/v1/{project_id}/digital-human-training-manage/user/jobs"
_USER_AGENT = f"batcher/{version()}"

#: The most read of a command's answer (they are a few hundred bytes; a few pre-signed URLs
#: at most). Beyond it the answer is cut off unread.
MAX_ANSWER_BYTES = 256 * 1024
#: The most read of a List page or a Show answer (a page of 100 jobs is ~100 KB).
MAX_READ_BYTES = 4 * 1024 * 1024

_CHUNK = 64 * 1024


def open_session(*, concurrency: int, timeout: float) -> aiohttp.ClientSession:
    """A session with one connection per worker, TLS verified. The client signs each
    request itself (a middleware costs more per request than the signing)."""
    connector = aiohttp.TCPConnector(
        limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=300, ssl=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        # The API sets no cookies we need; a dummy jar skips cookie filtering on every call.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers={"User-Agent": _USER_AGENT},
        raise_for_status=False,
    )


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a read: how it went, the JSON object on success, and the server's
    ``Date`` header (its clock, to compare with the times in a job's record)."""

    outcome: Outcome
    data: dict[str, Any] | None = None
    server_date: str | None = None


class _TooLarge(Exception):
    def __init__(self, size: int | None) -> None:
        super().__init__()
        self.size = size


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, or :class:`_TooLarge` as soon as it is known to exceed ``cap`` bytes."""
    length = response.content_length
    if length is not None:
        if length > cap:
            raise _TooLarge(length)
        if response.headers.get("Content-Encoding") is None:
            return await response.read()  # the usual answer: small, its size declared
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise _TooLarge(None)
        chunks.append(chunk)
    return b"".join(chunks)


def _size(size: int | None, cap: int) -> str:
    return f"{size:,} bytes" if size is not None else f"more than {cap:,} bytes"


class MetaStudioClient:
    """Runs an entry's command, lists jobs and shows one, each mapped to an :class:`Outcome`.

    ``credentials`` sign every request (None: the session signs, or nothing does).

    >>> client = MetaStudioClient(session, endpoint=url, project_id="p",
    ...                           credentials=credentials)  # doctest: +SKIP
    >>> outcome = await client.execute(entry)  # doctest: +SKIP
    >>> reply = await client.show_job("job-1")  # doctest: +SKIP
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        endpoint: URL,
        project_id: str | None,
        credentials: Credentials | None = None,
        app_user_id: str | None = None,
        timeout: float = 30.0,
        redactor: Redactor | None = None,
    ) -> None:
        self._session = session
        self._endpoint = endpoint
        self._sign = signer_for(credentials).sign if credentials is not None else None
        # The Host header, as aiohttp would write it: signed, so it is set here.
        self._host = endpoint.host_port_subcomponent
        self._project_id = project_id
        self._app_user_id = app_user_id
        self._timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self._redactor = redactor

    # ------------------------------------------------------------------ addresses

    def _project(self, project_id: str | None, where: str) -> str:
        project = project_id or self._project_id
        if not project:
            raise UsageError(f"{where}: no project id (set --project-id)")
        return project

    def url_for(self, entry: Entry) -> URL:
        return self._endpoint.with_path(self._command_path(entry), encoded=True)

    def _command_path(self, entry: Entry) -> str:
        project = self._project(entry.project_id, entry.source)
        return f"{_JOBS_PATH.format(project_id=project)}/{entry.job_id}/command"

    def _headers(self, project: str, app_user_id: str | None) -> dict[str, str]:
        headers = {"X-Project-Id": project}
        app_user = app_user_id or self._app_user_id
        if app_user:
            headers["X-App-UserId"] = app_user
        return headers

    # ------------------------------------------------------------------ the calls

    async def execute(self, entry: Entry) -> Outcome:
        """Run ``entry``'s command: ``POST .../jobs/{job_id}/command``."""
        path = self._command_path(entry)
        url = self._endpoint.with_path(path, encoded=True)
        headers = self._headers(self._project(entry.project_id, entry.source), entry.app_user_id)
        headers["Content-Type"] = "application/json;charset=UTF-8"
        body = orjson.dumps(entry.request_body())  # UTF-8, non-ASCII as it is
        if self._sign is not None:
            self._sign(headers, method="POST", host=self._host, path=path, body=body)
        try:
            async with self._session.post(
                url,
                data=body,
                headers=headers,
                # The per-request timeout makes the reason below true whatever the
                # session's is (it costs nothing: aiohttp sets one timer either way).
                timeout=self._client_timeout,
                allow_redirects=False,  # never carry credentials to another host
            ) as response:
                request_id = response.headers.get("X-Request-Id")
                if 300 <= response.status < 400:
                    return redirect_refused(
                        response.status, response.headers.get("Location"), request_id
                    )
                try:
                    raw = await _read_capped(response, MAX_ANSWER_BYTES)
                except _TooLarge as error:
                    return _oversized(
                        response.status, request_id, error.size, MAX_ANSWER_BYTES,
                        response.headers.get("Retry-After"), read=False,
                    )  # fmt: skip
                return outcome_from_response(
                    response.status,
                    raw,
                    request_id,
                    response.headers.get("Retry-After"),
                    response.headers.get("Content-Type", ""),
                    redactor=self._redactor,
                )
        except (TimeoutError, aiohttp.ClientError) as error:
            return self._lost(error, read=False)

    async def show_job(
        self, job_id: str, *, project_id: str | None = None, app_user_id: str | None = None
    ) -> Reply:
        """The job's record: ``GET .../jobs/{job_id}`` (state, times, operation_logs)."""
        project = self._project(project_id, f"job {job_id}")
        url = self._endpoint.with_path(
            f"{_JOBS_PATH.format(project_id=project)}/{job_id}", encoded=True
        )
        return await self._read(url, self._headers(project, app_user_id))

    async def list_jobs(
        self,
        query: Mapping[str, str],
        *,
        project_id: str | None = None,
        app_user_id: str | None = None,
    ) -> Reply:
        """One page of jobs: ``GET .../jobs?offset=..&limit=..&state=..`` (``count``, ``jobs``)."""
        project = self._project(project_id, "list jobs")
        url = self._endpoint.with_path(_JOBS_PATH.format(project_id=project), encoded=True)
        return await self._read(url.with_query(dict(query)), self._headers(project, app_user_id))

    async def _read(self, url: URL, headers: dict[str, str]) -> Reply:
        if self._sign is not None:
            query = url.query.items() if url.raw_query_string else ()
            self._sign(headers, method="GET", host=self._host, path=url.raw_path, query=query)
        try:
            async with self._session.get(
                url,
                headers=headers,
                timeout=self._client_timeout,
                allow_redirects=False,
            ) as response:
                request_id = response.headers.get("X-Request-Id")
                if 300 <= response.status < 400:
                    location = response.headers.get("Location")
                    return Reply(redirect_refused(response.status, location, request_id))
                try:
                    raw = await _read_capped(response, MAX_READ_BYTES)
                except _TooLarge as error:
                    return Reply(
                        _oversized(
                            response.status,
                            request_id,
                            error.size,
                            MAX_READ_BYTES,
                            response.headers.get("Retry-After"),
                            read=True,
                        )
                    )
                outcome, data = reply_from_response(
                    response.status,
                    raw,
                    request_id,
                    response.headers.get("Retry-After"),
                    response.headers.get("Content-Type", ""),
                    redactor=self._redactor,
                )
                return Reply(outcome, data, response.headers.get("Date"))
        except (TimeoutError, aiohttp.ClientError) as error:
            return Reply(self._lost(error, read=True))

    def _lost(self, error: BaseException, *, read: bool) -> Outcome:
        """The outcome of a request that got no answer: was it sent? A command that was
        may have executed (``ambiguous``); a read changes nothing either way."""
        if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            # No retry fixes a certificate: halt, as for refused credentials.
            return Outcome(
                succeeded=False,
                fatal=True,
                reason=f"TLS verification failed{brief(error)}: the server's certificate is not "
                "trusted for this host (self-signed, expired or for another name); check "
                "--endpoint or the system's CA certificates",
            )
        if isinstance(error, aiohttp.ConnectionTimeoutError | aiohttp.ClientConnectorError):
            # The connection was never made: nothing was sent.
            return Outcome(
                succeeded=False,
                retryable=True,
                reason=f"connection error: {type(error).__name__}{brief(error)}",
            )
        timed_out = isinstance(error, TimeoutError)
        if timed_out:
            reason = f"timed out after {self._timeout:g}s waiting for the API"
        else:
            reason = f"connection error: {type(error).__name__}{brief(error)}"
        return Outcome(
            succeeded=False,
            retryable=True,
            ambiguous=not read,
            still_running=timed_out and not read,
            reason=reason,
        )


def _oversized(
    status: int,
    request_id: str | None,
    size: int | None,
    cap: int,
    retry_after: str | None,
    *,
    read: bool,
) -> Outcome:
    """An answer too big to read is judged by its status alone, as an unreadable one is."""
    # Unread, only a refusal at the gate is proven (see proves_refusal): after anything
    # else, whether it executed is unknown. 401/403 halt as ever.
    executed_maybe = not read and not proves_refusal(status)
    return Outcome(
        succeeded=False,
        retryable=status in RETRYABLE_STATUSES or (read and 200 <= status < 300),
        auth_refused=status in AUTH_STATUSES,
        throttled=status == 429,
        ambiguous=executed_maybe,
        retry_after=parse_retry_after(retry_after),
        http_status=status,
        request_id=request_id,
        reason=f"HTTP {status} with an answer of {_size(size, cap)}, over the "
        f"{cap // 1024} KiB batcher reads; it was not read",
    )
