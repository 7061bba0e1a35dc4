"""List over real HTTP on 127.0.0.1: filters, sorting, paging, the page cap, bad values."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from batcher.send.credentials import AkSkCredentials, TokenCredentials
from batcher.send.signing import AkSkSigner, TokenAuth
from batcher.simulator import LIMIT_MAX, Simulator, rfc3339
from batcher.simulator.listing import BadQuery, parse_query, parse_rfc3339

AK = "SIMTESTAK0000000001"  # the values tests/conftest.py configures
SK = "simulator-test-secret-key-0001"
TOKEN = "simulator-test-iam-token-0001"
PROJECT = "sim-project"
UNTIL = datetime(2026, 11, 20, tzinfo=UTC)
INVALID = {"error_code": "MSS.00000003", "error_msg": "Invalid parameter"}

Params = list[tuple[str, str]]


async def get(
    url: str,
    params: Params | None = None,
    *,
    auth: Any = "sign",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    """GET with AK/SK (or ``auth``); returns (status, parsed JSON body, headers)."""
    if auth == "sign":
        middlewares: tuple[Any, ...] = (AkSkSigner(AkSkCredentials(ak=AK, sk=SK)),)
    else:
        middlewares = () if auth is None else (auth,)
    async with (
        aiohttp.ClientSession(middlewares=middlewares) as session,
        session.get(
            url,
            params=params or [],
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=10),
        ) as response,
    ):
        return response.status, await response.json(content_type=None), response.headers


async def list_jobs(sim: Simulator, params: Params | None = None, **kw: Any) -> dict[str, Any]:
    status, body, headers = await get(sim.list_url(project_id=PROJECT), params, **kw)
    assert status == 200, body
    assert len(headers["X-Request-Id"]) == 32
    assert set(body) == {"count", "jobs"}
    return body  # type: ignore[no-any-return]


async def everything(sim: Simulator, params: Params | None = None) -> list[dict[str, Any]]:
    """Every match, paged at the cap."""
    jobs: list[dict[str, Any]] = []
    while True:
        page = await list_jobs(sim, [*(params or []), ("offset", str(len(jobs))), ("limit", "100")])
        jobs += page["jobs"]
        if len(jobs) >= page["count"]:
            return jobs


@pytest.fixture
async def populated(start_simulator: Any) -> Simulator:
    return await start_simulator(population=400, seed=5, population_until=UNTIL)


def known(sim: Simulator, keep: Callable[[dict[str, Any]], bool] = lambda job: True) -> list[str]:
    """The ids of the project's jobs that ``keep`` selects, worked out here, not by the app."""
    now = sim.clock()
    return sorted(
        job.job_id for job in sim.jobs.in_project(PROJECT) if keep(job.basic_info(now=now))
    )


def ids(jobs: list[dict[str, Any]]) -> list[str]:
    return [job["job_id"] for job in jobs]


# --------------------------------------------------------------------------- paging


async def test_pages_cover_every_job_once_and_count_is_the_total(populated: Simulator) -> None:
    seen: list[str] = []
    for offset in range(0, 420, 37):
        page = await list_jobs(populated, [("offset", str(offset)), ("limit", "37")])
        assert page["count"] == 400
        seen += ids(page["jobs"])
    assert len(seen) == len(set(seen)) == 400
    assert sorted(seen) == known(populated)


async def test_default_page_and_offset_past_the_end(populated: Simulator) -> None:
    first = await list_jobs(populated)
    assert first["count"] == 400 and len(first["jobs"]) == 10
    beyond = await list_jobs(populated, [("offset", "400")])
    assert beyond == {"count": 400, "jobs": []}


async def test_the_cap_is_a_400_not_a_short_page(populated: Simulator) -> None:
    page = await list_jobs(populated, [("limit", str(LIMIT_MAX))])
    assert len(page["jobs"]) == LIMIT_MAX == 100
    status, body, headers = await get(populated.list_url(), [("limit", "101")])
    assert (status, body) == (400, INVALID)
    assert len(headers["X-Request-Id"]) == 32


@pytest.mark.parametrize(
    "params",
    [
        [("limit", "0")],
        [("limit", "-1")],
        [("limit", "ten")],
        [("limit", "1e2")],
        [("offset", "-1")],
        [("offset", "1.5")],
        [("state", "AUTO_VERIFY_FAILED,NOT_A_STATE")],
        [("state", "FILE_UPLOADED")],
        [("sort_key", "name")],
        [("sort_dir", "DESC")],
        [("create_since", "yesterday")],
        [("create_since", "2026-11-20")],
        [("update_until", "2026-11-20T00:00:00")],  # no zone
        [("update_since", "2026-11-20 00:00:00Z")],
        [("is_flexus", "yes")],
        [("query_project_id", "a/b")],
        [("limit", "5"), ("limit", "6")],
    ],
)
async def test_bad_values_are_400(populated: Simulator, params: Params) -> None:
    status, body, _ = await get(populated.list_url(), params)
    assert (status, body) == (400, INVALID)
    assert populated.stats.lists.by_status[400] == 1


async def test_unknown_parameters_are_ignored(populated: Simulator) -> None:
    assert (await list_jobs(populated, [("colour", "blue")]))["count"] == 400


async def test_bad_app_user_id_is_400(populated: Simulator) -> None:
    status, body, _ = await get(populated.list_url(), headers={"X-App-UserId": "has space"})
    assert (status, body) == (400, INVALID)


# --------------------------------------------------------------------------- sorting


def _key(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda job: (parse_rfc3339(job[name]), job["job_id"])


@pytest.mark.parametrize(
    ("sort_key", "field"), [("create_time", "create_time"), ("update_time", "last_update_time")]
)
@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_sorted_by_time(
    populated: Simulator, sort_key: str, field: str, direction: str
) -> None:
    jobs = await everything(populated, [("sort_key", sort_key), ("sort_dir", direction)])
    assert ids(jobs) == ids(sorted(jobs, key=_key(field), reverse=direction == "desc"))
    assert len(set(ids(jobs))) == 400


async def test_default_order_is_create_time_ascending(populated: Simulator) -> None:
    jobs = await everything(populated)
    assert ids(jobs) == ids(sorted(jobs, key=_key("create_time")))


async def test_asset_order(populated: Simulator) -> None:
    jobs = await everything(populated, [("sort_key", "asset_order")])
    assets = [job["asset_id"] for job in jobs]
    without = assets.index(next(a for a in assets if a is not None))
    assert all(a is None for a in assets[:without])
    assert assets[without:] == sorted(assets[without:])


async def test_equal_keys_page_deterministically(start_simulator: Any) -> None:
    same = {"create_time": "2026-11-01T00:00:00Z", "batch_name": "tie"}
    sim = await start_simulator(jobs={f"tie-{n:02d}": same for n in reversed(range(30))})
    for direction in ("asc", "desc"):
        seen: list[str] = []
        for offset in range(0, 30, 7):
            params = [("sort_dir", direction), ("offset", str(offset)), ("limit", "7")]
            seen += ids((await list_jobs(sim, params))["jobs"])
        assert seen == sorted(seen, reverse=direction == "desc") and len(seen) == 30


# --------------------------------------------------------------------------- filters


async def test_states_separated_by_commas(populated: Simulator) -> None:
    wanted = {"AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED"}
    jobs = await everything(populated, [("state", "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED")])
    assert {job["state"] for job in jobs} == wanted
    assert sorted(ids(jobs)) == known(populated, lambda job: job["state"] in wanted)
    assert len(jobs) > 60  # the population leans toward states operators act on


@pytest.mark.parametrize(
    ("name", "value_of"),
    [
        ("batch_name", lambda job: job["batch_name"]),
        ("tag", lambda job: job["tags"][0] if job["tags"] else None),
        ("job_id", lambda job: job["job_id"]),
        ("model_resolution", lambda job: job["model_resolution"]),
        ("train_location", lambda job: job["optional_training_location"][-1]),
    ],
)
async def test_exact_filters(
    populated: Simulator, name: str, value_of: Callable[[dict[str, Any]], Any]
) -> None:
    now = populated.clock()
    infos = [job.basic_info(now=now) for job in populated.jobs.in_project(PROJECT)]
    values = {value_of(info) for info in infos} - {None}
    assert len(values) >= 2
    for value in sorted(values)[:4]:
        jobs = await everything(populated, [(name, value)])
        expected = known(
            populated,
            lambda job, v=value: (
                v in job["tags"]
                if name == "tag"
                else v in job["optional_training_location"]
                if name == "train_location"
                else job[name] == v
            ),
        )
        assert sorted(ids(jobs)) == expected and expected, (name, value)


async def test_chinese_batch_and_tag(populated: Simulator) -> None:
    jobs = await everything(populated, [("batch_name", "华北-批次02"), ("tag", "主播")])
    assert jobs and all(j["batch_name"] == "华北-批次02" and "主播" in j["tags"] for j in jobs)
    assert sorted(ids(jobs)) == known(
        populated, lambda job: job["batch_name"] == "华北-批次02" and "主播" in job["tags"]
    )


async def test_name_matches_a_part(populated: Simulator) -> None:
    jobs = await everything(populated, [("name", "分身-001")])
    assert sorted(ids(jobs)) == known(populated, lambda job: "分身-001" in job["name"])
    assert 1 < len(jobs) < 100


@pytest.mark.parametrize("name", ["is_flexus", "is_live_copy", "is_ondemand_resource"])
@pytest.mark.parametrize("value", ["true", "false", "True"])
async def test_bool_filters(populated: Simulator, name: str, value: str) -> None:
    flag = value.lower() == "true"
    jobs = await everything(populated, [(name, value)])
    assert sorted(ids(jobs)) == known(populated, lambda job: job[name] is flag)
    assert jobs


@pytest.mark.parametrize(
    ("since", "until", "field"),
    [
        ("create_since", "create_until", "create_time"),
        ("update_since", "update_until", "last_update_time"),
    ],
)
async def test_time_ranges_include_their_bounds(
    populated: Simulator, since: str, until: str, field: str
) -> None:
    by_time = sorted(await everything(populated), key=_key(field))
    low, high = by_time[100][field], by_time[300][field]
    jobs = await everything(populated, [(since, low), (until, high)])
    inside = [
        j for j in by_time if parse_rfc3339(low) <= parse_rfc3339(j[field]) <= parse_rfc3339(high)
    ]
    assert sorted(ids(jobs)) == sorted(ids(inside))
    assert by_time[100]["job_id"] in ids(jobs) and by_time[300]["job_id"] in ids(jobs)
    # the same instants written in another zone select the same jobs
    east = [(since, _in_zone(low, 8)), (until, _in_zone(high, 8))]
    assert sorted(ids(await everything(populated, east))) == sorted(ids(jobs))


def _in_zone(value: str, hours: int) -> str:
    moment = parse_rfc3339(value).astimezone(
        datetime.fromisoformat(f"2026-01-01T00:00:00+{hours:02d}:00").tzinfo
    )
    return moment.isoformat(timespec="milliseconds")


async def test_filters_combine(populated: Simulator) -> None:
    params = [
        ("state", "WAIT_FILE_UPLOAD,AUTO_VERIFY_FAILED"),
        ("create_since", rfc3339(UNTIL - timedelta(days=15))),
        ("is_flexus", "false"),
    ]
    jobs = await everything(populated, params)
    assert sorted(ids(jobs)) == known(
        populated,
        lambda job: (
            job["state"] in ("WAIT_FILE_UPLOAD", "AUTO_VERIFY_FAILED")
            and parse_rfc3339(job["create_time"]) >= UNTIL - timedelta(days=15)
            and not job["is_flexus"]
        ),
    )
    assert jobs


async def test_query_project_id(populated: Simulator) -> None:
    assert (await list_jobs(populated, [("query_project_id", PROJECT)]))["count"] == 400
    assert (await list_jobs(populated, [("query_project_id", "another")]))["count"] == 0


# --------------------------------------------------------------------------- what is listed


async def test_only_known_jobs_are_listed(simulator: Simulator) -> None:
    assert await list_jobs(simulator) == {"count": 0, "jobs": []}
    status, _, _ = await get(simulator.show_url("never-seen"))
    assert status == 404
    assert await list_jobs(simulator) == {"count": 0, "jobs": []}  # Show creates nothing
    async with (
        aiohttp.ClientSession(middlewares=(AkSkSigner(AkSkCredentials(ak=AK, sk=SK)),)) as s,
        s.post(
            simulator.command_url("made-by-a-command"), json={"command": "GET_MULTIPART_UPLOADED"}
        ),
    ):
        pass
    listed = await list_jobs(simulator)
    assert listed["count"] == 1
    assert listed["jobs"][0]["job_id"] == "made-by-a-command"
    assert listed["jobs"][0]["state"] == "WAIT_FILE_UPLOAD"


async def test_the_population_is_in_every_project_asked_about(populated: Simulator) -> None:
    for project in ("p-one", "p-two"):
        page = (await get(populated.list_url(project_id=project), [("limit", "100")]))[1]
        assert page["count"] == 400
        assert {job["project_id"] for job in page["jobs"]} == {project}
    one = await get(populated.list_url(project_id="p-one"), [("limit", "5")])
    two = await get(populated.list_url(project_id="p-two"), [("limit", "5")])
    assert ids(one[1]["jobs"]) == ids(two[1]["jobs"])


async def test_answers_are_utf8_json_with_every_basic_field(populated: Simulator) -> None:
    async with (
        aiohttp.ClientSession(middlewares=(AkSkSigner(AkSkCredentials(ak=AK, sk=SK)),)) as s,
        s.get(populated.list_url(), params={"batch_name": "华北-批次02", "limit": "1"}) as r,
    ):
        raw = await r.read()
        assert r.content_type == "application/json" and r.charset == "utf-8"
    assert "华北-批次02".encode() in raw
    job = json.loads(raw)["jobs"][0]
    assert set(job) == {
        "job_id", "name", "state", "asset_id", "project_id", "cover_download_url",
        "last_update_time", "create_time", "contact", "batch_name", "tags", "model_version",
        "matting_type", "model_resolution", "app_user_id", "is_flexus", "is_live_copy",
        "is_fast_flexus", "is_only_human_model", "optional_training_location",
        "is_background_replacement", "is_ondemand_resource",
    }  # fmt: skip
    assert job["create_time"].endswith("Z") and parse_rfc3339(job["create_time"])


# --------------------------------------------------------------------------- the gateway


async def test_list_goes_through_the_gateway(populated: Simulator) -> None:
    assert (await get(populated.list_url(), auth=None))[0] == 401
    wrong = AkSkSigner(AkSkCredentials(ak=AK, sk="not-the-secret"))
    status, body, _ = await get(populated.list_url(), [("state", "A,B")], auth=wrong)
    assert (status, body["error_code"]) == (401, "APIGW.0301")
    token = TokenAuth(TokenCredentials(TOKEN))
    assert (await get(populated.list_url(), auth=token))[0] == 200
    status, _, _ = await get(populated.list_url(), headers={"X-Project-Id": "other"})
    assert status == 403
    assert populated.stats.lists.by_status == {401: 2, 200: 1, 403: 1}
    assert populated.stats.requests == 0 and not populated.stats.by_status


async def test_signed_query_with_commas_colons_and_chinese(populated: Simulator) -> None:
    params = [
        ("state", "AUTO_VERIFY_FAILED,MANUAL_VERIFY_FAILED"),
        ("create_since", "2026-10-01T00:00:00+08:00"),
        ("update_until", "2026-11-20T00:00:00.000Z"),
        ("batch_name", "华北-批次02"),
        ("name", "分身 & more=?/+"),
    ]
    page = await list_jobs(populated, params)
    assert page == {"count": 0, "jobs": []}  # verified (no job has that name), not refused


# --------------------------------------------------------------------------- parsing


def test_parse_query_defaults_and_values() -> None:
    q = parse_query([])
    assert (q.offset, q.limit, q.sort_key, q.descending, q.states) == (
        0,
        10,
        "create_time",
        False,
        None,
    )
    q = parse_query([("state", " AUTO_VERIFYING , ,JOB_PENDING,"), ("sort_dir", "desc")])
    assert q.states == {"AUTO_VERIFYING", "JOB_PENDING"} and q.descending
    assert parse_query([("state", "")]).states is None
    assert parse_rfc3339("2020-07-30T10:43:17.123456789z") == datetime(
        2020, 7, 30, 10, 43, 17, 123456, tzinfo=UTC
    )


def test_bad_query_says_what() -> None:
    with pytest.raises(BadQuery, match="limit must be an integer from 1 to 100"):
        parse_query([("limit", "500")])
    with pytest.raises(BadQuery, match="state 'SUCCEED' is not a job state"):
        parse_query([("state", "JOB_FINISH,SUCCEED")])
    with pytest.raises(BadQuery, match="given more than once"):
        parse_query([("tag", "a"), ("tag", "b")])
