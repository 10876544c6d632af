"""A workspace writer over gymnasium's vector environments.

`VectorGymAgent` writes exactly the variables bbrl's `ParallelGymAgent` writes over
an `Autoreset`-wrapped env (`env/env_obs`, `env/reward`, `env/terminated`,
`env/truncated`, `env/done`, `env/cumulated_reward`, `env/timestep`), with the same
time layout, but steps all environments with one `VectorEnv.step` call instead of
a Python loop over environments.

Time layout (BBRL's convention: `env/done[t]` means observation t is the *last*
one of its episode):

- t = 0: every env is reset; reward 0, all flags False.
- t > 0: the agent reads `action` at t-1 and steps. When an episode ends at t,
  `env/env_obs[t]` is its final observation; with auto-reset, observation t+1
  is the first of the next episode, with reward 0 and all flags False
  (gymnasium's "next step" auto-reset: the action at t is ignored).
- Full-episode mode (``autoreset=False``): a finished env repeats its final frame
  with ``done=True`` and reward 0, so ``TemporalAgent(..., stop_variable="env/done")``
  stops once every env is done.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from bbrl.agents import Agent
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from bbrl_ppo.agents.episode_tracker import ENV_VARIABLES, EpisodeTracker
from bbrl_ppo.agents.workspace_io import StepWriter, read_step
from bbrl_ppo.errors import EnvStepError, InvalidInputError, failing_env_index
from bbrl_ppo.persistence.env_state import capture_vector_env, restore_vector_env

#: Offset between the seeds of training and evaluation envs, so that evaluation
#: episodes never replay the training episodes' initial states.
EVAL_SEED_OFFSET = 1_000_003

EnvWrapper = Callable[[gym.Env], gym.Env]

_SUPPORTED_OBS_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiDiscrete,
    gym.spaces.MultiBinary,
)
_SUPPORTED_ACTION_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete)
VECTORIZATIONS = ("sync", "async")


def make_env(
    env_name: str,
    *,
    env_args: dict[str, Any] | None = None,
    wrappers: Sequence[EnvWrapper] = (),
    render_mode: str | None = None,
) -> gym.Env:
    """Create one env with `gymnasium.make`, then apply `wrappers` in order.

    Time limits come from the env's registration (gymnasium adds `TimeLimit`), so
    truncations are reported exactly as gymnasium reports them. `env_name` may be
    any id `gymnasium.make` accepts, including ``"my_module:MyEnv-v0"``.
    """
    kwargs = dict(env_args or {})
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(env_name, **kwargs)
    except gym.error.UnregisteredEnv as error:
        raise InvalidInputError(_unknown_env_message(env_name)) from error
    for wrapper in wrappers:
        env = wrapper(env)
    return env


def _unknown_env_message(env_name: str) -> str:
    close = difflib.get_close_matches(env_name, list(gym.registry.keys()), n=5, cutoff=0.5)
    hint = f" Did you mean one of: {', '.join(close)}?" if close else ""
    return (
        f"Unknown environment id {env_name!r}: gymnasium has no such registered env.{hint} "
        "A custom env can be given as 'my_module:MyEnv-v0' (the module is imported first)."
    )


class VectorGymAgent(Agent):
    """Steps `num_envs` copies of a gymnasium env and writes `env/*` variables.

    Args:
        env_name: a gymnasium id (``"CartPole-v1"``, ``"my_module:MyEnv-v0"``).
        num_envs: number of environments stepped side by side.
        env_args: keyword arguments for `gymnasium.make` (``cfg.gym_env.env_args``).
        wrappers: callables ``env -> env`` applied to each env, in order.
        autoreset: True for continuing rollouts (training), False for full
            episodes (evaluation).
        vectorization: ``"sync"`` (one process, the fastest for cheap envs) or
            ``"async"`` (one subprocess per env, for envs whose step is costly).
        seed: env i is first reset with ``seed + i``; a sequence gives each env's
            seed. Later resets follow each env's own RNG, so the same seed gives the
            same workspace run after run.
        render_mode: forwarded to `gymnasium.make` (``"rgb_array"`` for videos).
        input_string: the action variable read at t-1.
        output_string: the prefix of the variables written.
    """

    def __init__(
        self,
        env_name: str,
        num_envs: int = 1,
        *,
        env_args: dict[str, Any] | None = None,
        wrappers: Sequence[EnvWrapper] = (),
        autoreset: bool = True,
        vectorization: str = "sync",
        seed: int | Sequence[int] | None = None,
        render_mode: str | None = None,
        input_string: str = "action",
        output_string: str = "env/",
        name: str = "env",
    ):
        super().__init__(name=name)
        if not isinstance(num_envs, int) or num_envs < 1:
            raise InvalidInputError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if vectorization not in VECTORIZATIONS:
            raise InvalidInputError(
                f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}"
            )
        self.env_name = env_name
        self.num_envs = num_envs
        self.autoreset = autoreset
        self.input = input_string
        self.output = output_string
        self._seeds = _expand_seeds(seed, num_envs)

        # Fails early, with our message, on an unknown id or a bad space.
        probe = make_env(env_name, env_args=env_args, wrappers=wrappers)
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        probe.close()
        _check_space("observation", self.observation_space, _SUPPORTED_OBS_SPACES)
        _check_space("action", self.action_space, _SUPPORTED_ACTION_SPACES)

        env_fn = partial(
            make_env, env_name, env_args=env_args, wrappers=tuple(wrappers), render_mode=render_mode
        )
        vector_class = SyncVectorEnv if vectorization == "sync" else AsyncVectorEnv
        # copy=False: the tracker copies observations into tensors it owns, so the
        # vector env's own defensive deepcopy would be a second copy.
        self.envs: VectorEnv = vector_class(
            [env_fn] * num_envs, copy=False, autoreset_mode=AutoresetMode.NEXT_STEP
        )
        # bbrl's layout: float observations as float32, others as int64.
        floating = np.issubdtype(self.observation_space.dtype, np.floating)
        obs_dtype = np.dtype(np.float32 if floating else np.int64)
        self._tracker = EpisodeTracker(num_envs, autoreset=autoreset, obs_dtype=obs_dtype)
        self._writer = StepWriter([output_string + key for key in ENV_VARIABLES])
        self._clip_actions = isinstance(self.action_space, gym.spaces.Box)

    # -- the bbrl GymAgent interface --------------------------------------------------
    def seed(self, seed: int | Sequence[int]) -> VectorGymAgent:
        """Set the seeds used by the next reset (then they are forgotten)."""
        self._seeds = _expand_seeds(seed, self.num_envs)
        return self

    def get_observation_space(self) -> gym.Space:
        return self.observation_space

    def get_action_space(self) -> gym.Space:
        return self.action_space

    def get_obs_and_actions_sizes(self) -> tuple[Any, Any]:
        """Sizes as bbrl gives them: a vector's length, or ``n`` for a discrete space."""
        return _space_size(self.observation_space), _space_size(self.action_space)

    def is_continuous_action(self) -> bool:
        return isinstance(self.action_space, gym.spaces.Box)

    def is_discrete_action(self) -> bool:
        return isinstance(self.action_space, gym.spaces.Discrete)

    def is_continuous_state(self) -> bool:
        return isinstance(self.observation_space, gym.spaces.Box)

    def is_discrete_state(self) -> bool:
        return isinstance(self.observation_space, gym.spaces.Discrete)

    # -- stepping ----------------------------------------------------------------------
    def forward(self, t: int, **kwargs) -> None:
        if t == 0:
            seeds, self._seeds = self._seeds, None
            try:
                observations, _ = self.envs.reset(seed=seeds)
            except Exception as error:
                raise self._env_failure(error, "reset", None) from error
            frame = self._tracker.reset(observations)
        else:
            actions = self._read_actions(t - 1)
            try:
                step = self.envs.step(actions)
            except Exception as error:
                raise self._env_failure(error, "step", actions) from error
            frame = self._tracker.step(*step[:4])
        self._writer.write(self.workspace, t, frame)

    def _env_failure(
        self, error: Exception, stage: str, actions: np.ndarray | None
    ) -> EnvStepError:
        """An error naming the env and its step; subprocess workers are stopped first."""
        index = failing_env_index(error)
        if index is None:
            which = f"one of the {self.num_envs} {self.env_name} envs (index unknown)"
            where = ""
        else:
            which = f"{self.env_name} env {index} of {self.num_envs}"
            if stage == "step":
                episode_step = int(self._tracker.timestep[index]) + 1
                where = f" at step {episode_step} of its episode, action {actions[index].tolist()}"
            else:
                where = ""
        if isinstance(self.envs, AsyncVectorEnv):
            # The failed worker is gone; stop the others rather than leak them.
            self.envs.close(terminate=True)
        return EnvStepError(
            f"{which} raised during {stage}{where}: {type(error).__name__}: {error}"
        )

    def _read_actions(self, t: int) -> np.ndarray:
        action = read_step(self.workspace, self.input, t)
        try:
            actions = action.numpy()
        except (RuntimeError, TypeError):  # requires grad, or not on the CPU
            actions = action.detach().cpu().numpy()
        if actions.ndim == 0 or actions.shape[0] != self.num_envs:
            raise InvalidInputError(
                f"The action batch at t={t} has shape {tuple(actions.shape)}, but "
                f"{self.num_envs} environments need one action each (first dimension "
                f"{self.num_envs})."
            )
        if self._clip_actions:
            # The workspace keeps the sampled action (PPO needs its log-prob);
            # only the env sees it clipped to its bounds.
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        return actions

    # -- checkpoints -----------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue stepping exactly here, as plain data.

        ``state["envs"]["exact"]`` is False when some env state could not be
        captured (see `bbrl_ppo.persistence.env_state`).
        """
        return {
            "envs": capture_vector_env(self.envs),
            "tracker": self._tracker.get_state(),
            "seeds": self._seeds,
        }

    def set_state(self, state: dict[str, Any]) -> bool:
        """Restore `get_state`'s result; returns whether the envs are exactly restored.

        When they are not, the next ``forward(t=0)`` must reset them.
        """
        restore_vector_env(self.envs, state["envs"])
        self._tracker.set_state(state["tracker"])
        self._seeds = state["seeds"]
        return bool(state["envs"]["exact"])

    # -- rendering and cleanup --------------------------------------------------------
    def render(self) -> list[np.ndarray]:
        """One frame per env (envs must be created with ``render_mode="rgb_array"``)."""
        return list(self.envs.render())

    def close(self) -> None:
        self.envs.close()


def _expand_seeds(seed: int | Sequence[int] | None, num_envs: int) -> list[int] | None:
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)):
        return [int(seed) + i for i in range(num_envs)]
    seeds = [int(s) for s in seed]
    if len(seeds) != num_envs:
        raise InvalidInputError(f"Got {len(seeds)} seeds for {num_envs} environments")
    return seeds


def _check_space(kind: str, space: gym.Space, supported: tuple[type, ...]) -> None:
    if not isinstance(space, supported):
        names = ", ".join(cls.__name__ for cls in supported)
        raise InvalidInputError(
            f"Unsupported {kind} space {space!r}: VectorGymAgent handles {names}. "
            f"Wrap the env (e.g. gymnasium.wrappers.FlattenObservation) to get one of them."
        )


def _space_size(space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if len(space.shape) == 1:
        return int(space.shape[0])
    return tuple(space.shape)
