"""Training on 1 and 2 processes (torchrun, gloo): env steps/s, time to target, all_reduce cost.

Usage: python benchmarks/scaling.py [--cases cartpole lunarlander] [--processes 1 2]
       [--seeds 1 2] [--out benchmarks/outputs/scaling]

For each case and number of processes N, runs
``torchrun --standalone --nproc-per-node N benchmarks/scaling.py --worker SPEC``
pinned with ``taskset`` to N cores (the last ones), one torch thread per process:

- ``cartpole``: ``configs/cartpole.yaml`` until an evaluation reaches 500 (the
  wall-clock to the target, from evals.csv), once per seed;
- ``lunarlander``: ``configs/lunarlander.yaml`` for 3 rollouts of 16 x 1024 steps,
  evaluation off: stepping costs more there, the update less per env step.

Each worker times the stages of its run (collection, `update`, the gradient
all_reduce inside it, evaluation) with a subclass, then the all_reduce alone: a
buffer the size of both agents' gradients (plus the diagnostics), and the three
floats of the advantage statistics, each 500 times. Rank 0 writes the JSON; the
table is printed at the end, with a model of N processes built from the measures
(labelled as such). On a busy machine, say what else ran.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
from bench_common import StageTimer  # benchmarks/ is on sys.path

from bbrl_ppo.algorithms.ppo import PPOClip
from bbrl_ppo.cli.training import load_config

ROOT = Path(__file__).resolve().parent.parent
NO_EVALUATION = "algorithm.eval_interval=1000000000000"
CASES = {
    "cartpole": {
        "config": "configs/cartpole.yaml",
        "overrides": ["algorithm.stop_at_reward=500", "save_best=false"],
        "target": 500.0,
    },
    "lunarlander": {
        "config": "configs/lunarlander.yaml",
        "overrides": ["algorithm.max_rollouts=3", NO_EVALUATION, "save_best=false"],
        "target": None,
    },
}
STAGES = StageTimer.STAGES


class StageTimedPPO(StageTimer, PPOClip):
    """PPOClip adding up the wall time of each stage of `run`, and of the gradient all_reduce."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.seconds["all_reduce"] = 0.0
        self.minibatches = 0
        averager = self._gradient_averager

        def timed_averager(diagnostics, count):
            start = time.perf_counter()
            averaged = averager(diagnostics, count)
            self.seconds["all_reduce"] += time.perf_counter() - start
            self.minibatches += 1
            return averaged

        self._gradient_averager = timed_averager


def all_reduce_ms(size: int, dtype: torch.dtype, repeats: int = 500) -> float:
    """Milliseconds per all_reduce of `size` elements (its median over batches of 50)."""
    buffer = torch.ones(size, dtype=dtype)
    for _ in range(50):
        dist.all_reduce(buffer)
    batches = []
    for _ in range(repeats // 50):
        dist.barrier()
        start = time.perf_counter()
        for _ in range(50):
            dist.all_reduce(buffer)
        batches.append((time.perf_counter() - start) / 50 * 1e3)
    return statistics.median(batches)


def time_to_target(run_dir: Path, target: float | None) -> float | None:
    if target is None:
        return None
    with open(run_dir / "evals.csv") as file:
        for row in csv.DictReader(file):
            if float(row["reward_mean"]) >= target:
                return float(row["wall_s"])
    return None


def worker(spec: dict) -> None:
    torch.set_num_threads(1)
    cfg = load_config(ROOT / spec["config"], spec["overrides"])
    algo = StageTimedPPO(cfg)
    start = time.perf_counter()
    algo.run()
    total = time.perf_counter() - start
    algo.close()
    gradient_size = sum(
        p.numel() for agent in (algo.train_policy, algo.critic_agent) for p in agent.parameters()
    )
    micro = {}
    if algo.distributed.is_distributed:
        micro = {
            "gradients_ms": all_reduce_ms(gradient_size + 6, torch.float32),
            "advantage_statistics_ms": all_reduce_ms(3, torch.float64),
        }
    if algo.distributed.is_main:
        result = {
            **spec,
            "world_size": algo.distributed.world_size,
            "nb_steps": algo.nb_steps,
            "nb_rollouts": algo.nb_rollouts,
            "total_s": total,
            "collection_s": total - sum(algo.seconds[stage] for stage in STAGES),
            **{f"{name}_s": seconds for name, seconds in algo.seconds.items()},
            "minibatches": algo.minibatches,
            "gradient_floats": gradient_size,
            "time_to_target_s": time_to_target(algo.base_dir, spec["target"]),
            "last_eval": algo.last_eval_reward,
            **micro,
        }
        Path(spec["result"]).write_text(json.dumps(result))


def launch(case: str, processes: int, seed: int, out: Path) -> dict:
    result = out / f"{case}-n{processes}-s{seed}.json"
    spec = {
        **CASES[case],
        "case": case,
        "seed": seed,
        "result": str(result),
    }
    spec["overrides"] = [
        *spec["overrides"],
        f"algorithm.seed={seed}",
        "progress_bar=false",
        f"base_dir={out / 'runs' / f'{case}-n{processes}-s{seed}'}",
    ]
    last = max(os.sched_getaffinity(0))
    cores = ",".join(str(core) for core in range(last - processes + 1, last + 1))
    command = [
        "taskset",
        "-c",
        cores,
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        __file__,
        "--worker",
        json.dumps(spec),
    ]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return json.loads(result.read_text())


def print_table(results: list[dict]) -> None:
    print(
        "| case | processes | seed | env steps | steps/s | collection s/rollout | update "
        "s/rollout | all_reduce ms/minibatch (in training) | time to target s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        rollouts = max(r["nb_rollouts"], 1)
        in_training = r["all_reduce_s"] / max(r["minibatches"], 1) * 1e3
        target = r["time_to_target_s"]
        print(
            f"| {r['case']} | {r['world_size']} | {r['seed']} | {r['nb_steps']:,} | "
            f"{r['nb_steps'] / r['total_s']:,.0f} | {r['collection_s'] / rollouts:.3f} | "
            f"{r['update_s'] / rollouts:.3f} | "
            f"{in_training:.3f} | {'-' if target is None else f'{target:.1f}'} |"
        )
    micro = [r for r in results if "gradients_ms" in r]
    if micro:
        print("\nall_reduce alone, 2 processes (ms, median):")
        for r in micro:
            print(
                f"  {r['case']}: {r['gradient_floats'] + 6:,} floats {r['gradients_ms']:.3f}; "
                f"3 float64 {r['advantage_statistics_ms']:.3f}"
            )


def print_model(results: list[dict], case: str) -> None:
    """A model of N processes from the 1- and 2-process measures of `case` (not a measure).

    Per rollout: collection C/N (each process steps n_envs/N envs), the update's
    minibatches M x (t_mb + t_ar(N)), t_mb the 2-process step without its
    all_reduce (a minibatch step is latency-bound: half the batch costs about as
    much), t_ar(N) = t_ar(2) x log2(N) (a tree or halving-doubling all_reduce;
    gloo's ring is worse), and the rest of the rollout's work unchanged.
    """
    one = [r for r in results if r["case"] == case and r["world_size"] == 1]
    two = [r for r in results if r["case"] == case and r["world_size"] == 2]
    if not one or not two:
        return
    one, two = one[0], two[0]
    rollouts = max(one["nb_rollouts"], 1)
    collection = one["collection_s"] / rollouts
    other = (one["prepare_rollout_s"] + one["after_update_s"]) / rollouts
    minibatches = two["minibatches"] / max(two["nb_rollouts"], 1)
    t_ar = two["all_reduce_s"] / max(two["minibatches"], 1)
    t_mb = (two["update_s"] - two["all_reduce_s"]) / max(two["minibatches"], 1)
    single = collection + other + one["update_s"] / rollouts
    print(f"\nModel (from the measures above, not measured), {case}, per rollout:")
    print("| processes | collection s | update s | total s | speed-up |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for processes in (1, 2, 4, 8, 16, 32):
        if processes == 1:
            update, spread = one["update_s"] / rollouts, collection
        else:
            update = minibatches * (t_mb + t_ar * math.log2(processes))
            spread = collection / processes
        total = spread + other + update
        print(f"| {processes} | {spread:.3f} | {update:.3f} | {total:.3f} | {single / total:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(json.loads(args.worker))
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="scaling-"))
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for case in args.cases:
        for seed in args.seeds if CASES[case]["target"] is not None else args.seeds[:1]:
            for processes in args.processes:
                results.append(launch(case, processes, seed, out.resolve()))
                print(json.dumps(results[-1]), file=sys.stderr)
    print(time.strftime("%Y-%m-%d"), f"{os.cpu_count()} cores", file=sys.stderr)
    print_table(results)
    for case in args.cases:
        print_model(results, case)


if __name__ == "__main__":
    main()
