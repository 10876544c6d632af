"""Finding finished (or running) runs on disk, reading their evaluations, grouping their seeds.

A run directory is any directory with an ``evals.csv`` beside a ``config.yaml``: ours
(written by ``bbrl-ppo train``) and a peer library's (written by
``benchmarks/compare_peers.py``, whose ``config.yaml`` has a top-level ``peer`` mapping)
read alike. Plots and reports compare *groups*: the seeds of one experiment, or runs of
one env and one algorithm, or whatever the user labels together.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from bbrl_ppo.errors import InvalidInputError, MissingFileError
from bbrl_ppo.experiments.seeds import EXPERIMENT_FILE
from bbrl_ppo.persistence.run_files import CONFIG_FILE, EVALS_CSV_COLUMNS, EVALS_FILE

#: How our own runs are named beside a peer library's.
OUR_LIBRARY = "bbrl_ppo"


class RunWarning(UserWarning):
    """Something about the runs a reader should know, that does not stop a plot or report."""


@dataclass(frozen=True)
class Run:
    """One run's evaluations, sorted by env steps, and what its config says about it."""

    path: Path
    env_name: str
    #: The library and PPO variant, e.g. "bbrl_ppo ppo_clip" or "Stable-Baselines3 ppo_clip".
    algorithm: str
    seed: int | None
    #: Episodes per evaluation (``algorithm.nb_evals``) when the config says.
    episodes_per_eval: int | None
    #: The experiment directory holding this run, when there is one.
    experiment: Path | None
    steps: np.ndarray
    wall_s: np.ndarray
    reward_mean: np.ndarray

    @property
    def has_evaluations(self) -> bool:
        """False for a run whose evals.csv has its header only (it has not evaluated yet)."""
        return self.steps.size > 0

    def x_values(self, x: str) -> np.ndarray:
        """The abscissa of its evaluations: env steps (``"steps"``) or wall seconds (``"time"``)."""
        return self.steps if x == "steps" else self.wall_s

    def default_label(self) -> str:
        """The experiment's name for a seed of an experiment, else "<env> <algorithm>"."""
        if self.experiment is not None:
            return self.experiment.name
        return f"{self.env_name} {self.algorithm}"


@dataclass(frozen=True)
class RunGroup:
    """Runs shown as one curve or one table row: usually the seeds of one experiment."""

    label: str
    env_name: str
    runs: tuple[Run, ...]

    @property
    def evaluated(self) -> tuple[Run, ...]:
        """The runs with at least one evaluation: those that statistics can be taken over."""
        return tuple(run for run in self.runs if run.has_evaluations)


def find_run_dirs(path: str | Path) -> list[Path]:
    """The run directories at or under `path`, in a stable (sorted) order.

    Raises `MissingFileError` if `path` does not exist, `InvalidInputError` if it holds no
    run. A run's ``evals.csv`` or ``config.yaml`` stands for its directory.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"No such run or experiment directory: {path}")
    if path.is_file() and path.name in (EVALS_FILE, CONFIG_FILE):
        path = path.parent
    if not path.is_dir():
        raise InvalidInputError(f"{path} is a file, not a run or experiment directory")
    if _is_run_dir(path):
        return [path]
    found = sorted(
        csv_path.parent for csv_path in path.rglob(EVALS_FILE) if _is_run_dir(csv_path.parent)
    )
    if not found:
        raise InvalidInputError(
            f"{path} holds no run: no {EVALS_FILE} beside a {CONFIG_FILE} at any depth"
        )
    return found


def read_run(run_dir: str | Path) -> Run:
    """Read one run directory's config.yaml and evals.csv."""
    run_dir = Path(run_dir)
    config = _read_config(run_dir / CONFIG_FILE)
    env_name = _select(config, "gym_env.env_name")
    if env_name is None:
        raise InvalidInputError(f"{run_dir / CONFIG_FILE} has no gym_env.env_name")
    seed = _select(config, "algorithm.seed")
    episodes = _select(config, "algorithm.nb_evals")
    steps, wall_s, reward_mean = _read_evals(run_dir / EVALS_FILE)
    experiment = run_dir.parent if (run_dir.parent / EXPERIMENT_FILE).is_file() else None
    return Run(
        path=run_dir,
        env_name=str(env_name),
        algorithm=_algorithm_name(config),
        seed=int(seed) if seed is not None else None,
        episodes_per_eval=int(episodes) if episodes is not None else None,
        experiment=experiment,
        steps=steps,
        wall_s=wall_s,
        reward_mean=reward_mean,
    )


def load_groups(paths: Sequence[str | Path], labels: Sequence[str] | None = None) -> list[RunGroup]:
    """The runs under `paths`, grouped by label and env, groups in the order first met.

    `labels`, one per path, names every run found under that path (overriding
    `Run.default_label`); runs with the same label and env form one group, so two paths
    given the same label are pooled. A run reached through two paths counts once, under
    the first.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise InvalidInputError("Give at least one run or experiment directory")
    if labels is not None and len(labels) != len(paths):
        raise InvalidInputError(
            f"{len(labels)} label(s) for {len(paths)} path(s): give one label per path, in order"
        )
    seen: set[Path] = set()
    grouped: dict[tuple[str, str], list[Run]] = {}
    for index, path in enumerate(paths):
        for run_dir in find_run_dirs(path):
            key_path = run_dir.resolve()
            if key_path in seen:
                continue
            seen.add(key_path)
            run = read_run(run_dir)
            label = labels[index] if labels is not None else run.default_label()
            grouped.setdefault((label, run.env_name), []).append(run)
    return [
        RunGroup(label=label, env_name=env_name, runs=tuple(runs))
        for (label, env_name), runs in grouped.items()
    ]


def _is_run_dir(path: Path) -> bool:
    return (path / EVALS_FILE).is_file() and (path / CONFIG_FILE).is_file()


def _read_config(path: Path) -> DictConfig:
    try:
        config = OmegaConf.load(path)
    except Exception as error:  # YAML syntax errors come in several classes
        raise InvalidInputError(f"{path} is not a readable YAML config: {error}") from error
    if not isinstance(config, DictConfig):
        raise InvalidInputError(f"{path} is not a mapping of config keys")
    return config


def _select(config: DictConfig, key: str) -> Any:
    # A saved config may keep an interpolation whose resolver is not registered here.
    return OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)


def _algorithm_name(config: DictConfig) -> str:
    """Library and variant: "bbrl_ppo ppo_kl" for ours, "<peer name> ppo_clip" for a peer."""
    variant = _select(config, "algorithm.variant") or "ppo"
    peer = _select(config, "peer")
    if peer is None:
        return f"{OUR_LIBRARY} {variant}"
    name = _select(config, "peer.name") if isinstance(peer, DictConfig) else peer
    return f"{name or 'peer'} {variant}"


def _read_evals(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Env steps, wall seconds and evaluation means, sorted by env steps.

    An empty file or a header alone gives empty arrays: a run that has not evaluated yet.
    """
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [name for name in EVALS_CSV_COLUMNS[:3] if name not in (reader.fieldnames or [])]
        if reader.fieldnames is not None and missing:
            raise InvalidInputError(
                f"{path} lacks the column(s) {', '.join(missing)}; "
                f"expected the header {','.join(EVALS_CSV_COLUMNS)}"
            )
        rows = [
            (
                _number(row, "nb_steps", path, reader.line_num),
                _number(row, "wall_s", path, reader.line_num),
                _number(row, "reward_mean", path, reader.line_num),
            )
            for row in reader
        ]
    table = np.array(rows, dtype=float).reshape(-1, 3)
    table = table[np.argsort(table[:, 0], kind="stable")]
    return table[:, 0], table[:, 1], table[:, 2]


def _number(row: dict[str, str], column: str, path: Path, line: int) -> float:
    text = row.get(column)
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInputError(f"{path}, line {line}: {column} is {text!r}, not a finite number")
    return value
