"""Throughput, batcher vs the official SDK, against the same server in its own process.

    python bench/throughput.py [--repeat 3] [--latency 0 100] [--server null|sim]

For each server latency: batcher (``--rate 0 --concurrency 100``), the SDK's sync client in
a plain loop, and the SDK's async client (its default 8-thread executor, and a 100-thread
executor to match batcher's concurrency). Each is a separate process; jobs/s is counted on
the whole process wall time, start-up included. The clients run in a rotating order in each
repeat, and the median of the repeats is reported. CPU (user+sys) per 10,000 jobs comes from
the same runs. Also records the server's own CPU use, to show whether it was the bottleneck.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    batcher_run_args,
    count_report_lines,
    loadavg,
    log,
    make_csv,
    measure,
    measure_batcher,
    median,
    save,
    sdk_cmd,
    server,
    set_src,
    workdir,
)

#: (label, kind, jobs at 0 ms, jobs at 100 ms, SDK async threads)
CLIENTS = [
    ("batcher", "batcher", 30_000, 20_000, 0),
    ("SDK sync loop", "sync", 5_000, 100, 0),
    ("SDK async (8 threads, default)", "async", 5_000, 1_000, 0),
    ("SDK async (100 threads)", "async", 5_000, 10_000, 100),
]


def run(
    *,
    repeat: int = 3,
    latencies: tuple[float, ...] = (0.0, 100.0),
    kind: str = "null",
    scale: float = 1.0,
) -> dict:
    results: dict = {"server": kind, "repeat": repeat, "latencies": {}}
    with workdir() as tmp:
        manifests: dict[int, Path] = {}
        for latency in latencies:
            rows: dict[str, list[dict]] = {label: [] for label, *_ in CLIENTS}
            with server(kind, latency_ms=latency) as srv:
                for r in range(repeat):
                    order = CLIENTS[r % len(CLIENTS) :] + CLIENTS[: r % len(CLIENTS)]
                    for label, client, n0, n100, threads in order:
                        n = max(1, int((n0 if latency == 0 else n100) * scale))
                        load = loadavg()
                        cpu0 = srv.cpu_seconds()
                        if client.startswith("batcher"):
                            if n not in manifests:
                                manifests[n] = make_csv(tmp / f"m{n}.csv", n)
                            report = tmp / f"r-{latency:g}-{r}.jsonl"
                            src = Path(client.split(":", 1)[1]) if ":" in client else None
                            m = measure_batcher(
                                batcher_run_args(manifests[n], report, srv.url), src=src
                            )
                            ok = count_report_lines(report).get("succeeded", 0)
                            report.unlink()
                        else:
                            m = measure(sdk_cmd(client, srv.url, n, threads=threads))
                            ok = n if m.rc == 0 else 0
                        server_cpu = srv.cpu_seconds() - cpu0
                        row = {
                            "jobs": n,
                            "ok": ok,
                            "rc": m.rc,
                            "wall_s": round(m.wall, 3),
                            "jobs_per_s": round(n / m.wall, 1),
                            "user_s": round(m.user, 3),
                            "sys_s": round(m.sys, 3),
                            "cpu_per_10k_s": round(m.cpu / n * 10_000, 2),
                            "maxrss_mb": round(m.maxrss_mb, 1),
                            "server_cpu_share": round(server_cpu / m.wall, 2),
                            "loadavg_1m": round(load, 2),
                        }
                        if m.rc != 0 or ok != n:
                            row["stderr"] = m.stderr[-600:]
                        rows[label].append(row)
                        log(
                            f"[{latency:g} ms] {label:32} {n:6d} jobs {m.wall:7.2f}s "
                            f"{n / m.wall:8.1f}/s cpu {m.cpu:6.2f}s "
                            f"server {server_cpu / m.wall:4.0%} load {load:.1f} rc {m.rc} ok {ok}"
                        )
            summary = {}
            for label, runs in rows.items():
                summary[label] = {
                    "jobs": runs[0]["jobs"],
                    "jobs_per_s": median([x["jobs_per_s"] for x in runs]),
                    "cpu_per_10k_s": median([x["cpu_per_10k_s"] for x in runs]),
                    "maxrss_mb": median([x["maxrss_mb"] for x in runs]),
                    "server_cpu_share": median([x["server_cpu_share"] for x in runs]),
                    "all_ok": all(x["ok"] == x["jobs"] and x["rc"] == 0 for x in runs),
                    "runs": runs,
                }
            results["latencies"][f"{latency:g}"] = summary
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 100.0])
    parser.add_argument("--server", choices=("null", "sim"), default="null")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every job count")
    parser.add_argument("--src", help="run batcher from this copy of the package")
    parser.add_argument(
        "--also-src", metavar="DIR", help="also run batcher from this copy (A/B in the same runs)"
    )
    args = parser.parse_args()
    set_src(args.src)
    if args.also_src:
        CLIENTS.insert(
            1, (f"batcher ({args.also_src})", f"batcher:{args.also_src}", *CLIENTS[0][2:])
        )
    results = run(
        repeat=args.repeat, latencies=tuple(args.latency), kind=args.server, scale=args.scale
    )
    path = save("throughput", results)
    for latency, summary in results["latencies"].items():
        print(f"\nserver latency {latency} ms ({args.server} server), median of {args.repeat}:")
        for label, s in summary.items():
            print(
                f"  {label:32} {s['jobs_per_s']:8.1f} jobs/s  {s['cpu_per_10k_s']:6.2f} "
                f"CPU s/10k  server CPU {s['server_cpu_share']:.0%}"
                f"{'' if s['all_ok'] else '  (ERRORS)'}"
            )
    print(f"\nraw: {path}")


if __name__ == "__main__":
    main()
