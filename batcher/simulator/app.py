"""The aiohttp application: one MetaStudio endpoint, the gateway in front, faults on demand.

Per request to the command endpoint, in this order: read the body, draw the faults, sleep
the latency, then — with no further ``await``, so the decision and the state change are
one atomic step on the event loop — drop?, authenticate (401/403), quota and throttle
(429), validate (400), internal error (500), run the command (200), drop after execute?
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web

from ..entry import KNOWN_COMMANDS, PATH_ID_RE, check_app_user_id
from .config import SimulatorConfig
from .faults import FaultPlanner, Faults, SimulatorStats
from .gateway import Quota, Refusal, authenticate, throttled
from .state import JobState, JobStore, execute

COMMAND_PATH = "/v1/{project_id}/digital-human-training-manage/user/jobs/{job_id}/command"
#: The limit a random throttle (no quota configured) claims in its message.
_NOMINAL_LIMIT = 10

_INVALID = Refusal(400, "MSS.00000003", "Invalid parameter")
_INTERNAL = Refusal(500, "MSS.00000004", "Internal Error")

log = structlog.get_logger("batcher.simulator")

_REQUEST_ID = web.RequestKey("request_id", str)


@dataclass(frozen=True, slots=True)
class _Command:
    command: str
    attachment_names: tuple[str, ...] = ()


def _optional_str(value: Any, *, max_len: int | None = None) -> bool:
    if value is None:
        return True
    return isinstance(value, str) and (max_len is None or len(value) <= max_len)


def parse_body(raw: bytes) -> tuple[_Command | None, str | None]:
    """The command in a request body, or why the body is invalid (for the log only)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, "the body is not JSON"
    if not isinstance(body, dict):
        return None, "the body is not a JSON object"
    command = body.get("command")
    if not isinstance(command, str) or not 1 <= len(command) <= 64:
        return None, "command is missing, not a string, or longer than 64"
    if command not in KNOWN_COMMANDS:
        return None, "command is not a known value"
    if not _optional_str(body.get("command_message"), max_len=64):
        return None, "command_message is not a string of at most 64"
    if not _optional_str(body.get("operation_reason")):
        return None, "operation_reason is not a string"
    comment = body.get("comment_data")
    if comment is None:
        return _Command(command), None
    if not isinstance(comment, dict):
        return None, "comment_data is not an object"
    if not all(_optional_str(comment.get(k)) for k in ("comment_title", "comment_message")):
        return None, "comment_title/comment_message is not a string"
    names = comment.get("attachment_name") or []
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        return None, "attachment_name is not a list of non-empty strings"
    return _Command(command, tuple(names)), None


def _upload_urls(project_id: str, job_id: str, names: tuple[str, ...], rid: str) -> list[str]:
    """One fake pre-signed OBS URL per attachment name."""
    expires = int(time.time()) + 3600
    base = f"https://obs.example.invalid/{project_id}/{job_id}/attachments/"
    return [
        f"{base}{quote(name, safe='')}?AccessKeyId=SIMULATOR&Expires={expires}"
        f"&Signature={uuid.uuid5(uuid.NAMESPACE_URL, rid + name).hex}"
        for name in names
    ]


@dataclass(slots=True)
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    command: str | None = None
    reached_execution: bool = False

    @classmethod
    def refused(cls, refusal: Refusal, command: str | None = None) -> _Answer:
        return cls(refusal.status, refusal.body(), dict(refusal.headers), command)


class Simulator:
    """A local MetaStudio: state, stats and the aiohttp app. Start it with :func:`run_simulator`.

    >>> sim = Simulator(SimulatorConfig(jobs={"j1": "WAIT_CONFIRM"}))
    >>> sim.jobs.get("p", "j1").state.value
    'WAIT_CONFIRM'
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.stats = SimulatorStats()
        self.jobs = JobStore(self.config.jobs)
        self._planner = FaultPlanner(self.config)
        self._quota = Quota.from_config(self.config)
        self._port: int | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        """The bound port (the real one when the config asked for port 0)."""
        if self._port is None:
            raise RuntimeError("the simulator is not running; use run_simulator()")
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, the endpoint to give a client."""
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def command_url(self, job_id: str, *, project_id: str = "sim-project") -> str:
        """The full command URL for a job, e.g. for an aiohttp client."""
        return self.url + COMMAND_PATH.format(project_id=project_id, job_id=job_id)

    def job_state(self, job_id: str, project_id: str | None = None) -> JobState | None:
        """A job's state (None when never seen). Shortcut for ``sim.jobs.state(...)``."""
        return self.jobs.state(job_id, project_id)

    # ------------------------------------------------------------------ the app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[_request_id])
        app.router.add_post(COMMAND_PATH, self._command)
        app.router.add_get("/__simulator/health", self._health)
        app.router.add_get("/__simulator/stats", self._stats)
        app.router.add_get("/__simulator/jobs", self._jobs)
        return app

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats.as_dict())

    async def _jobs(self, _request: web.Request) -> web.Response:
        return web.json_response({"jobs": [job.as_dict() for job in self.jobs]})

    async def _command(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        raw = await request.read()
        self.stats.requests += 1
        faults = self._planner.draw()
        if faults.delay_seconds > 0:
            await asyncio.sleep(faults.delay_seconds)
        # No await below: the decision and the state change happen in one step.
        if faults.drop:
            return self._drop(request, started, _peek_command(raw))
        answer = self._answer(request, raw, faults)
        if faults.drop_after_execute and answer.reached_execution:
            return self._drop(request, started, answer.command)
        self.stats.by_status[answer.status] += 1
        self._log(request, started, answer.command, answer.status)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)

    def _answer(self, request: web.Request, raw: bytes, faults: Faults) -> _Answer:
        project_id = request.match_info["project_id"]
        job_id = request.match_info["job_id"]
        command = _peek_command(raw)
        refusal = authenticate(
            config=self.config,
            method=request.method,
            path=request.rel_url.raw_path,
            query=request.rel_url.query.items(),
            headers=request.headers,
            body=raw,
            project_id=project_id,
        )
        refusal = refusal or self._throttle(faults)
        if refusal:
            return _Answer.refused(refusal, command)
        parsed, why = parse_body(raw)
        why = why or _check_ids(project_id, job_id, request.headers.get("X-App-UserId"))
        if parsed is None or why:
            if self.config.log_requests:
                log.debug("simulator refused an invalid request", reason=why)
            return _Answer.refused(_INVALID, command)
        if faults.error:
            return _Answer.refused(_INTERNAL, command)
        return self._run(project_id, job_id, parsed, request[_REQUEST_ID])

    def _throttle(self, faults: Faults) -> Refusal | None:
        if self._quota and (wait := self._quota.admit()) is not None:
            return throttled(self._quota.limit, wait)
        if faults.throttle:
            return throttled(self.config.quota or _NOMINAL_LIMIT, 1)
        return None

    def _run(self, project_id: str, job_id: str, parsed: _Command, rid: str) -> _Answer:
        result = execute(self.jobs.get(project_id, job_id), parsed.command)
        key = (job_id, parsed.command)
        body: dict[str, Any]
        if not result.ok:
            body = {"commond_result": "EXCUTE_FAILED", "excute_failed_msg": result.failed_msg}
        else:
            body = {"commond_result": "EXCUTE_SUCCESS"}
            (self.stats.executions if result.executed else self.stats.reads)[key] += 1
            if result.multipart_data is not None:
                body["multipart_data"] = result.multipart_data
            if parsed.attachment_names:
                body["attachment_upload_url"] = _upload_urls(
                    project_id, job_id, parsed.attachment_names, rid
                )
        self.stats.results[body["commond_result"]] += 1
        return _Answer(200, body, command=parsed.command, reached_execution=True)

    def _drop(self, request: web.Request, started: float, command: str | None) -> web.Response:
        """Close the connection without an answer: the client sees a disconnect."""
        self.stats.dropped += 1
        self._log(request, started, command, None)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)  # never reaches the client

    def _log(
        self, request: web.Request, started: float, command: str | None, status: int | None
    ) -> None:
        if not self.config.log_requests:
            return
        log.info(
            "simulator request",
            method=request.method,
            job_id=request.match_info.get("job_id"),
            command=command,
            status=status if status is not None else "dropped",
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            request_id=request[_REQUEST_ID],
        )


def _check_ids(project_id: str, job_id: str, app_user_id: str | None) -> str | None:
    if not PATH_ID_RE.match(project_id) or not PATH_ID_RE.match(job_id):
        return "project_id or job_id is not 1-64 of [A-Za-z0-9_-]"
    if app_user_id is not None:
        try:
            check_app_user_id(app_user_id)
        except ValueError:
            return "X-App-UserId is not printable ASCII"
    return None


def _peek_command(raw: bytes) -> str | None:
    """The command, for the log: only a known value, never arbitrary client text."""
    try:
        command = json.loads(raw).get("command")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return command if command in KNOWN_COMMANDS else None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _request_id(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An ``X-Request-Id`` (uuid4 hex) on every response, errors and 404s included."""
    rid = request[_REQUEST_ID] = uuid.uuid4().hex
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = rid
        raise
    response.headers["X-Request-Id"] = rid
    return response


# ---------------------------------------------------------------------- running it


@asynccontextmanager
async def run_simulator(config: SimulatorConfig | None = None) -> AsyncIterator[Simulator]:
    """Serve a simulator on the running event loop for the duration of the block.

    >>> async def demo():
    ...     async with run_simulator(SimulatorConfig(credentials={"AK": "SK"})) as sim:
    ...         return sim.url.startswith("http://127.0.0.1:")

    Raises ``OSError`` when the address cannot be bound.
    """
    sim = Simulator(config)
    runner = web.AppRunner(sim.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, sim.config.host, sim.config.port)
        await site.start()
        sim._port = runner.addresses[0][1]
        yield sim
    finally:
        await runner.cleanup()


@contextmanager
def run_simulator_in_thread(
    config: SimulatorConfig | None = None, *, timeout: float = 10.0
) -> Iterator[Simulator]:
    """Serve a simulator from a background thread with its own event loop.

    For blocking clients (the official SDK, ``requests``). Read ``sim.stats`` and job
    state only between requests: they belong to the simulator's thread.

    >>> with run_simulator_in_thread(SimulatorConfig()) as sim:  # doctest: +SKIP
    ...     requests.get(sim.url + "/__simulator/health")
    """
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
