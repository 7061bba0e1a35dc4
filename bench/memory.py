"""Peak RSS (ru_maxrss of the child) on large manifests.

    python bench/memory.py [--big 1000000] [--runs 20000 200000]

``batcher validate`` and ``batcher run --dry-run`` on a 1,000,000-entry CSV, and real runs
(``--rate 0 --concurrency 100``) of 20,000 and 200,000 entries against the null server.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    PROJECT,
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


def run(*, big: int = 1_000_000, runs: tuple[int, ...] = (20_000, 200_000)) -> dict:
    results: dict = {}
    with workdir() as tmp:
        manifest = make_csv(tmp / "big.csv", big)
        size_mb = manifest.stat().st_size / 2**20
        for name, args in (
            ("validate", ["validate", str(manifest)]),
            (
                "dry-run",
                [
                    "run",
                    str(manifest),
                    "--dry-run",
                    "--project-id",
                    PROJECT,
                    "--endpoint",
                    "http://127.0.0.1:9",
                    "--log-format",
                    "json",
                ],
            ),
        ):
            m = measure_batcher(args)
            results[f"{name} {big}"] = {
                "entries": big,
                "maxrss_mb": round(m.maxrss_mb, 1),
                "wall_s": round(m.wall, 2),
                "cpu_s": round(m.cpu, 2),
                "rc": m.rc,
                "csv_mb": round(size_mb, 1),
            }
            log(f"{name} {big}: peak RSS {m.maxrss_mb:.1f} MB, {m.wall:.1f}s wall, rc {m.rc}")
        manifest.unlink()
        with server("null") as srv:
            for n in runs:
                small = make_csv(tmp / f"m{n}.csv", n)
                report = tmp / f"r{n}.jsonl"
                m = measure_batcher(batcher_run_args(small, report, srv.url))
                ok = count_report_lines(report).get("succeeded", 0)
                results[f"run {n}"] = {
                    "entries": n,
                    "maxrss_mb": round(m.maxrss_mb, 1),
                    "wall_s": round(m.wall, 2),
                    "cpu_s": round(m.cpu, 2),
                    "rc": m.rc,
                    "succeeded": ok,
                    "report_mb": round(report.stat().st_size / 2**20, 1),
                }
                log(
                    f"run {n}: peak RSS {m.maxrss_mb:.1f} MB, {m.wall:.1f}s, {n / m.wall:.0f}/s,"
                    f" rc {m.rc}, {ok} succeeded"
                )
                report.unlink()
                small.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--src", help="run batcher from this copy of the package")
    args = parser.parse_args()
    set_src(args.src)
    results = run(big=args.big, runs=tuple(args.runs))
    save("memory", results)
    for name, r in results.items():
        print(f"{name:22} peak RSS {r['maxrss_mb']:7.1f} MB  ({r['wall_s']}s, rc {r['rc']})")


if __name__ == "__main__":
    main()
