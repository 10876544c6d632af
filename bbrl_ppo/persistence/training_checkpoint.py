"""Training checkpoints: everything needed to continue a run exactly where it stopped.

``checkpoints/last.pt`` in the run directory is written at rollout boundaries
(every ``algorithm.checkpoint_interval`` env steps, at the end, and when SIGINT or
SIGTERM asks the run to stop), atomically. It holds plain data only (tensors,
numbers, strings, lists and dicts), so it loads with
``torch.load(weights_only=True)``:

- every agent and optimizer the algorithm holds as an attribute (found by type,
  so a notebook's own subclass is covered), the best policy;
- counters, best reward, evaluation history, elapsed time, the algorithm's own
  extras (`EpisodicAlgo.extra_training_state`: KL coefficient, schedules...);
- RNG states: torch, numpy, python, and every env's (see `bbrl_ppo.persistence.env_state`);
- the env agents' state and the last step of the rollout workspace, which the
  next rollout starts from;
- the configuration and the code versions, checked on resume.

With the synchronous vector env on CPU and one torch thread, a resumed run
produces the same rollouts, updates and evaluations as the uninterrupted one.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from bbrl.agents import Agents, KWAgentWrapper, TemporalAgent
from bbrl.workspace import Workspace
from omegaconf import DictConfig, OmegaConf

from bbrl_ppo.agents.env import VectorGymAgent
from bbrl_ppo.persistence.agent_checkpoint import atomic_save, load_plain
from bbrl_ppo.persistence.code_version import code_versions
from bbrl_ppo.persistence.registry import class_path

if TYPE_CHECKING:
    from bbrl_ppo.algorithms.base import EpisodicAlgo

TRAINING_FORMAT = "bbrl_ppo-training-1"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
#: Keys that may differ between a checkpoint's configuration and the resumed run's.
RESUMABLE_OVERRIDES = ("algorithm.max_steps", "algorithm.max_epochs")


class CheckpointMismatchError(ValueError):
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
    for key in RESUMABLE_OVERRIDES:
        section, name = key.split(".")
        container.get(section, {}).pop(name, None)
    return container


# -- what an algorithm holds ---------------------------------------------------------------
_NOT_LEARNT = (VectorGymAgent, TemporalAgent, Agents, KWAgentWrapper)


def stateful_members(
    algo: EpisodicAlgo,
) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
    """The algorithm's agents (and other modules) and optimizers, by attribute name.

    Env agents and wrappers around other agents hold no parameters of their own;
    the best policy is saved separately.
    """
    modules, optimizers = {}, {}
    for name, value in vars(algo).items():
        if name == "best_policy":
            continue
        if isinstance(value, torch.optim.Optimizer):
            optimizers[name] = value
        elif isinstance(value, torch.nn.Module) and not isinstance(value, _NOT_LEARNT):
            modules[name] = value
    return modules, optimizers


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


def _last_step(workspace: Workspace | None) -> dict[str, Any] | None:
    if workspace is None or not workspace.variables:
        return None
    last = workspace.time_size() - 1
    return {
        "time_size": workspace.time_size(),
        "variables": {
            name: workspace.get(name, last).detach().clone() for name in workspace.keys()
        },
    }


def _workspace_ending_with(last_step: dict[str, Any]) -> Workspace:
    """A workspace whose last step is the saved one: the next rollout copies it to t=0."""
    workspace = Workspace()
    last = last_step["time_size"] - 1
    for name, value in last_step["variables"].items():
        for t in range(last):
            workspace.set(name, t, torch.zeros_like(value))
        workspace.set(name, last, value)
    return workspace


# -- saving and restoring ------------------------------------------------------------------
def save_training_checkpoint(algo: EpisodicAlgo, path: str | Path) -> Path:
    modules, optimizers = stateful_members(algo)
    best = algo.best_policy
    state = {
        "format": TRAINING_FORMAT,
        "algorithm": class_path(type(algo)),
        "versions": code_versions(),
        "config": comparable_config(algo.cfg),
        "counters": {
            "nb_steps": algo.nb_steps,
            "epoch": algo.epoch,
            "last_eval_step": algo.last_eval_step,
            "best_reward": algo.best_reward,
            "last_eval_reward": algo.last_eval_reward,
            "running_reward": algo.running_reward,
            "elapsed": algo.elapsed_seconds(),
        },
        "eval_history": [list(row) for row in algo.eval_history],
        "eval_rewards": [rewards.clone() for rewards in algo.eval_rewards],
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
        "best_policy": None if best is None else best.state_dict(),
        "rng": _rng_state(),
        "train_env": algo.train_env.get_state(),
        "eval_env": algo.eval_env.get_state(),
        "last_step": _last_step(algo.rollout_workspace),
        "extra": algo.extra_training_state(),
    }
    return atomic_save(state, path)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint's contents, loaded without running any code it may hold."""
    state = load_plain(path)
    if state.get("format") != TRAINING_FORMAT:
        raise CheckpointMismatchError(
            f"{path} is not a bbrl_ppo training checkpoint (format {state.get('format')!r}, "
            f"expected {TRAINING_FORMAT!r})"
        )
    return state


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


def restore_training_state(algo: EpisodicAlgo, state: dict[str, Any]) -> bool:
    """Put `algo` back where the checkpoint was taken; returns whether envs are exact."""
    modules, optimizers = stateful_members(algo)
    if set(modules) != set(state["modules"]) or set(optimizers) != set(state["optimizers"]):
        raise CheckpointMismatchError(
            f"The checkpoint holds modules {sorted(state['modules'])} and optimizers "
            f"{sorted(state['optimizers'])}; this algorithm has {sorted(modules)} and "
            f"{sorted(optimizers)}"
        )
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    for name, optimizer in optimizers.items():
        try:
            optimizer.load_state_dict(state["optimizers"][name])
        except ValueError as error:  # another parameter layout (e.g. flat_parameters)
            raise CheckpointMismatchError(
                f"The checkpoint's state of optimizer {name!r} does not fit this algorithm's: "
                f"{error}"
            ) from None
    if state["best_policy"] is not None:
        algo.best_policy = copy.deepcopy(algo.current_eval_policy)
        algo.best_policy.load_state_dict(state["best_policy"])

    counters = state["counters"]
    for name in ("nb_steps", "epoch", "last_eval_step"):
        setattr(algo, name, int(counters[name]))
    for name in ("best_reward", "last_eval_reward", "running_reward"):
        setattr(algo, name, float(counters[name]))
    algo.elapsed_before_start = float(counters["elapsed"])
    algo.eval_history = [list(row) for row in state["eval_history"]]
    algo.eval_rewards = list(state["eval_rewards"])
    algo.load_extra_training_state(state["extra"])

    algo.eval_env.set_state(state["eval_env"])
    exact = algo.train_env.set_state(state["train_env"])
    if exact and state["last_step"] is not None:
        algo.rollout_workspace = _workspace_ending_with(state["last_step"])
    else:
        # The envs' state could not be saved: start new episodes, seeded from the step count.
        algo.rollout_workspace = None
        algo.train_env.seed(int(algo.cfg.algorithm.seed) + algo.nb_steps)
    _restore_rng(state["rng"])
    return exact
