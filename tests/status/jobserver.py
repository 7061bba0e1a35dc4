"""A small MetaStudio List/Show server whose jobs change state over time, for status tests.

Each job follows a timeline of ``(seconds after the first read, state)``; a failed review carries
an operation log whose latest entry says why. Every request is counted, by kind.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

Timeline = list[tuple[float, str]]


@dataclass
class JobServer:
    timelines: dict[str, Timeline]
    batch: dict[str, str] = field(default_factory=dict)
    started: float | None = None
    requests: dict[str, int] = field(default_factory=lambda: {"list": 0, "show": 0})
    queries: list[dict[str, str]] = field(default_factory=list)
    url: str = ""
    #: Jobs whose Show always answers 500 (the record cannot be read).
    failing: set[str] = field(default_factory=set)

    @property
    def order(self) -> dict[str, int]:
        return {job_id: i for i, job_id in enumerate(sorted(self.timelines))}

    def state(self, job_id: str) -> tuple[str, float]:
        if self.started is None:  # timelines run from the first read, not from start-up
            self.started = time.monotonic()
        now = time.monotonic() - self.started
        at, state = self.timelines[job_id][0]
        for when, then in self.timelines[job_id]:
            if when <= now:
                at, state = when, then
        return state, at

    def record(self, job_id: str, *, logs: bool) -> dict[str, Any]:
        state, at = self.state(job_id)
        assert self.started is not None
        changed = datetime.fromtimestamp(time.time() - (time.monotonic() - self.started - at), UTC)
        stamp = changed.strftime("%Y-%m-%dT%H:%M:%SZ")
        job: dict[str, Any] = {
            "job_id": job_id,
            "state": state,
            "last_update_time": stamp,
            # One second apart, in id order: List pages by creation time.
            "create_time": f"2026-11-01T{self.order[job_id] // 3600:02d}:"
            f"{self.order[job_id] // 60 % 60:02d}:{self.order[job_id] % 60:02d}Z",
            "batch_name": self.batch.get(job_id, "b0"),
            "tags": [],
        }
        if logs:
            job["operation_logs"] = [
                {
                    "operate_time": "2026-11-01T00:00:00Z",
                    "log_type": "USER_CREATE_JOD",
                    "log_description": "created",
                    "operate_user": "USER",
                },
            ]
            if state.endswith("VERIFY_FAILED"):
                job["operation_logs"].append(
                    {
                        "operate_time": stamp,
                        "log_type": "SYSTEM_VERIFY_FAILED",
                        "log_description": "face not visible in the video",
                        "operate_user": "SYSTEM",
                        "error_code": "MSS.20001",
                    }
                )
        return job

    async def list_jobs(self, request: web.Request) -> web.Response:
        self.requests["list"] += 1
        query = dict(request.query)
        self.queries.append(query)
        ids = sorted(self.timelines)
        if "batch_name" in query:
            ids = [j for j in ids if self.batch.get(j, "b0") == query["batch_name"]]
        jobs = [self.record(j, logs=False) for j in ids]
        if "state" in query:
            jobs = [j for j in jobs if j["state"] in query["state"].split(",")]
        # RFC 3339 in UTC, as batcher sends them: they compare as text.
        since, until = query.get("create_since"), query.get("create_until")
        jobs = [
            j
            for j in jobs
            if (since is None or j["create_time"] >= since)
            and (until is None or j["create_time"] <= until)
        ]
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 10))
        return web.json_response({"count": len(jobs), "jobs": jobs[offset : offset + limit]})

    async def show_job(self, request: web.Request) -> web.Response:
        self.requests["show"] += 1
        job_id = request.match_info["job_id"]
        if job_id in self.failing:
            return web.json_response(
                {"error_code": "MSS.00000004", "error_msg": "Internal Error"}, status=500
            )
        if job_id not in self.timelines:
            return web.json_response(
                {"error_code": "MSS.00000003", "error_msg": "job not found"}, status=404
            )
        return web.json_response(self.record(job_id, logs=True))


@asynccontextmanager
async def job_server(
    timelines: dict[str, Timeline], batch: dict[str, str] | None = None
) -> AsyncIterator[JobServer]:
    server = JobServer(timelines, batch or {})
    app = web.Application()
    base = "/v1/{project}/digital-human-training-manage/user/jobs"
    app.router.add_get(base, server.list_jobs)
    app.router.add_get(base + "/{job_id}", server.show_job)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()
