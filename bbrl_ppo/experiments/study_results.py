"""What a study leaves for the user: the table of its trials and the best config."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf


def write_best_config(
    config: Path,
    overrides: Sequence[str],
    best: optuna.trial.FrozenTrial,
    path: Path,
    metric: str,
) -> Path:
    """The config file with the overrides and the best trial's values, without ``tune:``.

    The overrides stay: they are what the trials trained with (a smaller budget, say,
    which ``bbrl-ppo train best_config.yaml algorithm.max_steps=...`` raises again).
    """
    cfg = OmegaConf.load(config)
    cfg.merge_with_dotlist(list(overrides))
    for key, value in best.params.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    cfg.pop("tune", None)
    seed_scores = ", ".join(f"{score:.6g}" for score in best.user_attrs.get("seed_scores", []))
    header = [
        f"# Best trial ({best.number}) of the study in {path.parent}: score {best.value:.6g},",
        f"# the mean of its seeds' {metric} evaluation means ({seed_scores}).",
        f"# From {config}" + (f" with {' '.join(overrides)}" if overrides else ""),
        "# with: " + ", ".join(f"{key}={value!r}" for key, value in best.params.items()),
        f"# Train it: bbrl-ppo train {path}",
    ]
    partial = path.with_name(path.name + ".partial")
    partial.write_text("\n".join(header) + "\n" + OmegaConf.to_yaml(cfg))
    partial.replace(path)
    return path


def trial_state(trial: optuna.trial.FrozenTrial) -> str:
    """COMPLETE, PRUNED, FAIL, RUNNING... as Optuna names it; an interrupted trial says so."""
    if trial.user_attrs.get("error") == "interrupted":
        return "INTERRUPTED"
    return trial.state.name


def _score(trial: optuna.trial.FrozenTrial) -> float | None:
    """A complete trial's score (Optuna gives a pruned one its last intermediate value)."""
    return trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None


def score_text(trial: optuna.trial.FrozenTrial) -> str:
    score = _score(trial)
    return f" score {score:.2f}" if score is not None else ""


def trial_note(trial: optuna.trial.FrozenTrial) -> str:
    if trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
        step = max(trial.intermediate_values)
        return f" at {step} env steps (mean {trial.intermediate_values[step]:.2f})"
    error = trial.user_attrs.get("error")
    return f": {error}" if error and error != "interrupted" else ""


def format_trials(study: optuna.Study) -> str:
    """The study's trials as a text table: number, state, score, one column per parameter."""
    trials = study.get_trials(deepcopy=False)
    keys = list(dict.fromkeys(key for trial in trials for key in trial.params))
    header = ["trial", "state", "score", *keys, "note"]
    rows = [
        [
            str(trial.number),
            trial_state(trial),
            f"{_score(trial):.2f}" if _score(trial) is not None else "-",
            *(_format_value(trial.params[key]) if key in trial.params else "-" for key in keys),
            trial_note(trial).removeprefix(": ").strip(),
        ]
        for trial in trials
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
