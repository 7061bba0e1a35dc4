"""Every benchmark of issue 6, one after the other, then the figures and PASS/FAIL per target.

    python bench/run_all.py [--repeat 3] [--quick] [--src DIR]

Takes about 15 minutes on 2 cores (``--quick``: about 2, with small job counts, for checking
the scripts; its figures are not the ones to quote). Raw numbers go to
``bench/results/*.json``; the table is printed and written to ``bench/results/summary.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import memory
import rate_accuracy
import startup
import throughput
from common import BENCH, SRC, log, machine, save, set_src

BOUND_100MS = 100 / 0.1  # --concurrency 100 at 100 ms per request


def table(results: dict) -> tuple[str, list[tuple[str, bool, str]]]:
    tp = results["throughput"]["latencies"]
    zero, slow = tp["0"], tp["100"]
    sdk_async = ("SDK async (8 threads, default)", "SDK async (100 threads)")
    lines = [
        "| figure | batcher | SDK sync loop | SDK async (8 threads, default) "
        "| SDK async (100 threads) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]

    def row(name: str, data: dict, key: str, fmt: str) -> None:
        cells = [fmt.format(data[c][key]) for c in ("batcher", "SDK sync loop", *sdk_async)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    row("jobs/s, 0 ms server latency", zero, "jobs_per_s", "{:,.0f}")
    row("jobs/s, 100 ms server latency", slow, "jobs_per_s", "{:,.0f}")
    row("CPU s per 10,000 jobs (0 ms)", zero, "cpu_per_10k_s", "{:.1f}")
    row("peak RSS MB (0 ms run)", zero, "maxrss_mb", "{:.0f}")
    lines.append(
        "| jobs per run (0 ms / 100 ms) | "
        + " | ".join(
            f"{zero[c]['jobs']:,} / {slow[c]['jobs']:,}"
            for c in ("batcher", "SDK sync loop", *sdk_async)
        )
        + " |"
    )

    best_async = max(zero[c]["jobs_per_s"] for c in sdk_async)
    speedup = zero["batcher"]["jobs_per_s"] / best_async
    of_bound = slow["batcher"]["jobs_per_s"] / BOUND_100MS
    mem = results["memory"]
    validate = next(v for k, v in mem.items() if k.startswith("validate"))
    dry = next(v for k, v in mem.items() if k.startswith("dry-run"))
    real = sorted((v for k, v in mem.items() if k.startswith("run ")), key=lambda v: v["entries"])
    ratio = real[-1]["maxrss_mb"] / real[0]["maxrss_mb"]
    help_s = results["startup"]["help_median_s"]

    lines += ["", "| other figure | value |", "| --- | ---: |"]
    lines.append(
        f"| batcher at 100 ms, `--concurrency 100`: achieved / bound (1,000/s) | {of_bound:.1%} |"
    )
    for rate, r in results["rate_accuracy"]["rates"].items():
        lines.append(
            f"| `--rate {rate}`: achieved (server-side) / max in any 1 s window "
            f"| {r['achieved']:.2f}/s / {r['max_in_1s']} |"
        )
    lines.append(
        f"| peak RSS, `validate` {validate['entries']:,} entries "
        f"| {validate['maxrss_mb']:.0f} MB ({validate['wall_s']:.0f} s) |"
    )
    lines.append(
        f"| peak RSS, `run --dry-run` {dry['entries']:,} entries "
        f"| {dry['maxrss_mb']:.0f} MB ({dry['wall_s']:.0f} s) |"
    )
    for r in real:
        lines.append(
            f"| peak RSS, real run of {r['entries']:,} entries (`--rate 0`) "
            f"| {r['maxrss_mb']:.0f} MB ({r['entries'] / r['wall_s']:,.0f} jobs/s) |"
        )
    lines.append(
        f"| `batcher --help` start-up, median of {results['startup']['runs']} "
        f"| {help_s * 1000:.0f} ms |"
    )

    targets = [
        (
            "≥ 3× the SDK async client at 0 ms",
            speedup >= 3,
            f"{speedup:.2f}× (batcher {zero['batcher']['jobs_per_s']:,.0f}/s vs best SDK async "
            f"{best_async:,.0f}/s)",
        ),
        ("≥ 90% of the bound at 100 ms, --concurrency 100", of_bound >= 0.9, f"{of_bound:.1%}"),
        (
            "validate 1M entries < 200 MB peak RSS",
            validate["maxrss_mb"] < 200,
            f"{validate['maxrss_mb']:.0f} MB",
        ),
        ("200k run peak RSS ≤ 1.5× the 20k run's", ratio <= 1.5, f"{ratio:.2f}×"),
        ("batcher --help < 0.5 s", help_s < 0.5, f"{help_s * 1000:.0f} ms"),
    ]
    lines += ["", "| target | result | measured |", "| --- | --- | --- |"]
    lines += [f"| {name} | {'PASS' if ok else 'FAIL'} | {value} |" for name, ok, value in targets]
    return "\n".join(lines), targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small counts, to test the scripts")
    parser.add_argument("--src", help="run batcher from this copy of the package")
    parser.add_argument("--tag", default="all", help="name of the results file")
    args = parser.parse_args()
    set_src(args.src)
    scale = 0.05 if args.quick else 1.0
    started = time.time()
    results: dict = {"machine": machine(), "src": str(SRC), "started": time.ctime(started)}
    log(f"machine: {json.dumps(results['machine'])}; batcher from {SRC}")
    results["startup"] = startup.run(runs=5 if args.quick else 20)
    log(f"startup: {results['startup']}")
    results["throughput"] = throughput.run(repeat=1 if args.quick else args.repeat, scale=scale)
    results["rate_accuracy"] = rate_accuracy.run(seconds=3 if args.quick else 22)
    results["memory"] = memory.run(
        big=50_000 if args.quick else 1_000_000,
        runs=(1_000, 10_000) if args.quick else (20_000, 200_000),
    )
    results["elapsed_s"] = round(time.time() - started)
    text, targets = table(results)
    results["targets"] = [{"target": n, "pass": ok, "measured": v} for n, ok, v in targets]
    save(args.tag, results)
    m = results["machine"]
    header = (
        f"Machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, "
        f"{m['platform']}; {time.ctime(started)}; took {results['elapsed_s']} s.\n"
    )
    (BENCH / "results" / f"summary-{args.tag}.md").write_text(header + "\n" + text + "\n")
    print(header)
    print(text)


if __name__ == "__main__":
    main()
