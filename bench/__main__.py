"""``python -m bench [--quick] [--only NAME ...] [--no-wrk] [--keep]``: run the benchmarks,
print the tables and write ``bench/results/<date>-quick|full.json``."""

from __future__ import annotations

import argparse
import shutil
import sys

from . import report
from .suite import Bench, Plan, workdir

STEPS = (
    "throughput",
    "validation",
    "workers",
    "startup",
    "matching",
    "instances",
    "paced",
    "fixture",
    "json",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run (~2 minutes)")
    parser.add_argument(
        "--only", action="append", choices=STEPS, default=[], help="run only these (repeatable)"
    )
    parser.add_argument(
        "--no-wrk", action="store_true", help="use the Python load generator even if wrk exists"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated fixtures")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick, not args.no_wrk, frozenset(args.only))
    work = workdir()
    try:
        results = Bench(plan, work).run()
    finally:
        if args.keep:
            print(f"fixtures kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    facts = report.machine()
    checks = report.verdicts(results)
    print(report.render(results, facts, checks))
    path = report.write(results, facts, checks, args.quick)
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
