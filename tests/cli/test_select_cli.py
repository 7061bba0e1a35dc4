"""``batcher select`` against a List server of our own: paging, filters, the manifest."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import shlex
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from support import PROJECT, aksk_env, batcher, batcher_in_thread, clean_env

STATES = ("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED", "WAIT_FILE_UPLOAD")


class ListServer:
    """Jobs j0000..jN; answers List with at most ``cap`` per page, whatever is asked."""

    def __init__(
        self, jobs: int, *, cap: int = 100, ignore_offset: bool = False,
        ignore_since: bool = False, newest_first: bool = False, ignore_filters: bool = False,
        ties: int = 1,
        extra_count: int = 0, max_limit: int | None = None, fixed_count: object = None,
        count_of_page: bool = False,
    ) -> None:  # fmt: skip
        self.jobs = [self.job(i - i % ties) | {"job_id": f"j{i:04d}"} for i in range(jobs)]
        self.cap = cap
        self.ignore_offset = ignore_offset  # a server that does not page by offset
        self.ignore_since = ignore_since  # ... nor by create_since
        self.newest_first = newest_first  # a server that ignores sort_dir
        # A server that applies no filter but the one the walk pages by (one that ignores
        # create_since too is not the API: an error, see test_a_server_that_does_not_page...).
        self.ignore_filters = ignore_filters
        # Jobs created in the same second come in another order on every request (a
        # database sorting on create_time alone); count says more than it lists.
        self.shuffle_ties = ties > 1
        self.extra_count = extra_count
        self.max_limit = max_limit  # a larger limit is a 400, not a short page
        self.fixed_count = fixed_count  # a count that says this, whatever matches
        self.count_of_page = count_of_page  # a count no larger than the page it comes with
        self.queries: list[dict[str, str]] = []
        self.on_page: Callable[[int], None] | None = None

    @staticmethod
    def job(i: int) -> dict[str, str]:
        created = f"2026-11-{1 + i // 1440:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00Z"
        return {
            "job_id": f"j{i:04d}",
            "state": STATES[i % 3],
            "batch_name": f"b{i % 2}",
            "create_time": created,
            "last_update_time": f"2026-11-30T{i % 24:02d}:{i * 37 % 60:02d}:00Z",
            "model_resolution": "1080" if i % 4 < 2 else "4K",
            "is_flexus": i % 5 == 0,
        }

    async def handle(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.queries.append(query)
        if "Authorization" not in request.headers:
            return web.json_response({"error_code": "APIGW.0305"}, status=401)
        wanted = set() if self.ignore_filters else set(query.get("state", "").split(",")) - {""}
        matches = [
            job for job in self.jobs
            if (not wanted or job["state"] in wanted)
            and (self.ignore_filters or query.get("batch_name") in (None, job["batch_name"]))
            and (self.ignore_since or job["create_time"] >= query.get("create_since", ""))
        ]  # fmt: skip
        if self.newest_first:
            matches.reverse()
        if self.shuffle_ties:
            rng = random.Random(len(self.queries))
            matches.sort(key=lambda job: (job["create_time"], rng.random()))
        if self.max_limit is not None and int(query["limit"]) > self.max_limit:
            body = {"error_code": "MSS.00000003", "error_msg": "Invalid parameter"}
            return web.json_response(body, status=400)
        if not matches and self.extra_count == 0 and self.max_limit is not None:
            return web.json_response({"count": 0})  # the empty list left out
        offset, limit = int(query["offset"]), min(int(query["limit"]), self.cap)
        offset = 0 if self.ignore_offset else offset
        page = matches[offset : offset + limit]
        if self.on_page is not None:
            self.on_page(len(self.queries))
        count = (
            max(0, len(matches) + self.extra_count)
            if self.fixed_count is None
            else self.fixed_count
        )
        count = min(count, len(page)) if self.count_of_page else count
        return web.json_response({"count": count, "jobs": page})


@pytest.fixture
async def list_server() -> AsyncIterator[Callable[..., Any]]:
    runners: list[web.AppRunner] = []

    async def start(jobs: int, **kwargs: Any) -> tuple[ListServer, str]:
        server = ListServer(jobs, **kwargs)
        app = web.Application()
        app.router.add_get("/v1/{project}/digital-human-training-manage/user/jobs", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return server, f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def where(url: str) -> list[str]:
    return ["--endpoint", url, "--project-id", PROJECT, "--rate", "0", "--no-progress"]


async def select_into(out: Path, url: str, capsys: Any, *flags: str) -> Any:
    """``batcher select --command SUBMITVERIFYING FLAGS --output OUT`` against ``url``."""
    args = ["select", "--command", "SUBMITVERIFYING", *flags, "--output", str(out), *where(url)]
    return await batcher_in_thread(args, aksk_env(), capsys)


def job_ids(out: Path) -> list[str]:
    """The job ids of a CSV manifest written by select, in order."""
    return [row["job_id"] for row in csv.DictReader(io.StringIO(out.read_text()))]


async def test_every_match_once_in_order_across_capped_pages(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    server, url = await list_server(950, cap=40)  # the server sends fewer than asked
    out = tmp_path / "m.csv"
    result = await batcher_in_thread(
        ["select", "--command", "CONFIRM_REPAIR", "--command", "SUBMITVERIFYING",
         "--state", "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED", "--batch-name", "b1",
         "--output", str(out), *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    expected = [
        job["job_id"] for job in server.jobs
        if job["state"] != "WAIT_FILE_UPLOAD" and job["batch_name"] == "b1"
    ]  # fmt: skip
    assert [row["job_id"] for row in rows[::2]] == expected
    assert [row["command"] for row in rows[:4]] == ["CONFIRM_REPAIR", "SUBMITVERIFYING"] * 2
    assert all(row["project_id"] == PROJECT for row in rows)
    assert len(server.queries) <= len(expected) // 39 + 2  # one job of overlap, no re-reads
    first = server.queries[0]
    assert first["state"] == "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED"
    assert first["sort_key"] == "create_time" and first["sort_dir"] == "asc"
    assert f"{len(expected)} jobs matched" in result.stderr
    assert "AUTO_VERIFY_FAILED" in result.stderr and "MANUAL_VERIFY_FAILED" in result.stderr


async def test_jobs_leaving_the_selection_while_paging_do_not_hide_others(
    list_server: Any, capsys: Any
) -> None:
    server, url = await list_server(300, cap=50)

    def a_job_is_repaired(page: int) -> None:
        if page == 3:  # after two pages, five jobs already listed leave the selection
            for job in server.jobs[:15]:
                if job["state"] == "AUTO_VERIFY_FAILED":
                    job["state"] = "WAIT_FILE_UPLOAD"

    server.on_page = a_job_is_repaired
    before = [job["job_id"] for job in server.jobs if job["state"] == "AUTO_VERIFY_FAILED"]
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--state", "AUTO_VERIFY_FAILED", *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 0, result.output
    listed = [row["job_id"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert listed == before  # every job once, none skipped by the shift


async def test_jobs_leaving_and_arriving_between_pages_hide_none(
    list_server: Any, capsys: Any
) -> None:
    """The count alone cannot tell: five listed jobs leave the selection while five new ones
    are created, so every later job moves five places forward at the same count."""
    server, url = await list_server(600, cap=50)

    def churn(page: int) -> None:
        if page == 3:
            for job in [j for j in server.jobs if j["state"] == "AUTO_VERIFY_FAILED"][:5]:
                job["state"] = "WAIT_FILE_UPLOAD"
            for i in range(600, 615):  # every third one matches
                server.jobs.append(ListServer.job(i))

    server.on_page = churn
    before = [job["job_id"] for job in server.jobs if job["state"] == "AUTO_VERIFY_FAILED"]
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--state", "AUTO_VERIFY_FAILED", *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 0, result.output
    listed = [row["job_id"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert len(listed) == len(set(listed))  # once each
    assert set(before) <= set(listed)  # every job that matched all along
    arrived = {j["job_id"] for j in server.jobs[600:] if j["state"] == "AUTO_VERIFY_FAILED"}
    assert set(listed) - set(before) == arrived  # met at the end of the paging


async def test_a_server_that_sends_one_job_per_page_is_paged_through(
    list_server: Any, capsys: Any
) -> None:
    server, url = await list_server(7, cap=1)
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", *where(url)], aksk_env(), capsys
    )
    assert result.code == 0, result.output
    listed = [row["job_id"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert listed == [job["job_id"] for job in server.jobs]
    # No runaway: a page of one job is always all in one second, read by offset within it
    # once, then from the next second on: three pages a job, and one to see the end (the
    # count does not end the walk).
    assert len(server.queries) <= 3 * 7 + 1


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ({"ignore_offset": True, "ignore_since": True}, "create_since with jobs created before"),
        ({"ignore_offset": True, "ties": 150}, "does not seem to page by offset"),
    ],
)
async def test_a_server_that_does_not_page_is_an_error_not_a_short_manifest(
    list_server: Any, tmp_path: Path, capsys: Any, server: dict[str, Any], message: str
) -> None:
    """Paging goes by create_since, and by offset only within a second holding more jobs
    than a page: a server that honours neither cannot be listed whole."""
    _, url = await list_server(450, **server)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 1 and message in result.stderr, result.output
    assert not out.exists() and "Traceback" not in result.output


async def test_paging_goes_by_creation_time_so_offset_is_not_needed(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    server, url = await list_server(450, ignore_offset=True)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 0, result.output
    assert job_ids(out) == [job["job_id"] for job in server.jobs]
    later = server.queries[1:]
    assert later and all(q["offset"] == "0" and "create_since" in q for q in later)
    # Each page starts at the second the one before ended in: every one a later second.
    starts = [q["create_since"] for q in later]
    assert starts == sorted(set(starts))


async def test_jobs_of_one_second_in_another_order_on_every_page_are_all_listed(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    """Ties in create_time come back shuffled on each request, so a page boundary inside a
    tie can leave jobs out of both pages: the count tells, and the listing goes round again."""
    server, url = await list_server(1200, ties=20)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 0, result.output
    listed = job_ids(out)
    assert sorted(listed) == [job["job_id"] for job in server.jobs]  # each once, none missing
    assert "1,200 jobs matched" in result.stderr
    # Each page ending inside a group of ties starts the next on the group: no second pass.
    assert "select_second_again" not in result.stderr and len(server.queries) <= 30


async def test_a_server_that_refuses_our_page_size_is_asked_for_smaller_pages(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    server, url = await list_server(130, max_limit=30)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 0, result.output
    listed = job_ids(out)
    assert listed == [job["job_id"] for job in server.jobs]
    assert [q["limit"] for q in server.queries[:3]] == ["100", "50", "25"]
    assert "select_page_size_refused" in result.stderr


async def test_an_empty_selection_without_a_jobs_list_is_empty(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    _, url = await list_server(0, max_limit=100)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 0, result.output
    assert len(out.read_text().splitlines()) == 1  # the header, no entry
    assert "0 jobs matched" in result.stderr


async def test_ties_in_a_group_larger_than_a_page_are_found_by_another_pass(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    server, url = await list_server(400, ties=150)  # pages of 100 inside one group
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 0, result.output
    listed = job_ids(out)
    assert sorted(listed) == [job["job_id"] for job in server.jobs]
    created = {job["job_id"]: job["create_time"] for job in server.jobs}
    assert [created[i] for i in listed] == sorted(created.values())  # in creation order


async def test_ties_shuffled_while_listed_jobs_leave_hide_none(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    """Departed jobs still count as seen, so a count check alone cannot catch a job hidden
    by shuffled ties in the same listing: the page boundary inside the group must."""
    server, url = await list_server(40, cap=20)
    for job in server.jobs:
        job["state"] = "AUTO_VERIFY_FAILED"
    for job in server.jobs[18:21]:  # j0018-j0020 created in the same second
        job["create_time"] = server.jobs[18]["create_time"]

    def shuffle_then_leave(page: int) -> None:
        jobs = server.jobs
        if page == 1:  # the tie comes in another order from the second page on
            jobs[18], jobs[20] = jobs[20], jobs[18]
        if page == 2:  # once listed, five jobs leave the selection
            for job in jobs[30:35]:
                job["state"] = "WAIT_FILE_UPLOAD"

    server.on_page = shuffle_then_leave
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys, "--state", "AUTO_VERIFY_FAILED")
    assert result.code == 0, result.output
    listed = job_ids(out)
    stayed = {f"j{i:04d}" for i in range(40) if not 30 <= i < 35}
    assert stayed <= set(listed) and len(listed) == len(set(listed))  # j0020 too, once


async def test_a_group_larger_than_a_page_while_listed_jobs_leave_hides_none(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    """Departures keep the count check from noticing the group's hidden jobs: a page that
    holds nothing but one group makes select read the pages again anyway."""
    server, url = await list_server(160, ties=1)
    for job in server.jobs:
        job["state"] = "AUTO_VERIFY_FAILED"
    for job in server.jobs[10:]:  # j0010-j0159 created in the same second
        job["create_time"] = server.jobs[10]["create_time"]
    server.shuffle_ties = True

    def leave(page: int) -> None:
        if page == 1:
            for job in server.jobs[:5]:
                job["state"] = "WAIT_FILE_UPLOAD"

    server.on_page = leave
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys, "--state", "AUTO_VERIFY_FAILED")
    assert result.code == 0, result.output
    listed = job_ids(out)
    assert {f"j{i:04d}" for i in range(10, 160)} <= set(listed)
    assert len(listed) == len(set(listed))


async def serve(handle: Callable[[web.Request], Any]) -> web.AppRunner:
    """A List server on 127.0.0.1 answering with ``handle`` (``cleanup()`` stops it)."""
    app = web.Application()
    app.router.add_get("/v1/{project}/digital-human-training-manage/user/jobs", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_a_second_larger_than_a_page_that_keeps_changing_is_an_error(
    tmp_path: Path, capsys: Any
) -> None:
    """150 jobs and x created in one second, in any order (ties), and one job listed before
    leaving on every request: x always sits one past the page asked for, so no pass meets
    it, and passes that find nothing new prove nothing while the jobs change."""
    second = "2026-11-20T10:00:00Z"
    present = [f"j{i:04d}" for i in range(150)]
    met: list[str] = []  # listed, in order, and still there

    async def handle(request: web.Request) -> web.Response:
        offset, limit = int(request.query["offset"]), int(request.query["limit"])
        if met:
            present.remove(met.pop(0))  # a job met before leaves the selection
        order = present[:] if request.query.get("create_since", second) <= second else []
        order.insert(offset - 1 if offset else min(limit, len(order)), "x") if order else None
        page = order[offset : offset + limit]
        met.extend(job for job in page if job in present and job not in met)
        jobs = [{"job_id": job, "state": "AUTO_VERIFY_FAILED", "create_time": second}
                for job in page]  # fmt: skip
        return web.json_response({"count": len(order), "jobs": jobs})

    runner = await serve(handle)
    try:
        out = tmp_path / "m.csv"
        result = await select_into(out, f"http://127.0.0.1:{runner.addresses[0][1]}", capsys)
    finally:
        await runner.cleanup()
    assert result.code == 1, result.output
    assert "narrow the selection" in result.stderr and not out.exists()


@pytest.mark.parametrize(("jobs", "cap"), [(1000, 7), (60, 1)])
async def test_a_server_with_small_pages_is_listed_whole(
    list_server: Any, tmp_path: Path, capsys: Any, jobs: int, cap: int
) -> None:
    """The pages a pass may read are counted at the size the server really sends."""
    server, url = await list_server(jobs, cap=cap)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 0, result.output
    assert job_ids(out) == [job["job_id"] for job in server.jobs]


async def test_a_selection_that_grows_faster_than_it_is_listed_is_an_error(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    server, url = await list_server(300)

    def grow(page: int) -> None:
        start = len(server.jobs)
        server.jobs += [ListServer.job(i) for i in range(start, start + 150)]

    server.on_page = grow
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 1, result.output
    assert "grew faster than it could be listed" in result.stderr and not out.exists()
    assert len(server.queries) < 200


@pytest.mark.parametrize("count", [25, True])
async def test_a_count_below_the_jobs_listed_does_not_end_the_listing(
    list_server: Any, tmp_path: Path, capsys: Any, count: object
) -> None:
    server, url = await list_server(40, cap=20, fixed_count=count)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    if count is True:  # not a number: not the API's shape
        assert result.code == 1 and not out.exists(), result.output
        return
    assert result.code == 0, result.output
    listed = job_ids(out)
    assert listed == [job["job_id"] for job in server.jobs]


@pytest.mark.parametrize(
    ("jobs", "low"),
    [(101, {"extra_count": -1}),  # counted after a job left, the page built before
     (600, {"extra_count": -150}), (600, {"count_of_page": True})],
)  # fmt: skip
async def test_a_count_at_or_below_a_full_page_does_not_end_the_listing(
    list_server: Any, tmp_path: Path, capsys: Any, jobs: int, low: dict[str, Any]
) -> None:
    """The count is a hint: a full page is followed by another read, until one comes back
    short or empty."""
    server, url = await list_server(jobs, **low)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 0, result.output
    assert job_ids(out) == [job["job_id"] for job in server.jobs]


async def test_a_count_the_listing_never_reaches_is_an_error_not_a_short_manifest(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    server, url = await list_server(250, extra_count=3)
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 1, result.output
    assert "253 jobs match" in result.stderr and "250 were listed" in result.stderr
    assert not out.exists() and "Traceback" not in result.output
    assert len(server.queries) < 40  # a few passes, then it says so


async def test_a_server_that_ignores_the_sort_order_is_an_error_not_a_short_manifest(
    list_server: Any, capsys: Any
) -> None:
    """Newest first, whatever was asked: creation times are the walk's key, so it cannot go
    on, and says so."""
    _, url = await list_server(300, newest_first=True)
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--state", "AUTO_VERIFY_FAILED", *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 1 and "did not sort the jobs by create_time" in result.stderr
    assert result.stdout == "" and "Traceback" not in result.output


async def test_steady_churn_costs_a_few_pages_not_a_reread_per_page(
    list_server: Any, capsys: Any
) -> None:
    server, url = await list_server(2000)

    def one_leaves_per_page(page: int) -> None:
        listed = [job for job in server.jobs if job["state"] == "AUTO_VERIFY_FAILED"]
        if page > 1 and len(listed) > 10:
            listed[0]["state"] = "WAIT_FILE_UPLOAD"

    server.on_page = one_leaves_per_page
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--state", "AUTO_VERIFY_FAILED", *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 0, result.output
    alive = {job["job_id"] for job in server.jobs if job["state"] == "AUTO_VERIFY_FAILED"}
    listed = {row["job_id"] for row in csv.DictReader(io.StringIO(result.stdout))}
    assert alive <= listed
    assert len(server.queries) <= 2 * (667 // 99 + 1)  # without churn: 7 pages


async def test_jobs_a_server_lists_against_the_filters_are_left_out(
    list_server: Any, capsys: Any
) -> None:
    """A List that ignored its filters must not turn `select | run` into a command for
    every job of the project."""
    server, url = await list_server(90, ignore_filters=True)
    result = await batcher_in_thread(
        ["select", "--command", "DELETE_JOB_VIDEO", "--state", "AUTO_VERIFY_FAILED",
         "--batch-name", "b1", "--created-since", "2026-11-01T00:30:00Z", "--log-format",
         "json", *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 0, result.output
    listed = [row["job_id"] for row in csv.DictReader(io.StringIO(result.stdout))]
    expected = [
        job["job_id"] for job in server.jobs
        if job["state"] == "AUTO_VERIFY_FAILED" and job["batch_name"] == "b1"
        and job["create_time"] >= "2026-11-01T00:30:00Z"
    ]  # fmt: skip
    assert listed == expected and 0 < len(expected) < 90
    warning = next(
        json.loads(line) for line in result.stderr.splitlines()
        if '"select_jobs_not_matching"' in line
    )  # fmt: skip
    since = [job for job in server.jobs if job["create_time"] >= "2026-11-01T00:30:00Z"]
    assert warning["jobs"] == len(since) - len(expected) and warning["level"] == "warning"


async def test_a_selection_that_fails_half_way_writes_nothing_to_stdout(
    list_server: Any, capsys: Any
) -> None:
    server, url = await list_server(500, cap=50)

    def fail_from_page_4(page: int) -> None:
        if page >= 4:
            server.jobs = "broken"  # type: ignore[assignment]

    server.on_page = fail_from_page_4
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--max-attempts", "1", *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code != 0 and "Traceback" not in result.output
    assert result.stdout == ""  # `| batcher run -` gets no half manifest


async def test_yaml_manifest_runs_as_it_is(list_server: Any, tmp_path: Path, capsys: Any) -> None:
    _, url = await list_server(7)
    out = tmp_path / "m.yaml"
    result = await batcher_in_thread(
        ["select", "--command", "GET_MULTIPART_UPLOADED", "--output", str(out), *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 0, result.output
    document = yaml.safe_load(out.read_text())
    assert document["project_id"] == PROJECT and len(document["jobs"]) == 7
    again = await batcher_in_thread(
        ["select", "--command", "GET_MULTIPART_UPLOADED", "--output", str(out), *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert again.code == 2 and "--force" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state", "AUTO_VERIFY_FAILD"], "did you mean 'AUTO_VERIFY_FAILED'"),
        (["--created-since", "yesterday"], "RFC 3339"),
        (["--command", "SUBMITVERIFY"], "did you mean 'SUBMITVERIFYING'"),
        # An empty value would be no filter: every job of the project selected.
        (["--job-id", ""], "--job-id is empty"),
        (["--state", ""], "--state: an empty state"),
        (["--state", "AUTO_VERIFY_FAILED,,WAIT_FILE_UPLOAD"], "--state: an empty state"),
        (["--created-since", "2026-11-02T00:00:00Z", "--created-until", "2026-11-01T00:00:00Z"],
         "is later than --created-until"),
        (["--updated-since", "2026-11-02T00:00:00Z", "--updated-until", "2026-11-01T00:00:00Z"],
         "is later than --updated-until"),
    ],
)  # fmt: skip
async def test_bad_filters_are_refused_before_anything_is_sent(
    list_server: Any, capsys: Any, args: list[str], message: str
) -> None:
    server, url = await list_server(5)
    command = [] if "--command" in args else ["--command", "SUBMITVERIFYING"]
    result = await batcher_in_thread(["select", *command, *args, *where(url)], aksk_env(), capsys)
    assert result.code == 2 and message in result.stderr
    assert server.queries == []


async def test_select_pipes_into_run(
    list_server: Any, tmp_path: Path, start_simulator: Any
) -> None:
    _, url = await list_server(12)
    sim = await start_simulator()
    listing = await batcher(
        ["select", "--command", "GET_MULTIPART_UPLOADED", *where(url)], aksk_env()
    )
    assert listing.code == 0, listing.output
    report = tmp_path / "r.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "batcher", "run", "-", "--report", str(report),
        "--endpoint", sim.url, "--rate", "0", "--no-progress",
        env=aksk_env(), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate(listing.stdout.encode())
    assert process.returncode == 0, err.decode()
    assert sim.stats.requests == 12  # the project id came with the manifest


async def test_a_spool_that_cannot_spill_says_so_and_writes_nothing(
    list_server: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import tempfile

    from batcher.select import writer

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer, "_SPOOL_IN_MEMORY", 64)  # spill at once
    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    _, url = await list_server(50)
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", *where(url)], aksk_env(), capsys
    )
    assert result.code == 2 and "No space left on device" in result.stderr, result.output
    assert "TMPDIR" in result.stderr and result.stdout == ""
    assert "Traceback" not in result.output


async def test_select_lists_every_missing_setting_at_once(tmp_path: Path) -> None:
    result = await batcher(
        ["select", "--command", "SUBMITVERIFY", "--state", "AUTO_VERIFY_FAILD"],
        clean_env(HOME=str(tmp_path)),
    )
    assert result.code == 2, result.output
    for problem in ("did you mean 'SUBMITVERIFYING'", "did you mean 'AUTO_VERIFY_FAILED'",
                    "no credentials", "no project id", "region"):  # fmt: skip
        assert problem in result.stderr, problem


async def test_json_logs_keep_stderr_json_and_console_says_the_next_step(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    _, url = await list_server(30)
    out = tmp_path / "m.csv"
    args = ["select", "--command", "SUBMITVERIFYING", "--output", str(out), *where(url)]
    as_json = await batcher_in_thread([*args, "--log-format", "json"], aksk_env(), capsys)
    assert as_json.code == 0, as_json.output
    events = [json.loads(line) for line in as_json.stderr.splitlines()]  # JSON lines only
    (finished,) = [event for event in events if event["event"] == "select_finished"]
    assert finished["jobs"] == 30 and finished["output"] == str(out)
    assert finished["by_state"] == {state: 10 for state in STATES}
    out.unlink()
    plain = await batcher_in_thread([*args, "--log-format", "console"], aksk_env(), capsys)
    assert plain.code == 0, plain.output
    assert "30 jobs matched" in plain.stderr
    assert f"next: batcher run {out} --report {tmp_path / 'm.report.jsonl'}" in plain.stderr
    # Copied as printed, it goes where select went (not to $HUAWEICLOUD_SDK_REGION's).
    (step,) = [line for line in plain.stderr.splitlines() if line.startswith("next:")]
    assert f"--endpoint {url} " in step and step.endswith("--dry-run   (then without --dry-run)")


@pytest.mark.parametrize(("seed", "jobs", "cap", "largest", "leave"),
                         [(11, 150, 100, 120, 0.03), (36, 150, 10, 3, 0.01),
                          (58, 400, 25, 12, 0.03), (7, 300, 20, 60, 0.02),
                          (9, 300, 20, 19, 0.05)])  # fmt: skip
async def test_a_churning_selection_with_shuffled_ties_hides_no_job_that_stayed(
    tmp_path: Path, capsys: Any, seed: int, jobs: int, cap: int, largest: int, leave: float
) -> None:
    """A reviewer's fuzzed server: groups of same-second jobs in a new order on every
    request, and 1-3% of the jobs leaving the selection on every request. Jobs that left
    before a page can move a group's unseen members back past its start: the pages are read
    again, and every job that stayed in the selection is listed, once; or, for a group
    larger than a page that never stops changing, select says it cannot prove it (exit 1)."""
    rng = random.Random(seed)
    times: list[int] = []
    second = 0
    while len(times) < jobs:
        times += [second] * rng.randint(1, largest)
        second += 1
    times = times[:jobs]
    present, stayed = set(range(jobs)), set(range(jobs))

    def created(i: int) -> str:
        return f"2026-11-20T10:{times[i] // 60:02d}:{times[i] % 60:02d}Z"

    async def handle(request: web.Request) -> web.Response:
        offset, limit = int(request.query["offset"]), min(int(request.query["limit"]), cap)
        for i in list(present):
            if rng.random() < leave:
                present.discard(i)
                stayed.discard(i)
        since = request.query.get("create_since", "")
        order = sorted(
            (i for i in present if created(i) >= since), key=lambda i: (times[i], rng.random())
        )
        page = [
            {"job_id": f"j{i:05d}", "state": "AUTO_VERIFY_FAILED", "create_time": created(i)}
            for i in order[offset : offset + limit]
        ]
        return web.json_response({"count": len(order), "jobs": page})

    app = web.Application()
    app.router.add_get("/v1/{project}/digital-human-training-manage/user/jobs", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        out = tmp_path / "m.csv"
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        result = await select_into(out, url, capsys)
    finally:
        await runner.cleanup()
    if max(times.count(t) for t in times) > cap and result.code == 1:
        # A group larger than a page, changing on every request: not provably listed whole.
        assert "narrow the selection" in result.stderr and not out.exists()
        return
    assert result.code == 0, result.output
    listed = job_ids(out)
    assert {f"j{i:05d}" for i in stayed} <= set(listed) and len(listed) == len(set(listed))


async def test_every_list_filter_is_a_flag_sent_as_the_api_names_it_and_rechecked(
    list_server: Any, capsys: Any
) -> None:
    """The server here applies none of these: the re-check keeps only the jobs that meet
    the filters a listed job carries the field of."""
    server, url = await list_server(60)
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--model-resolution", "4K",
         "--is-flexus", "FALSE", "--is-live-copy", "true", "--is-ondemand-resource", "false",
         "--train-location", "cn", "--query-project-id", "tenant-1", "--job-id", "j0002",
         *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 0, result.output
    first = server.queries[0]
    assert {key: first[key] for key in first if key not in ("offset", "limit")} == {
        "model_resolution": "4K", "is_flexus": "false", "is_live_copy": "true",
        "is_ondemand_resource": "false", "train_location": "cn",
        "query_project_id": "tenant-1", "job_id": "j0002",
        "sort_key": "create_time", "sort_dir": "asc",
    }  # fmt: skip
    # The listed jobs carry no is_live_copy / is_ondemand_resource: none is admitted.
    assert list(csv.DictReader(io.StringIO(result.stdout))) == []
    again = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--model-resolution", "4K",
         "--is-flexus", "false", *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    listed = [row["job_id"] for row in csv.DictReader(io.StringIO(again.stdout))]
    expected = [
        job["job_id"] for job in server.jobs
        if job["model_resolution"] == "4K" and job["is_flexus"] is False
    ]  # fmt: skip
    assert listed == expected and 0 < len(expected) < 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--is-flexus", "yes"], "--is-flexus"),
        (["--sort-key", "asset_order"], "asset_order"),
        (["--sort-dir", "down"], "--sort-dir"),
    ],
)
async def test_bad_filter_values_and_orders_are_refused_before_anything_is_sent(
    list_server: Any, capsys: Any, args: list[str], message: str
) -> None:
    server, url = await list_server(5)
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", *args, *where(url)], aksk_env(), capsys
    )
    assert result.code == 2 and message in result.stderr, result.output
    assert server.queries == [] and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("order", "key"),
    [(["--sort-key", "update_time", "--sort-dir", "desc"], "last_update_time"),
     (["--sort-key", "update_time"], "last_update_time"),
     (["--sort-dir", "desc"], "create_time")],
)  # fmt: skip
async def test_another_order_is_the_manifests_after_listing_by_creation_time(
    list_server: Any, capsys: Any, order: list[str], key: str
) -> None:
    server, url = await list_server(250, cap=40)
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", *order, *where(url)], aksk_env(), capsys
    )
    assert result.code == 0, result.output
    listed = [row["job_id"] for row in csv.DictReader(io.StringIO(result.stdout))]
    by_id = {job["job_id"]: job for job in server.jobs}
    descending = "desc" in order
    expected = sorted(server.jobs, key=lambda job: job[key], reverse=descending)
    assert [by_id[i][key] for i in listed] == [job[key] for job in expected]
    assert sorted(listed) == sorted(by_id)
    assert all(q["sort_key"] == "create_time" and q["sort_dir"] == "asc" for q in server.queries)


async def test_a_created_since_given_intersects_the_walk(list_server: Any, capsys: Any) -> None:
    server, url = await list_server(300, cap=40)
    since = "2026-11-01T02:00:00Z"
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--created-since", since, *where(url)],
        aksk_env(), capsys,
    )  # fmt: skip
    assert result.code == 0, result.output
    listed = [row["job_id"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert listed == [job["job_id"] for job in server.jobs if job["create_time"] >= since]
    assert server.queries[0]["create_since"] == since
    assert all(q["create_since"] >= since for q in server.queries)


async def test_the_next_step_is_aimed_where_select_listed(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    _, url = await list_server(3)
    out = tmp_path / "a b.csv"
    to_file = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--output", str(out), "--region",
         "cn-east-3", *where(url), "--log-format", "console"],
        aksk_env(), capsys,
    )  # fmt: skip
    assert to_file.code == 0, to_file.output
    report = shlex.quote(str(tmp_path / "a b.report.jsonl"))
    assert (
        f"next: batcher run {shlex.quote(str(out))} --report {report} --endpoint {url} "
        f"--region cn-east-3 --project-id {PROJECT} --dry-run"
    ) in to_file.stderr
    to_stdout = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", "--state", "MANUAL_VERIFY_FAILED",
         "--is-flexus", "false", *where(url), "--log-format", "console"],
        aksk_env(), capsys,
    )  # fmt: skip
    assert to_stdout.code == 0, to_stdout.output
    (hint,) = [line for line in to_stdout.stderr.splitlines() if line.startswith("next: ")]
    select, run = hint.removeprefix("next: ").split(" | ")
    assert shlex.split(select) == [
        "batcher", "select", "--command", "SUBMITVERIFYING", "--state", "MANUAL_VERIFY_FAILED",
        "--is-flexus", "false", "--endpoint", url, "--project-id", PROJECT,
    ]  # fmt: skip
    assert shlex.split(run)[:3] == ["batcher", "run", "-"] and f"--endpoint {url}" in run


async def test_a_job_without_a_zoned_create_time_stops_the_walk_and_quotes_no_personal_data(
    list_server: Any, capsys: Any
) -> None:
    """A time without its zone would be read in some zone or other, and the walk started
    from the wrong hour; the job's contact and URLs are not the message's to quote."""
    server, url = await list_server(20)
    server.jobs[5] |= {"create_time": "2026-11-01T00:05:00", "contact": "13800000000"}
    result = await batcher_in_thread(
        ["select", "--command", "SUBMITVERIFYING", *where(url)], aksk_env(), capsys
    )
    assert result.code == 1 and "j0005" in result.stderr and "create_time" in result.stderr
    assert "13800000000" not in result.output and result.stdout == ""


@pytest.mark.slow  # two processes
async def test_against_the_simulator_every_filter_and_order_holds(start_simulator: Any) -> None:
    """Real HTTP, a real batcher process, the simulator's own List (which applies every
    filter): the manifest is exactly the jobs it holds that match, in the order asked."""
    from datetime import UTC, datetime

    sim = await start_simulator(
        population=400, seed=5, population_until=datetime(2026, 11, 20, tzinfo=UTC)
    )
    now = sim.clock()
    jobs = [job.basic_info(now=now) for job in sim.jobs.in_project(PROJECT)]
    failed = ("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED")
    chosen = [job for job in jobs if job["state"] in failed and job["is_flexus"] is False]
    chosen.sort(key=lambda job: job["last_update_time"], reverse=True)
    result = await batcher(
        ["select", "--command", "SUBMITVERIFYING", "--state", ",".join(failed),
         "--is-flexus", "false", "--sort-key", "update_time", "--sort-dir", "desc",
         "--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0", "--no-progress"],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 0, result.output
    listed = [row["job_id"] for row in csv.DictReader(io.StringIO(result.stdout))]
    updated = {job["job_id"]: job["last_update_time"] for job in jobs}
    assert sorted(listed) == sorted(job["job_id"] for job in chosen) and len(listed) > 10
    assert [updated[i] for i in listed] == [job["last_update_time"] for job in chosen]


async def test_a_page_size_refused_half_way_is_no_sign_of_the_end(
    list_server: Any, tmp_path: Path, capsys: Any
) -> None:
    """Pages shorter than the ones before, because smaller ones were asked for after a 400,
    do not end the listing."""
    server, url = await list_server(400)

    def smaller_from_page_3(page: int) -> None:
        if page == 3:
            server.max_limit = 30

    server.on_page = smaller_from_page_3
    out = tmp_path / "m.csv"
    result = await select_into(out, url, capsys)
    assert result.code == 0, result.output
    assert job_ids(out) == [job["job_id"] for job in server.jobs]
