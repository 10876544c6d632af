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

On several processes (`bbrl_ppo.distributed`) each rank steps its share of the
``n_envs`` envs, the very envs (same seeds) a single process would step in its
place; ``nb_steps`` counts every rank's transitions, so the budget, the evaluation
grid and the schedules follow the run, not the rank. A signal on any rank stops
every rank at the same rollout boundary, with one checkpoint.
"""

from __future__ import annotations

import math
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
from bbrl_ppo.distributed.collectives import any_rank, broadcast_modules, total_over_ranks
from bbrl_ppo.distributed.context import rank_seed
from bbrl_ppo.errors import InvalidInputError, MissingFileError
from bbrl_ppo.persistence.run_files import CONFIG_FILE, PROGRESS_FILE, ProgressFile
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
from bbrl_ppo.reporting.notebook import in_notebook

#: Seconds between flushes of the logs during training. Tensorboard reads only what is
#: on disk, and its writer flushes by itself every two minutes: a tensorboard panel
#: could not show the run being trained.
LOG_FLUSH_INTERVAL_S = 5.0


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
        #: The envs this process steps, and the run-wide index of its first: env i of
        #: rank r is env ``r * local_n_envs + i`` of the run, seeded as such.
        self.local_n_envs = self.distributed.local_share(algorithm.n_envs, "algorithm.n_envs")
        self.first_env_index = self.distributed.rank * self.local_n_envs
        self.train_env = self.make_env_agent(
            self.local_n_envs, autoreset=autoreset, seed=algorithm.seed + self.first_env_index
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
        #: Whether the ranks were made to start alike (`_start_ranks`).
        self._ranks_started = False

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
        """Where this run's training checkpoint is written (``checkpoints/last.pt``)."""
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

    #: The keys of `training_state` that differ between the ranks of a distributed run
    #: (each steps its own envs); a checkpoint holds them for every rank. A subclass
    #: with state of its own that differs between ranks adds its keys.
    per_rank_state: tuple[str, ...] = ("train_env", "last_step")

    def training_state(self) -> dict[str, Any]:
        """What a checkpoint must hold, beyond the agents and optimizers, to resume exactly
        (counters, RNG and env states); subclasses add their own and call this one."""
        return {
            **super().training_state(),
            "nb_rollouts": self.nb_rollouts,
            "train_env": self.train_env.get_state(),
            "last_step": last_step(self.rollout_workspace),
            "env_wrappers": [describe_wrapper(wrapper) for wrapper in self.env_wrappers],
            "extra": self.extra_training_state(),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore `training_state`'s result, refusing a checkpoint of other env wrappers."""
        wrappers = [describe_wrapper(wrapper) for wrapper in self.env_wrappers]
        if state["env_wrappers"] != wrappers:
            raise CheckpointMismatchError(
                f"The checkpoint's run used the env wrappers {state['env_wrappers']}, this "
                f"algorithm has {wrappers}: pass the same env_wrappers to resume"
            )
        super().load_training_state(state)
        self.nb_rollouts = int(state["nb_rollouts"])
        self.load_extra_training_state(state["extra"])
        self._ranks_started = True  # the checkpoint holds every rank's parameters and RNGs
        exact = self.train_env.set_state(state["train_env"])
        if exact and state["last_step"] is not None:
            self.rollout_workspace = workspace_ending_with(state["last_step"], self.device)
            self.new_episodes_reason = None
        else:
            # The envs' state could not be saved: start new episodes, seeded from the step count.
            self.rollout_workspace = None
            seed = int(self.config.algorithm.seed) + self.nb_steps + self.first_env_index
            self.train_env.seed(seed)
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
        progress = ProgressFile(self.base_dir / PROGRESS_FILE, enabled=self.distributed.is_main)
        self._start_ranks()
        self.start_time = time.perf_counter() - self.elapsed_before_start
        self.interrupted = False
        completed = False  # the budget was spent, or the caller stopped on its own
        last_flush = -math.inf
        try:
            with self._stop.listening():
                while self.budget.left(self.nb_steps, self.nb_rollouts):
                    with torch.set_grad_enabled(self.collect_with_grad):
                        workspace = collect()
                    new_steps = total_over_ranks(
                        self.distributed,
                        count_transitions(workspace.get_full("env/done")),
                        "the count of env steps",
                    )
                    self.nb_steps += new_steps
                    self.rollout_workspace = workspace
                    try:
                        yield workspace
                    except GeneratorExit:
                        # The caller stopped taking rollouts (stop_at_reward, a break, a
                        # single next()): it will never resume us, so its last rollout and
                        # the evaluation it ran after it reach the bar here or never.
                        self._show_rollout(bar, new_steps)
                        completed = True
                        raise
                    # Back here, the caller is done with this rollout: a clean boundary.
                    self._show_rollout(bar, new_steps)
                    progress.update(self._progress_status(bar.total, "running"))
                    if time.monotonic() - last_flush >= LOG_FLUSH_INTERVAL_S:
                        self.logger.flush()
                        last_flush = time.monotonic()
                    self.nb_rollouts += 1
                    if self._stop_requested_on_any_rank():
                        self._stop_with_checkpoint(bar)
                        return
                    if self._checkpoint_due():
                        self.save_checkpoint()
                self.save_checkpoint()  # the budget is spent: a longer run can resume here
                completed = True
        finally:
            self.elapsed_before_start = self.elapsed_seconds()
            if completed:
                _end_bar_at_its_count(bar)
            if self.base_dir.is_dir():
                state = "stopped" if self.interrupted else "finished"
                progress.update(self._progress_status(bar.total, state), force=True)
            bar.close()
            self.logger.flush()

    def _start_ranks(self) -> None:
        """Once per run, before its first rollout: the same parameters on every rank.

        Rank 0's parameters and statistics are copied to every rank, so that the ranks
        start as one algorithm whatever their constructors drew. The other ranks then
        reseed torch's generator, which samples their actions: with rank 0's seed they
        would draw the same noise for their envs as rank 0 for its own. A resumed run
        has both from its checkpoint.
        """
        if self._ranks_started:
            return
        self._ranks_started = True
        modules, _ = self.learnt_members()
        broadcast_modules(self.distributed, modules.values())
        if not self.distributed.is_main:
            torch.manual_seed(rank_seed(self.config.algorithm.seed, self.distributed.rank))

    def _stop_requested_on_any_rank(self) -> bool:
        """Whether SIGINT/SIGTERM reached any rank: then every rank stops here, together."""
        here = self._stop.requested is not None
        if not any_rank(self.distributed, here, "the stop request check"):
            return False
        if not here:
            self._stop.requested = "a signal to another process of the run"
        return True

    def _show_rollout(self, bar: tqdm, new_steps: int) -> None:
        bar.update(new_steps)
        bar.set_postfix(self.progress_fields(), refresh=False)

    def _stop_with_checkpoint(self, bar: tqdm) -> None:
        self.interrupted = True
        path = self.save_checkpoint()
        bar.close()  # short of its total: a notebook draws it red, as a stopped run should be
        print(
            f"Stopped by {self._stop.requested} after {self.nb_steps} env steps "
            f"(checkpoint {path}); {self.resume_hint()}",
            file=sys.stderr,
        )

    def resume_hint(self) -> str:
        """How to continue this run, said in the words of where it runs.

        In a notebook the run was started by calling ``run()`` on an object (maybe of a
        class defined in the notebook, which the command line cannot rebuild), so the
        hint is the matching Python call; elsewhere it is the ``bbrl-ppo`` command.
        """
        if in_notebook():
            return (
                f"continue with: algo = {type(self).__name__}.resume({str(self.base_dir)!r}); "
                "algo.run()"
            )
        if self.distributed.is_distributed:  # the same number of processes, or it is refused
            return (
                f"resume on {self.distributed.world_size} processes with: torchrun ... -m "
                f"bbrl_ppo train --resume {self.base_dir}"
            )
        return f"resume with: bbrl-ppo train --resume {self.base_dir}"

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
            disable=not (self.config.progress_bar and self.distributed.is_main),
        )

    def _progress_status(self, total_steps: int | None, state: str) -> dict[str, Any]:
        """What ``progress.json`` says: the progress bar's numbers, for other processes."""

        def finite(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "state": state,
            "nb_steps": self.nb_steps,
            "total_steps": total_steps,
            "nb_rollouts": self.nb_rollouts,
            "elapsed_s": round(self.elapsed_seconds(), 3),
            "last_eval": finite(self.last_eval_reward),
            "best_eval": finite(self.best_reward),
        }

    def progress_fields(self) -> dict[str, str]:
        """What the progress bar shows besides env steps and steps/s.

        Evaluations show once there is one: before it, ``nan`` and ``-inf`` would read
        as a failure.
        """
        fields = {}
        if math.isfinite(self.last_eval_reward):
            fields["last_eval"] = f"{self.last_eval_reward:.1f}"
        if math.isfinite(self.best_reward):
            fields["best_eval"] = f"{self.best_reward:.1f}"
        return fields


def _end_bar_at_its_count(bar: tqdm) -> None:
    """Make the steps taken by a run that ended on its own the bar's total.

    A run rarely ends exactly on its budget: a stop at ``stop_at_reward`` ends short
    of it (and a notebook draws a bar closed short of its total in red, as if
    training had failed); a last rollout overshoots it (and tqdm then drops the
    total: ``204k/?``). Either way the bar ends full, at the steps really taken.
    """
    if bar.disable or bar.total == bar.n:
        return
    bar.total = bar.n
    widget = getattr(bar, "container", None)  # tqdm.notebook's bar keeps its own maximum
    if widget is not None:
        widget.children[1].max = max(bar.n, 1)
    bar.refresh()


def iter_partial_episodes(
    algo: EpisodicAlgo, workspace_steps: int | None = None
) -> Iterator[Workspace]:
    """Free-function form of `EpisodicAlgo.iter_partial_episodes` (the notebooks' spelling)."""
    return algo.iter_partial_episodes(workspace_steps)


def iter_episodes(algo: EpisodicAlgo) -> Iterator[Workspace]:
    """Free-function form of `EpisodicAlgo.iter_episodes`."""
    return algo.iter_episodes()
