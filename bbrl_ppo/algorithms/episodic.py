"""`EpisodicAlgo`: an algorithm that learns from workspaces of (partial) episodes.

Adds to `RLBase` the rollout loop, the budget, checkpoints and resume. Besides
bbrl_utils' behaviour, which notebooks rely on:

- ``nb_steps`` counts real env transitions (as Stable-Baselines3 does): the step
  copied from the previous workspace is not counted again, and the reset-only
  step after an episode end (whose action gymnasium ignores) is not a transition;
- a budget can be given in env steps (``algorithm.max_steps``) as well as in
  rollouts (``algorithm.max_rollouts``, bbrl_utils' ``max_epochs``);
- SIGINT/SIGTERM stop training at the next rollout boundary with a checkpoint,
  and `resume` continues exactly there.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from bbrl.agents import Agents, TemporalAgent
from bbrl.workspace import Workspace
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from bbrl_ppo.agents.env import EnvWrapper
from bbrl_ppo.algorithms.advantages import transition_mask
from bbrl_ppo.algorithms.base import RLBase, describe_wrapper, run_files_deferred
from bbrl_ppo.algorithms.budget import Budget
from bbrl_ppo.algorithms.stop_signals import StopRequest
from bbrl_ppo.errors import InvalidInputError, MissingFileError
from bbrl_ppo.persistence.run_files import CONFIG_FILE
from bbrl_ppo.persistence.training_checkpoint import (
    CheckpointMismatchError,
    checkpoint_file,
    last_step,
    load_training_checkpoint,
    restore_training_checkpoint,
    resumable_config,
    save_training_checkpoint,
    workspace_ending_with,
)


def count_transitions(done: torch.Tensor) -> int:
    """Real env transitions in a (T, B) ``env/done`` workspace slice.

    Pair (t-1 -> t) is a transition unless observation t-1 ended an episode (then
    step t only reset the env). Step 0 is either a reset or the copy of the
    previous workspace's last step, so it adds nothing.
    """
    return int(transition_mask(done).sum())


class EpisodicAlgo(RLBase):
    """An algorithm that learns from workspaces of (partial) episodes.

    Args:
        cfg: the configuration (a dict or omegaconf object); see `RunConfig`.
        autoreset: True to collect fixed-length partial episodes
            (`iter_partial_episodes`), False for full episodes (`iter_episodes`).
        env_wrappers: callables ``env -> env`` applied to each env, in order.
    """

    def __init__(self, cfg: Any, autoreset: bool = False, env_wrappers: Sequence[EnvWrapper] = ()):
        super().__init__(cfg, env_wrappers=env_wrappers)
        algorithm = self.config.algorithm
        self.budget = Budget(algorithm.max_steps, algorithm.max_rollouts)
        self.autoreset = autoreset
        self.train_env = self.make_env_agent(
            algorithm.n_envs, autoreset=autoreset, seed=algorithm.seed
        )
        #: Collect rollouts with gradients on (bbrl_utils' behaviour, which some
        #: notebooks rely on); algorithms that recompute what they need set it off.
        self.collect_with_grad = True
        #: Rollouts collected so far.
        self.nb_rollouts = 0
        #: The last rollout's workspace: the next partial episode starts from its last step.
        self.rollout_workspace: Workspace | None = None
        #: Write ``checkpoints/last.pt`` every this many env steps (None: only at the end
        #: and on SIGINT/SIGTERM).
        self.checkpoint_interval: int | None = algorithm.checkpoint_interval
        self.last_checkpoint_step = 0
        self._checkpoint_rollout: int | None = None
        self._stop = StopRequest()
        #: Whether the last training loop ended on SIGINT/SIGTERM.
        self.interrupted = False
        #: Why the training envs started new episodes on resume (None: restored exactly).
        self.new_episodes_reason: str | None = None

    @property
    def epoch(self) -> int:
        """bbrl_utils' name of `nb_rollouts`, kept for notebooks."""
        return self.nb_rollouts

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.nb_rollouts = value

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_file(self.base_dir)

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/last.pt``: all that `resume` needs to continue exactly here.

        Call it between rollouts (the training loops do, every
        ``checkpoint_interval`` env steps, at the end and on SIGINT/SIGTERM).
        """
        path = save_training_checkpoint(self, self.checkpoint_path)
        self.last_checkpoint_step = self.nb_steps
        self._checkpoint_rollout = self.nb_rollouts
        return path

    def training_state(self) -> dict[str, Any]:
        return {
            **super().training_state(),
            "nb_rollouts": self.nb_rollouts,
            "train_env": self.train_env.get_state(),
            "last_step": last_step(self.rollout_workspace),
            "env_wrappers": [describe_wrapper(wrapper) for wrapper in self.env_wrappers],
            "extra": self.extra_training_state(),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        wrappers = [describe_wrapper(wrapper) for wrapper in self.env_wrappers]
        if state["env_wrappers"] != wrappers:
            raise CheckpointMismatchError(
                f"The checkpoint's run used the env wrappers {state['env_wrappers']}, this "
                f"algorithm has {wrappers}: pass the same env_wrappers to resume"
            )
        super().load_training_state(state)
        self.nb_rollouts = int(state["nb_rollouts"])
        self.load_extra_training_state(state["extra"])
        exact = self.train_env.set_state(state["train_env"])
        if exact and state["last_step"] is not None:
            self.rollout_workspace = workspace_ending_with(state["last_step"])
            self.new_episodes_reason = None
        else:
            # The envs' state could not be saved: start new episodes, seeded from the step count.
            self.rollout_workspace = None
            self.train_env.seed(int(self.config.algorithm.seed) + self.nb_steps)
            self.new_episodes_reason = state["train_env"]["envs"].get("reason", "unknown")

    def extra_training_state(self) -> dict[str, Any]:
        """Plain data a notebook's subclass adds to training checkpoints.

        Kept for notebooks written against earlier versions; new code overrides
        `training_state` / `load_training_state` and calls ``super()``.
        """
        return {}

    def load_extra_training_state(self, state: dict[str, Any]) -> None:
        """Restore what `extra_training_state` returned."""

    @classmethod
    def resume(
        cls,
        run_dir: str | Path,
        *args: Any,
        overrides: Sequence[str] = (),
        allow_code_change: bool = False,
        **kwargs: Any,
    ) -> EpisodicAlgo:
        """Rebuild the algorithm of `run_dir` from its last checkpoint, ready to continue.

        `args` and `kwargs` go to the constructor after the configuration (env
        wrappers, say). `overrides` may raise the budget (``algorithm.max_steps=...``,
        ``algorithm.max_rollouts=...``); any other change is refused, as is a
        checkpoint written by other code unless `allow_code_change`. Everything is
        checked before anything in `run_dir` is written: a refused resume leaves
        the run as it was.
        """
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise MissingFileError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
        state = load_training_checkpoint(checkpoint_file(run_dir))
        cfg = OmegaConf.load(run_dir / CONFIG_FILE)
        with run_files_deferred():
            cfg = resumable_config(state, cls, cfg, overrides, allow_code_change=allow_code_change)
            cfg.base_dir = str(run_dir.resolve())
            algo = cls(cfg, *args, **kwargs)
        restore_training_checkpoint(algo, state)
        algo.open_run_directory()
        algo.logger.restart_at(algo.nb_steps + 1)
        algo.last_checkpoint_step = algo.nb_steps
        algo._checkpoint_rollout = algo.nb_rollouts
        if algo.new_episodes_reason is not None:
            warnings.warn(
                f"Resuming {run_dir} at {algo.nb_steps} env steps with new episodes: the "
                f"training envs' state could not be saved ({algo.new_episodes_reason}), so "
                "the run does not continue exactly",
                stacklevel=2,
            )
        return algo

    # -- collecting rollouts ---------------------------------------------------------------
    @cached_property
    def train_agent(self) -> TemporalAgent:
        """The training env followed by the training policy, over time."""
        if self.train_policy is None:
            raise RuntimeError(
                f"{type(self).__name__}.train_policy is not set: set it in __init__, "
                "after super().__init__(cfg)"
            )
        return TemporalAgent(Agents(self.train_env, self.train_policy))

    def default_workspace_steps(self) -> int:
        """Steps per workspace of `iter_partial_episodes` when none is given.

        bbrl_utils' ``algorithm.n_steps``, which counts the workspace's steps
        (the first being the previous workspace's last): notebooks rely on it.
        """
        steps = self.cfg.algorithm.get("n_steps")
        if steps is None:
            raise InvalidInputError(
                "iter_partial_episodes() needs the workspace length: pass it, e.g. "
                "iter_partial_episodes(algo, 33), or set algorithm.n_steps"
            )
        return int(steps)

    def iter_partial_episodes(self, workspace_steps: int | None = None) -> Iterator[Workspace]:
        """Yield workspaces of `workspace_steps` steps per env, one per rollout.

        Each workspace starts with the last step of the previous one, so that the
        transition across the boundary is not lost: a workspace of T steps holds
        T - 1 new transitions per env. `workspace_steps` defaults to
        `default_workspace_steps`. Needs ``autoreset=True``.
        """
        steps = int(workspace_steps or self.default_workspace_steps())
        if not self.autoreset:
            raise InvalidInputError(
                "iter_partial_episodes needs auto-reset envs: create the algorithm with "
                "super().__init__(cfg, autoreset=True), or use iter_episodes()"
            )
        if steps < 2:
            raise InvalidInputError(
                f"A workspace needs >= 2 steps to hold a transition, got workspace_steps={steps}"
            )
        previous = self.rollout_workspace
        workspace = previous if previous is not None else Workspace()
        if previous is not None and previous.time_size() != steps:
            workspace = Workspace()  # another length: start over from a reset

        def collect() -> Workspace:
            if not workspace.variables:
                self.train_agent(workspace, t=0, n_steps=steps)
            else:
                workspace.zero_grad()
                workspace.copy_n_last_steps(1)
                self.train_agent(workspace, t=1, n_steps=steps - 1)
            return workspace

        yield from self._rollouts(collect, (steps - 1) * self.config.algorithm.n_envs)

    def iter_episodes(self) -> Iterator[Workspace]:
        """Yield one workspace of full episodes (one per env) per rollout.

        Envs whose episode ended early repeat their final frame with
        ``env/done`` True until all are done. Needs ``autoreset=False``.
        """
        if self.autoreset:
            raise InvalidInputError(
                "iter_episodes needs envs without auto-reset: create the algorithm with "
                "super().__init__(cfg, autoreset=False), or use iter_partial_episodes()"
            )

        def collect() -> Workspace:
            workspace = Workspace()
            self.train_agent(workspace, t=0, stop_variable="env/done")
            return workspace

        yield from self._rollouts(collect, None)

    def _rollouts(
        self, collect: Callable[[], Workspace], steps_per_rollout: int | None
    ) -> Iterator[Workspace]:
        """The loop both iterators share: budget, step counting, progress, checkpoints."""
        bar = self._progress_bar(steps_per_rollout)
        self.start_time = time.perf_counter() - self.elapsed_before_start
        self.interrupted = False
        try:
            with self._stop.listening():
                while self.budget.left(self.nb_steps, self.nb_rollouts):
                    with torch.set_grad_enabled(self.collect_with_grad):
                        workspace = collect()
                    new_steps = count_transitions(workspace.get_full("env/done"))
                    self.nb_steps += new_steps
                    self.rollout_workspace = workspace
                    yield workspace
                    # Back here, the caller is done with this rollout: a clean boundary.
                    bar.update(new_steps)
                    bar.set_postfix(self.progress_fields(), refresh=False)
                    self.nb_rollouts += 1
                    if self._stop.requested is not None:
                        self._stop_with_checkpoint(bar)
                        return
                    if self._checkpoint_due():
                        self.save_checkpoint()
                self.save_checkpoint()  # the budget is spent: a longer run can resume here
        finally:
            self.elapsed_before_start = self.elapsed_seconds()
            bar.close()
            self.logger.flush()

    def _stop_with_checkpoint(self, bar: tqdm) -> None:
        self.interrupted = True
        path = self.save_checkpoint()
        bar.close()
        print(
            f"Stopped by {self._stop.requested} after {self.nb_steps} env steps; resume with: "
            f"bbrl-ppo train --resume {self.base_dir} (checkpoint {path})",
            file=sys.stderr,
        )

    def _checkpoint_due(self) -> bool:
        interval = self.checkpoint_interval
        return interval is not None and self.nb_steps - self.last_checkpoint_step >= interval

    def _progress_bar(self, steps_per_rollout: int | None) -> tqdm:
        """A bar in env steps; its total is the step budget when one can be known."""
        return tqdm(
            total=self.budget.total_steps(steps_per_rollout),
            initial=self.nb_steps,  # a resumed run's bar starts where it stopped
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            mininterval=1.0,
            disable=not self.config.progress_bar,
        )

    def progress_fields(self) -> dict[str, str]:
        """What the progress bar shows besides env steps and steps/s."""
        return {"last_eval": f"{self.last_eval_reward:.1f}", "best_eval": f"{self.best_reward:.1f}"}


def iter_partial_episodes(
    algo: EpisodicAlgo, workspace_steps: int | None = None
) -> Iterator[Workspace]:
    """Free-function form of `EpisodicAlgo.iter_partial_episodes` (the notebooks' spelling)."""
    return algo.iter_partial_episodes(workspace_steps)


def iter_episodes(algo: EpisodicAlgo) -> Iterator[Workspace]:
    """Free-function form of `EpisodicAlgo.iter_episodes`."""
    return algo.iter_episodes()
