"""`RLBase`: what every algorithm needs besides its rollouts.

The run directory and its files, the logger, evaluation, the best agent and its
video. `EpisodicAlgo` (`bbrl_ppo.algorithms.episodic`) adds the rollout loop.
Both keep the names and behaviour of bbrl_utils' classes, so notebooks written
for them run unchanged, and fix what those got wrong:

- evaluation runs the ``nb_evals`` episodes side by side in one vector env
  under ``torch.inference_mode()``, and appends to ``evals.csv``;
- evaluations fall on a fixed grid: at the first update after each multiple of
  ``eval_interval`` env steps. bbrl_utils waits ``eval_interval`` steps after
  the last evaluation, which drifts by up to a rollout each time: with 8 x 32
  steps per rollout and an interval of 2,048, it evaluated every 2,300 steps;
- the best policy is also written as a weights-only ``best_agent.pt``;
- train and evaluation envs get different seeds.

In a run on several processes (`bbrl_ppo.distributed`), rank 0 alone evaluates,
logs and writes the run directory; the other ranks learn the evaluation's results
from it, so that every rank takes the same decisions.
"""

from __future__ import annotations

import contextvars
import copy
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bbrl.agents import Agent, Agents, KWAgentWrapper, TemporalAgent
from omegaconf import DictConfig

from bbrl_ppo.agents.env import EVAL_SEED_OFFSET, EnvWrapper, VectorGymAgent
from bbrl_ppo.algorithms.evaluation import play_episodes
from bbrl_ppo.config.resolution import prepare_config, run_directory
from bbrl_ppo.config.schema import RunConfig, typed_config, validate_config
from bbrl_ppo.distributed.collectives import broadcast_numbers, broadcast_object
from bbrl_ppo.distributed.context import join_process_group
from bbrl_ppo.errors import check_finite_parameters, check_finite_tensor
from bbrl_ppo.persistence.agent_checkpoint import save_agent
from bbrl_ppo.persistence.run_files import EVALS_FILE, EvalsCsv, write_config
from bbrl_ppo.persistence.training_checkpoint import CheckpointMismatchError
from bbrl_ppo.reporting.logger import Logger, SilentLogger
from bbrl_ppo.reporting.notebook import show_video
from bbrl_ppo.reporting.video import record_video

BEST_AGENT_FILE = "best_agent.pt"
STATS_FILE = "stats.npy"

#: Set while `EpisodicAlgo.resume` builds an algorithm: nothing is written to the run
#: directory until the checkpoint has been checked and loaded.
_RUN_FILES_DEFERRED = contextvars.ContextVar("run_files_deferred", default=False)


@contextmanager
def run_files_deferred() -> Iterator[None]:
    token = _RUN_FILES_DEFERRED.set(True)
    try:
        yield
    finally:
        _RUN_FILES_DEFERRED.reset(token)


#: Modules held by an algorithm that have no state of their own to save.
_NOT_LEARNT = (VectorGymAgent, TemporalAgent, Agents, KWAgentWrapper)


def describe_wrapper(wrapper: EnvWrapper) -> str:
    """A wrapper's name, as checkpoints record it."""
    return getattr(wrapper, "__qualname__", None) or repr(wrapper)


class RLBase:
    """What every algorithm needs besides its rollouts.

    Subclasses set ``self.train_policy`` (and optionally ``self.eval_policy``)
    after calling ``super().__init__``. The configuration's keys are those of
    `config_schema`; ``self.config`` holds them typed, with defaults filled, and
    ``self.cfg`` is the user's configuration, resolved (notebooks read their own
    keys there).
    """

    #: The typed configuration this class reads.
    config_schema: type = RunConfig
    #: True: every key must be the schema's (a typo fails). False, the bbrl_utils
    #: notebooks' way: their own keys may sit beside the schema's.
    strict_config: bool = False

    cfg: DictConfig
    train_policy: Agent | None
    eval_policy: Agent | None

    def __init__(self, cfg: Any, env_wrappers: Sequence[EnvWrapper] = ()):
        if self.strict_config:
            cfg = validate_config(cfg, self.config_schema)
        self.cfg = prepare_config(cfg)
        self.config = typed_config(self.cfg, self.config_schema, strict=self.strict_config)
        self.env_wrappers = tuple(env_wrappers)
        torch.manual_seed(self.config.algorithm.seed)
        #: This process's rank among those of the run, and its device (a single
        #: process: rank 0 of 1); joins torchrun's process group when there is one.
        self.distributed = join_process_group(self.config.algorithm.device)
        #: Where the agents and the update live (``algorithm.device``).
        self.device = self.distributed.device
        # Every rank names rank 0's directory (``${current_time:}`` differs between them).
        self.base_dir = broadcast_object(
            self.distributed, run_directory(self.config.base_dir), "the run directory"
        )

        self.train_policy = None
        self.eval_policy = None
        self.eval_env = self.make_env_agent(
            self.config.algorithm.nb_evals,
            autoreset=False,
            seed=self.config.algorithm.seed + EVAL_SEED_OFFSET,
        )
        self.nb_steps = 0
        self.last_eval_step = 0
        self.best_policy: Agent | None = None
        self.best_reward = -math.inf
        self.last_eval_reward = -math.inf
        self.eval_rewards: list[torch.Tensor] = []
        #: The rows of ``evals.csv``, kept to rewrite it when a run resumes.
        self.eval_history: list[list[Any]] = []
        self.start_time = time.perf_counter()
        #: Training time spent before this process (a resumed run's earlier part).
        self.elapsed_before_start = 0.0
        self._evals_csv = EvalsCsv(self.base_dir / EVALS_FILE)
        self.logger: Logger | None = None
        if not _RUN_FILES_DEFERRED.get():
            self.open_run_directory()

    def open_run_directory(self) -> None:
        """Write config.yaml and evals.csv (with the history so far), open the logger.

        Rank 0 only: the other ranks of a distributed run write nothing there, and log
        nothing (what rank 0 logs is already global).
        """
        if not self.distributed.is_main:
            self.logger = SilentLogger()
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        write_config(self.base_dir, self.cfg)
        self._evals_csv.rewrite(self.eval_history)
        self.logger = Logger(self.config.logger, self.base_dir)

    def elapsed_seconds(self) -> float:
        """Seconds of training so far, across resumes."""
        return time.perf_counter() - self.start_time

    # -- environments ------------------------------------------------------------------
    def make_env_agent(
        self,
        num_envs: int,
        *,
        autoreset: bool,
        seed: int | None = None,
        render_mode: str | None = None,
        vectorization: str | None = None,
    ) -> VectorGymAgent:
        """An env agent over ``cfg.gym_env`` with this algorithm's wrappers."""
        gym_env = self.config.gym_env
        return VectorGymAgent(
            gym_env.env_name,
            num_envs,
            env_args=gym_env.env_args or None,
            wrappers=self.env_wrappers,
            autoreset=autoreset,
            vectorization=vectorization or gym_env.vectorization,
            seed=seed,
            render_mode=render_mode,
            device=self.device,
        )

    @property
    def current_eval_policy(self) -> Agent:
        """``eval_policy``, or ``train_policy`` when no evaluation policy was set."""
        policy = self.eval_policy if self.eval_policy is not None else self.train_policy
        if policy is None:
            raise RuntimeError(
                f"{type(self).__name__} has no policy: set self.train_policy (and optionally "
                "self.eval_policy) in __init__, after super().__init__(cfg)"
            )
        return policy

    @cached_property
    def eval_agent(self) -> TemporalAgent:
        """The evaluation env followed by the evaluation policy, over time."""
        return TemporalAgent(Agents(self.eval_env, self.current_eval_policy))

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, force: bool = False) -> bool:
        """Evaluate ``eval_policy`` if a multiple of ``eval_interval`` was passed since the last.

        Runs ``nb_evals`` full episodes side by side, without gradients, and
        registers their returns. Returns True when the policy is the best so far.
        In a distributed run every rank calls it; rank 0 plays the episodes.
        """
        interval = self.config.algorithm.eval_interval
        due = self.nb_steps // interval > self.last_eval_step // interval
        if not (force or due):
            return False
        self.last_eval_step = self.nb_steps
        improved = False
        if self.distributed.is_main:
            improved = self.register_evaluation(play_episodes(self.eval_agent))
        return self._share_evaluation(improved)

    def _share_evaluation(self, improved: bool) -> bool:
        """Rank 0's evaluation results on every rank.

        Decisions taken on them (stop at ``stop_at_reward``, a notebook's own) must be
        the same on every rank, or the ranks would part ways and wait for each other.
        """
        last, best, improved_flag = broadcast_numbers(
            self.distributed,
            [self.last_eval_reward, self.best_reward, float(improved)],
            "the evaluation results",
        )
        self.last_eval_reward, self.best_reward = last, best
        return bool(improved_flag)

    def register_evaluation(self, rewards: torch.Tensor, policy: Agent | None = None) -> bool:
        """Log one evaluation's episode returns and keep `policy` if it is the best.

        `policy` defaults to the evaluation policy. Returns True when it is the
        best so far.
        """
        rewards = torch.as_tensor(rewards, dtype=torch.float32).detach().flatten().cpu()
        # A NaN mean would compare as "not worse" and could be kept as the best.
        check_finite_tensor("evaluation return", rewards, f"after {self.nb_steps} env steps")
        self.logger.log_reward_losses(rewards, self.nb_steps)
        if self.config.collect_stats:
            self.eval_rewards.append(rewards)
        mean = float(rewards.mean())
        self.last_eval_reward = mean
        self._append_eval_row(rewards)

        if mean <= self.best_reward:
            return False
        self.best_reward = mean
        self.best_policy = copy.deepcopy(policy if policy is not None else self.current_eval_policy)
        if self.config.save_best and self.distributed.is_main:
            self.save_best()
        return True

    def _append_eval_row(self, rewards: torch.Tensor) -> None:
        std = float(rewards.std()) if rewards.numel() > 1 else 0.0
        row = [
            self.nb_steps,
            f"{self.elapsed_seconds():.3f}",
            f"{float(rewards.mean()):.6g}",
            f"{std:.6g}",
            f"{float(rewards.min()):.6g}",
            f"{float(rewards.max()):.6g}",
        ]
        self.eval_history.append(row)
        if self.distributed.is_main:
            self._evals_csv.append(row)

    def save_best(self) -> Path:
        """Write the best policy as a weights-only checkpoint ``best_agent.pt``."""
        if self.best_policy is None:
            raise RuntimeError("No best policy yet: call evaluate() first")
        check_finite_parameters(
            self.best_policy, "best policy", f"after {self.nb_steps} env steps (not saved)"
        )
        return save_agent(
            self.base_dir / BEST_AGENT_FILE,
            self.best_policy,
            env_name=self.config.gym_env.env_name,
            env_args=dict(self.config.gym_env.env_args),
            env_wrappers=[describe_wrapper(wrapper) for wrapper in self.env_wrappers],
            reward=self.best_reward,
            nb_steps=self.nb_steps,
            **self.checkpoint_extras(),
        )

    def checkpoint_extras(self) -> dict[str, Any]:
        """Plain data an algorithm adds to ``best_agent.pt`` (none here)."""
        return {}

    def visualize_best(self, seed: int | None = None) -> Path:
        """Play one episode with the best policy, save it as an mp4 and show it.

        The video lands in the run directory; in a notebook it is shown inline.
        Returns the path of the video.
        """
        if self.best_policy is None:
            raise RuntimeError("No best policy yet: call evaluate() at least once first")
        path, episode_return = record_video(
            lambda: self.make_env_agent(
                1, autoreset=False, seed=seed, render_mode="rgb_array", vectorization="sync"
            ),
            self.best_policy,
            self.base_dir / "best_agent.mp4",
        )
        print(f"Best agent's episode (return {episode_return:.1f}) recorded in {path}")
        show_video(path)
        return path

    def save_stats(self) -> Path | None:
        """Write the collected evaluation returns (``collect_stats: true``) to ``stats.npy``.

        A (nb_evals, evaluations) array, one column per evaluation; `numpy.load` reads it.
        """
        if not self.eval_rewards:
            return None
        path = self.base_dir / STATS_FILE
        np.save(path, torch.stack(self.eval_rewards, dim=-1).numpy())
        return path

    def close(self) -> None:
        """Flush logs and stop the environments."""
        if self.logger is not None:
            self.logger.close()
        self.eval_env.close()

    # -- training state ------------------------------------------------------------------
    def learnt_members(
        self,
    ) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
        """The agents (and other modules) and optimizers held as attributes, by name.

        Found by type, so a notebook's subclass that adds its own is covered. Env
        agents and wrappers around other agents hold no state of their own; the
        best policy is saved on its own.
        """
        modules, optimizers = {}, {}
        for name, value in vars(self).items():
            if name == "best_policy":
                continue
            if isinstance(value, torch.optim.Optimizer):
                optimizers[name] = value
            elif isinstance(value, torch.nn.Module) and not isinstance(value, _NOT_LEARNT):
                modules[name] = value
        return modules, optimizers

    def training_state(self) -> dict[str, Any]:
        """Plain data to continue training exactly here; subclasses extend it."""
        modules, optimizers = self.learnt_members()
        best = self.best_policy
        return {
            "modules": {name: module.state_dict() for name, module in modules.items()},
            "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
            "best_policy": None if best is None else best.state_dict(),
            "nb_steps": self.nb_steps,
            "last_eval_step": self.last_eval_step,
            "best_reward": self.best_reward,
            "last_eval_reward": self.last_eval_reward,
            "elapsed": self.elapsed_seconds(),
            "eval_history": [list(row) for row in self.eval_history],
            "eval_rewards": [rewards.clone() for rewards in self.eval_rewards],
            "eval_env": self.eval_env.get_state(),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore what `training_state` returned; `CheckpointMismatchError` if it does not fit."""
        modules, optimizers = self.learnt_members()
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
                    f"The checkpoint's state of optimizer {name!r} does not fit this "
                    f"algorithm's: {error}"
                ) from None
        if state["best_policy"] is not None:
            self.best_policy = copy.deepcopy(self.current_eval_policy)
            self.best_policy.load_state_dict(state["best_policy"])
        self.nb_steps = int(state["nb_steps"])
        self.last_eval_step = int(state["last_eval_step"])
        self.best_reward = float(state["best_reward"])
        self.last_eval_reward = float(state["last_eval_reward"])
        self.elapsed_before_start = float(state["elapsed"])
        self.eval_history = [list(row) for row in state["eval_history"]]
        self.eval_rewards = list(state["eval_rewards"])
        self.eval_env.set_state(state["eval_env"])
