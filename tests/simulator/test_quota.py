"""The simulator's tenant quota: calendar and sliding seconds, and a change mid-run."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from batcher.cli import main as cli_main
from batcher.simulator import SimulatorConfig
from batcher.simulator.config import QuotaChange
from batcher.simulator.gateway import Quota

TOKEN = "simulator-test-iam-token-0001"  # the one tests/conftest.py configures
PATH = "/v1/sim-project/digital-human-training-manage/user/jobs/{}/command"


def ticking(times: Iterable[float]) -> Any:
    it = iter(times)
    return lambda: next(it)


# --------------------------------------------------------------------------- calendar


def test_calendar_counts_each_second_afresh() -> None:
    quota = Quota(2, clock=ticking([5.0, 5.1, 5.2, 5.99, 6.0, 6.5]))
    assert [quota.admit() for _ in range(6)] == [None, None, 1, 1, None, None]


def test_calendar_admits_a_burst_across_a_boundary() -> None:
    # 2 at the end of one second and 2 at the start of the next: the calendar quota lets
    # 4 through within 20 ms, which a sliding one would not.
    quota = Quota(2, clock=ticking([5.98, 5.99, 6.0, 6.01]))
    assert [quota.admit() for _ in range(4)] == [None, None, None, None]


# --------------------------------------------------------------------------- sliding


def test_sliding_counts_the_last_second_whatever_the_boundaries() -> None:
    quota = Quota(2, window="sliding", clock=ticking([5.98, 5.99, 6.0, 6.01, 6.98, 6.99]))
    # 6.0 and 6.01 are within a second of 5.98 and 5.99; at 6.98 the one at 5.98 has left.
    assert [quota.admit() for _ in range(6)] == [None, None, 1, 1, None, None]


def test_sliding_retry_after_is_when_room_comes_rounded_up() -> None:
    quota = Quota(3, window="sliding", clock=ticking([0.0, 0.1, 0.2, 0.3, 1.05, 1.15]))
    assert [quota.admit() for _ in range(4)] == [None, None, None, 1]
    # At 1.05 the admission at 0.0 has left (one free place), at 1.15 the one at 0.1.
    assert [quota.admit() for _ in range(2)] == [None, None]


def test_sliding_never_admits_more_than_the_quota_in_any_second() -> None:
    times = [i * 0.013 for i in range(1000)]  # ~77 a second offered for 13 s
    quota = Quota(20, window="sliding", clock=ticking(times))
    admitted = [t for t in times if quota.admit() is None]
    assert max(sum(1 for u in admitted if t <= u < t + 1.0) for t in admitted) == 20
    assert len(admitted) == pytest.approx(20 * 13, abs=20)


# --------------------------------------------------------------------------- changes


@pytest.mark.parametrize("window", ["calendar", "sliding"])
def test_a_drop_counts_from_the_first_request(window: Any) -> None:
    # 30 a second, then 12 from 5 s after the first request (at t=100.5).
    quota = Quota(30, window=window, changes=[(5.0, 12)])
    times = [100.5 + i / 60 for i in range(60 * 10)]  # 60 a second offered for 10 s
    it = iter(times)
    quota._clock = lambda: next(it)  # type: ignore[misc]
    admitted = [t for t in times if quota.admit() is None]
    before = [t for t in admitted if t < 104.5]  # 4 whole seconds before the change
    after = [t for t in admitted if 106.5 <= t < 110.5]  # 4 whole seconds after it
    assert len(before) == pytest.approx(4 * 30, abs=30)
    assert len(after) == pytest.approx(4 * 12, abs=12)
    assert quota.limit == 30  # the 429s still state the policy's limit


def test_available_follows_the_schedule_in_order() -> None:
    quota = Quota(30, changes=[(10.0, 25), (5.0, 12)])
    assert [quota.available(t) for t in (0, 4.99, 5, 9.99, 10, 100)] == [30, 30, 12, 12, 25, 25]
    assert quota.limit == 30


def test_a_rise_is_the_stated_limit() -> None:
    assert Quota(10, changes=[(5.0, 40)]).limit == 40


@pytest.mark.parametrize(("per_second", "changes"), [(0, []), (5, [(1.0, 0)]), (5, [(-1.0, 3)])])
def test_invalid_quota(per_second: int, changes: list[tuple[float, int]]) -> None:
    with pytest.raises(ValueError):
        Quota(per_second, changes=changes)


# --------------------------------------------------------------------------- config and CLI


def test_config_builds_the_quota() -> None:
    config = SimulatorConfig(quota=30, quota_window="sliding", quota_changes=["12@5", "20@9.5"])
    quota = Quota.from_config(config)
    assert quota is not None and quota.window == "sliding"
    assert [quota.available(t) for t in (0, 5, 9.5)] == [30, 12, 20]
    assert Quota.from_config(SimulatorConfig()) is None


def test_quota_change_text() -> None:
    assert QuotaChange.model_validate("12@5") == QuotaChange(per_second=12, after_seconds=5)
    assert QuotaChange.model_validate(" 7 @ 0.5 ").after_seconds == 0.5
    for bad in ("12", "@5", "12@", "x@5", "0@5", "5@-1"):
        with pytest.raises(ValidationError):
            QuotaChange.model_validate(bad)


def test_config_refuses_changes_without_a_quota() -> None:
    with pytest.raises(ValidationError, match="need a quota"):
        SimulatorConfig(quota_changes=["12@5"])
    with pytest.raises(ValidationError):
        SimulatorConfig(quota=5, quota_window="hourly")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--quota-change", "12@5"], "--quota-change: quota changes need a quota"),
        (["--quota", "30", "--quota-change", "12"], "--quota-change: "),
        (["--quota", "30", "--quota-change", "0@5"], "--quota-change: "),
    ],
)
def test_cli_refuses_a_bad_quota_change(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["simulate", "--port", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_refuses_an_unknown_window(capsys: pytest.CaptureFixture[str]) -> None:
    try:  # the exit code, returned or raised: either is the command's exit status
        code = cli_main(["simulate", "--quota", "5", "--quota-window", "hourly"])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert "--quota-window" in capsys.readouterr().err


# --------------------------------------------------------------------------- over HTTP


async def test_a_shared_quota_over_http_states_the_policy_limit(start_simulator: Any) -> None:
    # From the first request only 2 a second are left of a policy of 5, over a sliding
    # second: of 6 calls sent at once, 2 pass; the 429s state the policy (5) and when to
    # come back.
    sim = await start_simulator(quota=5, quota_window="sliding", quota_changes=["2@0"])
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as session:
        for i in range(6):
            body = json.dumps({"command": "GET_MULTIPART_UPLOADED"})
            async with session.post(sim.url + PATH.format(f"j{i}"), data=body) as answer:
                statuses[answer.status] += 1
                if answer.status == 429:
                    payload = await answer.json()
                    assert payload["error_code"] == "APIGW.0308"
                    assert "limit:5,time:1 second" in payload["error_msg"]
                    assert int(answer.headers["Retry-After"]) >= 1
    assert statuses == Counter({200: 2, 429: 4})
