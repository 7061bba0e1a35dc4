"""The report's lock through real ``batcher run`` processes against the simulator: a second
run on any name of a running report (hard link, ``sub/../``) exits 4 at once, naming the
first run's PID, and sends nothing (issue 10 item 2: a hard link used to get through)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from support import (
    aksk_env,
    batcher,
    jobs_csv,
    latest,
    read_report,
    run_args,
    spawn,
    wait_for_lines,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("how", ["hard link", "sub/.."])
async def test_a_second_run_on_another_name_of_a_running_report_is_refused(
    tmp_path: Path, start_simulator: Any, how: str
) -> None:
    sim = await start_simulator(latency_ms=100)
    report = tmp_path / "r.jsonl"
    report.touch()
    (tmp_path / "sub").mkdir()
    if how == "hard link":
        other = tmp_path / "hard.jsonl"
        os.link(report, other)
    else:
        other = tmp_path / "sub" / ".." / "r.jsonl"
    manifest = jobs_csv(tmp_path / "a.csv", 60)
    first = await spawn(
        ["run", str(manifest), "--report", str(report), "--resume", "--concurrency", "2",
         "--rate", "0", *run_args(sim.url)],
        aksk_env(),
    )  # fmt: skip
    try:
        await wait_for_lines(report, 1)
        second = await batcher(
            ["run", str(jobs_csv(tmp_path / "b.csv", 3, prefix="b")), "--report", str(other),
             "--resume", *run_args(sim.url)],
            aksk_env(),
        )  # fmt: skip
    finally:
        first.terminate()
        await first.communicate()
    assert second.code == 4, second.output
    assert f"PID {first.pid}" in second.stderr
    lines = read_report(report)
    assert not any(line["job_id"].startswith("b") for line in lines)
    assert len(lines) == len(latest(lines))  # each entry once
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".lock")]
