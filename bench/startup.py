"""Start-up: ``batcher --help`` and ``batcher validate`` of a 10-line manifest (medians of N).

    python bench/startup.py [--runs 20]

``python -c pass`` is measured alongside, for scale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PYTHON, make_csv, measure, measure_batcher, median, save, set_src, workdir


def run(*, runs: int = 20) -> dict:
    with workdir() as tmp:
        manifest = make_csv(tmp / "ten.csv", 10)
        measure_batcher(["--help"])  # warm the page cache and .pyc files
        measure_batcher(["validate", str(manifest)])
        help_times = [measure_batcher(["--help"]).wall for _ in range(runs)]
        validate = [measure_batcher(["validate", str(manifest)]) for _ in range(runs)]
        bare = [measure([PYTHON, "-c", "pass"]).wall for _ in range(runs)]
    return {
        "runs": runs,
        "help_median_s": round(median(help_times), 4),
        "help_max_s": round(max(help_times), 4),
        "validate_10_median_s": round(median([m.wall for m in validate]), 4),
        "validate_10_rc": max(m.rc for m in validate),
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
        f"(max {r['help_max_s'] * 1000:.0f} ms); batcher validate (10 lines) "
        f"{r['validate_10_median_s'] * 1000:.0f} ms; python -c pass "
        f"{r['python_bare_median_s'] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
