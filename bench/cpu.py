"""CPU seconds (user+sys of the client process) per 10,000 jobs at zero server latency.

    python bench/cpu.py [--repeat 3] [--jobs 10000]

The same measurement :mod:`throughput` records for every run (``run_all.py`` takes it from
there); this script is the short stand-alone version: batcher, the SDK sync loop and the
SDK async client, each sending ``--jobs`` requests to the null server, start-up included.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput
from common import save, set_src


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--src", help="run batcher from this copy of the package")
    args = parser.parse_args()
    set_src(args.src)
    throughput.CLIENTS[:] = [
        (label, kind, args.jobs, args.jobs, threads)
        for label, kind, _n0, _n100, threads in throughput.CLIENTS
    ]
    results = throughput.run(repeat=args.repeat, latencies=(0.0,))
    save("cpu", results)
    print(f"CPU seconds per 10,000 jobs (median of {args.repeat}, {args.jobs} jobs each):")
    for label, s in results["latencies"]["0"].items():
        print(f"  {label:32} {s['cpu_per_10k_s']:6.2f} s")


if __name__ == "__main__":
    main()
