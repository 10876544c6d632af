"""Training checkpoints: everything needed to continue a run exactly where it stopped.

``checkpoints/last.pt`` in the run directory is written at rollout boundaries
(every ``algorithm.checkpoint_interval`` env steps, at the end, and when SIGINT or
SIGTERM asks the run to stop), atomically. It holds plain data only (tensors,
numbers, strings, lists and dicts), so it loads with
``torch.load(weights_only=True)``:

- the algorithm's own state, as its `training_state()` gives it: each class saves
  what it holds (agents, optimizers, counters, evaluation history, env state,
  the last step of the rollout workspace, which the next rollout starts from);
- RNG states: torch, numpy and python (every env's is in the env agents' state);
- the configuration and the code versions, checked on resume before anything
  is written.

A run on several processes writes one file too, from rank 0, once every rank has
sent it what differs on it (its envs, the last step of its rollout, its minibatch
generator: the algorithm's ``per_rank_state`` keys, and its RNG states): rank 0's
part reads as a single-process checkpoint, ``other_ranks`` holds the rest, and
``world_size`` says how many processes may resume it. Being one file, it is
replaced whole or not at all.

This module owns files, formats, versions and RNGs; it never reaches into the
algorithm's attributes.

With the synchronous vector env on CPU and one torch thread, a resumed run
produces the same rollouts, updates and evaluations as the uninterrupted one.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from bbrl.workspace import Workspace
from omegaconf import DictConfig, OmegaConf

from bbrl_ppo.distributed.collectives import gather_to_main
from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.persistence.agent_checkpoint import atomic_save, load_plain
from bbrl_ppo.persistence.code_version import code_versions
from bbrl_ppo.persistence.registry import class_path

if TYPE_CHECKING:
    from bbrl_ppo.algorithms.episodic import EpisodicAlgo

TRAINING_FORMAT = "bbrl_ppo-training-2"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
#: Keys that may differ between a checkpoint's configuration and the resumed run's:
#: the budget (``max_epochs`` is bbrl_utils notebooks' ``max_rollouts``), and the device,
#: which changes where the run computes, not what (checkpoints written before it existed
#: have none).
RESUMABLE_OVERRIDES = (
    "algorithm.max_steps",
    "algorithm.max_rollouts",
    "algorithm.max_epochs",
    "algorithm.device",
)


class CheckpointMismatchError(InvalidInputError):
    """A checkpoint that does not belong to this run, config or code."""


def checkpoint_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


def comparable_config(cfg: DictConfig | dict) -> dict[str, Any]:
    """The configuration without what legitimately changes on resume."""
    container = (
        OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    )
    container = copy.deepcopy(container)
    container.pop("base_dir", None)
    # The search space of `bbrl-ppo tune` never changes what training computes (and
    # checkpoints written before it existed have none).
    container.pop("tune", None)
    for key in RESUMABLE_OVERRIDES:
        section, name = key.split(".")
        container.get(section, {}).pop(name, None)
    return container


def _rng_state() -> dict[str, Any]:
    kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gauss],
        "python": random.getstate(),
    }


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, position, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def last_step(workspace: Workspace | None) -> dict[str, Any] | None:
    """The last step of a rollout workspace, as plain data on the CPU (the next rollout's first)."""
    if workspace is None or not workspace.variables:
        return None
    last = workspace.time_size() - 1
    return {
        "time_size": workspace.time_size(),
        "variables": {
            name: workspace.get(name, last).detach().cpu().clone() for name in workspace.keys()
        },
    }


def workspace_ending_with(
    saved_step: dict[str, Any], device: torch.device | str = "cpu"
) -> Workspace:
    """A workspace whose last step is the saved one: the next rollout copies it to t=0.

    Its tensors are put on `device`, where the env agent writes the next steps.
    """
    workspace = Workspace()
    last = saved_step["time_size"] - 1
    for name, saved in saved_step["variables"].items():
        value = saved.to(device)
        for t in range(last):
            workspace.set(name, t, torch.zeros_like(value))
        workspace.set(name, last, value)
    return workspace


# -- saving and restoring ------------------------------------------------------------------
def save_training_checkpoint(algo: EpisodicAlgo, path: str | Path) -> Path:
    """Write the checkpoint of `algo`'s run (every rank's part) to `path`, atomically.

    Every rank of a distributed run calls it at the same boundary; only rank 0 writes.
    """
    context = algo.distributed
    training_state, rng = algo.training_state(), _rng_state()
    own = {
        "training_state": {key: training_state[key] for key in algo.per_rank_state},
        "rng": rng,
    }
    parts = gather_to_main(context, own, "the gathering of a checkpoint")
    if not context.is_main:
        return Path(path)
    state = {
        "format": TRAINING_FORMAT,
        "algorithm": class_path(type(algo)),
        "versions": code_versions(),
        "config": comparable_config(algo.cfg),
        "world_size": context.world_size,
        "rng": rng,
        "training_state": training_state,
        "other_ranks": parts[1:],
    }
    return atomic_save(state, path)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint's contents, loaded without running any code it may hold."""
    state = load_plain(path)
    if state.get("format") != TRAINING_FORMAT:
        raise CheckpointMismatchError(
            f"{path} is not a bbrl_ppo training checkpoint of this version (format "
            f"{state.get('format')!r}, expected {TRAINING_FORMAT!r})"
        )
    return state


def resumable_config(
    state: dict[str, Any],
    algo_class: type,
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    *,
    allow_code_change: bool = False,
) -> DictConfig:
    """The run's configuration with the budget `overrides`, once the checkpoint fits it.

    Refuses a checkpoint from another algorithm, configuration or code version,
    and any override but the budget's.
    """
    check_compatible(state, algo_class, cfg, allow_code_change=allow_code_change)
    for item in overrides:
        key = item.partition("=")[0]
        if key not in RESUMABLE_OVERRIDES:
            raise CheckpointMismatchError(
                f"Cannot change {key!r} when resuming: only {', '.join(RESUMABLE_OVERRIDES)}"
            )
    cfg = copy.deepcopy(cfg)
    cfg.merge_with_dotlist(list(overrides))
    return cfg


def check_compatible(
    state: dict[str, Any], algo_class: type, cfg: DictConfig, *, allow_code_change: bool = False
) -> None:
    """Refuse a checkpoint from another algorithm, configuration or code version."""
    if state["algorithm"] != class_path(algo_class):
        raise CheckpointMismatchError(
            f"The checkpoint was written by {state['algorithm']}, not {class_path(algo_class)}"
        )
    saved, current = state["config"], comparable_config(cfg)
    if saved != current:
        differences = sorted(_differences(saved, current))
        raise CheckpointMismatchError(
            "The checkpoint was written with another configuration (differs at: "
            f"{', '.join(differences[:8])}); resume with the run's own config.yaml"
        )
    if not allow_code_change and state["versions"] != code_versions():
        now = code_versions()
        changed = [
            f"{name} {state['versions'].get(name)} -> {now.get(name)}"
            for name in sorted(set(now) | set(state["versions"]))
            if state["versions"].get(name) != now.get(name)
        ]
        raise CheckpointMismatchError(
            f"The checkpoint was written by other code ({'; '.join(changed)}): the run would "
            "not continue the same computation. Pass allow_code_change=True "
            "(bbrl-ppo train --resume ... --allow-code-change) to resume anyway"
        )


def _differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(saved, dict) and isinstance(current, dict):
        keys = set(saved) | set(current)
        return [
            difference
            for key in keys
            for difference in _differences(saved.get(key), current.get(key), f"{prefix}{key}.")
        ]
    return [] if saved == current else [prefix.rstrip(".")]


def restore_training_checkpoint(algo: EpisodicAlgo, state: dict[str, Any]) -> None:
    """Put `algo` back where the checkpoint was taken: its own state, then the RNGs.

    Each rank takes its own part; a run on another number of processes is refused
    (its envs and minibatches would be shared out differently).
    """
    context = algo.distributed
    saved_world_size = state.get("world_size", 1)  # checkpoints from before: one process
    if saved_world_size != context.world_size:
        raise CheckpointMismatchError(
            f"The checkpoint was written by a run on {saved_world_size} process(es), and this "
            f"run has {context.world_size}: resume it on {saved_world_size} process(es) (torchrun "
            "with the --nnodes and --nproc-per-node it started with)"
        )
    training_state, rng = state["training_state"], state["rng"]
    if not context.is_main:
        own = state["other_ranks"][context.rank - 1]
        training_state = {**training_state, **own["training_state"]}
        rng = own["rng"]
    algo.load_training_state(training_state)
    _restore_rng(rng)
