"""A trial's learning curve while its runs still write it: what the pruner compares."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def read_evaluations(path: Path) -> list[tuple[int, float]]:
    """(env steps, evaluation mean) of each complete row of a run's evals.csv, so far.

    The run appends to the file while it is read: a last line without its end of line
    is still being written, and is left for the next read.
    """
    try:
        text = path.read_text()
    except OSError:
        return []
    lines = text.splitlines(keepends=True)
    complete = [line for line in lines[1:] if line.endswith("\n")]
    rows = []
    for row in csv.DictReader([lines[0], *complete] if lines else []):
        try:
            rows.append((int(row["nb_steps"]), float(row["reward_mean"])))
        except (KeyError, TypeError, ValueError):
            continue
    return rows


def mean_curve(
    curves: Sequence[Sequence[tuple[int, float]]], ended: Sequence[bool], eval_interval: int
) -> list[tuple[int, float]]:
    """The seeds' mean evaluation at each step that every seed has reached.

    Runs count env transitions, which differ between seeds by a few steps; an evaluation
    is placed at the multiple of `eval_interval` that triggered it, the same for every
    seed and every trial (the pruner compares trials step by step). A seed that ended
    (say at ``stop_at_reward``) keeps its last evaluation for the steps after it.
    """
    placed = [
        {steps // eval_interval * eval_interval: mean for steps, mean in curve} for curve in curves
    ]
    if any(not seed for seed in placed):
        return []
    reached = [max(seed) for seed, done in zip(placed, ended, strict=True) if not done]
    limit = min(reached) if reached else max(max(seed) for seed in placed)
    steps = sorted({step for seed in placed for step in seed if step <= limit})
    curve = []
    for step in steps:
        values = [_value_at(seed, step) for seed in placed]
        if all(value is not None for value in values):
            curve.append((step, sum(values) / len(values)))
    return curve


def _value_at(seed: dict[int, float], step: int) -> float | None:
    earlier = [placed for placed in seed if placed <= step]
    return seed[max(earlier)] if earlier else None
