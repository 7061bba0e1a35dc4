"""Reading a 1,000,000-line report: resume, summary, HTML page (issue 13 item 2, issue 12).

    python bench/report_scale.py [--lines 1000000] [--keep DIR] [--browser]

Generates a report the way a run writes it (two runs: a first one with throttling, server
errors, ambiguous outcomes and skips, then a resume that retries part of it), then measures,
each in its own process (wall time and peak RSS from ``os.wait4``):

* ``resume``: building the resume state (``batcher.journal.completed_keys``: the index) —
  time ``--resume`` adds before the first request — against a process that only imports it;
* ``report``: ``batcher report R`` and ``batcher report R --format json``;
* ``html``: ``batcher report R --html OUT`` (the page's size), and with ``--browser`` the
  time headless chromium takes to load and draw it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, ROOT, measure

COMMANDS = ("CONFIRM_MULTIPART_UPLOADED", "SUBMITVERIFYING")


def _line(job: str, command: str, *, run: str, second: float, rng: random.Random) -> dict:
    started = 1_795_000_000 + second
    duration = rng.lognormvariate(3.9, 0.4)
    wait = rng.expovariate(1 / 30)
    line = {
        "job_id": job,
        "command": command,
        "status": "succeeded",
        "reason": None,
        "retryable": False,
        "http_status": 200,
        "error_code": None,
        "error_msg": None,
        "command_result": "EXCUTE_SUCCESS",
        "failed_msg": None,
        "request_id": f"{rng.getrandbits(128):032x}",
        "attempts": 1,
        "started_at": _iso(started),
        "finished_at": _iso(started + duration / 1000),
        "duration_ms": round(duration, 3),
        "source": f"jobs.csv:{rng.randrange(2, 600_000)}",
        "run_id": run,
        "attachment_upload_url": None,
        "multipart_data": None,
        "command_message": None,
        "operation_reason": None,
        "comment_data": None,
        "app_user_id": None,
        "project_id": "0123456789abcdef0123456789abcdef",
        "wait_ms": round(wait, 3),
        "confirmed_by": None,
        "ambiguous": False,
    }
    roll = rng.random()
    if roll < 0.03:
        line.update(
            status="failed", reason="HTTP 429: throttled (gave up after 5 attempts)",
            retryable=True, http_status=429, error_code="APIGW.0308",
            error_msg="The throttling threshold has been reached", command_result=None,
            attempts=5,
        )  # fmt: skip
    elif roll < 0.05:
        state = rng.choice(["AUTO_VERIFYING", "WAIT_FILE_UPLOAD"])
        line.update(
            status="failed", reason="the API answered EXCUTE_FAILED",
            command_result="EXCUTE_FAILED",
            failed_msg=f"job state {state} does not allow this command",
        )  # fmt: skip
    elif roll < 0.055:
        line.update(
            status="failed", reason="first attempt may have executed; the retry was refused",
            ambiguous=True, http_status=400, error_code="MSS.00000003",
            error_msg="Invalid parameter", attempts=2,
        )  # fmt: skip
    elif roll < 0.06:
        line.update(confirmed_by="operation_log", attempts=2)
    elif roll < 0.07 and command == "GET_MULTIPART_UPLOADED":
        line["attachment_upload_url"] = [
            f"https://obs.example.com/up/{job}?X-Amz-Signature={rng.getrandbits(64):016x}"
        ]
    return line


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def generate(path: Path, lines: int, *, seed: int = 7) -> Path:
    """A report of ``lines`` lines: run r1 over most entries, then a resume r2."""
    rng = random.Random(seed)
    first = int(lines * 0.9)
    jobs = first // len(COMMANDS)
    written = 0
    with open(path, "wb") as out:
        buffer: list[bytes] = []
        for i in range(jobs):
            job = f"job{i:08d}"
            failed = False
            for command in COMMANDS:
                if failed:
                    line = _line(job, command, run="r1", second=i / 90, rng=rng)
                    line.update(
                        status="skipped", reason=f"the job's earlier command {COMMANDS[0]} "
                        f"(jobs.csv:{i + 2}) did not succeed", retryable=False,
                        http_status=None, command_result=None, request_id=None, attempts=0,
                        started_at=None, duration_ms=None, wait_ms=None, confirmed_by=None,
                        ambiguous=False, error_code=None, error_msg=None, failed_msg=None,
                    )  # fmt: skip
                else:
                    line = _line(job, command, run="r1", second=i / 90, rng=rng)
                    failed = line["status"] == "failed"
                buffer.append(orjson.dumps(line) + b"\n")
                written += 1
            if len(buffer) > 10_000:
                out.writelines(buffer)
                buffer.clear()
        second = 86_400.0
        while written < lines:
            job = f"job{rng.randrange(jobs):08d}"
            line = _line(job, COMMANDS[0], run="r2", second=second, rng=rng)
            second += 1 / 90
            buffer.append(orjson.dumps(line) + b"\n")
            written += 1
        out.writelines(buffer)
    return path


_RESUME = """
import sys, time
from pathlib import Path
from batcher.journal import completed_keys
t = time.perf_counter()
state = completed_keys(Path(sys.argv[1]))
print(time.perf_counter() - t, len(state), state.ambiguous_count)
"""
_IMPORT_ONLY = "import batcher.journal, batcher.api"


def _count_lines(path: Path) -> int:
    with open(path, "rb") as stream:
        return sum(1 for _ in stream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="keep the report and page in DIR")
    parser.add_argument("--browser", action="store_true", help="load the page in chromium")
    args = parser.parse_args()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="batcher-report-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    report = directory / "report.jsonl"
    if not report.exists() or _count_lines(report) != args.lines:
        # In a child: a forked child's peak RSS counts its parent's at the fork, so this
        # process must stay small for the figures below to be the children's own.
        subprocess.run(
            [PYTHON, "-c", f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
             f"from report_scale import generate; from pathlib import Path; "
             f"generate(Path({str(report)!r}), {args.lines})"],
            check=True,
        )  # fmt: skip
    results: dict[str, object] = {
        "lines": args.lines,
        "report_mb": round(report.stat().st_size / 2**20, 1),
    }
    env = dict(os.environ)
    base = measure([PYTHON, "-c", _IMPORT_ONLY], env=env, cwd=ROOT)
    resume = measure([PYTHON, "-c", _RESUME, str(report)], env=env, cwd=ROOT)
    results["resume"] = {
        "build_s": float(resume.stdout.split()[0]),
        "process_wall_s": round(resume.wall, 2),
        "import_only_wall_s": round(base.wall, 2),
        "maxrss_mb": round(resume.maxrss_mb, 1),
        "import_only_maxrss_mb": round(base.maxrss_mb, 1),
        "done": int(resume.stdout.split()[1]),
        "ambiguous": int(resume.stdout.split()[2]),
    }
    for name, extra in (("report table", []), ("report json", ["--format", "json"])):
        m = measure([PYTHON, "-m", "batcher", "report", str(report), *extra], env=env, cwd=ROOT)
        results[name] = {"wall_s": round(m.wall, 2), "maxrss_mb": round(m.maxrss_mb, 1), "rc": m.rc}
    page = directory / "report.html"
    page.unlink(missing_ok=True)
    m = measure(
        [PYTHON, "-m", "batcher", "report", str(report), "--html", str(page)], env=env, cwd=ROOT
    )
    results["html"] = {
        "wall_s": round(m.wall, 2),
        "maxrss_mb": round(m.maxrss_mb, 1),
        "rc": m.rc,
        "page_kb": round(page.stat().st_size / 1024, 1) if page.exists() else None,
    }
    if args.browser and page.exists():
        sys.path.insert(0, str(ROOT / "tests"))
        from browser import load_page

        loaded = load_page(page, screenshot=directory / "report.png")
        results["html"]["browser_load_ms"] = loaded.load_ms  # type: ignore[index]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
