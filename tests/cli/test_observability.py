"""What a run tells the outside: cron-grade JSON logs, the metrics file, the live view."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import (
    PROJECT,
    aksk_env,
    batcher,
    jobs_csv,
    read_report,
    run_args,
    spawn,
    wait_for_lines,
)


def events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


async def test_the_log_alone_tells_the_run(tmp_path: Path, start_simulator: Any) -> None:
    sim = await start_simulator(error_rate=0.2, seed=4)
    manifest = jobs_csv(tmp_path / "m.csv", 60)
    report = tmp_path / "r.jsonl"
    result = await batcher(
        ["run", str(manifest), "--report", str(report), "--rate", "0", "--log-format", "json",
         *run_args(sim.url, "--timeout", "2")],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 0, result.output
    logged = events(result.stderr)  # nothing but JSON lines
    started = next(e for e in logged if e["event"] == "run_started")
    finished = next(e for e in logged if e["event"] == "run_finished")
    run_id = started["run_id"]
    assert started["entries"] == 60 and started["project_id"] == PROJECT
    assert started["manifests"][0]["path"] == str(manifest)
    assert started["rate"] == 0 and started["concurrency"] == 16 and started["resume"] is False
    assert finished["succeeded"] == 60 and finished["exit_code"] == 0
    assert finished["attempts"] > 60 and finished["retries"] == finished["attempts"] - 60
    assert all(e.get("run_id") == run_id for e in logged if e["event"] != "simulator_started")


async def test_an_entry_failure_is_a_warning(tmp_path: Path, start_simulator: Any) -> None:
    sim = await start_simulator()
    manifest = tmp_path / "m.csv"
    manifest.write_text("job_id,command\nj1,SUBMITVERIFYING\n")  # refused: nothing uploaded
    result = await batcher(
        ["run", str(manifest), "--report", str(tmp_path / "r.jsonl"), "--log-format", "json",
         *run_args(sim.url)],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 1
    failed = next(e for e in events(result.stderr) if e["event"] == "entry_failed")
    assert failed["level"] == "warning" and failed["job_id"] == "j1"


async def test_the_metrics_file_parses_and_tells_runs_apart(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator(throttle_rate=0.1, seed=9)
    metrics = tmp_path / "batcher.prom"
    manifest = jobs_csv(tmp_path / "nightly.csv", 40)
    result = await batcher(
        ["run", str(manifest), "--report", str(tmp_path / "r.jsonl"), "--rate", "0",
         "--metrics-file", str(metrics), *run_args(sim.url)],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 0, result.output
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    entries = {s.labels["status"]: s.value for s in families["batcher_entries"].samples}
    assert entries["succeeded"] == 40 and entries["failed"] == 0
    sample = families["batcher_run_exit_code"].samples[0]
    assert sample.value == 0 and sample.labels["manifest"] == "nightly.csv"
    assert sample.labels["report"] == str(tmp_path / "r.jsonl")
    assert families["batcher_throttled"].samples[0].value >= 1
    start = families["batcher_run_start_timestamp_seconds"].samples[0].value
    end = families["batcher_run_end_timestamp_seconds"].samples[0].value
    assert 0 < start <= end <= time.time()
    assert families["batcher_run_info"].samples[0].labels["run_id"]
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith("batcher.prom.")]
    assert not leftovers  # written atomically: no temp file left


@pytest.mark.parametrize("target", ["report", "manifest", "sidecar", "foreign", "csv"])
async def test_a_metrics_file_that_would_destroy_another_file_is_refused(
    tmp_path: Path, start_simulator: Any, target: str
) -> None:
    sim = await start_simulator()
    manifest = jobs_csv(tmp_path / "m.csv", 3)
    report = tmp_path / "r.jsonl"
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"keep": "me"}\n')
    other_manifest = jobs_csv(tmp_path / "other.csv", 2)  # another run's manifest
    metrics = {
        "report": report,
        "manifest": manifest,
        "sidecar": tmp_path / "r.jsonl.runs.jsonl",
        "foreign": foreign,
        "csv": other_manifest,
    }[target]
    before = manifest.read_bytes(), foreign.read_bytes(), other_manifest.read_bytes()
    result = await batcher(
        ["run", str(manifest), "--report", str(report), "--metrics-file", str(metrics),
         *run_args(sim.url)],
        aksk_env(),
    )  # fmt: skip
    assert result.code == 2, result.output
    assert "--metrics-file" in result.stderr and str(metrics) in result.stderr
    assert "Traceback" not in result.output
    assert (manifest.read_bytes(), foreign.read_bytes(), other_manifest.read_bytes()) == before
    assert sim.stats.requests == 0


async def test_a_metrics_file_that_cannot_be_written_does_not_stop_the_run(
    tmp_path: Path, start_simulator: Any
) -> None:
    sim = await start_simulator(latency_ms=20)
    out = tmp_path / "metrics"
    out.mkdir()
    manifest = jobs_csv(tmp_path / "m.csv", 400)
    report = tmp_path / "r.jsonl"
    process = await spawn(
        ["run", str(manifest), "--report", str(report), "--rate", "0", "--concurrency", "4",
         "--metrics-file", str(out / "b.prom"),
         "--log-format", "json", *run_args(sim.url)],
        aksk_env(),
    )  # fmt: skip
    await wait_for_lines(report, 10)
    for leftover in out.iterdir():
        leftover.unlink()
    out.rmdir()  # the metrics directory is gone mid-run
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert await process.wait() == 0, stderr
    assert len(read_report(report)) == 400
    warnings = [e for e in events(stderr) if e["event"] == "metrics_not_written"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"


def test_a_run_on_a_terminal_draws_a_view_that_log_lines_do_not_tear(tmp_path: Path) -> None:
    """A real pseudo-terminal: the view is redrawn in place and ends with the summary."""
    manifest = jobs_csv(tmp_path / "m.csv", 80)
    report = tmp_path / "r.jsonl"
    env = {**aksk_env(), "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "batcher", "run", str(manifest), "--report", str(report),
         "--simulate", "--rate", "40"],
        stdin=terminal, stdout=terminal, stderr=terminal, env=env, close_fds=True,
    )  # fmt: skip
    os.close(terminal)
    screen = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    assert process.wait(timeout=30) == 0
    os.close(controller)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert "/80" in text  # the view was drawn while the run went
    assert "ok " in text and "ETA" in text and "limit 40.0/s" in text
    assert "run_started" in text  # log lines print above the view, whole
    lines = text.replace("\r\n", "\n").split("\n")
    assert any(line.startswith("ok ") and "throttled" in line for line in lines)
    assert "run " in text and "80 succeeded" in text  # the summary, after the view
    assert "next: batcher report" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_logs_are_one_line_per_event_and_failures_are_digested(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import structlog

    from batcher.observe import logs

    monkeypatch.setenv("COLUMNS", "100")
    out = _Terminal()
    logs.configure(fmt="console", stream=out, secrets=())
    log = structlog.get_logger("batcher")
    log.info("run_started", run_id="r1", manifests=[{"path": "m.csv", "entries": 300}])
    for i in range(300):
        log.warning("entry_failed", run_id="r1", job_id=f"j{i}", reason="not allowed\nin state")
    log.info("run_finished", run_id="r1", failed=300)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + logs.SHOWN_FAILURES + 1 + 1  # then one word for the rest
    assert all(len(line) <= 100 for line in lines)
    assert 'manifests=[{"path":"m.csv","entries":300}]' in lines[0]  # JSON, not a repr
    assert "run_id" not in lines[1] and 'reason="not allowed\\nin state"' in lines[1]
    assert "counted, not shown" in lines[-2]
    assert "run_finished failures_not_shown=295 " in lines[-1]  # first: the end is cut
    structlog.reset_defaults()
