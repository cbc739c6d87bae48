"""`python -m tests.sim --seed N [--steps M]` replays one seed (its log and violations);
`python -m tests.sim --seeds 10000 [--start S] [--jobs 2]` runs many and prints a summary."""

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from tests.sim.scenario import DEFAULT_STEPS, reproduction, simulate


def _one(args: tuple[int, int]) -> tuple[int, list[str]]:
    seed, steps = args
    return seed, simulate(seed, steps).violations


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim")
    parser.add_argument("--seed", type=int, help="replay one seed, with its log")
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds to run")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    if os.environ.get("PYTHONHASHSEED") != "0":  # set iteration order must repeat too
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "tests.sim", *sys.argv[1:]])
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    if args.seed is not None:
        run = simulate(args.seed, args.steps)
        print("\n".join(run.log))
        print("\n".join(run.violations) or "no violations")
        return 1 if run.violations else 0
    started = time.monotonic()
    failed = 0
    work = [(seed, args.steps) for seed in range(args.start, args.start + args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        for seed, violations in pool.map(_one, work, chunksize=8):
            if violations:
                failed += 1
                print(f"{violations[0]}  -- reproduce: {reproduction(seed, args.steps)}")
    elapsed = time.monotonic() - started
    print(f"{args.seeds} seeds, {failed} violations, {elapsed:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
