"""Every benchmark of issue 13, one after the other, then the figures and the targets.

    python bench/run_all.py [--repeat 3] [--quick] [--src DIR] [--skip NAME ...]

Takes about 20 minutes on 2 cores (``--quick``: a few, with small counts, for checking the
scripts; its figures are not the ones to quote). Raw numbers go to ``bench/results/*.json``;
the tables are printed and written to ``bench/results/summary-TAG.md``. Targets are marked
met or not; nothing fails on them (wall-clock figures on a shared machine are for reading).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import memory
import quota
import rate_accuracy
import startup
import throughput
from common import BENCH, SRC, log, machine, save, set_src

STEPS = ("startup", "throughput", "quota", "rate_accuracy", "memory")


def tables(results: dict) -> tuple[str, list[tuple[str, bool | None, str]]]:
    out: list[str] = []
    targets: list[tuple[str, bool | None, str]] = []
    if "throughput" in results:
        tp = results["throughput"]
        out += ["## Throughput (null server, whole process)", "", throughput.table(tp), ""]
        wanted = {
            "0 ms, 20,000 entries": 0.9,
            "0 ms, 6,000 entries": 0.8,
            "100 ms, --concurrency 1000": 0.9,
        }
        for name, floor in wanted.items():
            if name in tp["cases"]:
                ratio = tp["cases"][name]["ratios"]["of_bare_loop"]
                targets.append((f"{name}: ≥ {floor}× the bare loop", ratio >= floor, f"{ratio}×"))
        if "0 ms, 6,000 entries" in tp["cases"]:
            sdk = tp["cases"]["0 ms, 6,000 entries"]["ratios"]["of_sdk_async"]
            targets.append(("0 ms, 6,000 entries: ≥ 5× the SDK async client", sdk >= 5, f"{sdk}×"))
    if "quota" in results:
        q = results["quota"]
        out += [
            f"## Quota use (`--rate {q['rate']:g}`, {q['entries']} entries, "
            f"`--concurrency {q['concurrency']}`)",
            "",
            "| hidden quota | useful / quota | throttled | succeeded |",
            "| --- | ---: | ---: | ---: |",
        ]
        for kind, rows in q["kinds"].items():
            for row in next(iter(rows.values())):
                out.append(
                    f"| {kind} | {row['useful_of_quota']:.1%} | {row['throttled_share']:.1%} "
                    f"| {row['succeeded']}/{row['entries']} |"
                )
                floor = 0.9 if kind == "drop" else 0.95
                ok = (
                    row["useful_of_quota"] >= floor
                    and row["throttled_share"] <= 0.05
                    and row["succeeded"] == row["entries"]
                )
                targets.append(
                    (
                        f"quota {kind}: ≥ {floor:.0%} used, ≤ 5% throttled, all succeed",
                        ok,
                        f"{row['useful_of_quota']:.1%}, {row['throttled_share']:.1%}",
                    )
                )
        out.append("")
    if "rate_accuracy" in results:
        out += ["## Rate accuracy (server-side arrivals)", ""]
        out += ["| --rate | achieved | most in any 1 s |", "| ---: | ---: | ---: |"]
        for rate, r in results["rate_accuracy"]["rates"].items():
            out.append(f"| {rate} | {r['achieved']:.2f}/s | {r['max_in_1s']} |")
        out.append("")
    if "memory" in results:
        mem = results["memory"]
        out += ["## Memory and time to first request", "", "| figure | value |", "| --- | ---: |"]
        for name, r in mem.items():
            extra = ""
            if r.get("first_request_s") is not None:
                extra = f", first request after {r['first_request_s']} s"
            out.append(f"| {name} | {r['maxrss_mb']:.0f} MB peak RSS ({r['wall_s']} s{extra}) |")
        out.append("")
        if "validate yaml" in mem:
            rss = mem["validate yaml"]["maxrss_mb"]
            targets.append(("validate 1M-entry YAML ≤ 150 MB", rss <= 150, f"{rss:.0f} MB"))
        if "resume" in mem:
            rss, added = mem["resume"]["maxrss_mb"], mem["resume"].get("added_s")
            targets.append(("--resume over 1M lines ≤ 100 MB", rss <= 100, f"{rss:.0f} MB"))
            targets.append(
                (
                    "--resume adds ≤ 3 s before the first request",
                    None if added is None else added <= 3,
                    f"{added} s",
                )
            )
        if "report" in mem:
            r = mem["report"]
            ok = r["maxrss_mb"] <= 100 and r["wall_s"] <= 5
            value = f"{r['maxrss_mb']:.0f} MB, {r['wall_s']} s"
            targets.append(("report of 1M lines ≤ 100 MB, ≤ 5 s", ok, value))
    if "startup" in results:
        s = results["startup"]
        out += [
            "## Start-up (median of {})".format(s["runs"]),
            "",
            f"`batcher --help` {s['help_median_s'] * 1000:.0f} ms; `batcher validate` of 10 lines "
            f"{s['validate_10_median_s'] * 1000:.0f} ms; `python -c pass` "
            f"{s['python_bare_median_s'] * 1000:.0f} ms",
            "",
        ]
        v = s["validate_10_median_s"]
        targets.append(("validate of 10 lines ≤ 100 ms", v <= 0.1, f"{v * 1000:.0f} ms"))
    out += ["## Targets", "", "| target | met | measured |", "| --- | --- | --- |"]
    for name, ok, value in targets:
        mark = "n/a" if ok is None else ("yes" if ok else "NO")
        out.append(f"| {name} | {mark} | {value} |")
    return "\n".join(out), targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small counts, to test the scripts")
    parser.add_argument("--src", help="run batcher from this copy of the package")
    parser.add_argument("--tag", default="all", help="name of the results file")
    parser.add_argument("--skip", nargs="+", choices=STEPS, default=[])
    args = parser.parse_args()
    set_src(args.src)
    quick = args.quick
    started = time.time()
    results: dict = {"machine": machine(), "src": str(SRC), "started": time.ctime(started)}
    log(f"machine: {json.dumps(results['machine'])}; batcher from {SRC}")
    if "startup" not in args.skip:
        results["startup"] = startup.run(runs=5 if quick else 20)
    if "throughput" not in args.skip:
        results["throughput"] = throughput.run(
            repeat=1 if quick else args.repeat, scale=0.05 if quick else 1.0
        )
    if "quota" not in args.skip:
        results["quota"] = quota.run(entries=120 if quick else 600)
    if "rate_accuracy" not in args.skip:
        results["rate_accuracy"] = rate_accuracy.run(seconds=3 if quick else 22)
    if "memory" not in args.skip:
        results["memory"] = memory.run(
            big=20_000 if quick else 1_000_000, runs=(1_000,) if quick else (20_000, 200_000)
        )
    results["elapsed_s"] = round(time.time() - started)
    text, targets = tables(results)
    results["targets"] = [{"target": n, "met": ok, "measured": v} for n, ok, v in targets]
    save(args.tag, results)
    m = results["machine"]
    header = (
        f"Machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, "
        f"{m['platform']}; {time.ctime(started)}; took {results['elapsed_s']} s; "
        f"batcher from {SRC}.\n"
    )
    (BENCH / "results" / f"summary-{args.tag}.md").write_text(header + "\n" + text + "\n")
    print(header)
    print(text)


if __name__ == "__main__":
    main()
