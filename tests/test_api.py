"""The public Python API, used as a script would: ``import batcher`` and nothing else."""

from __future__ import annotations

import json
import os
import pydoc
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import TEST_AK, TEST_PROJECT_ID, TEST_SK, clean_env, jobs_csv, write_csv

import batcher


@pytest.fixture
def aksk(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name not in clean_env():
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", TEST_AK)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", TEST_SK)


def test_help_lists_the_public_api() -> None:
    text = pydoc.render_doc(batcher, renderer=pydoc.plaintext)
    for name in ("run", "run_async", "validate", "summarize", "RunResult", "ManifestError"):
        assert name in text
    assert set(batcher.__all__) <= set(dir(batcher))
    assert (Path(batcher.__file__).parent / "py.typed").exists()


def test_run_on_the_simulator_then_resume(tmp_path: Path) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 30)
    report = tmp_path / "r.jsonl"
    result = batcher.run(
        [manifest],
        report=report,
        simulate=True,
        rate=0,
        concurrency=4,
        handle_signals=False,
        progress=False,
    )
    assert isinstance(result, batcher.RunResult)
    assert (result.succeeded, result.failed, result.skipped) == (30, 0, 0)
    assert result.attempts == 30 and result.exit_code == 0 and result.report == report
    assert result.run_id and result.elapsed > 0
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(lines) == 30 and {line["run_id"] for line in lines} == {result.run_id}

    again = batcher.run(
        [manifest], report=report, simulate=True, resume=True, handle_signals=False, progress=False
    )
    assert again.already_done == 30 and again.attempts == 0 and again.exit_code == 0
    assert len(report.read_text().splitlines()) == 30


def test_an_existing_report_is_refused_without_resume(tmp_path: Path) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 1)
    report = tmp_path / "r.jsonl"
    report.write_text('{"job_id": "x", "command": "SUBMITVERIFYING", "status": "failed"}\n')
    with pytest.raises(batcher.UsageError, match="--resume") as caught:
        batcher.run([manifest], report=report, simulate=True, progress=False)
    assert caught.value.exit_code == 2


async def test_run_async_in_a_running_loop(
    tmp_path: Path, start_simulator: Any, aksk: None
) -> None:
    sim = await start_simulator()
    manifest = jobs_csv(tmp_path / "m.csv", 12)
    result = await batcher.run_async(
        [str(manifest)],
        report=tmp_path / "r.jsonl",
        endpoint=sim.url,
        project_id=TEST_PROJECT_ID,
        rate=0,
        handle_signals=False,
        progress=False,
    )
    assert result.succeeded == 12 and sim.stats.requests == 12


async def test_a_bad_manifest_raises_manifest_error_and_sends_nothing(
    tmp_path: Path, start_simulator: Any, aksk: None
) -> None:
    sim = await start_simulator()
    manifest = write_csv(
        tmp_path / "bad.csv",
        [
            {"job_id": "ok-1", "command": "SUBMITVERIFYING"},
            {"job_id": "bad/id", "command": "SUBMITVERIFY"},
        ],
    )
    with pytest.raises(batcher.ManifestError) as caught:
        await batcher.run_async(
            [manifest],
            report=tmp_path / "r.jsonl",
            endpoint=sim.url,
            project_id=TEST_PROJECT_ID,
            handle_signals=False,
        )
    problems = caught.value.problems
    assert {(p.file, p.line, p.field) for p in problems} == {
        (str(manifest), 3, "job_id"),
        (str(manifest), 3, "command"),
    }
    assert "did you mean 'SUBMITVERIFYING'" in " ".join(p.message for p in problems)
    assert sim.stats.requests == 0 and not (tmp_path / "r.jsonl").exists()
    with pytest.raises(batcher.ManifestError):
        batcher.validate([manifest])


def test_validate_and_summarize(tmp_path: Path) -> None:
    summary = batcher.validate(["manifests/example.yaml", "manifests/example.csv"])
    assert isinstance(summary, batcher.ManifestSummary)
    assert summary.total == 18 and summary.files == (
        "manifests/example.yaml",
        "manifests/example.csv",
    )
    report = tmp_path / "r.jsonl"
    batcher.run(
        ["manifests/example.csv"],
        report=report,
        simulate=True,
        progress=False,
        handle_signals=False,
    )
    stats = batcher.summarize(report)
    assert isinstance(stats, batcher.Summary)
    assert stats.total == 8 and stats.status["succeeded"] + stats.status["failed"] == 8


def test_dry_run_returns_the_plan_and_sends_nothing(tmp_path: Path) -> None:
    result = batcher.run(["manifests/example.csv"], dry_run=True, simulate=True, rate=4)
    assert result.plan is not None and result.plan.total == 8
    assert result.plan.expected_seconds == 2.0 and result.attempts == 0
    assert result.exit_code == 0


def test_blocking_run_inside_an_event_loop_is_refused_clearly(tmp_path: Path) -> None:
    async def inside() -> None:
        batcher.run(["manifests/example.csv"], dry_run=True, simulate=True)

    with pytest.raises(RuntimeError, match="run_async"):
        anyio.run(inside)


def test_every_error_a_caller_may_catch_is_public(tmp_path: Path) -> None:
    manifest = jobs_csv(tmp_path / "m.csv", 2)
    with pytest.raises(batcher.SettingsError) as raised:
        batcher.run([manifest], simulate=True, handle_signals=False, progress=False)
    assert "report= in Python" in str(raised.value.problems)
    assert issubclass(batcher.ReportWriteError, batcher.BatcherError)
    assert batcher.ReportWriteError("x").exit_code == batcher.ExitCode.HALTED
