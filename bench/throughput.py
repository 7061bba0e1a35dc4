"""Throughput: batcher as a ratio of the bare aiohttp loop and of the SDK's async client.

    python bench/throughput.py [--repeat 3] [--scale 1.0] [--cases 0 1 2 3] [--src DIR]

The cases of issue 13, each against the null server (its own process) at the given
latency, with one CSV manifest of distinct jobs shared by every client:

====  =========  =======  ============  ================================================
case  latency    entries  concurrency   SDK async client threads
====  =========  =======  ============  ================================================
0     0 ms        6,000   100           8 (its default: what a user gets)
1     0 ms       20,000   100           8
2     100 ms     10,000   100           100 (as many as batcher has in flight)
3     100 ms     20,000   1000          1000
====  =========  =======  ============  ================================================

Clients: ``batcher run --rate 0 --concurrency C`` (validation, limiter, report and all);
``bare_loop.py`` (the same manifest and concurrency, AK/SK signing, no validation, no
report: what the wire costs); ``sdk_client.py async`` (the official SDK). Each is its own
process, timed whole (start-up included), in a rotating order; each figure is the median of
``--repeat`` runs. CPU (user+sys, the child's own rusage) per 10,000 jobs comes from the
same runs, and the server's CPU share is recorded to show it was not the limit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    BENCH,
    PYTHON,
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

#: (name, server latency ms, entries, concurrency, SDK threads; 0 = the SDK's default)
CASES = [
    ("0 ms, 6,000 entries", 0.0, 6_000, 100, 0),
    ("0 ms, 20,000 entries", 0.0, 20_000, 100, 0),
    ("100 ms, --concurrency 100", 100.0, 10_000, 100, 100),
    ("100 ms, --concurrency 1000", 100.0, 20_000, 1000, 1000),
]
CLIENTS = ("batcher", "bare loop", "SDK async")


def one(client: str, url: str, manifest: Path, report: Path, n: int, conc: int, threads: int):
    if client == "batcher":
        m = measure_batcher(batcher_run_args(manifest, report, url, concurrency=conc))
        ok = count_report_lines(report).get("succeeded", 0) if report.exists() else 0
        report.unlink(missing_ok=True)
        return m, ok
    if client == "bare loop":
        cmd = [PYTHON, str(BENCH / "bare_loop.py"), url, str(manifest), "--concurrency", str(conc)]
        m = measure(cmd)
    else:
        m = measure(sdk_cmd("async", url, n, threads=threads))
    return m, (n if m.rc == 0 else 0)


def run(*, repeat: int = 3, scale: float = 1.0, cases: tuple[int, ...] = (0, 1, 2, 3)) -> dict:
    results: dict = {"repeat": repeat, "scale": scale, "cases": {}}
    with workdir() as tmp:
        for index in cases:
            name, latency, entries, conc, threads = CASES[index]
            n = max(100, int(entries * scale))
            manifest = make_csv(tmp / f"m{n}.csv", n)
            rows: dict[str, list[dict]] = {c: [] for c in CLIENTS}
            with server("null", latency_ms=latency) as srv:
                for r in range(repeat):
                    order = CLIENTS[r % 3 :] + CLIENTS[: r % 3]
                    for client in order:
                        load, cpu0 = loadavg(), srv.cpu_seconds()
                        m, ok = one(client, srv.url, manifest, tmp / "r.jsonl", n, conc, threads)
                        server_cpu = srv.cpu_seconds() - cpu0
                        row = {
                            "jobs": n,
                            "ok": ok,
                            "rc": m.rc,
                            "wall_s": round(m.wall, 3),
                            "jobs_per_s": round(n / m.wall, 1),
                            "cpu_per_10k_s": round(m.cpu / n * 10_000, 2),
                            "maxrss_mb": round(m.maxrss_mb, 1),
                            "server_cpu_share": round(server_cpu / m.wall, 2),
                            "loadavg_1m": round(load, 2),
                        }
                        if m.rc != 0 or ok != n:
                            row["stderr"] = m.stderr[-600:]
                        rows[client].append(row)
                        log(
                            f"[{name}] {client:10} {n:6d} jobs {m.wall:7.2f}s {n / m.wall:8.1f}/s "
                            f"cpu {m.cpu:6.2f}s server {server_cpu / m.wall:4.0%} "
                            f"load {load:.1f} rc {m.rc} ok {ok}"
                        )
            summary = {
                client: {
                    "jobs": n,
                    "jobs_per_s": median([x["jobs_per_s"] for x in runs]),
                    "cpu_per_10k_s": median([x["cpu_per_10k_s"] for x in runs]),
                    "maxrss_mb": median([x["maxrss_mb"] for x in runs]),
                    "server_cpu_share": median([x["server_cpu_share"] for x in runs]),
                    "all_ok": all(x["ok"] == x["jobs"] and x["rc"] == 0 for x in runs),
                    "runs": runs,
                }
                for client, runs in rows.items()
            }
            batcher = summary["batcher"]["jobs_per_s"]
            summary["ratios"] = {
                "of_bare_loop": round(batcher / summary["bare loop"]["jobs_per_s"], 3),
                "of_sdk_async": round(batcher / summary["SDK async"]["jobs_per_s"], 2),
                # Per run, batcher over the bare loop of the same repeat: the spread.
                "of_bare_loop_per_repeat": [
                    round(b["jobs_per_s"] / a["jobs_per_s"], 3)
                    for b, a in zip(rows["batcher"], rows["bare loop"], strict=True)
                ],
            }
            results["cases"][name] = summary
    return results


def table(results: dict) -> str:
    lines = [
        "| case | batcher jobs/s | bare loop | SDK async | batcher / bare loop "
        "| batcher / SDK async | CPU s per 10k: batcher / bare / SDK |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in results["cases"].items():
        cpu = " / ".join(f"{s[c]['cpu_per_10k_s']:.2f}" for c in CLIENTS)
        flags = "" if all(s[c]["all_ok"] for c in CLIENTS) else " (ERRORS)"
        lines.append(
            f"| {name}{flags} | {s['batcher']['jobs_per_s']:,.0f} | "
            f"{s['bare loop']['jobs_per_s']:,.0f} | {s['SDK async']['jobs_per_s']:,.0f} | "
            f"{s['ratios']['of_bare_loop']:.2f}× | {s['ratios']['of_sdk_async']:.1f}× | {cpu} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every job count")
    parser.add_argument("--cases", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--src", help="run batcher from this copy of the package")
    args = parser.parse_args()
    set_src(args.src)
    results = run(repeat=args.repeat, scale=args.scale, cases=tuple(args.cases))
    path = save("throughput", results)
    print(f"\nmedian of {args.repeat}, whole process, null server:\n")
    print(table(results))
    print(f"\nraw: {path}")


if __name__ == "__main__":
    main()
