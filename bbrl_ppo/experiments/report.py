"""One row per group of runs: how fast it reached a target, how good it ended, how fast it ran.

Seeds are few (3 to 10) and returns skewed, so besides mean ± std each score comes as the
interquartile mean (IQM) with a 95% percentile-bootstrap confidence interval, the
aggregate rliable recommends (Agarwal et al., 2021, "Deep RL at the edge of the
statistical precipice"): the IQM ignores one lucky or one broken seed out of four, and
the interval says how much the number would move with other seeds.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bbrl_ppo.experiments.runs import Run, RunGroup, load_groups

if TYPE_CHECKING:
    import pandas

#: Fewest seeds a bootstrap interval is drawn from (with one, there is nothing to resample).
MIN_SEEDS_FOR_CI = 2
#: The table's columns, in order (see `report_runs` for their meaning).
COLUMNS = (
    "group",
    "env",
    "seeds",
    "evaluated",
    "target",
    "reached",
    "steps_to_target",
    "wall_s_to_target",
    "final_mean",
    "final_std",
    "final_iqm",
    "final_iqm_ci_low",
    "final_iqm_ci_high",
    "best_mean",
    "best_std",
    "best_iqm",
    "best_iqm_ci_low",
    "best_iqm_ci_high",
    "steps_per_s",
)


def interquartile_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The mean of the middle half: `scipy.stats.trim_mean` cutting 25% from each end."""
    from scipy.stats import trim_mean

    return trim_mean(values, 0.25, axis=axis)


def bootstrap_interval(
    values: np.ndarray,
    statistic: Callable[..., np.ndarray],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Percentile-bootstrap interval of `statistic` over axis 0 (the seeds) of `values`.

    None with fewer than `MIN_SEEDS_FOR_CI` seeds. The percentile method, not scipy's
    default BCa: BCa is undefined when every seed scores the same (a solved CartPole) and
    unstable with a handful of seeds. A fixed `seed` makes the same runs draw the same
    interval every time they are plotted or reported.
    """
    from scipy.stats import bootstrap

    values = np.asarray(values, dtype=float)
    if values.shape[0] < MIN_SEEDS_FOR_CI:
        return None
    # scipy 1.15 renamed random_state to rng; pyproject allows older releases.
    rng_keyword = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    result = bootstrap(
        (values,),
        statistic,
        axis=0,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        **{rng_keyword: np.random.default_rng(seed)},
    )
    return result.confidence_interval.low, result.confidence_interval.high


def report_runs(
    paths: Sequence[str | Path],
    *,
    target: float | None = None,
    labels: Sequence[str] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pandas.DataFrame | list[dict[str, Any]]:
    """Summarize each group of runs under `paths` (run, experiment or any directories).

    Returns a pandas DataFrame when pandas is importable, else a list of dicts (one per
    group), with the columns of `COLUMNS`; `format_text` and `format_markdown` render
    either. Missing numbers are NaN. Per group:

    - ``seeds``: runs in the group; ``evaluated``: those with at least one evaluation,
      the only ones the statistics are taken over;
    - ``reached``: how many evaluated seeds had an evaluation mean >= `target`;
      ``steps_to_target`` and ``wall_s_to_target``: at each such seed's first one, median
      over those seeds (NaN without a target or when none reached it);
    - ``final_*`` (each seed's last evaluation) and ``best_*`` (its highest): mean and
      sample std (ddof 1) over seeds, IQM, and the bootstrap CI of the IQM (NaN with fewer
      than `MIN_SEEDS_FOR_CI` seeds);
    - ``steps_per_s``: each seed's last env step count over its last wall time (evaluation
      time included), median over seeds.

    `labels` (one per path) name the groups as in `load_groups`; `n_resamples` and `seed`
    are the bootstrap's (the same seed draws the same intervals each time).
    """
    groups = load_groups(paths, labels)
    rows = [_group_row(group, target, n_resamples=n_resamples, seed=seed) for group in groups]
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows, columns=list(COLUMNS))


def format_text(table: pandas.DataFrame | Sequence[dict[str, Any]]) -> str:
    """The table as aligned plain text, for the terminal."""
    header, cells = _display_cells(table)
    widths = [max(len(row[i]) for row in (header, *cells)) for i in range(len(header))]
    left = {0, 1}  # group and env read left to right; numbers align on the right

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    notes = _notes(_records(table))
    return "\n".join([line(header), rule, *(line(row) for row in cells), *notes])


def format_markdown(table: pandas.DataFrame | Sequence[dict[str, Any]]) -> str:
    """The table as a GitHub-flavoured Markdown table (with its notes below)."""
    header, cells = _display_cells(table)

    def line(row: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"

    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    notes = _notes(_records(table))
    body = [line(header), "| " + " | ".join(align) + " |", *(line(row) for row in cells)]
    return "\n\n".join(["\n".join(body), *notes]) + "\n"


# -- one group's numbers --------------------------------------------------------------------
def _group_row(
    group: RunGroup, target: float | None, *, n_resamples: int, seed: int
) -> dict[str, Any]:
    runs = group.evaluated
    row: dict[str, Any] = {
        "group": group.label,
        "env": group.env_name,
        "seeds": len(group.runs),
        "evaluated": len(runs),
        "target": math.nan if target is None else float(target),
    }
    row.update(_target_columns(runs, target))
    bootstrap = partial(bootstrap_interval, n_resamples=n_resamples, seed=seed)
    for name, scores in (
        ("final", [run.reward_mean[-1] for run in runs]),
        ("best", [run.reward_mean.max() for run in runs]),
    ):
        row.update(_score_columns(name, np.array(scores, dtype=float), bootstrap))
    speeds = [run.steps[-1] / run.wall_s[-1] for run in runs if run.wall_s[-1] > 0]
    row["steps_per_s"] = float(np.median(speeds)) if speeds else math.nan
    return row


def _target_columns(runs: Sequence[Run], target: float | None) -> dict[str, Any]:
    if target is None:
        return {"reached": 0, "steps_to_target": math.nan, "wall_s_to_target": math.nan}
    firsts = []
    for run in runs:
        hits = np.flatnonzero(run.reward_mean >= target)
        if hits.size:
            firsts.append((run.steps[hits[0]], run.wall_s[hits[0]]))
    if not firsts:
        return {"reached": 0, "steps_to_target": math.nan, "wall_s_to_target": math.nan}
    steps, wall_s = np.array(firsts).T
    return {
        "reached": len(firsts),
        "steps_to_target": float(np.median(steps)),
        "wall_s_to_target": float(np.median(wall_s)),
    }


def _score_columns(
    name: str, scores: np.ndarray, bootstrap: Callable[..., Any]
) -> dict[str, float]:
    columns = {
        f"{name}_{key}": math.nan for key in ("mean", "std", "iqm", "iqm_ci_low", "iqm_ci_high")
    }
    if scores.size == 0:
        return columns
    columns[f"{name}_mean"] = float(scores.mean())
    if scores.size > 1:
        columns[f"{name}_std"] = float(scores.std(ddof=1))
    columns[f"{name}_iqm"] = float(interquartile_mean(scores))
    interval = bootstrap(scores, interquartile_mean)
    if interval is not None:
        columns[f"{name}_iqm_ci_low"], columns[f"{name}_iqm_ci_high"] = map(float, interval)
    return columns


# -- rendering ------------------------------------------------------------------------------
def _records(table: pandas.DataFrame | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    if hasattr(table, "to_dict"):  # a DataFrame
        return table.to_dict("records")
    return list(table)


def _display_cells(
    table: pandas.DataFrame | Sequence[dict[str, Any]],
) -> tuple[list[str], list[list[str]]]:
    records = _records(table)
    targets = {record["target"] for record in records if not _missing(record["target"])}
    header = ["group", "env", "seeds"]
    if targets:
        shown = f"{next(iter(targets)):g}" if len(targets) == 1 else "target"
        header += [f"reached {shown}", f"steps to {shown}", f"wall s to {shown}"]
    header += ["final mean ± std", "final IQM [95% CI]", "best mean ± std", "best IQM [95% CI]"]
    header += ["steps/s"]
    cells = []
    for record in records:
        row = [str(record["group"]), str(record["env"]), _seeds(record)]
        if targets:
            row += [
                f"{record['reached']}/{record['evaluated']}",
                _number(record["steps_to_target"], "{:,.0f}"),
                _number(record["wall_s_to_target"], "{:,.1f}"),
            ]
        for name in ("final", "best"):
            row += [_mean_std(record, name), _iqm(record, name)]
        row.append(_number(record["steps_per_s"], "{:,.0f}"))
        cells.append(row)
    return header, cells


def _notes(records: list[dict[str, Any]]) -> list[str]:
    notes = [
        "std: sample std over seeds; IQM: interquartile mean over seeds, with its 95% "
        "percentile-bootstrap CI."
    ]
    if any(not _missing(record["target"]) for record in records):
        notes.append(
            "Steps and wall s to the target: at each seed's first evaluation mean at or above "
            "it, median over the seeds that got there."
        )
    if any(record["evaluated"] < record["seeds"] for record in records):
        notes.append(
            "Runs without any evaluation yet are counted in 'seeds' but left out of the rest."
        )
    return notes


def _seeds(record: dict[str, Any]) -> str:
    waiting = record["seeds"] - record["evaluated"]
    return str(record["seeds"]) + (f" ({waiting} not evaluated yet)" if waiting else "")


def _mean_std(record: dict[str, Any], name: str) -> str:
    mean, std = record[f"{name}_mean"], record[f"{name}_std"]
    if _missing(mean):
        return "—"
    return _number(mean) + (" (1 seed)" if _missing(std) else f" ± {_number(std)}")


def _iqm(record: dict[str, Any], name: str) -> str:
    iqm, low, high = (record[f"{name}_{key}"] for key in ("iqm", "iqm_ci_low", "iqm_ci_high"))
    if _missing(iqm):
        return "—"
    if _missing(low):
        return f"{_number(iqm)} (no CI: < {MIN_SEEDS_FOR_CI} seeds)"
    return f"{_number(iqm)} [{_number(low)}, {_number(high)}]"


def _number(value: float, pattern: str = "{:,.1f}") -> str:
    return "—" if _missing(value) else pattern.format(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
