"""The aiohttp application: MetaStudio's training-job endpoints, the gateway, faults.

Routes: the command (``POST .../user/jobs/{job_id}/command``), List (``GET .../user/jobs``),
Show (``GET .../user/jobs/{job_id}``) and Update (``PUT .../user/jobs/{job_id}``), plus
``/__simulator/health``, ``/stats`` and ``/jobs``. Every request takes the same steps: read
the body, draw the faults, sleep the latency, then — with no further ``await``, so the
decision and the state change are one atomic step on the event loop — drop?, authenticate
(401/403), quota and throttle (429), validate (400), internal error (500), and answer (200,
or 404 from Show and Update for a job the project does not have). A command may then lose
its answer, or have it held back (a late answer), when those faults were drawn; List, Show
and Update draw no such faults (:mod:`~batcher.simulator.faults`).
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
#: Answers are UTF-8 JSON, as the cloud's are (names and batches may be Chinese).
_UTF8_JSON = functools.partial(json.dumps, ensure_ascii=False)

log = structlog.get_logger("batcher.simulator")

_REQUEST_ID = web.RequestKey("request_id", str)


@dataclass(slots=True)
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    reached_execution: bool = False  #: a command that reached the job (executed or refused)

    @classmethod
    def refused(cls, refusal: Refusal) -> _Answer:
        return cls(refusal.status, refusal.body(), dict(refusal.headers))


class _Refused(Exception):
    """Raised by an endpoint's checks: the answer is this refusal."""

    def __init__(self, refusal: Refusal) -> None:
        self.answer = _Answer.refused(refusal)


Responder = Callable[[web.Request, bytes, Faults], _Answer]


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
        stats = self.stats

        # Looked up at each request, so that a planner swapped in later (tests do) is used.
        def command() -> Faults:
            return self._planner.draw()

        def read() -> Faults:
            return self._planner.draw_read()

        for method, path, counters, answer, draw in (
            ("POST", COMMAND_PATH, stats, self._command, command),
            ("GET", LIST_PATH, stats.lists, self._list, read),
            ("GET", SHOW_PATH, stats.shows, self._show, read),
            ("PUT", SHOW_PATH, stats.updates, self._update, read),
        ):
            app.router.add_route(method, path, self._endpoint(counters, answer, draw))
        for name, body in (
            ("health", lambda: {"status": "ok"}),
            ("stats", stats.as_dict),
            ("jobs", lambda: {"jobs": [job.as_dict() for job in self.jobs]}),
        ):
            app.router.add_get(f"/__simulator/{name}", _plain(body))
        return app

    def _endpoint(
        self, counters: ReadStats, answer: Responder, draw: Callable[[], Faults]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def serve(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            raw = await request.read()
            counters.requests += 1
            faults, command = draw(), peek_command(raw)
            if faults.delay_seconds > 0:
                await asyncio.sleep(faults.delay_seconds)
            # No await below until the answer: the decision and the state change are one step.
            if faults.drop:
                counters.dropped += 1
                return self._close(request, started, command)
            with self._turn():
                try:
                    result = answer(request, raw, faults)
                except _Refused as refused:
                    result = refused.answer
            if result.reached_execution and faults.drop_after_execute:
                counters.dropped += 1
                self.stats.dropped_after_execute += 1
                return self._close(request, started, command)
            counters.by_status[result.status] += 1
            self._log(request, started, command, result.status)
            if result.reached_execution and faults.late_seconds > 0:
                # It has taken effect; the answer leaves only after the delay (if still wanted).
                self.stats.late_answers += 1
                await asyncio.sleep(faults.late_seconds)
            return web.json_response(
                result.body, status=result.status, headers=result.headers, dumps=_UTF8_JSON
            )

        return serve

    def _check(
        self, request: web.Request, raw: bytes, faults: Faults, why: str | None = None
    ) -> None:
        """What every endpoint checks first, raising :class:`_Refused`: authentication, quota
        and throttling, then the input (``why`` it is invalid, the ids), then a drawn 500."""
        match, headers = request.match_info, request.headers
        refusal = authenticate(self.config, request, raw)
        if refusal := refusal or self._throttle(faults):
            raise _Refused(refusal)
        why = why or check_ids(
            match["project_id"], match.get("job_id"), headers.get("X-App-UserId")
        )
        if why:
            if self.config.log_requests:
                log.debug("simulator refused an invalid request", reason=why)
            raise _Refused(_INVALID)
        if faults.error:
            raise _Refused(_INTERNAL)

    def _throttle(self, faults: Faults) -> Refusal | None:
        if self._quota and (wait := self._quota.admit()) is not None:
            return throttled(self._quota.limit, wait)
        if faults.throttle:
            return throttled(self.config.quota or _NOMINAL_LIMIT, 1)
        return None

    # ------------------------------------------------------------------ the endpoints

    def _command(self, request: web.Request, raw: bytes, faults: Faults) -> _Answer:
        parsed, why = parse_body(raw)
        self._check(request, raw, faults, why)
        assert parsed is not None  # else refused as invalid
        project_id, job_id = request.match_info["project_id"], request.match_info["job_id"]
        now, app_user = self.clock(), request.headers.get("X-App-UserId")
        event: Event = {"op": "command", "at": now.isoformat(), "project": project_id}
        event |= {"job": job_id, "parsed": parsed.as_event(), "app_user": app_user}
        result = self._execute(event)
        if self._record:  # even a refusal: it may have created the job
            self._record(event)
        body: dict[str, Any]
        if not result.ok:
            body = {"commond_result": "EXCUTE_FAILED", "excute_failed_msg": result.failed_msg}
            if self.config.error_info:  # assumed code: the API documents none for refusals
                body["error_info"] = {"error_code": "MSS.00000003", "error_msg": result.failed_msg}
        else:
            body = {"commond_result": "EXCUTE_SUCCESS"}
            counter = self.stats.executions if result.executed else self.stats.reads
            counter[job_id, parsed.command] += 1
            if result.multipart_data is not None:
                body["multipart_data"] = result.multipart_data
            if names := parsed.attachment_names:
                rid = request[_REQUEST_ID]
                body["attachment_upload_url"] = upload_urls(project_id, job_id, names, rid)
        self.stats.results[body["commond_result"]] += 1
        return _Answer(200, body, reached_execution=True)

    def _list(self, request: web.Request, raw: bytes, faults: Faults) -> _Answer:
        query, why = None, None
        try:
            query = parse_query(request.rel_url.query.items())
        except BadQuery as error:
            why = str(error)
        self._check(request, raw, faults, why)
        assert query is not None  # else refused as invalid
        count, page = select(self.jobs.in_project(request.match_info["project_id"]), query)
        now = self.clock()
        return _Answer(200, {"count": count, "jobs": [job.basic_info(now=now) for job in page]})

    def _show(self, request: web.Request, raw: bytes, faults: Faults) -> _Answer:
        self._check(request, raw, faults)
        job = self.jobs.lookup(request.match_info["project_id"], request.match_info["job_id"])
        if job is None:
            return _Answer.refused(_NOT_FOUND)
        return _Answer(200, job.detail(now=self.clock()))

    def _update(self, request: web.Request, raw: bytes, faults: Faults) -> _Answer:
        """Update2dModelTrainingJob: new upload URLs for a job whose review failed."""
        fields, why = parse_update(raw)
        self._check(request, raw, faults, why)
        assert fields is not None  # else refused as invalid
        project_id, job_id = request.match_info["project_id"], request.match_info["job_id"]
        if self.jobs.lookup(project_id, job_id) is None:
            return _Answer.refused(_NOT_FOUND)
        event: Event = {"op": "update", "at": self.clock().isoformat(), "project": project_id}
        event |= {"job": job_id, "fields": fields}
        if refused := self._reopen(event):  # assumed: refused as a bad parameter
            return _Answer.refused(Refusal(400, "MSS.00000003", refused))
        if self._record:
            self._record(event)
        urls = functools.partial(upload_urls, project_id, job_id, rid=request[_REQUEST_ID])
        body: dict[str, Any] = {"job_id": job_id}
        for name, prefix, count in (
            ("training_video_upload_url", "video", fields.get("video_multipart_count", 1)),
            ("action_video_upload_url", "action", fields.get("action_video_multipart_count")),
        ):
            if count:
                parts = tuple(f"{prefix}-{n}" for n in range(1, count + 1))
                body[name] = urls(parts, folder="update")
        for name, filename in (
            ("id_card_image1_upload_url", "id-card-1.jpg"),
            ("id_card_image2_upload_url", "id-card-2.jpg"),
            ("grant_file_upload_url", "grant-file.pdf"),
        ):
            body[name] = urls((filename,), folder="update")[0]
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


def _plain(body: Callable[[], dict[str, Any]]) -> Handler:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.json_response(body())

    return answer


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
