"""Rate accuracy, judged from the server's side.

    python bench/rate_accuracy.py [--rates 20 200] [--seconds 22] [--repeat 1]

batcher runs ``--rate R`` (burst 1, concurrency 100) against the null server, which records
the arrival time of every request. Reported: the achieved rate ((n - 1) / (last - first
arrival)) and the largest number of arrivals in any sliding one-second window [t, t + 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    batcher_run_args,
    log,
    make_csv,
    max_in_window,
    measure_batcher,
    median,
    save,
    server,
    set_src,
    workdir,
)


def run(
    *,
    rates: tuple[float, ...] = (20.0, 200.0),
    seconds: float = 22.0,
    repeat: int = 1,
    latency_ms: float = 0.0,
) -> dict:
    results: dict = {"seconds": seconds, "latency_ms": latency_ms, "rates": {}}
    with workdir() as tmp, server("null", latency_ms=latency_ms) as srv:
        for rate in rates:
            n = int(rate * seconds)
            manifest = make_csv(tmp / f"m{n}.csv", n)
            runs = []
            for r in range(repeat):
                srv.reset()
                report = tmp / f"r{rate:g}-{r}.jsonl"
                m = measure_batcher(batcher_run_args(manifest, report, srv.url, rate=rate))
                times = sorted(srv.arrivals())
                span = times[-1] - times[0] if len(times) > 1 else 0.0
                achieved = (len(times) - 1) / span if span > 0 else 0.0
                peak = max_in_window(times)
                runs.append(
                    {
                        "jobs": n,
                        "arrivals": len(times),
                        "rc": m.rc,
                        "span_s": round(span, 3),
                        "achieved": round(achieved, 3),
                        "max_in_1s": peak,
                        "wall_s": round(m.wall, 2),
                    }
                )
                log(
                    f"--rate {rate:g}: {len(times)} arrivals over {span:.2f}s = {achieved:.2f}/s,"
                    f" max {peak} in any 1 s window (rc {m.rc})"
                )
            results["rates"][f"{rate:g}"] = {
                "achieved": median([x["achieved"] for x in runs]),
                "max_in_1s": max(x["max_in_1s"] for x in runs),
                "accuracy": round(median([x["achieved"] for x in runs]) / rate, 4),
                "runs": runs,
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[20.0, 200.0])
    parser.add_argument("--seconds", type=float, default=22.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--src", help="run batcher from this copy of the package")
    args = parser.parse_args()
    set_src(args.src)
    results = run(
        rates=tuple(args.rates),
        seconds=args.seconds,
        repeat=args.repeat,
        latency_ms=args.latency_ms,
    )
    save("rate_accuracy", results)
    for rate, s in results["rates"].items():
        print(
            f"--rate {rate:>5}: achieved {s['achieved']:.2f}/s ({s['accuracy']:.1%}), "
            f"max {s['max_in_1s']} in any 1 s window"
        )


if __name__ == "__main__":
    main()
