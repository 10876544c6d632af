"""The algorithm bases: configuration, env agents, budget, evaluation, best agent.

`EpisodicAlgo` keeps the names and behaviour of bbrl_utils' `EpisodicAlgo`, so
notebooks written for it run unchanged, and fixes what it got wrong:

- ``nb_steps`` counts real env transitions (as Stable-Baselines3 does): the step
  copied from the previous workspace is not counted again, and the reset-only
  step after an episode end (whose action gymnasium ignores) is not a transition;
- evaluation runs the ``nb_evals`` episodes side by side in one vector env
  under ``torch.inference_mode()``, and appends to ``evals.csv``;
- evaluations fall on a fixed grid: at the first update after each multiple of
  ``eval_interval`` env steps. bbrl_utils waits ``eval_interval`` steps after
  the last evaluation, which drifts by up to a rollout each time: with 8 x 32
  steps per rollout and an interval of 2,048, it evaluated every 2,300 steps;
- the best policy is also written as a weights-only ``best_agent.pt``;
- a budget can be given in env steps (``algorithm.max_steps``) as well as in
  epochs (``algorithm.max_epochs``);
- train and evaluation envs get different seeds.
"""

from __future__ import annotations

import copy
import csv
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bbrl.agents import Agent, Agents, TemporalAgent
from bbrl.workspace import Workspace
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from bbrl_ppo.agents.env import EVAL_SEED_OFFSET, EnvWrapper, VectorGymAgent
from bbrl_ppo.algorithms.advantages import transition_mask
from bbrl_ppo.config.resolution import prepare_config, require, run_directory
from bbrl_ppo.errors import check_finite_parameters, check_finite_tensor
from bbrl_ppo.persistence.agent_checkpoint import save_agent
from bbrl_ppo.persistence.training_checkpoint import (
    RESUMABLE_OVERRIDES,
    CheckpointMismatchError,
    check_compatible,
    checkpoint_file,
    load_training_checkpoint,
    restore_training_state,
    save_training_checkpoint,
)
from bbrl_ppo.reporting.logger import Logger
from bbrl_ppo.reporting.notebook import show_video
from bbrl_ppo.reporting.video import headless_rendering, record_episode, write_video

EVALS_CSV_COLUMNS = ("nb_steps", "wall_s", "reward_mean", "reward_std", "reward_min", "reward_max")
BEST_AGENT_FILE = "best_agent.pt"


def count_transitions(done: torch.Tensor) -> int:
    """Real env transitions in a (T, B) ``env/done`` workspace slice.

    Pair (t-1 -> t) is a transition unless observation t-1 ended an episode (then
    step t only reset the env). Step 0 is either a reset or the copy of the
    previous workspace's last step, so it adds nothing.
    """
    return int(transition_mask(done).sum())


class RLBase:
    """What every algorithm needs besides its rollouts.

    Subclasses set ``self.train_policy`` (and optionally ``self.eval_policy``)
    after calling ``super().__init__``.

    Configuration read here: ``base_dir``, ``save_best`` (default True),
    ``logger``, ``gym_env.env_name``, ``gym_env.env_args``,
    ``gym_env.vectorization`` (``sync`` or ``async``), ``algorithm.seed``,
    ``algorithm.nb_evals``, ``algorithm.eval_interval``.
    """

    cfg: DictConfig
    train_policy: Agent | None
    eval_policy: Agent | None

    def __init__(self, cfg: Any, env_wrappers: Sequence[EnvWrapper] = ()):
        self.cfg = prepare_config(cfg)
        require(
            self.cfg,
            "base_dir",
            "gym_env.env_name",
            "algorithm.seed",
            "algorithm.nb_evals",
            "algorithm.eval_interval",
        )
        self.env_wrappers = tuple(env_wrappers)
        torch.manual_seed(self.cfg.algorithm.seed)

        self.base_dir = run_directory(self.cfg.base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.cfg, self.base_dir / "config.yaml")
        self.logger = Logger(self.cfg.get("logger"), self.base_dir)

        self.train_policy = None
        self.eval_policy = None
        self.eval_env = self.make_env_agent(
            self.cfg.algorithm.nb_evals,
            autoreset=False,
            seed=self.cfg.algorithm.seed + EVAL_SEED_OFFSET,
        )

        #: Collect rollouts with gradients on (bbrl_utils' behaviour, which some
        #: notebooks rely on); algorithms that recompute what they need set it off.
        self.collect_with_grad = True
        self.nb_steps = 0
        self.epoch = 0
        self.last_eval_step = 0
        self.best_policy: Agent | None = None
        self.best_reward = -math.inf
        self.last_eval_reward = -math.inf
        self.running_reward = -math.inf
        self.running_reward_alpha = 0.99
        self.eval_rewards: list[torch.Tensor] = []
        #: The rows of ``evals.csv``, kept to rewrite it when a run resumes.
        self.eval_history: list[list[Any]] = []
        self.start_time = time.perf_counter()
        #: Training time spent before this process (a resumed run's earlier part).
        self.elapsed_before_start = 0.0
        self._evals_csv = self.base_dir / "evals.csv"
        self._write_evals_csv()

    def _write_evals_csv(self) -> None:
        """(Re)write ``evals.csv`` with the history so far, atomically."""
        partial = self._evals_csv.with_name(self._evals_csv.name + ".partial")
        with partial.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(EVALS_CSV_COLUMNS)
            writer.writerows(self.eval_history)
        partial.replace(self._evals_csv)

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
        gym_env = self.cfg.gym_env
        env_args = gym_env.get("env_args")
        return VectorGymAgent(
            gym_env.env_name,
            num_envs,
            env_args=OmegaConf.to_container(env_args) if env_args else None,
            wrappers=self.env_wrappers,
            autoreset=autoreset,
            vectorization=vectorization or gym_env.get("vectorization", "sync"),
            seed=seed,
            render_mode=render_mode,
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
        """
        interval = self.cfg.algorithm.eval_interval
        due = self.nb_steps // interval > self.last_eval_step // interval
        if not (force or due):
            return False
        self.last_eval_step = self.nb_steps
        workspace = Workspace()
        with torch.inference_mode():
            self.eval_agent(workspace, t=0, stop_variable="env/done")
        last_step = workspace.time_size() - 1
        rewards = workspace.get("env/cumulated_reward", last_step).clone()
        return self.register_evaluation(rewards)

    def register_evaluation(self, rewards: torch.Tensor, policy: Agent | None = None) -> bool:
        """Log one evaluation's episode returns and keep `policy` if it is the best.

        `policy` defaults to the evaluation policy. Returns True when it is the
        best so far.
        """
        rewards = torch.as_tensor(rewards, dtype=torch.float32).detach().flatten()
        # A NaN mean would compare as "not worse" and could be kept as the best.
        check_finite_tensor("evaluation return", rewards, f"after {self.nb_steps} env steps")
        self.logger.log_reward_losses(rewards, self.nb_steps)
        if self.cfg.get("collect_stats", False):
            self.eval_rewards.append(rewards)
        mean = float(rewards.mean())
        self.last_eval_reward = mean
        if self.running_reward == -math.inf:
            self.running_reward = mean
        else:
            alpha = self.running_reward_alpha
            self.running_reward = (1 - alpha) * mean + alpha * self.running_reward
        self._append_eval_row(rewards)

        if mean <= self.best_reward:
            return False
        self.best_reward = mean
        self.best_policy = copy.deepcopy(policy if policy is not None else self.current_eval_policy)
        if self.cfg.get("save_best", True):
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
        # Appended and closed at each evaluation: a crash loses nothing logged so far.
        with self._evals_csv.open("a", newline="") as file:
            csv.writer(file).writerow(row)

    def save_best(self) -> Path:
        """Write the best policy as a weights-only checkpoint ``best_agent.pt``."""
        if self.best_policy is None:
            raise RuntimeError("No best policy yet: call evaluate() first")
        check_finite_parameters(
            self.best_policy, "best policy", f"after {self.nb_steps} env steps (not saved)"
        )
        env_args = self.cfg.gym_env.get("env_args")
        return save_agent(
            self.base_dir / BEST_AGENT_FILE,
            self.best_policy,
            env_name=self.cfg.gym_env.env_name,
            env_args=OmegaConf.to_container(env_args) if env_args else {},
            env_wrappers=[_describe(wrapper) for wrapper in self.env_wrappers],
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
        headless_rendering()
        env_agent = self.make_env_agent(
            1, autoreset=False, seed=seed, render_mode="rgb_array", vectorization="sync"
        )
        try:
            frames, episode_return = record_episode(env_agent, self.best_policy)
            fps = env_agent.envs.metadata.get("render_fps") or 30
        finally:
            env_agent.close()
        path = write_video(frames, self.base_dir / "best_agent.mp4", fps=int(fps))
        print(f"Best agent's episode (return {episode_return:.1f}) recorded in {path}")
        show_video(path)
        return path

    def save_stats(self) -> None:
        """Write the collected evaluation returns (``collect_stats: true``) to ``stats.npy``."""
        if self.eval_rewards:
            data = torch.stack(self.eval_rewards, dim=-1).numpy()
            np.savetxt(self.base_dir / "stats.npy", data)

    def close(self) -> None:
        """Flush logs and stop the environments."""
        self.logger.close()
        self.eval_env.close()

    # -- budget and progress display --------------------------------------------------
    def _budget_left(self) -> bool:
        algorithm = self.cfg.algorithm
        max_epochs = algorithm.get("max_epochs")
        max_steps = algorithm.get("max_steps")
        if max_epochs is not None and self.epoch >= max_epochs:
            return False
        return max_steps is None or self.nb_steps < max_steps

    def _progress_bar(self, steps_per_epoch: int | None) -> tqdm:
        """A bar in env steps; its total is the step budget when one can be known."""
        algorithm = self.cfg.algorithm
        totals = []
        if algorithm.get("max_steps") is not None:
            totals.append(int(algorithm.max_steps))
        if algorithm.get("max_epochs") is not None and steps_per_epoch is not None:
            totals.append(int(algorithm.max_epochs) * steps_per_epoch)
        return tqdm(
            total=min(totals) if totals else None,
            initial=self.nb_steps,  # a resumed run's bar starts where it stopped
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            mininterval=1.0,
            disable=not self.cfg.get("progress_bar", True),
        )

    def progress_fields(self) -> dict[str, str]:
        """What the progress bar shows besides env steps and steps/s."""
        return {"last_eval": f"{self.last_eval_reward:.1f}", "best_eval": f"{self.best_reward:.1f}"}

    def _show_progress(self, bar: tqdm, new_steps: int) -> None:
        bar.update(new_steps)
        bar.set_postfix(self.progress_fields(), refresh=False)


class EpisodicAlgo(RLBase):
    """An algorithm that learns from workspaces of (partial) episodes.

    Args:
        cfg: the configuration (a dict or omegaconf object). Also read here:
            ``algorithm.n_envs``, ``algorithm.n_steps``, and the budget
            ``algorithm.max_epochs`` and/or ``algorithm.max_steps``.
        autoreset: True to collect fixed-length partial episodes
            (`iter_partial_episodes`), False for full episodes (`iter_episodes`).
        env_wrappers: callables ``env -> env`` applied to each env, in order.
    """

    def __init__(self, cfg: Any, autoreset: bool = False, env_wrappers: Sequence[EnvWrapper] = ()):
        super().__init__(cfg, env_wrappers=env_wrappers)
        require(self.cfg, "algorithm.n_envs")
        algorithm = self.cfg.algorithm
        if algorithm.get("max_epochs") is None and algorithm.get("max_steps") is None:
            raise ValueError("Give a budget: algorithm.max_epochs and/or algorithm.max_steps")
        self.autoreset = autoreset
        self.train_env = self.make_env_agent(
            algorithm.n_envs, autoreset=autoreset, seed=algorithm.seed
        )
        #: The last rollout's workspace: the next partial episode starts from its last step.
        self.rollout_workspace: Workspace | None = None
        #: Write ``checkpoints/last.pt`` every this many env steps (None: only at the end
        #: and on SIGINT/SIGTERM).
        self.checkpoint_interval: int | None = algorithm.get("checkpoint_interval")
        self.last_checkpoint_step = 0
        self._checkpoint_epoch: int | None = None
        self._stop_requested: str | None = None
        #: Whether the last training loop ended on SIGINT/SIGTERM.
        self.interrupted = False

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
        self._checkpoint_epoch = self.epoch
        return path

    def extra_training_state(self) -> dict[str, Any]:
        """Plain data a subclass adds to training checkpoints (schedules, coefficients...).

        Agents and optimizers held as attributes are saved without this.
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
        ``algorithm.max_epochs=...``); any other change is refused, as is a
        checkpoint written by other code unless `allow_code_change`.
        """
        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml)")
        state = load_training_checkpoint(checkpoint_file(run_dir))
        cfg = OmegaConf.load(run_dir / "config.yaml")
        check_compatible(state, cls, cfg, allow_code_change=allow_code_change)
        for item in overrides:
            key = item.partition("=")[0]
            if key not in RESUMABLE_OVERRIDES:
                raise CheckpointMismatchError(
                    f"Cannot change {key!r} when resuming: only {', '.join(RESUMABLE_OVERRIDES)}"
                )
        cfg.merge_with_dotlist(list(overrides))
        cfg.base_dir = str(run_dir.resolve())
        algo = cls(cfg, *args, **kwargs)
        exact = restore_training_state(algo, state)
        algo._write_evals_csv()
        algo.logger.restart_at(algo.nb_steps + 1)
        algo.last_checkpoint_step = algo.nb_steps
        algo._checkpoint_epoch = algo.epoch
        if not exact:
            reason = state["train_env"]["envs"]["reason"]
            print(
                f"Resuming {run_dir} at {algo.nb_steps} env steps with new episodes: the "
                f"training envs' state could not be saved ({reason})"
            )
        return algo

    def _checkpoint_due(self) -> bool:
        interval = self.checkpoint_interval
        return interval is not None and self.nb_steps - self.last_checkpoint_step >= interval

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM end training at the next rollout boundary, with a checkpoint.

        A second signal interrupts at once (the periodic checkpoint stays).
        Outside the main thread, signals are left alone.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_requested is not None:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                raise KeyboardInterrupt
            self._stop_requested = signal.Signals(signum).name
            print(
                f"\n{self._stop_requested}: stopping after this rollout and saving a checkpoint "
                "(send it again to stop at once)",
                file=sys.stderr,
            )

        for sig in previous:
            signal.signal(sig, request_stop)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @cached_property
    def train_agent(self) -> TemporalAgent:
        """The training env followed by the training policy, over time."""
        if self.train_policy is None:
            raise RuntimeError(
                f"{type(self).__name__}.train_policy is not set: set it in __init__, "
                "after super().__init__(cfg)"
            )
        return TemporalAgent(Agents(self.train_env, self.train_policy))

    def iter_partial_episodes(self, n_steps: int | None = None) -> Iterator[Workspace]:
        """Yield workspaces of `n_steps` steps per env (``algorithm.n_steps`` by default).

        Each workspace starts with the last step of the previous one, so that the
        transition across the boundary is not lost. Needs ``autoreset=True``.
        """
        n_steps = int(n_steps or self.cfg.algorithm.n_steps)
        if not self.autoreset:
            raise ValueError(
                "iter_partial_episodes needs auto-reset envs: create the algorithm with "
                "super().__init__(cfg, autoreset=True), or use iter_episodes()"
            )
        if n_steps < 2:
            raise ValueError(f"n_steps must be >= 2 to hold a transition, got {n_steps}")
        previous = self.rollout_workspace
        workspace = previous if previous is not None else Workspace()
        if previous is not None and previous.time_size() != n_steps:
            workspace = Workspace()  # another length: start over from a reset

        def collect() -> Workspace:
            if not workspace.variables:
                self.train_agent(workspace, t=0, n_steps=n_steps)
            else:
                workspace.zero_grad()
                workspace.copy_n_last_steps(1)
                self.train_agent(workspace, t=1, n_steps=n_steps - 1)
            return workspace

        yield from self._epochs(collect, (n_steps - 1) * self.cfg.algorithm.n_envs)

    def iter_episodes(self) -> Iterator[Workspace]:
        """Yield one workspace of full episodes (one per env) per epoch.

        Envs whose episode ended early repeat their final frame with
        ``env/done`` True until all are done. Needs ``autoreset=False``.
        """
        if self.autoreset:
            raise ValueError(
                "iter_episodes needs envs without auto-reset: create the algorithm with "
                "super().__init__(cfg, autoreset=False), or use iter_partial_episodes()"
            )

        def collect() -> Workspace:
            workspace = Workspace()
            self.train_agent(workspace, t=0, stop_variable="env/done")
            return workspace

        yield from self._epochs(collect, None)

    def _epochs(
        self, collect: Callable[[], Workspace], steps_per_epoch: int | None
    ) -> Iterator[Workspace]:
        """The loop both iterators share: budget, step counting, progress bar."""
        bar = self._progress_bar(steps_per_epoch)
        self.start_time = time.perf_counter() - self.elapsed_before_start
        self._stop_requested = None
        self.interrupted = False
        try:
            with self._stop_on_signals():
                while self._budget_left():
                    with torch.set_grad_enabled(self.collect_with_grad):
                        workspace = collect()
                    new_steps = count_transitions(workspace.get_full("env/done"))
                    self.nb_steps += new_steps
                    self.rollout_workspace = workspace
                    yield workspace
                    # Back here, the caller is done with this rollout: a clean boundary.
                    self._show_progress(bar, new_steps)
                    self.epoch += 1
                    if self._stop_requested is not None:
                        self.interrupted = True
                        path = self.save_checkpoint()
                        bar.close()
                        print(
                            f"Stopped by {self._stop_requested} after {self.nb_steps} env "
                            f"steps; resume with: bbrl-ppo train --resume {self.base_dir} "
                            f"(checkpoint {path})",
                            file=sys.stderr,
                        )
                        return
                    if self._checkpoint_due():
                        self.save_checkpoint()
                self.save_checkpoint()  # the budget is spent: a longer run can resume here
        finally:
            self.elapsed_before_start = self.elapsed_seconds()
            bar.close()
            self.logger.flush()


def iter_partial_episodes(algo: EpisodicAlgo, n_steps: int | None = None) -> Iterator[Workspace]:
    """Free-function form of `EpisodicAlgo.iter_partial_episodes` (the notebooks' spelling)."""
    return algo.iter_partial_episodes(n_steps)


def iter_episodes(algo: EpisodicAlgo) -> Iterator[Workspace]:
    """Free-function form of `EpisodicAlgo.iter_episodes`."""
    return algo.iter_episodes()


def _describe(wrapper: EnvWrapper) -> str:
    return getattr(wrapper, "__qualname__", None) or repr(wrapper)
