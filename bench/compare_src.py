"""A/B: the working tree's batcher against another copy (a patched one), run alternately.

    python bench/compare_src.py /tmp/patched [--jobs 20000] [--repeat 5] [--latency-ms 0]

Each repeat runs A then B (then B then A, alternating) against the same null server, so
load from other processes on a shared machine falls on both. Reports medians of jobs/s and
of CPU seconds per 10,000 jobs, which is the steadier figure on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import (
    ROOT,
    batcher_run_args,
    count_report_lines,
    log,
    make_csv,
    measure_batcher,
    median,
    server,
    workdir,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", help="directory holding the other copy of the batcher package")
    parser.add_argument("--base", help="compare against this copy instead of the working tree")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    base = Path(args.base).resolve() if args.base else ROOT
    sources = {
        f"A ({args.base or 'working tree'})": base,
        f"B ({args.other})": Path(args.other).resolve(),
    }
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in sources}
    with workdir() as tmp, server("null", latency_ms=args.latency_ms) as srv:
        manifest = make_csv(tmp / "m.csv", args.jobs)
        for r in range(args.repeat):
            order = list(sources.items())
            if r % 2:
                order.reverse()
            for name, src in order:
                common.SRC = src
                os.environ["BATCHER_BENCH_SRC"] = str(src)
                report = tmp / "r.jsonl"
                m = measure_batcher(batcher_run_args(manifest, report, srv.url))
                ok = count_report_lines(report).get("succeeded", 0)
                report.unlink()
                rows[name].append((args.jobs / m.wall, m.cpu / args.jobs * 10_000))
                log(
                    f"{name:40} {args.jobs / m.wall:8.1f} jobs/s  "
                    f"{m.cpu / args.jobs * 10_000:5.2f} CPU s/10k  rc {m.rc} ok {ok}"
                )
    first: tuple[float, float] | None = None
    for name, values in rows.items():
        rate = median([v[0] for v in values])
        cpu = median([v[1] for v in values])
        delta = ""
        if first is None:
            first = (rate, cpu)
        else:
            delta = f"  ({cpu / first[1] - 1:+.1%} CPU, {rate / first[0] - 1:+.1%} jobs/s)"
        print(f"{name:40} median {rate:8.1f} jobs/s  {cpu:5.2f} CPU s/10k{delta}")


if __name__ == "__main__":
    main()
