"""The seeded population (``--jobs N``) and the jobs file: reproducible, spread, plausible."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from batcher.send.vocabulary import LOG_TYPES
from batcher.simulator import Job, JobSpec, JobState, Simulator, SimulatorConfig, load_jobs_file
from batcher.simulator.population import TAGS, default_until, populate

UNTIL = datetime(2026, 11, 20, tzinfo=UTC)
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def shown(jobs: list[Any]) -> list[dict[str, Any]]:
    return [job.copy_to("p").detail(now=NOW) for job in jobs]


def test_the_same_seed_gives_the_same_jobs() -> None:
    first = populate(count=300, seed=42, until=UNTIL)
    assert shown(first) == shown(populate(count=300, seed=42, until=UNTIL))
    other = populate(count=300, seed=43, until=UNTIL)
    assert {j.job_id for j in first}.isdisjoint({j.job_id for j in other})


def test_the_population_is_spread_where_operators_act() -> None:
    jobs = populate(count=2000, seed=1, until=UNTIL, days=30)
    states = Counter(job.state for job in jobs)
    top = [state for state, _ in states.most_common(4)]
    assert set(top) == {
        JobState.WAIT_FILE_UPLOAD,
        JobState.AUTO_VERIFY_FAILED,
        JobState.MANUAL_VERIFY_FAILED,
        JobState.WAIT_USER_CONFIRM,
    }
    assert len(states) > 30  # the rarer states appear too
    batches = Counter(job.batch_name for job in jobs)
    assert len(batches) > 20 and any(b and "批次" in b for b in batches)
    assert 0 < batches[None] < 400
    tags = Counter(tag for job in jobs for tag in job.tags)
    assert set(tags) == set(TAGS)
    assert len({job.job_id for job in jobs}) == 2000
    for job in jobs:
        assert UNTIL - timedelta(days=30) <= job.create_time <= job.last_update_time <= UNTIL
        assert all(entry.log_type in LOG_TYPES for entry in job.operation_logs)
    waiting = [job for job in jobs if job.state == "WAIT_FILE_UPLOAD"]
    assert len(waiting) > 100  # uploaded, ready for CONFIRM_MULTIPART_UPLOADED, SUBMITVERIFYING
    assert not any(job.video_confirmed or job.action_video_confirmed for job in waiting)


def _log_types(job: Job) -> list[str]:
    return [e.log_type for e in job.operation_logs]


def test_failed_jobs_await_an_update_and_no_optimisation_was_requested_yet() -> None:
    jobs = populate(count=500, seed=2, until=UNTIL)
    failed = [j for j in jobs if j.state in ("AUTO_VERIFY_FAILED", "MANUAL_VERIFY_FAILED")]
    assert failed and all(job.video_confirmed and not job.reopened for job in failed)
    again = [j for j in failed if _log_types(j).count("USER_VERIFYING_SUBMITTED") == 2]
    assert 0 < len(again) < len(failed)  # some were updated, resubmitted and failed again
    assert not [j for j in jobs if "USER_REPAIR" in _log_types(j)]  # CONFIRM_REPAIR works once


def test_default_until_is_today_at_midnight() -> None:
    assert default_until(datetime(2026, 11, 25, 23, 59, tzinfo=UTC)) == datetime(
        2026, 11, 25, tzinfo=UTC
    )


async def test_a_simulator_serves_its_population(start_simulator: Any) -> None:
    config: dict[str, Any] = {"population": 120, "seed": 9, "population_until": UNTIL}
    sim: Simulator = await start_simulator(**config)
    again: Simulator = await start_simulator(**config)
    one = [job.detail(now=NOW) for job in sim.jobs.in_project("p")]
    assert len(one) == 120 and sim.jobs.seed_count == 120
    assert one == [job.detail(now=NOW) for job in again.jobs.in_project("p")]


def test_jobs_file_with_fields(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "ready:\n"
        "  state: WAIT_FILE_UPLOAD\n"
        "  video_confirmed: true\n"
        "  batch_name: 华北-批次01\n"
        "  tags: [vip, 主播]\n"
        "  create_time: 2026-11-01T08:00:00+08:00\n"
        "failed: AUTO_VERIFY_FAILED\n",
        encoding="utf-8",
    )
    jobs = load_jobs_file(path)
    assert jobs["failed"] is JobState.AUTO_VERIFY_FAILED
    spec = jobs["ready"]
    assert isinstance(spec, JobSpec) and spec.tags == ("vip", "主播")
    sim = Simulator(SimulatorConfig(jobs=jobs, population=5, seed=1, population_until=UNTIL))
    ready = sim.jobs.get("p", "ready")
    assert ready.video_confirmed and ready.batch_name == "华北-批次01"
    assert ready.create_time == datetime(2026, 11, 1, tzinfo=UTC)
    assert len(sim.jobs.in_project("p")) == 7
    failed = sim.jobs.get("p", "failed")
    assert failed.video_confirmed and failed.name == "failed"
    assert failed.operation_logs[-1].log_type == "SYSTEM_VERIFY_FAILED"
    assert failed.operation_logs[-1].error_code == "44005901"
