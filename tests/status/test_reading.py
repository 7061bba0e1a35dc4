"""Reading job states (Show, List) and which states a wanted one can follow."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from batcher.send.client import MetaStudioClient
from batcher.send.limiter import RateLimiter
from batcher.send.reads import Pacer
from batcher.send.retry import RetryPolicy
from batcher.status.fetch import NOT_FOUND, StateReader, listing_covers
from batcher.status.flows import RESTING, cannot_follow

BASE = URL("https://metastudio.cn-north-4.myhuaweicloud.com")
JOBS = "/v1/p1/digital-human-training-manage/user/jobs"


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer`` argument
    (pnuckowski/aioresponses#289), as in tests/send/test_client.py."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class _Mocked(aioresponses):
    def add(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with _Mocked() as m:
        yield m


async def _reader(session: aiohttp.ClientSession) -> StateReader:
    client = MetaStudioClient(session, endpoint=BASE, project_id="p1", timeout=5)
    return StateReader(client, Pacer(RateLimiter(rate=0), RetryPolicy(max_attempts=2)))


async def test_show_keeps_the_latest_log_entry_by_time(mocked: Any) -> None:
    logs = [
        {
            "operate_time": "2026-11-02T00:00:00Z",
            "log_type": "SYSTEM_VERIFY_FAILED",
            "error_code": "NEW",
            "log_description": "latest",
        },
        {
            "operate_time": "2026-11-01T00:00:00Z",
            "log_type": "USER_VERIFYING_SUBMITTED",
            "log_description": "older, listed later",
        },
    ]
    mocked.get(
        str(BASE.with_path(f"{JOBS}/j1")),
        payload={
            "state": "AUTO_VERIFY_FAILED",
            "last_update_time": "2026-11-02T00:00:00Z",
            "operation_logs": logs,
        },
        headers={"Date": "Wed, 02 Dec 2026 00:00:00 GMT"},
    )
    async with aiohttp.ClientSession() as session:
        reader = await _reader(session)
        view = await reader.show("j1", "p1")
    assert (view.state, view.error_code, view.log_description) == (
        "AUTO_VERIFY_FAILED",
        "NEW",
        "latest",
    )
    assert reader.server_now is not None  # the server's clock, for --stuck-after


async def test_a_job_show_does_not_know_is_not_found(mocked: Any) -> None:
    mocked.get(
        str(BASE.with_path(f"{JOBS}/gone")),
        status=404,
        payload={"error_code": "MSS.00000003", "error_msg": "no such job"},
    )
    async with aiohttp.ClientSession() as session:
        view = await (await _reader(session)).show("gone", "p1")
    assert view.state == NOT_FOUND


def test_listing_is_used_only_when_it_costs_fewer_reads() -> None:
    assert listing_covers(1000, 100)  # 10 pages for 100 jobs
    assert not listing_covers(100_000, 100)  # 1,000 pages: Show each instead
    assert not listing_covers(None, 100)


@pytest.mark.parametrize(
    ("state", "wanted", "blocked"),
    [
        ("AUTO_VERIFY_FAILED", {"JOB_SUCCESS"}, True),  # documented: needs Update + upload
        ("JOB_FINISH", {"JOB_SUCCESS"}, True),  # documented: final
        ("JOB_SUCCESS", {"JOB_SUCCESS"}, False),
        ("TRAINING", {"JOB_SUCCESS"}, False),  # moves on by itself
        ("AUTO_VERIFYING", {"AUTO_VERIFY_FAILED", "MANUAL_VERIFYING"}, False),
        ("SOME_NEW_STATE", {"JOB_SUCCESS"}, False),  # unknown: not said to be stuck
        ("TRAIN_FAILED", {"JOB_SUCCESS"}, True),  # assumed: an admin must redo it
    ],
)
def test_which_states_a_wanted_one_cannot_follow(
    state: str, wanted: set[str], blocked: bool
) -> None:
    assert cannot_follow(state, wanted) is blocked


def test_in_progress_states_are_never_resting() -> None:
    for state in ("AUTO_VERIFYING", "MANUAL_VERIFYING", "TRAINING", "COMPILING", "WAIT_COMPILE"):
        assert state not in RESTING


async def test_a_listed_failed_review_gets_its_log_entry_from_one_show(mocked: Any) -> None:
    import re

    from batcher.select.query import JobQuery
    from batcher.status.look import look
    from batcher.status.source import Targets

    listed = {
        "count": 2,
        "jobs": [
            {
                "job_id": "f1",
                "state": "AUTO_VERIFY_FAILED",
                "create_time": "2026-11-01T00:00:00Z",
                "batch_name": "b",
            },
            {
                "job_id": "t1",
                "state": "TRAINING",
                "create_time": "2026-11-01T00:00:01Z",
                "batch_name": "b",
            },
        ],
    }
    # The read from the last page's second on (a full page is not the end, whatever the
    # count): that second's job again, a short page.
    again = {"count": 1, "jobs": listed["jobs"][1:]}
    mocked.get(re.compile(r".*/user/jobs\?.*create_since.*"), payload=again, repeat=True)
    mocked.get(re.compile(r".*/user/jobs\?.*"), payload=listed, repeat=True)
    logs = [
        {
            "operate_time": "2026-11-02T00:00:00Z",
            "log_type": "SYSTEM_VERIFY_FAILED",
            "error_code": "MSS.1",
            "log_description": "blurred",
        }
    ]
    mocked.get(
        str(BASE.with_path(f"{JOBS}/f1")),
        payload={"state": "AUTO_VERIFY_FAILED", "operation_logs": logs},
    )
    async with aiohttp.ClientSession() as session:
        reader = await _reader(session)
        views = await look(reader, Targets("q", "p1", query=JobQuery({"batch_name": "b"})))
    failed, training = views["f1", "p1"], views["t1", "p1"]
    assert (failed.error_code, failed.log_description) == ("MSS.1", "blurred")
    assert training.state == "TRAINING" and training.log_type is None  # no Show for it
    shows = [key for key in mocked.requests if "/jobs/" in str(key[1])]
    assert len(shows) == 1
