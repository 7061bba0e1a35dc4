"""The run record sidecar (REPORT.runs.jsonl): one line per run, rewritten atomically under
the report's lock; and what `batcher report` shows of it."""

from __future__ import annotations

import dataclasses
import json
import stat
from pathlib import Path

import pytest
from report_lines import report_line, write_report

from batcher.errors import ExitCode, UsageError
from batcher.journal import (
    ManifestInfo,
    ReportWriteError,
    ReportWriter,
    RunRecord,
    finish_run,
    read_runs,
    runs_path,
    start_run,
)
from batcher.redact import Redactor
from batcher.review.summary import summarize
from batcher.review.text import render_text


def record(run_id: str, **fields: object) -> RunRecord:
    base = RunRecord(
        run_id=run_id,
        version="0.2.0",
        started_at="2026-11-24T13:00:00.000Z",
        endpoint="https://metastudio.cn-north-4.myhuaweicloud.com",
        project_id="p1",
        options={"rate": 10.0, "concurrency": 16, "resume": False},
        rate_limit=10.0,
    )
    return dataclasses.replace(base, **fields)  # type: ignore[arg-type]


def test_a_run_starts_and_finishes_as_one_line(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("job_id,command\nj1,SUBMITVERIFYING\n")
    report = tmp_path / "r.jsonl"
    info = ManifestInfo.of(manifest, entries=1)
    assert info.sha256 is not None and len(info.sha256) == 64
    with ReportWriter.open(report, resume=False) as writer:
        first = record("r1", manifests=[info])
        start_run(writer, first)
        (started,) = read_runs(report) or []
        assert started.finished_at is None and started.exit_code is None
        finish_run(
            writer,
            dataclasses.replace(
                first,
                finished_at="2026-11-24T13:00:05.000Z",
                exit_code=0,
                counts={"succeeded": 1, "failed": 0},
                settled_rate=9.5,
            ),
        )
    with ReportWriter.open(report, resume=True) as writer:
        start_run(writer, record("r2", started_at="2026-11-24T14:00:00.000Z"))
    runs = read_runs(report) or []
    assert [(r.run_id, r.exit_code, r.finished_at) for r in runs] == [
        ("r1", 0, "2026-11-24T13:00:05.000Z"),
        ("r2", None, None),  # crashed: never finished
    ]
    assert runs[0].manifests == [info] and runs[0].counts == {"succeeded": 1, "failed": 0}
    sidecar = runs_path(report)
    assert sidecar.name == "r.jsonl.runs.jsonl"
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600
    assert len(sidecar.read_text().splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "r.jsonl", sidecar.name]


def test_the_sidecar_sits_beside_the_real_report(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    report.touch()
    (tmp_path / "alias.jsonl").symlink_to(report)
    with ReportWriter.open(tmp_path / "alias.jsonl", resume=True) as writer:
        start_run(writer, record("r1"))
    assert runs_path(tmp_path / "alias.jsonl") == runs_path(report)
    assert read_runs(report) is not None


def test_secrets_are_masked_in_the_record(tmp_path: Path) -> None:
    with ReportWriter.open(
        tmp_path / "r.jsonl", resume=False, redactor=Redactor(["s3cr3t-token-0123456789"])
    ) as w:
        start_run(
            w, record("r1", halted_reason="server said: token s3cr3t-token-0123456789 refused")
        )
    text = runs_path(tmp_path / "r.jsonl").read_text()
    assert "s3cr3t" not in text and "***" in text


def test_a_file_that_is_no_run_record_is_not_replaced(tmp_path: Path) -> None:
    sidecar = tmp_path / "r.jsonl.runs.jsonl"
    sidecar.write_text("job_id,command\n")
    with ReportWriter.open(tmp_path / "r.jsonl", resume=False) as writer:
        with pytest.raises(UsageError, match="is not a batcher run record") as raised:
            start_run(writer, record("r1"))
        assert raised.value.exit_code == ExitCode.USAGE
    assert sidecar.read_text() == "job_id,command\n"


def test_finishing_after_the_writer_closed_is_an_error(tmp_path: Path) -> None:
    writer = ReportWriter.open(tmp_path / "r.jsonl", resume=False)
    start_run(writer, record("r1"))
    writer.close()
    with pytest.raises(ReportWriteError, match="closed"):
        finish_run(writer, record("r1", exit_code=0))


def test_a_failed_rewrite_leaves_the_old_record_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ReportWriter.open(tmp_path / "r.jsonl", resume=False) as writer:
        start_run(writer, record("r1"))
        before = runs_path(tmp_path / "r.jsonl").read_bytes()

        def full(*args: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("batcher.journal.runs.os.replace", full)
        with pytest.raises(ReportWriteError, match="No space left on device"):
            finish_run(writer, record("r1", exit_code=0))
    assert runs_path(tmp_path / "r.jsonl").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "r.jsonl.runs.jsonl"]


def test_the_summary_shows_runs_from_the_record_and_the_lines(tmp_path: Path) -> None:
    report = write_report(
        tmp_path / "r.jsonl",
        [
            report_line("a", run_id="r0", started_at="2026-11-24T12:00:00.000Z"),
            report_line("b", run_id="r1"),
        ],
    )
    with ReportWriter.open(report, resume=True) as writer:
        start_run(writer, record("r1", exit_code=None))
        finish_run(
            writer,
            record(
                "r1",
                finished_at="2026-11-24T13:00:09.000Z",
                exit_code=3,
                halted_reason="authentication refused (HTTP 401)",
                manifests=[ManifestInfo(path="/data/jobs.csv", sha256="ab" * 32, entries=2)],
            ),
        )
    summary = summarize(report)
    runs = summary.to_dict()["runs"]
    assert list(runs) == ["r0", "r1"]
    assert runs["r0"]["record"] is None and runs["r0"]["lines"] == 1
    assert runs["r1"]["record"]["exit_code"] == 3 and runs["r1"]["lines"] == 1
    assert summary.to_dict()["runs_from"] == "run record and lines"
    text = render_text(summary)
    assert "Runs (from the run record and the lines)" in text
    row = next(line for line in text.splitlines() if line.startswith("r1 "))
    assert "jobs.csv (2)" in row and " 3 " in row
    assert "r1 halted: authentication refused (HTTP 401)" in text
    json.dumps(summary.to_dict())


def test_a_record_edited_by_hand_with_wrong_types_is_shown_not_a_crash(
    tmp_path: Path,
) -> None:
    from batcher.cli import main

    report = tmp_path / "r.jsonl"
    report.write_text(json.dumps(report_line("a")) + "\n")
    runs_path(report).write_text(
        json.dumps({"run_id": "r1", "version": 1, "started_at": "2026-11-24T13:00:00.000Z",
                    "settled_rate": "x", "exit_code": "0", "counts": {"succeeded": "1"},
                    "manifests": [{"path": "m.csv", "entries": "many"}]}) + "\n"
    )  # fmt: skip
    assert main(["report", str(report)]) == 0
    assert main(["report", str(report), "--html", str(tmp_path / "r.html")]) == 0
    (record,) = read_runs(report) or []
    assert (record.version, record.settled_rate, record.exit_code) == ("", None, None)
