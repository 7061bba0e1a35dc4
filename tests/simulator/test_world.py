"""One simulated world across processes: the world file every ``--simulate`` shares."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import clean_env, read_report

from batcher.simulator import JobState, SimulatorConfig
from batcher.simulator.world import default_world_path

BATCHER = [sys.executable, "-m", "batcher"]
P = "sim-project"


async def test_simulators_on_one_world_file_see_each_others_changes(
    tmp_path: Path, start_simulator: Any
) -> None:
    from test_simulator import run, update

    world = tmp_path / "world.jsonl"
    first = await start_simulator(world_file=world, jobs={"f": "AUTO_VERIFY_FAILED"})
    second = await start_simulator(world_file=world, population=7)  # the file's seed wins
    assert second.config.population == 0 and second.jobs.seed_count == 1
    assert (await update(first, "f"))[0] == 200
    for sim, command in ((second, "CONFIRM_MULTIPART_UPLOADED"), (first, "SUBMITVERIFYING")):
        assert (await run(sim, "f", command))["commond_result"] == "EXCUTE_SUCCESS", command
    await run(second, "new", "CONFIRM_MULTIPART_UPLOADED")  # creates the job
    refused = await run(first, "new", "CONFIRM_MULTIPART_UPLOADED")
    assert "already confirmed" in refused["excute_failed_msg"]
    later = await start_simulator(world_file=world)
    await run(later, "other", "GET_MULTIPART_UPLOADED")  # any request catches up
    for sim in (first, second, later):
        assert sim.job_state("f", P) is JobState.AUTO_VERIFYING
        assert sim.jobs.lookup(P, "new") is not None
    assert [e.log_type for e in later.jobs.get(P, "f").operation_logs][-1] == (
        "USER_VERIFYING_SUBMITTED"
    )
    assert first.jobs.get(P, "new").create_time == later.jobs.get(P, "new").create_time


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    from batcher.simulator import Simulator

    world = tmp_path / "world.jsonl"
    world.write_text('{"world": 99}\n')
    with pytest.raises(ValueError, match="delete it to reset"):
        Simulator(SimulatorConfig(world_file=world))


def test_the_world_lives_under_xdg_state_home(tmp_path: Path) -> None:
    assert default_world_path({"XDG_STATE_HOME": str(tmp_path)}) == (
        tmp_path / "batcher" / "simulated-world.jsonl"
    )
    assert default_world_path({}).parts[-4:-1] == (".local", "state", "batcher")


@pytest.mark.slow
def test_select_then_run_on_the_simulator_act_on_one_world(tmp_path: Path) -> None:
    """Issue 20: the nightly pipeline, as a newcomer first tries it, in real processes."""
    env = clean_env()
    select = [*BATCHER, "select", "--simulate", "--state", "WAIT_FILE_UPLOAD"]
    select += ["--command", "CONFIRM_MULTIPART_UPLOADED", "--command", "SUBMITVERIFYING"]
    run = [*BATCHER, "run", "-", "--simulate", "--rate", "0", "--no-progress"]
    report = tmp_path / "r.jsonl"
    pipeline = subprocess.run(
        f"{' '.join(select)} | {' '.join(run)} --report {report}",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert pipeline.returncode == 0, pipeline.stderr
    lines = read_report(report)
    assert len(lines) > 100 and {line["status"] for line in lines} == {"succeeded"}
    again = subprocess.run(
        [*select, "--output", str(tmp_path / "m.csv")],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "m.csv").read_text().count("\n") <= 1  # all submitted: none left
    world = Path(env["XDG_STATE_HOME"]) / "batcher" / "simulated-world.jsonl"
    events = [json.loads(line) for line in world.read_text().splitlines()]
    assert events[0]["population"] == 500 and len(events) == len(lines) + 1


def test_a_damaged_world_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    env = clean_env(XDG_STATE_HOME=str(tmp_path))
    world = tmp_path / "batcher" / "simulated-world.jsonl"
    world.parent.mkdir()
    world.write_text("not json\n")
    result = subprocess.run(
        [*BATCHER, "select", "--simulate", "--command", "SUBMITVERIFYING"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert str(world) in result.stderr and "delete it to reset" in result.stderr
    assert "Traceback" not in result.stderr


def _demo(tmp_path: Path, env: dict[str, str], n: int) -> set[str]:
    report = tmp_path / f"demo-{n}.jsonl"
    demo = [*BATCHER, "run", "manifests/example.yaml", "--simulate", "--report", str(report)]
    result = subprocess.run(
        [*demo, "--rate", "0", "--no-progress"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return {line["status"] for line in read_report(report)}


@pytest.mark.slow
def test_the_readme_demo_run_again_later_starts_from_a_fresh_world(tmp_path: Path) -> None:
    """The world persists while it is in use, and starts afresh once left alone a while."""
    from batcher.simulator.world import IDLE_SECONDS

    env = clean_env(XDG_STATE_HOME=str(tmp_path))
    assert _demo(tmp_path, env, 1) == {"succeeded"}
    assert "failed" in _demo(tmp_path, env, 2)  # at once: the same world, uploads confirmed
    world = default_world_path(env)
    idle = world.stat().st_mtime - IDLE_SECONDS - 1
    os.utime(world, (idle, idle))
    assert _demo(tmp_path, env, 3) == {"succeeded"}
    assert world.read_text().count("\n") == 1 + 10  # the header, and the third run's commands


def test_an_idle_world_starts_afresh_unless_someone_has_it_open(tmp_path: Path) -> None:
    from batcher.simulator import Simulator
    from batcher.simulator.world import IDLE_SECONDS

    world = tmp_path / "world.jsonl"

    def age() -> None:
        idle = world.stat().st_mtime - IDLE_SECONDS - 1
        os.utime(world, (idle, idle))

    first = Simulator(SimulatorConfig(world_file=world, jobs={"j": "TRAINING"}))
    world.write_text(world.read_text() + '{"op": "marker"}\n')
    age()
    second = Simulator(SimulatorConfig(world_file=world))  # the first still has it open
    assert "marker" in world.read_text() and second.jobs.seed_count == 1
    for sim in (first, second):
        assert sim.world is not None
        sim.world.close()
    age()
    third = Simulator(SimulatorConfig(world_file=world, population=3))
    assert "marker" not in world.read_text() and third.jobs.seed_count == 3
    assert third.world is not None
    third.world.close()
