"""``batcher.select_async``: the List filters and orders as keywords, against the simulator."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from support import PROJECT, aksk_env

import batcher


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in aksk_env().items():
        monkeypatch.setenv(name, value)


async def test_the_filters_are_keywords(start_simulator: Any, tmp_path: Path, keys: None) -> None:
    sim = await start_simulator(population=200, seed=3)
    out = tmp_path / "m.csv"
    result = await batcher.select_async(
        commands=["SUBMITVERIFYING"], is_flexus=False, sort_dir="desc", output=out,
        endpoint=sim.url, project_id=PROJECT, rate=0,
    )  # fmt: skip
    now = sim.clock()
    jobs = [job.basic_info(now=now) for job in sim.jobs.in_project(PROJECT)]
    expected = [job for job in jobs if job["is_flexus"] is False]
    with out.open() as stream:
        listed = [row["job_id"] for row in csv.DictReader(stream)]
    assert result.jobs == len(listed) == len(expected) > 0
    created = {job["job_id"]: job["create_time"] for job in jobs}
    assert [created[i] for i in listed] == sorted((created[i] for i in listed), reverse=True)


async def test_a_bad_keyword_value_is_a_settings_error(tmp_path: Path, keys: None) -> None:
    with pytest.raises(batcher.SettingsError) as error:
        await batcher.select_async(
            commands=["SUBMITVERIFYING"], is_live_copy="no", sort_key="asset_order",  # type: ignore[arg-type]
            output=tmp_path / "m.csv", endpoint="http://127.0.0.1:9", project_id=PROJECT,
        )  # fmt: skip
    assert "--is-live-copy takes true or false" in str(error.value)
    assert "asset_order" in str(error.value) and not (tmp_path / "m.csv").exists()
