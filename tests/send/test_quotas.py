"""The documented quotas as defaults, and reads paced by their own bucket."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from batcher.config import Options, resolve
from batcher.entry import Entry, Outcome
from batcher.journal.line import ReportLine
from batcher.send.client import Reply
from batcher.send.limiter import RateLimiter
from batcher.send.runner import Runner
from batcher.send.stats import RunOptions
from tests.support import aksk_env, batcher_in_thread, write_csv

ENV = aksk_env(HUAWEICLOUD_SDK_PROJECT_ID="p1")


def settings(**options: Any) -> tuple[float, str, float, str]:
    s = resolve(Options(**options), environ=ENV)
    return s.rate, s.rate_source, s.read_rate, s.read_rate_source


@pytest.mark.parametrize(
    ("region", "command", "read"), [("cn-north-4", 10, 20), ("cn-east-3", 3, 10)]
)
def test_without_a_flag_the_regions_documented_quotas_are_the_rates(
    region: str, command: float, read: float
) -> None:
    where = f"documented quota for {region}"
    assert settings(region=region) == (command, where, read, where)
    # A public endpoint says its region too.
    endpoint = f"https://metastudio.{region}.myhuaweicloud.com"
    assert settings(endpoint=endpoint) == (command, where, read, where)


def test_an_endpoint_batcher_does_not_know_starts_at_10_and_adapts() -> None:
    unknown = "unknown endpoint: default, adapting"
    assert settings(endpoint="http://127.0.0.1:9") == (10, unknown, 10, unknown)
    assert settings(simulate=True) == (10, unknown, 10, unknown)


def test_the_flags_set_each_bucket_on_its_own() -> None:
    documented = "documented quota for cn-east-3"
    assert settings(region="cn-east-3", rate=2) == (2, "--rate", 10, documented)
    assert settings(region="cn-east-3", read_rate=0) == (3, documented, 0, "--read-rate")


def test_a_negative_read_rate_is_refused_with_its_flag() -> None:
    with pytest.raises(Exception, match="--read-rate must be 0"):
        resolve(Options(simulate=True, read_rate=-1), environ=ENV)


async def test_the_dry_run_plan_says_both_rates_and_where_they_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_csv(tmp_path / "m.csv", [{"job_id": "j1", "command": "SUBMITVERIFYING"}])
    args = ["run", str(manifest), "--dry-run", "--region", "cn-east-3", "--project-id", "p1"]
    result = await batcher_in_thread(args, ENV, capsys)
    assert result.code == 0, result.output
    assert "rate:        3/s (burst 1), documented quota for cn-east-3" in result.stdout
    assert "read rate:   10/s, documented quota for cn-east-3" in result.stdout
    result = await batcher_in_thread([*args, "--read-rate", "4"], ENV, capsys)
    assert "read rate:   4/s, --read-rate" in result.stdout


LOST = Outcome(succeeded=False, retryable=True, ambiguous=True, reason="connection reset")


class LosingAPI:
    """Every command runs and its answer is lost; Show tells that it ran."""

    def __init__(self) -> None:
        self.shows = 0

    async def execute(self, entry: Entry) -> Outcome:
        return LOST

    async def show_job(self, job_id: str, **_: object) -> Reply:
        self.shows += 1
        log = {"log_type": "USER_VERIFYING_SUBMITTED", "operate_time": "2099-01-01T00:00:00Z"}
        return Reply(
            Outcome(succeeded=True, http_status=200),
            {"job_id": job_id, "state": "WAIT_FILE_UPLOAD", "operation_logs": [log]},
        )


class CountingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(rate=0)
        self.reserved = 0

    def reserve(self) -> float:
        self.reserved += 1
        return super().reserve()


async def test_reads_after_lost_answers_take_the_read_buckets_slots_not_the_commands() -> None:
    api = LosingAPI()
    commands, reads = CountingLimiter(), CountingLimiter()
    lines: list[ReportLine] = []
    runner = Runner(
        client=api,  # type: ignore[arg-type]
        limiter=commands,
        read_limiter=reads,
        write=lambda line: lines.append(ReportLine.model_validate(line)),
        run_id="r",
        options=RunOptions(handle_signals=False),
        rng=random.Random(1),
    )
    entries = [Entry(job_id=f"j{i}", command="SUBMITVERIFYING", source=f"m:{i}") for i in range(5)]
    await runner.run(entries)
    # Whatever the record decides (nothing here measures its clock), every entry has its line.
    assert api.shows >= 5 and len(lines) == 5
    # One command each, then Show: a command slot per command, a read slot per Show, and
    # each bucket hears only its own answers (the commands' were all lost).
    assert commands.reserved == 5 and commands.responses == 0
    assert reads.reserved == api.shows and reads.responses == api.shows


def test_the_python_api_takes_read_rate_and_plans_both(tmp_path: Path) -> None:
    import batcher

    manifest = write_csv(tmp_path / "m.csv", [{"job_id": "j1", "command": "SUBMITVERIFYING"}])
    plan = batcher.run(
        [manifest], dry_run=True, simulate=True, region="cn-east-3", read_rate=4
    ).plan
    assert plan is not None
    assert (plan.rate, plan.rate_source) == (3, "documented quota for cn-east-3")
    assert (plan.read_rate, plan.read_rate_source) == (4, "--read-rate")


async def test_run_started_says_both_rates_and_where_they_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    manifest = write_csv(tmp_path / "m.csv", [{"job_id": "j1", "command": "SUBMITVERIFYING"}])
    args = ["run", str(manifest), "--simulate", "--report", str(tmp_path / "r.jsonl")]
    args += ["--rate", "7", "--log-format", "json", "--no-progress"]
    result = await batcher_in_thread(args, ENV, capsys)
    assert result.code in (0, 1), result.output  # the simulator's job may refuse it
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (started,) = [e for e in events if e.get("event") == "run_started"]
    assert (started["rate"], started["rate_source"]) == (7, "--rate")
    unknown = "unknown endpoint: default, adapting"
    assert (started["read_rate"], started["read_rate_source"]) == (10, unknown)
