"""Quota use: batcher with ``--rate`` above a hidden quota, for each kind of quota.

    python bench/quota.py [--kinds calendar sliding drop] [--repeat 1] [--compare DIR]

Each run starts a fresh ``batcher simulate`` (from the working tree) with the quota hidden
from batcher, and runs ``batcher run --rate 60`` over 600 entries (``--concurrency 16``, the
default). The kinds:

* ``calendar``: ``--quota 20``, counted per calendar second;
* ``sliding``: ``--quota 20 --quota-window sliding``, counted over any sliding second;
* ``drop``: ``--quota 30 --quota-change 12@5``, 30 a second, then 12 from 5 s after the
  first request (another client starts sharing the quota; the 429s still say 30).

Printed per run: the useful rate as a share of the quota (entries that succeeded over the
quota's capacity between the first and the last success, from the report's own times), the
share of requests throttled (the simulator's own count of 429s over all requests), and the
entries that succeeded. Nothing is asserted: these are figures to compare side by side,
e.g. the working tree against other copies with ``--compare DIR [DIR ...]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import (
    ROOT,
    batcher_run_args,
    log,
    make_csv,
    measure_batcher,
    save,
    server,
    set_src,
    workdir,
)

#: kind -> (simulator flags, the quota left to us as (from seconds, per second) steps)
KINDS: dict[str, tuple[list[str], list[tuple[float, float]]]] = {
    "calendar": (["--quota", "20"], [(0.0, 20.0)]),
    "sliding": (["--quota", "20", "--quota-window", "sliding"], [(0.0, 20.0)]),
    "drop": (["--quota", "30", "--quota-change", "12@5"], [(0.0, 30.0), (5.0, 12.0)]),
}


def capacity(steps: list[tuple[float, float]], start: float, end: float) -> float:
    """Admissions the quota allows between ``start`` and ``end`` seconds after the first."""
    total = 0.0
    for i, (at, per_second) in enumerate(steps):
        until = steps[i + 1][0] if i + 1 < len(steps) else float("inf")
        lo, hi = max(at, start), min(until, end)
        if hi > lo:
            total += (hi - lo) * per_second
    return total


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def one_run(
    kind: str, manifest: Path, report: Path, *, rate: float, concurrency: int, src: Path
) -> dict:
    flags, steps = KINDS[kind]
    with server("sim", extra=flags) as srv:
        m = measure_batcher(
            batcher_run_args(
                manifest,
                report,
                srv.url,
                rate=rate,
                concurrency=concurrency,
                extra=["--log-level", "warning"],
            ),
            src=src,
        )
        stats = srv.stats()
    if not report.exists():
        log(f"no report (rc {m.rc}): {m.stderr[-800:]}")
        return {"kind": kind, "entries": 0, "succeeded": 0, "requests": stats["requests"],
                "throttled": 0, "throttled_share": 0.0, "useful_of_quota": 0.0, "span_s": 0.0,
                "wall_s": round(m.wall, 2), "rc": m.rc}  # fmt: skip
    lines = [json.loads(raw) for raw in report.read_bytes().splitlines() if raw.strip()]
    report.unlink()
    ok = [line for line in lines if line["status"] == "succeeded"]
    # At 0 ms server latency an answer comes back when it was admitted: finished_at.
    times = sorted(_stamp(line["finished_at"]) for line in ok)
    first = min(_stamp(line["started_at"]) for line in lines) if lines else 0.0
    span_end = times[-1] - first if times else 0.0
    # n successes fill n - 1 intervals: compare with the capacity of that span.
    cap = capacity(steps, times[0] - first, span_end) if len(times) > 1 else 0.0
    requests = stats["requests"]
    throttled = stats["by_status"].get("429", 0)
    return {
        "kind": kind,
        "entries": len(lines),
        "succeeded": len(ok),
        "requests": requests,
        "throttled": throttled,
        "throttled_share": round(throttled / requests, 4) if requests else 0.0,
        "useful_of_quota": round((len(times) - 1) / cap, 4) if cap else 0.0,
        "span_s": round(span_end, 2),
        "wall_s": round(m.wall, 2),
        "rc": m.rc,
    }


def run(
    *,
    kinds: tuple[str, ...] = tuple(KINDS),
    entries: int = 600,
    rate: float = 60.0,
    concurrency: int = 16,
    repeat: int = 1,
    sources: dict[str, Path] | None = None,
) -> dict:
    sources = sources or {"batcher": common.SRC}
    results: dict = {"entries": entries, "rate": rate, "concurrency": concurrency, "kinds": {}}
    with workdir() as tmp:
        manifest = make_csv(tmp / "m.csv", entries)
        for kind in kinds:
            rows: dict[str, list[dict]] = {name: [] for name in sources}
            for r in range(repeat):
                order = list(sources.items())
                if r % 2:
                    order.reverse()
                for name, src in order:
                    row = one_run(
                        kind,
                        manifest,
                        tmp / "r.jsonl",
                        rate=rate,
                        concurrency=concurrency,
                        src=src,
                    )
                    rows[name].append(row)
                    log(
                        f"[{kind:8}] {name:24} useful {row['useful_of_quota']:6.1%} of the quota"
                        f"  throttled {row['throttled_share']:5.1%} ({row['throttled']}"
                        f"/{row['requests']})  succeeded {row['succeeded']}/{row['entries']}"
                        f"  rc {row['rc']}  {row['wall_s']}s"
                    )
            results["kinds"][kind] = rows
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=tuple(KINDS), default=list(KINDS))
    parser.add_argument("--entries", type=int, default=600)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--src", help="run batcher from this copy of the package")
    parser.add_argument(
        "--compare", metavar="DIR", nargs="+", default=[], help="also run these copies"
    )
    args = parser.parse_args()
    set_src(args.src)
    sources = {"batcher" if not args.compare else str(args.src or "tree"): common.SRC}
    sources.update({other: Path(other) for other in args.compare})
    results = run(
        kinds=tuple(args.kinds),
        entries=args.entries,
        rate=args.rate,
        concurrency=args.concurrency,
        repeat=args.repeat,
        sources={k: Path(v).resolve() for k, v in sources.items()},
    )
    path = save("quota", results)
    print(f"\n--rate {args.rate:g}, {args.entries} entries, --concurrency {args.concurrency}")
    print("| quota | client | useful / quota | throttled | succeeded |")
    print("| --- | --- | ---: | ---: | ---: |")
    for kind, rows in results["kinds"].items():
        for name, runs in rows.items():
            for row in runs:
                print(
                    f"| {kind} | {name} | {row['useful_of_quota']:.1%} | "
                    f"{row['throttled_share']:.1%} | {row['succeeded']}/{row['entries']} |"
                )
    print(f"\nraw: {path} (server: the working tree's simulator, {ROOT})")


if __name__ == "__main__":
    main()
