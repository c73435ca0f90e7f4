"""`python -m paxdb.sim`: run seeds of the deterministic simulator.

    python -m paxdb.sim --seeds 0-199          # a range; exit status 1 on any violation
    python -m paxdb.sim --seed 17              # replay one seed, print its trace hash
    python -m paxdb.sim --list-mutants
    python -m paxdb.sim --mutant NAME --seeds 0-199   # must find a violation

`PAXDB_SEED=N python -m paxdb.sim` replays seed N too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TextIO

from paxdb.paxos.options import MUTANTS
from paxdb.sim.cluster import RunResult, run_seed
from paxdb.sim.options import describe_options

TRACE_LINES_PRINTED = 300


def parse_seeds(text: str) -> range:
    first, sep, last = text.partition("-")
    try:
        low = int(first)
        high = int(last) if sep else low
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must look like 0-199, not {text!r}") from None
    if low < 0 or high < low:
        raise argparse.ArgumentTypeError(f"empty or negative seed range {text!r}")
    return range(low, high + 1)


def _run(args: tuple[int, str | None]) -> RunResult:
    seed, mutant = args
    return run_seed(seed, mutant)


def run_many(
    seeds: Iterable[int], mutant: str | None, jobs: int, stop_on_failure: bool
) -> list[RunResult]:
    work = [(seed, mutant) for seed in seeds]
    results: list[RunResult] = []
    if jobs <= 1:
        for item in work:
            results.append(_run(item))
            if stop_on_failure and not results[-1].ok:
                break
        return results
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for result in pool.map(_run, work, chunksize=4):
            results.append(result)
            if stop_on_failure and not result.ok:
                pool.shutdown(cancel_futures=True)
                break
    return results


def summed(counts: Iterable[dict[str, int]]) -> str:
    """Counters added up over many runs, as `name=total` in a stable order."""
    totals: dict[str, int] = {}
    for count in counts:
        for name, value in count.items():
            totals[name] = totals.get(name, 0) + value
    return " ".join(f"{name}={value}" for name, value in totals.items())


def report_failure(result: RunResult, out: TextIO = sys.stdout) -> None:
    mutant = f" --mutant {result.options.mutant}" if result.options.mutant else ""
    print(f"VIOLATION seed={result.seed}: {result.message}", file=out)
    print(f"options: {describe_options(result.options)}", file=out)
    print("last trace lines:", file=out)
    for line in result.trace_tail[-TRACE_LINES_PRINTED:]:
        print(f"  {line}", file=out)
    print(f"replay: PAXDB_SEED={result.seed} python -m paxdb.sim{mutant}", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paxdb.sim",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, help="run one seed and print its trace hash")
    parser.add_argument("--seeds", type=parse_seeds, help="a range of seeds, like 0-199")
    parser.add_argument("--mutant", choices=sorted(MUTANTS), help="switch on one flaw")
    parser.add_argument("--list-mutants", action="store_true")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep-going", action="store_true", help="do not stop at a failure")
    args = parser.parse_args(argv)
    if args.list_mutants:
        for name in sorted(MUTANTS):
            print(name)
        return 0
    if args.seed is None and args.seeds is None and os.environ.get("PAXDB_SEED"):
        args.seed = int(os.environ["PAXDB_SEED"])
    if args.seed is not None:
        result = run_seed(args.seed, args.mutant)
        if not result.ok:
            report_failure(result)
            return 1
        print(
            f"seed {result.seed} ok: {result.ticks} ticks, {result.chosen} instances chosen, "
            f"{result.acknowledged} requests acknowledged, faults {result.faults}, "
            f"checkpoints {result.checkpoints}, membership {result.membership}, "
            f"trace {result.trace_hash}"
        )
        return 0
    seeds = args.seeds if args.seeds is not None else range(0, 200)
    started = time.monotonic()
    results = run_many(seeds, args.mutant, args.jobs, stop_on_failure=not args.keep_going)
    elapsed = time.monotonic() - started
    failures = [r for r in results if not r.ok]
    for result in failures[:3]:
        report_failure(result)
    chosen = sum(r.chosen for r in results)
    print(
        f"{len(results) - len(failures)} passed, {len(failures)} failed"
        f" ({len(results)} seeds, {chosen} instances chosen, {elapsed:.1f} s)"
    )
    print(f"checkpoints: {summed(r.checkpoints for r in results)}")
    print(f"faults: {summed(r.faults for r in results)}")
    print(f"membership: {summed(r.membership for r in results)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
