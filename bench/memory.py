"""Peak RSS (ru_maxrss of the child) at a million entries, and time to first request.

    python bench/memory.py [--big 1000000] [--runs 20000 200000] [--only NAME ...]

* ``validate csv`` / ``validate yaml``: ``batcher validate`` of a 1,000,000-entry manifest.
* ``resume``: ``batcher run --resume`` of a manifest of 1,000,000 + 1,000 entries over a
  report whose 1,000,000 lines say the first million succeeded; ``no resume``: the same
  manifest into a fresh report. For both, the time from the process's start to the null
  server's first arrival; the no-resume run is stopped (SIGTERM) once it has sent one.
* ``report``: ``batcher report`` of that 1,000,000-line report (table to /dev/null).
* ``run N``: real runs (``--rate 0 --concurrency 100``) of N entries against the null server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import (
    COMMAND,
    PROJECT,
    PYTHON,
    Measured,
    batcher_env,
    batcher_run_args,
    count_report_lines,
    log,
    make_csv,
    measure_batcher,
    save,
    server,
    set_src,
    workdir,
)

CASES = ("validate csv", "validate yaml", "resume", "report", "runs")


def make_yaml(path: Path, n: int, *, command: str = COMMAND) -> Path:
    width = max(7, len(str(n)))
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"project_id: {PROJECT}\njobs:\n")
        chunk: list[str] = []
        for i in range(1, n + 1):
            chunk.append(f"  - job_id: job{i:0{width}d}\n    command: {command}\n")
            if len(chunk) >= 10_000:
                out.writelines(chunk)
                chunk.clear()
        out.writelines(chunk)
    return path


def make_report(path: Path, n: int, *, width: int) -> Path:
    """``n`` succeeded lines for job0000001.. as batcher writes them (mode 0600)."""
    template = {
        "job_id": "",
        "command": COMMAND,
        "status": "succeeded",
        "reason": None,
        "retryable": False,
        "http_status": 200,
        "error_code": None,
        "error_msg": None,
        "command_result": "EXCUTE_SUCCESS",
        "failed_msg": None,
        "request_id": "0" * 32,
        "attempts": 1,
        "started_at": "2026-11-24T13:00:00.123Z",
        "finished_at": "2026-11-24T13:00:00.125Z",
        "duration_ms": 2.1,
        "source": "",
        "run_id": "20261124T130000Z-bench0",
        "attachment_upload_url": None,
        "multipart_data": None,
        "command_message": None,
        "operation_reason": None,
        "comment_data": None,
        "app_user_id": None,
        "project_id": PROJECT,
        "wait_ms": 0.0,
        "confirmed_by": None,
        "ambiguous": False,
    }
    head, tail = json.dumps(template, separators=(",", ":")).split('"job_id":""', 1)
    before_source, after_source = tail.split('"source":""', 1)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        chunk: list[str] = []
        for i in range(1, n + 1):
            chunk.append(
                f'{head}"job_id":"job{i:0{width}d}"{before_source}"source":"m.csv:{i + 1}"'
                f"{after_source}\n"
            )
            if len(chunk) >= 10_000:
                out.writelines(chunk)
                chunk.clear()
        out.writelines(chunk)
    return path


def until_first_request(args: list[str], srv: common.Server, *, stop: bool) -> dict:
    """Run batcher; the seconds from its start to the server's first arrival; peak RSS."""
    srv.reset()
    started = time.time()
    proc = subprocess.Popen(
        [PYTHON, "-m", "batcher", *args],
        cwd=common.SRC,
        env=batcher_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first = None
    while first is None and proc.poll() is None:
        time.sleep(0.02)
        first = srv.first_arrival()
    if stop and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(proc.pid, 0)
    m = Measured(time.time() - started, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024, 0)
    return {
        "first_request_s": None if first is None else round(first - started, 2),
        "maxrss_mb": round(m.maxrss_mb, 1),
        "wall_s": round(m.wall, 2),
        "rc": os.waitstatus_to_exitcode(status),
    }


def run(
    *, big: int = 1_000_000, runs: tuple[int, ...] = (20_000, 200_000), only: tuple = CASES
) -> dict:
    results: dict = {}
    width = max(7, len(str(big + 1000)))
    with workdir() as tmp:
        if "validate csv" in only or "resume" in only:
            csv_path = make_csv(tmp / "big.csv", big + 1000)
        if "validate yaml" in only:
            yaml_path = make_yaml(tmp / "big.yaml", big)
            m = measure_batcher(["validate", str(yaml_path)])
            results["validate yaml"] = _row(m, big, yaml_path)
            yaml_path.unlink()
        if "validate csv" in only:
            m = measure_batcher(["validate", str(csv_path)])
            results["validate csv"] = _row(m, big + 1000, csv_path)
        if "resume" in only or "report" in only:
            report = make_report(tmp / "done.jsonl", big, width=width)
        if "resume" in only:
            with server("null") as srv:
                run_args = batcher_run_args(csv_path, report, srv.url, extra=["--resume"])
                results["resume"] = until_first_request(run_args, srv, stop=False)
                fresh = tmp / "fresh.jsonl"
                run_args = batcher_run_args(csv_path, fresh, srv.url)
                results["no resume"] = until_first_request(run_args, srv, stop=True)
            results["resume"]["report_lines"] = big
            results["resume"]["added_s"] = _delta(results["resume"], results["no resume"])
        if "report" in only:
            m = measure_batcher(["report", str(tmp / "done.jsonl")])
            results["report"] = _row(m, big, report)
        for name, r in results.items():
            log(f"{name:14} {json.dumps(r)}")
        if "runs" in only:
            with server("null") as srv:
                for n in runs:
                    small = make_csv(tmp / f"m{n}.csv", n)
                    out = tmp / f"r{n}.jsonl"
                    m = measure_batcher(batcher_run_args(small, out, srv.url))
                    ok = count_report_lines(out).get("succeeded", 0)
                    results[f"run {n}"] = {**_row(m, n, small), "succeeded": ok}
                    log(f"run {n}: peak RSS {m.maxrss_mb:.1f} MB, {m.wall:.1f}s, rc {m.rc}")
                    out.unlink()
    return results


def _row(m: Measured, entries: int, path: Path) -> dict:
    return {
        "entries": entries,
        "maxrss_mb": round(m.maxrss_mb, 1),
        "wall_s": round(m.wall, 2),
        "cpu_s": round(m.cpu, 2),
        "rc": m.rc,
        "input_mb": round(path.stat().st_size / 2**20, 1) if path.exists() else None,
    }


def _delta(resume: dict, fresh: dict) -> float | None:
    if resume["first_request_s"] is None or fresh["first_request_s"] is None:
        return None
    return round(resume["first_request_s"] - fresh["first_request_s"], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--only", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--src", help="run batcher from this copy of the package")
    args = parser.parse_args()
    set_src(args.src)
    results = run(big=args.big, runs=tuple(args.runs), only=tuple(args.only))
    save("memory", results)
    for name, r in results.items():
        extra = f", first request after {r['first_request_s']} s" if "first_request_s" in r else ""
        print(
            f"{name:14} peak RSS {r['maxrss_mb']:7.1f} MB  ({r['wall_s']} s, rc {r['rc']}{extra})"
        )


if __name__ == "__main__":
    main()
