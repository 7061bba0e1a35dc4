"""Profile a zero-latency batcher run in-process, against the null server in its own process.

    python bench/profile_run.py [--jobs 20000] [--out bench/results/profile.prof]

cProfile is driven by ``time.process_time`` (CPU time), not wall time: on a shared machine
a wall-clock profile charges whatever call was running when the OS preempted us (usually
``socket.send``, which wakes the server). Prints the top functions by own time and a rough
breakdown by area (synchronous functions only; coroutine "cumtime" is not meaningful).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import AK, BENCH, PROJECT, SK, log, make_csv, server, workdir

# Areas: (label, predicate on (filename, funcname)) — first match wins, own time is summed.
AREAS = [
    (
        "signing (batcher.send.signing + hashlib/hmac/quote)",
        lambda f, n: (
            f.endswith("batcher/send/signing.py")
            or "hmac" in f
            or "_hashlib" in n
            or f.endswith("urllib/parse.py")
        ),
    ),
    (
        "report writing (batcher.journal, runner._record, orjson)",
        lambda f, n: (
            "batcher/journal/" in f
            or (f.endswith("batcher/send/recorder.py"))
            or (f.endswith("batcher/send/stats.py") and n == "utc_stamp")
            or "orjson" in n
            or n == "<built-in method posix.write>"
        ),
    ),
    (
        "manifest reading + Entry validation (pydantic)",
        lambda f, n: (
            "batcher/read/" in f
            or f.endswith("batcher/entry.py")
            or "validate_python" in n
            or f.endswith("csv.py")
            or "_csv" in n
        ),
    ),
    ("logging (structlog)", lambda f, n: "structlog" in f or f.endswith("logging/__init__.py")),
    (
        "request encoding / answer mapping (batcher.send, json)",
        lambda f, n: (
            f.endswith(("batcher/send/client.py", "batcher/send/answer.py")) or "/json/" in f
        ),
    ),
    (
        "runner + limiter (batcher, anyio)",
        lambda f, n: "batcher/send/" in f or f.endswith("batcher/api.py") or "/anyio/" in f,
    ),
    (
        "aiohttp + yarl + multidict",
        lambda f, n: any(p in f for p in ("/aiohttp/", "/yarl/", "/multidict/")) or "aiohttp" in n,
    ),
    (
        "asyncio event loop + sockets",
        lambda f, n: "/asyncio/" in f or "socket" in n or "select" in n or "epoll" in n,
    ),
]


def breakdown(stats: pstats.Stats) -> list[tuple[str, float]]:
    totals: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        label = next((label for label, match in AREAS if match(filename, name)), "other")
        totals[label] = totals.get(label, 0.0) + tottime
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "profile.prof")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument(
        "--tool",
        choices=("cprofile", "pyinstrument"),
        default="cprofile",
        help="pyinstrument: a sampling profile (wall time), far less overhead",
    )
    args = parser.parse_args()
    args.out.parent.mkdir(exist_ok=True)
    os.environ.update(HUAWEICLOUD_SDK_AK=AK, HUAWEICLOUD_SDK_SK=SK)
    from batcher.cli import main as batcher_main

    with workdir() as tmp, server("null") as srv:
        manifest = make_csv(tmp / "m.csv", args.jobs)
        argv = [
            "run",
            str(manifest),
            "--report",
            str(tmp / "r.jsonl"),
            "--endpoint",
            srv.url,
            "--project-id",
            PROJECT,
            "--rate",
            "0",
            "--concurrency",
            "100",
            "--no-progress",
            "--log-format",
            "json",
            "--quiet",
        ]
        if args.tool == "pyinstrument":
            from pyinstrument import Profiler

            sampler = Profiler(interval=0.0005, async_mode="disabled")
            cpu0, wall0 = time.process_time(), time.perf_counter()
            sampler.start()
            rc = batcher_main(argv)
            sampler.stop()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            log(f"profiled run: rc={rc}, {args.jobs} jobs, {wall:.1f}s wall, {cpu:.1f}s CPU")
            text = sampler.output_text(unicode=True, color=False, show_all=False)
            (args.out.with_suffix(".txt")).write_text(text)
            print(text)
            return
        profiler = cProfile.Profile(time.process_time)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        profiler.enable()
        rc = batcher_main(argv)
        profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    profiler.dump_stats(args.out)
    log(
        f"profiled run: rc={rc}, {args.jobs} jobs, {wall:.1f}s wall, {cpu:.1f}s CPU "
        f"(profiler overhead included); stats in {args.out}"
    )
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    total = sum(v[2] for v in stats.stats.values())
    print(f"\nCPU by area (own time, {total:.2f}s in all):")
    for label, seconds in breakdown(stats):
        print(f"  {seconds:7.2f}s {100 * seconds / total:5.1f}%  {label}")
    stats.sort_stats("tottime").print_stats(args.top)
    print(stream.getvalue())


if __name__ == "__main__":
    main()
