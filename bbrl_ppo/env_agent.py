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
import torch
from bbrl.agents import Agent
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

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
        raise ValueError(_unknown_env_message(env_name)) from error
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
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        if vectorization not in VECTORIZATIONS:
            raise ValueError(
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
        self.envs: VectorEnv = vector_class(
            [env_fn] * num_envs, autoreset_mode=AutoresetMode.NEXT_STEP
        )
        self._obs_to_float = np.issubdtype(self.observation_space.dtype, np.floating)
        self._clip_actions = isinstance(self.action_space, gym.spaces.Box)
        self._reset_state()

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
            frame = self._reset()
        else:
            frame = self._step(self._read_actions(t - 1))
        for key, value in frame.items():
            self.workspace.set(self.output + key, t, value)

    def _reset_state(self) -> None:
        self._cumulated_reward = np.zeros(self.num_envs, dtype=np.float64)
        self._timestep = np.zeros(self.num_envs, dtype=np.int64)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._final_frame: dict[str, torch.Tensor] | None = None

    def _reset(self) -> dict[str, torch.Tensor]:
        seeds, self._seeds = self._seeds, None
        obs, _ = self.envs.reset(seed=seeds)
        self._reset_state()
        zeros = np.zeros(self.num_envs, dtype=bool)
        return self._frame(obs, np.zeros(self.num_envs, dtype=np.float32), zeros, zeros)

    def _step(self, actions: np.ndarray) -> dict[str, torch.Tensor]:
        was_done = self._done
        obs, reward, terminated, truncated, _ = self.envs.step(actions)
        if self.autoreset:
            # Gymnasium's next-step auto-reset: an env done at t-1 was reset by
            # this call (reward 0, flags False), so its counters restart.
            self._timestep = np.where(was_done, 0, self._timestep + 1)
            self._cumulated_reward = np.where(was_done, 0.0, self._cumulated_reward) + reward
            return self._frame(obs, reward, terminated, truncated)

        self._timestep = np.where(was_done, self._timestep, self._timestep + 1)
        self._cumulated_reward = np.where(
            was_done, self._cumulated_reward, self._cumulated_reward + reward
        )
        frame = self._frame(obs, np.where(was_done, 0.0, reward), terminated, truncated)
        if was_done.any():
            # A finished env repeats its final frame (reward 0) until all are done.
            keep = torch.from_numpy(was_done)
            for key in ("env_obs", "terminated", "truncated", "done"):
                mask = keep.view(-1, *([1] * (frame[key].dim() - 1)))
                frame[key] = torch.where(mask, self._final_frame[key], frame[key])
        self._final_frame = frame
        self._done = frame["done"].numpy().copy()
        return frame

    def _frame(self, obs, reward, terminated, truncated) -> dict[str, torch.Tensor]:
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        done = terminated | truncated
        if self.autoreset:
            self._done = done
        observation = torch.from_numpy(np.asarray(obs))
        observation = observation.float() if self._obs_to_float else observation.long()
        return {
            "env_obs": observation,
            "terminated": torch.from_numpy(terminated),
            "truncated": torch.from_numpy(truncated),
            "done": torch.from_numpy(done),
            "reward": torch.from_numpy(np.asarray(reward, dtype=np.float32)),
            "cumulated_reward": torch.from_numpy(self._cumulated_reward.astype(np.float32)),
            "timestep": torch.from_numpy(self._timestep.copy()),
        }

    def _read_actions(self, t: int) -> np.ndarray:
        action = self.workspace.get(self.input, t)
        if action.dim() == 0 or action.shape[0] != self.num_envs:
            raise ValueError(
                f"The action batch at t={t} has shape {tuple(action.shape)}, but "
                f"{self.num_envs} environments need one action each (first dimension "
                f"{self.num_envs})."
            )
        actions = action.detach().cpu().numpy()
        if self._clip_actions:
            # The workspace keeps the sampled action (PPO needs its log-prob);
            # only the env sees it clipped to its bounds.
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        return actions

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
        raise ValueError(f"Got {len(seeds)} seeds for {num_envs} environments")
    return seeds


def _check_space(kind: str, space: gym.Space, supported: tuple[type, ...]) -> None:
    if not isinstance(space, supported):
        names = ", ".join(cls.__name__ for cls in supported)
        raise ValueError(
            f"Unsupported {kind} space {space!r}: VectorGymAgent handles {names}. "
            f"Wrap the env (e.g. gymnasium.wrappers.FlattenObservation) to get one of them."
        )


def _space_size(space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if len(space.shape) == 1:
        return int(space.shape[0])
    return tuple(space.shape)
