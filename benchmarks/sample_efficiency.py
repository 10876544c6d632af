"""Per-seed sample efficiency of a config: env steps to a target evaluation mean.

Usage:
    python benchmarks/sample_efficiency.py configs/cartpole.yaml --target 500 \\
        --seeds 1 2 3 4 5 --jobs 2 [key=value ...]

Runs ``bbrl-ppo train`` once per seed (one torch thread each, `jobs` at a time,
each pinned to its own core), then reads each run's ``evals.csv`` (the
deterministic evaluations) and prints a table: env steps at the first evaluation
whose mean reaches the target, best and final evaluation means, wall time.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue


def run_seed(config: str, seed: int, run_dir: Path, overrides: list[str], cores: Queue) -> Path:
    """Train one seed on a core taken from `cores` (given back afterwards)."""
    core = cores.get()
    try:
        return _train(config, seed, run_dir, overrides, core)
    finally:
        cores.put(core)


def _train(config: str, seed: int, run_dir: Path, overrides: list[str], core: int) -> Path:
    command = [
        sys.executable, "-m", "bbrl_ppo", "train", config,
        f"algorithm.seed={seed}", f"base_dir={run_dir.resolve()}", "progress_bar=false",
        *overrides,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log = run_dir.with_suffix(".log")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        subprocess.run(
            ["taskset", "-c", str(core), *command], env=env, stdout=output, stderr=output
        )
    return run_dir


def summarize(run_dir: Path, target: float) -> dict[str, float | None]:
    with (run_dir / "evals.csv").open() as file:
        rows = [{key: float(value) for key, value in row.items()} for row in csv.DictReader(file)]
    reached = next((row["nb_steps"] for row in rows if row["reward_mean"] >= target), None)
    return {
        "steps_to_target": reached,
        "best": max(row["reward_mean"] for row in rows),
        "final": rows[-1]["reward_mean"],
        "steps": rows[-1]["nb_steps"],
        "wall_s": rows[-1]["wall_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--target", type=float, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default="outputs/sample_efficiency")
    parser.add_argument(
        "--cores", type=int, nargs="+", help="cores to pin runs to (default: the last ones)"
    )
    parser.add_argument(
        "--report", action="store_true", help="only print the table of runs already made"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, key=value")
    args = parser.parse_args()

    name = Path(args.config).stem
    out = Path(args.out) / name
    cores = args.cores or sorted(os.sched_getaffinity(0), reverse=True)
    if args.report:
        run_dirs = [out / f"S{seed}" for seed in args.seeds]
    else:
        free_cores: Queue = Queue()
        for core in cores[: args.jobs]:
            free_cores.put(core)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [
                pool.submit(
                    run_seed, args.config, seed, out / f"S{seed}", args.overrides, free_cores
                )
                for seed in args.seeds
            ]
            run_dirs = [future.result() for future in futures]

    print(f"{name}: target eval mean >= {args.target:g} (deterministic evaluation, evals.csv)")
    header = (
        f"{'seed':>4} | {'steps to target':>15} | {'best eval':>9} | {'last eval':>10} | "
        f"{'last eval at':>12} | {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    reached = 0
    for seed, run_dir in zip(args.seeds, run_dirs, strict=True):
        try:
            row = summarize(run_dir, args.target)
        except FileNotFoundError:
            print(f"{seed:>4} | run failed, see {run_dir.with_suffix('.log')}")
            continue
        steps = row["steps_to_target"]
        reached += steps is not None
        shown = f"{steps:,.0f}" if steps is not None else "not reached"
        print(
            f"{seed:>4} | {shown:>15} | {row['best']:>9.1f} | {row['final']:>10.1f} | "
            f"{row['steps']:>12,.0f} | {row['wall_s']:>7.0f}"
        )
    print(f"{reached}/{len(args.seeds)} seeds reached the target")


if __name__ == "__main__":
    main()
