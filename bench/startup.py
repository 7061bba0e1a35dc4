"""Start-up time of ``batcher --help`` (median of N runs), with ``python -c pass`` for scale.

python bench/startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, measure, measure_batcher, median, save, set_src


def run(*, runs: int = 20) -> dict:
    measure_batcher(["--help"])  # warm the page cache and .pyc files
    help_times = [measure_batcher(["--help"]).wall for _ in range(runs)]
    run_help = [measure_batcher(["run", "--help"]).wall for _ in range(runs)]
    bare = [measure([PYTHON, "-c", "pass"]).wall for _ in range(runs)]
    return {
        "runs": runs,
        "help_median_s": round(median(help_times), 4),
        "help_max_s": round(max(help_times), 4),
        "run_help_median_s": round(median(run_help), 4),
        "python_bare_median_s": round(median(bare), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--src", help="run batcher from this copy of the package")
    args = parser.parse_args()
    set_src(args.src)
    r = run(runs=args.runs)
    save("startup", r)
    print(
        f"batcher --help: median {r['help_median_s'] * 1000:.0f} ms of {r['runs']} "
        f"(max {r['help_max_s'] * 1000:.0f} ms); batcher run --help "
        f"{r['run_help_median_s'] * 1000:.0f} ms; python -c pass "
        f"{r['python_bare_median_s'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
