"""Learning curves of groups of runs: the mean over seeds, with a bootstrap band around it.

Built with matplotlib's object API (`matplotlib.figure.Figure`), never pyplot: no global
figure or backend is touched, so the same call writes a PNG on a headless machine (saving
picks the Agg or SVG renderer from the suffix) and never leaves a figure open behind it.
Returned as the last value of a Jupyter cell, the figure shows inline (`LearningCurves`).
matplotlib is imported with this module: import it only to plot.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.experiments.report import bootstrap_interval
from bbrl_ppo.experiments.runs import Run, RunGroup, RunWarning, load_groups

#: What the x axis can show, and its label.
X_AXES = {"steps": "env steps", "time": "wall-clock (s)"}
PLOT_SUFFIXES = (".png", ".svg")
#: A curve cut before this fraction of its longest seed's span gets a warning.
_SHORT_CURVE = 0.9


class LearningCurves(Figure):
    """A figure that shows itself as a PNG in Jupyter.

    IPython's inline backend registers its PNG display for figures only once pyplot has
    loaded it; a notebook that never used pyplot would otherwise print ``<Figure ...>``.
    """

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


@dataclass(frozen=True)
class Curve:
    """A group's mean evaluation return on a grid shared by its seeds."""

    x: np.ndarray
    mean: np.ndarray
    #: The 95% bootstrap interval of the mean at each x; None with a single seed.
    low: np.ndarray | None
    high: np.ndarray | None
    seeds: int


def mean_curve(
    runs: Sequence[Run], x: str = "steps", *, n_resamples: int = 2000, seed: int = 0
) -> Curve | None:
    """The mean over `runs` of their evaluation means, with a 95% bootstrap band.

    Seeds evaluate at different env steps (and always at different wall times), so each
    run is linearly interpolated onto one grid: the union of all the runs' evaluation
    points within the range every run covers (from the latest first evaluation to the
    earliest last one). Nothing is extrapolated: a curve stops where its shortest seed
    stops. None when the runs share no range at all. The band is the percentile bootstrap
    over seeds of the mean, at each grid point (`bootstrap_interval`).
    """
    runs = [run for run in runs if run.has_evaluations]
    if not runs:
        return None
    series = []
    for run in runs:
        xs = run.x_values(x)
        order = np.argsort(xs, kind="stable")
        series.append((xs[order], run.reward_mean[order]))
    start = max(xs[0] for xs, _ in series)
    stop = min(xs[-1] for xs, _ in series)
    if start > stop:
        return None
    grid = np.unique(np.concatenate([xs for xs, _ in series]))
    grid = grid[(grid >= start) & (grid <= stop)]
    values = np.stack([np.interp(grid, xs, ys) for xs, ys in series])
    interval = bootstrap_interval(values, np.mean, n_resamples=n_resamples, seed=seed)
    low, high = interval if interval is not None else (None, None)
    return Curve(x=grid, mean=values.mean(axis=0), low=low, high=high, seeds=len(runs))


def plot_runs(
    paths: Sequence[str | Path],
    *,
    x: str = "steps",
    labels: Sequence[str] | None = None,
    target: float | None = None,
    output: str | Path | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Figure:
    """Learning curves of the runs under `paths` (run, experiment or any directories).

    One curve per group (`load_groups`: an experiment's seeds, or runs of one env and
    algorithm, or the runs under a path given one of `labels`): the mean over its seeds
    of the evaluation return (`mean_curve`) against env steps (`x="steps"`) or wall
    seconds since the run started (`x="time"`), with its 95% bootstrap band when it has
    two seeds or more. One panel per env; `target` draws a dashed horizontal line.
    Runs that have not evaluated yet are left out with a `RunWarning`, as are groups
    whose seeds share no range. `output` (a .png or .svg path) is written when given.
    """
    if x not in X_AXES:
        raise InvalidInputError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if output is not None:
        _check_suffix(Path(output))
    groups = load_groups(paths, labels)
    drawn = []
    for group in groups:  # a loop, not a comprehension: warnings point at the caller
        curve = _group_curve(group, x, n_resamples=n_resamples, seed=seed)
        if curve is not None:
            drawn.append((group, curve))
    if not drawn:
        raise InvalidInputError(
            "Nothing to plot: no run under the given paths has an evaluation in its evals.csv yet"
        )
    figure = _draw(drawn, x, target)
    if output is not None:
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(output, dpi=120, bbox_inches="tight")
    return figure


def _check_suffix(output: Path) -> None:
    if output.suffix.lower() not in PLOT_SUFFIXES:
        raise InvalidInputError(
            f"Cannot write a plot to {output}: the file name must end in "
            f"{' or '.join(PLOT_SUFFIXES)}, not {output.suffix or 'no suffix'!r}"
        )


def _group_curve(group: RunGroup, x: str, *, n_resamples: int, seed: int) -> Curve | None:
    """The group's curve, warning about what it leaves out or cuts short."""
    for run in group.runs:
        if not run.has_evaluations:
            warnings.warn(
                f"{run.path}: no evaluation in evals.csv yet; left out of '{group.label}'",
                RunWarning,
                stacklevel=3,
            )
    curve = mean_curve(group.evaluated, x, n_resamples=n_resamples, seed=seed)
    if curve is None:
        if group.evaluated:
            warnings.warn(
                f"'{group.label}': its seeds share no range of {X_AXES[x]}; not drawn",
                RunWarning,
                stacklevel=3,
            )
        return None
    longest = max(run.x_values(x).max() for run in group.evaluated)
    if curve.x[-1] < _SHORT_CURVE * longest:
        shown = "{:,.0f}" if x == "steps" else "{:,.1f}"
        warnings.warn(
            f"'{group.label}': the curve stops at {shown.format(curve.x[-1])} {X_AXES[x]}, "
            f"where its shortest seed stops (the longest goes to {shown.format(longest)})",
            RunWarning,
            stacklevel=3,
        )
    return curve


def _draw(drawn: list[tuple[RunGroup, Curve]], x: str, target: float | None) -> Figure:
    envs = list(dict.fromkeys(group.env_name for group, _ in drawn))
    columns = 1 if len(envs) <= 3 else 2
    rows = -(-len(envs) // columns)
    figure = LearningCurves(figsize=(10.0 * columns, 4.0 * rows), layout="constrained")
    panels = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in panels[len(envs) :]:
        extra.set_visible(False)
    for env_name, axes in zip(envs, panels, strict=False):
        in_panel = [(group, curve) for group, curve in drawn if group.env_name == env_name]
        _draw_panel(axes, env_name, in_panel, x, target)
    return figure


def _draw_panel(
    axes: Axes,
    env_name: str,
    in_panel: list[tuple[RunGroup, Curve]],
    x: str,
    target: float | None,
) -> None:
    handles, texts = [], []
    for group, curve in in_panel:
        (line,) = axes.plot(curve.x, curve.mean, marker="o" if curve.x.size == 1 else None)
        if curve.low is None:
            handles.append(line)
            texts.append(f"{group.label}: 1 seed (no CI)")
            continue
        band = axes.fill_between(
            curve.x, curve.low, curve.high, color=line.get_color(), alpha=0.25, linewidth=0
        )
        handles.append((band, line))
        texts.append(f"{group.label}: mean of {curve.seeds} seeds, 95% bootstrap CI")
    if target is not None:
        handles.append(axes.axhline(target, color="gray", linestyle="--", linewidth=1))
        texts.append(f"target {target:g}")
    axes.set_title(env_name)
    axes.set_xlabel(X_AXES[x])
    if x == "steps":  # 150k rather than 150000: six-digit ticks run into each other
        axes.xaxis.set_major_formatter(FuncFormatter(_short_count))
    axes.set_ylabel(_return_label([run for group, _ in in_panel for run in group.evaluated]))
    axes.grid(alpha=0.3)
    axes.legend(handles, texts, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


def _short_count(value: float, position: int | None = None) -> str:
    """An env-step tick: 0, 500, 20k, 1.5M."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def _return_label(runs: Sequence[Run]) -> str:
    """'evaluation return (mean of K episodes)', K as the runs' configs say."""
    counts = sorted({run.episodes_per_eval for run in runs if run.episodes_per_eval is not None})
    if not counts:
        return "evaluation return (mean over episodes)"
    if len(counts) == 1:
        plural = "s" if counts[0] != 1 else ""
        return f"evaluation return (mean of {counts[0]} episode{plural})"
    return f"evaluation return (mean of {counts[0]}-{counts[-1]} episodes)"
