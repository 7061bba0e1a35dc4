"""The aiohttp application: MetaStudio's training-job endpoints, the gateway, faults.

Routes: the command (``POST .../user/jobs/{job_id}/command``), List (``GET .../user/jobs``),
Show (``GET .../user/jobs/{job_id}``) and Update (``PUT .../user/jobs/{job_id}``), plus
``/__simulator/health``, ``/stats`` and ``/jobs``. Per command request, in this order: read
the body, draw the faults, sleep the latency, then — with no further ``await``, so the
decision and the state change are one atomic step on the event loop — drop?, authenticate
(401/403), quota and throttle (429), validate (400), internal error (500), run the command
(200), then drop the answer, or hold it back (a late answer), when those faults were drawn.
List, Show and Update take the same steps with their own fault draws (no drop after
execute, no late answer); Show and Update answer 404 for a job the project does not have.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from batcher.simulator.config import SimulatorConfig
from batcher.simulator.faults import FaultPlanner, Faults, ReadStats, SimulatorStats
from batcher.simulator.gateway import Quota, Refusal, authenticate, throttled
from batcher.simulator.inputs import (
    ParsedCommand,
    check_ids,
    parse_body,
    parse_update,
    peek_command,
    upload_urls,
)
from batcher.simulator.listing import BadQuery, parse_query, select
from batcher.simulator.machine import CommandResult, execute, reopen
from batcher.simulator.population import seed_jobs
from batcher.simulator.record import JobState
from batcher.simulator.store import JobStore
from batcher.simulator.world import Event, open_world

LIST_PATH = "/v1/{project_id}/digital-human-training-manage/user/jobs"
SHOW_PATH = LIST_PATH + "/{job_id}"
COMMAND_PATH = SHOW_PATH + "/command"
#: The limit a random throttle (no quota configured) claims in its message.
_NOMINAL_LIMIT = 10

_INVALID = Refusal(400, "MSS.00000003", "Invalid parameter")
_NOT_FOUND = Refusal(404, "MSS.00000005", "The training job does not exist")
_INTERNAL = Refusal(500, "MSS.00000004", "Internal Error")
#: List and Show answer UTF-8 JSON, as the cloud does (names and batches may be Chinese).
_UTF8_JSON = functools.partial(json.dumps, ensure_ascii=False)

log = structlog.get_logger("batcher.simulator")

_REQUEST_ID = web.RequestKey("request_id", str)


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

    >>> sim = Simulator(SimulatorConfig(jobs={"j1": "WAIT_USER_CONFIRM"}))
    >>> sim.jobs.get("p", "j1").state.value
    'WAIT_USER_CONFIRM'

    ``clock`` (UTC now, by default) stamps operation logs and new jobs; a test may replace it.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        config = config or SimulatorConfig()
        self.world = open_world(config)
        if self.world is not None:  # its header says how the world was seeded
            config = SimulatorConfig.model_validate(config.model_dump() | self.world.seed_fields())
        self.config = config
        self._record: Callable[[Event], None] | None = None
        self.stats = SimulatorStats()
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.jobs = JobStore(seed_jobs(self.config), clock=lambda: self.clock())
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

    def list_url(self, *, project_id: str = "sim-project") -> str:
        """The List URL of a project (add the query)."""
        return self.url + LIST_PATH.format(project_id=project_id)

    def show_url(self, job_id: str, *, project_id: str = "sim-project") -> str:
        """The Show URL of a job."""
        return self.url + SHOW_PATH.format(project_id=project_id, job_id=job_id)

    def job_state(self, job_id: str, project_id: str | None = None) -> JobState | None:
        """A job's state (None when never seen). Shortcut for ``sim.jobs.state(...)``."""
        return self.jobs.state(job_id, project_id)

    # ------------------------------------------------------------------ the app

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[_request_id])
        app.router.add_post(COMMAND_PATH, self._command)
        app.router.add_get(LIST_PATH, self._list)
        app.router.add_get(SHOW_PATH, self._show)
        app.router.add_put(SHOW_PATH, self._update)
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
            self.stats.dropped += 1
            return self._close(request, started, peek_command(raw))
        with self._turn():
            answer = self._answer(request, raw, faults)
        if answer.reached_execution and faults.drop_after_execute:
            self.stats.dropped += 1
            self.stats.dropped_after_execute += 1
            return self._close(request, started, answer.command)
        self.stats.by_status[answer.status] += 1
        self._log(request, started, answer.command, answer.status)
        if answer.reached_execution and faults.late_seconds > 0:
            # It has taken effect; the answer leaves only after the delay (if still wanted).
            self.stats.late_answers += 1
            await asyncio.sleep(faults.late_seconds)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)

    def _answer(self, request: web.Request, raw: bytes, faults: Faults) -> _Answer:
        project_id = request.match_info["project_id"]
        job_id = request.match_info["job_id"]
        command = peek_command(raw)
        refusal = self._gate(request, raw, faults)
        if refusal:
            return _Answer.refused(refusal, command)
        parsed, why = parse_body(raw)
        why = why or check_ids(project_id, job_id, request.headers.get("X-App-UserId"))
        if parsed is None or why:
            return self._invalid(why, command)
        if faults.error:
            return _Answer.refused(_INTERNAL, command)
        app_user_id = request.headers.get("X-App-UserId")
        return self._run(project_id, job_id, parsed, request[_REQUEST_ID], app_user_id)

    def _gate(self, request: web.Request, raw: bytes, faults: Faults) -> Refusal | None:
        """What the gateway says: authentication, then quota and throttling."""
        refusal = authenticate(
            config=self.config,
            method=request.method,
            path=request.rel_url.raw_path,
            query=request.rel_url.query.items(),
            headers=request.headers,
            body=raw,
            project_id=request.match_info["project_id"],
        )
        return refusal or self._throttle(faults)

    def _invalid(self, why: str | None, command: str | None = None) -> _Answer:
        if self.config.log_requests:
            log.debug("simulator refused an invalid request", reason=why)
        return _Answer.refused(_INVALID, command)

    def _throttle(self, faults: Faults) -> Refusal | None:
        if self._quota and (wait := self._quota.admit()) is not None:
            return throttled(self._quota.limit, wait)
        if faults.throttle:
            return throttled(self.config.quota or _NOMINAL_LIMIT, 1)
        return None

    def _run(
        self, project_id: str, job_id: str, parsed: ParsedCommand, rid: str, app_user: str | None
    ) -> _Answer:
        now = self.clock()
        event: Event = {"op": "command", "at": now.isoformat(), "project": project_id}
        event |= {"job": job_id, "parsed": parsed.as_event(), "app_user": app_user}
        result = self._execute(event)
        if self._record:  # even a refusal: it may have created the job
            self._record(event)
        key = (job_id, parsed.command)
        body: dict[str, Any]
        if not result.ok:
            body = {"commond_result": "EXCUTE_FAILED", "excute_failed_msg": result.failed_msg}
            if self.config.error_info:  # assumed code: the API documents none for refusals
                body["error_info"] = {"error_code": "MSS.00000003", "error_msg": result.failed_msg}
        else:
            body = {"commond_result": "EXCUTE_SUCCESS"}
            (self.stats.executions if result.executed else self.stats.reads)[key] += 1
            if result.multipart_data is not None:
                body["multipart_data"] = result.multipart_data
            if parsed.attachment_names:
                body["attachment_upload_url"] = upload_urls(
                    project_id, job_id, parsed.attachment_names, rid
                )
        self.stats.results[body["commond_result"]] += 1
        return _Answer(200, body, command=parsed.command, reached_execution=True)

    # ------------------------------------------------------------------ List and Show

    async def _list(self, request: web.Request) -> web.StreamResponse:
        return await self._read(request, self.stats.lists, self._list_answer)

    async def _show(self, request: web.Request) -> web.StreamResponse:
        return await self._read(request, self.stats.shows, self._show_answer)

    async def _update(self, request: web.Request) -> web.StreamResponse:
        return await self._read(request, self.stats.updates, self._update_answer)

    async def _read(
        self,
        request: web.Request,
        counters: ReadStats,
        answer: Callable[[web.Request, bytes, Faults], _Answer],
    ) -> web.StreamResponse:
        started = time.perf_counter()
        raw = await request.read()
        counters.requests += 1
        faults = self._planner.draw_read()
        if faults.delay_seconds > 0:
            await asyncio.sleep(faults.delay_seconds)
        if faults.drop:
            counters.dropped += 1
            return self._close(request, started, None)
        refusal = self._gate(request, raw, faults)
        with self._turn():
            result = _Answer.refused(refusal) if refusal else answer(request, raw, faults)
        counters.by_status[result.status] += 1
        self._log(request, started, None, result.status)
        return web.json_response(
            result.body, status=result.status, headers=result.headers, dumps=_UTF8_JSON
        )

    def _list_answer(self, request: web.Request, _raw: bytes, faults: Faults) -> _Answer:
        project_id = request.match_info["project_id"]
        why = check_ids(project_id, None, request.headers.get("X-App-UserId"))
        try:
            query = parse_query(request.rel_url.query.items())
        except BadQuery as error:
            why = why or str(error)
        if why:
            return self._invalid(why)
        if faults.error:
            return _Answer.refused(_INTERNAL)
        count, page = select(self.jobs.in_project(project_id), query)
        now = self.clock()
        return _Answer(200, {"count": count, "jobs": [job.basic_info(now=now) for job in page]})

    def _show_answer(self, request: web.Request, _raw: bytes, faults: Faults) -> _Answer:
        project_id, job_id = request.match_info["project_id"], request.match_info["job_id"]
        why = check_ids(project_id, job_id, request.headers.get("X-App-UserId"))
        if why:
            return self._invalid(why)
        if faults.error:
            return _Answer.refused(_INTERNAL)
        job = self.jobs.lookup(project_id, job_id)
        if job is None:
            return _Answer.refused(_NOT_FOUND)
        return _Answer(200, job.detail(now=self.clock()))

    def _update_answer(self, request: web.Request, raw: bytes, faults: Faults) -> _Answer:
        """Update2dModelTrainingJob: new upload URLs for a job whose review failed."""
        project_id, job_id = request.match_info["project_id"], request.match_info["job_id"]
        fields, why = parse_update(raw)
        why = why or check_ids(project_id, job_id, request.headers.get("X-App-UserId"))
        if fields is None or why:
            return self._invalid(why)
        if faults.error:
            return _Answer.refused(_INTERNAL)
        if self.jobs.lookup(project_id, job_id) is None:
            return _Answer.refused(_NOT_FOUND)
        event: Event = {"op": "update", "at": self.clock().isoformat(), "project": project_id}
        event |= {"job": job_id, "fields": fields}
        if refused := self._reopen(event):  # assumed: refused as a bad parameter
            return _Answer.refused(Refusal(400, "MSS.00000003", refused))
        if self._record:
            self._record(event)
        rid, parts = request[_REQUEST_ID], fields.get("video_multipart_count", 1)
        urls = functools.partial(upload_urls, project_id, job_id, rid=rid, folder="update")
        body: dict[str, Any] = {
            "job_id": job_id,
            "training_video_upload_url": urls(tuple(f"video-{n}" for n in range(1, parts + 1))),
            "id_card_image1_upload_url": urls(("id-card-1.jpg",))[0],
            "id_card_image2_upload_url": urls(("id-card-2.jpg",))[0],
            "grant_file_upload_url": urls(("grant-file.pdf",))[0],
        }
        if actions := fields.get("action_video_multipart_count"):
            body["action_video_upload_url"] = urls(
                tuple(f"action-{n}" for n in range(1, actions + 1))
            )
        return _Answer(200, body)

    # ------------------------------------------------------------------ one shared world

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Around each request's synchronous step: with a world file, catch up with what
        other processes did, and record this request's changes for them."""
        if self.world is None:
            yield
            return
        with self.world.turn(self._replay) as record:
            self._record = record
            try:
                yield
            finally:
                self._record = None

    def _replay(self, event: Event) -> None:
        if event["op"] == "update":
            self._reopen(event)
        else:
            self._execute(event)

    def _execute(self, event: Event) -> CommandResult:
        now = datetime.fromisoformat(event["at"])
        parsed = ParsedCommand.from_event(event["parsed"])
        return execute(
            self.jobs.get(event["project"], event["job"], now=now),
            parsed.command,
            now=now,
            command_message=parsed.command_message,
            operation_reason=parsed.operation_reason,
            comment=parsed.comment,
            app_user_id=event["app_user"],
        )

    def _reopen(self, event: Event) -> str | None:
        job = self.jobs.lookup(event["project"], event["job"])
        assert job is not None  # an Update is recorded only for a job that exists
        refused = reopen(job, now=datetime.fromisoformat(event["at"]))
        for name in ("name", "contact", "batch_name", "tags"):
            if name in event["fields"] and refused is None:
                setattr(job, name, event["fields"][name])
        return refused

    # ------------------------------------------------------------------ endings

    def _close(self, request: web.Request, started: float, command: str | None) -> web.Response:
        """Close the connection without an answer: the client sees a disconnect."""
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
            path=request.rel_url.path,
            job_id=request.match_info.get("job_id"),
            command=command,
            status=status if status is not None else "dropped",
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            request_id=request[_REQUEST_ID],
        )


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
