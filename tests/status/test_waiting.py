"""Waiting for states, in process: what is read again, what is said at once, when it ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from batcher.status.fetch import JobView
from batcher.status.look import wait_until
from batcher.status.source import Targets


class FakeReader:
    """Each job's states in the order successive Shows return them (the last one stays)."""

    def __init__(self, states: dict[str, list[str]]) -> None:
        self.states = {job: iter(seq) for job, seq in states.items()}
        self.last: dict[str, str] = {}
        self.shows: list[str] = []
        self.server_now = None
        self.reads = 0

    async def count(self, project_id: str) -> int | None:
        return None  # never List: every job is shown

    async def show(self, job_id: str, project_id: str) -> JobView:
        self.shows.append(job_id)
        self.last[job_id] = next(self.states[job_id], self.last.get(job_id, "TRAINING"))
        return JobView(job_id, project_id, self.last[job_id], log_type="X")

    async def each(
        self,
        items: Iterable[Any],
        read: Callable[[Any], Awaitable[JobView]],
        got: Callable[[JobView], None],
    ) -> None:
        for item in items:
            got(await read(item))

    async def why(self, view: JobView) -> JobView:
        return view


def _targets(*ids: str) -> Targets:
    return Targets("test", "p1", jobs=dict.fromkeys((i, "p1") for i in ids))


async def test_only_jobs_still_on_their_way_are_read_again() -> None:
    reader = FakeReader({"a": ["JOB_SUCCESS"], "b": ["TRAINING", "TRAINING", "JOB_SUCCESS"]})
    done = await wait_until(
        reader,
        _targets("a", "b"),
        {"JOB_SUCCESS"},  # type: ignore[arg-type]
        deadline_s=30,
        first_pause=0.01,
    )
    assert not done.timed_out and not done.blocked and done.passes == 3
    assert reader.shows.count("a") == 1 and reader.shows.count("b") == 3


async def test_a_resting_job_is_not_waited_for() -> None:
    reader = FakeReader({"ok": ["TRAINING", "JOB_SUCCESS"], "bad": ["MANUAL_VERIFY_FAILED"]})
    done = await wait_until(
        reader,
        _targets("ok", "bad"),
        {"JOB_SUCCESS"},  # type: ignore[arg-type]
        deadline_s=30,
        first_pause=0.01,
    )
    assert done.blocked == {("bad", "p1"): "MANUAL_VERIFY_FAILED"}
    assert reader.shows.count("bad") == 1  # said at once, never read again
    assert done.outcome() == {
        "reached": 1,
        "cannot_reach": {"MANUAL_VERIFY_FAILED": 1},
        "elsewhere": {},
    }


async def test_the_deadline_ends_the_wait_with_the_jobs_elsewhere() -> None:
    reader = FakeReader({"slow": ["TRAINING"]})
    done = await wait_until(
        reader,
        _targets("slow"),
        {"JOB_SUCCESS"},  # type: ignore[arg-type]
        deadline_s=0.05,
        first_pause=0.01,
    )
    assert done.timed_out and done.outcome()["elsewhere"] == {"TRAINING": 1}


async def test_pauses_grow_while_nothing_moves(monkeypatch: Any) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr("batcher.status.look.anyio.sleep", sleep)
    clock: Iterator[float] = iter(range(0, 10_000, 1))
    reader = FakeReader({"slow": ["TRAINING"]})
    await wait_until(
        reader,
        _targets("slow"),
        {"JOB_SUCCESS"},
        deadline_s=12,  # type: ignore[arg-type]
        first_pause=1.0,
        clock=lambda: float(next(clock)),
    )
    assert len(pauses) >= 4 and pauses[3] > 2 * pauses[0]  # backing off, jitter aside
