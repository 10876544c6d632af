"""What the benchmark scripts share: pinning to one core, and the alternated-rounds table.

Imported by its siblings as ``bench_common`` (``python benchmarks/X.py`` puts
benchmarks/ on sys.path).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence

import torch


def pin_to_last_core() -> int:
    """One torch thread on the last core: core 0 also runs the machine's services."""
    last = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {last})
    torch.set_num_threads(1)
    return last


def print_rates_table(
    measures: dict[str, Callable[[int], float]],
    env_counts: Sequence[int],
    repeats: int,
    ours: str,
) -> None:
    """Steps/s of each contender per env count, in alternated rounds, with ratios to `ours`.

    Each round runs every contender once: ratios within a round compare runs
    seconds apart (machine speed drifts more than that between rounds), and the
    table shows the median rate and the median of the per-round ratios.
    """
    width = max(len(name) for name in measures)
    header = f"{'n_envs':>6} | {'contender':<{width}} | {'steps/s':>9} | {'ours / it':>9}"
    print(header)
    print("-" * len(header))
    for n_envs in env_counts:
        rates: dict[str, list[float]] = {name: [] for name in measures}
        for _ in range(repeats):
            for name, measure in measures.items():
                rates[name].append(measure(n_envs))
        for name, values in rates.items():
            ratio = statistics.median(o / v for o, v in zip(rates[ours], values, strict=True))
            median = statistics.median(values)
            print(f"{n_envs:>6} | {name:<{width}} | {median:>9,.0f} | {ratio:>9.2f}")


class StageTimer:
    """Mixin for an algorithm class: adds up the wall seconds of each stage of `run`.

    Put it before the algorithm (``class Timed(StageTimer, PPOClip)``); the seconds are in
    ``self.seconds``, by stage name (`prepare_rollout`, `update`, `after_update`,
    `evaluate`). Collection is what remains of the run's time.
    """

    STAGES = ("prepare_rollout", "update", "after_update", "evaluate")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds = dict.fromkeys(self.STAGES, 0.0)

    def _timed(self, stage, *args):
        start = time.perf_counter()
        result = getattr(super(), stage)(*args)
        self.seconds[stage] += time.perf_counter() - start
        return result

    def prepare_rollout(self, workspace):
        return self._timed("prepare_rollout", workspace)

    def update(self, rollout):
        return self._timed("update", rollout)

    def after_update(self, workspace, rollout, metrics):
        return self._timed("after_update", workspace, rollout, metrics)

    def evaluate(self, force=False):
        return self._timed("evaluate", force)
