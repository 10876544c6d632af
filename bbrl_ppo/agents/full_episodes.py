"""Full-episode mode: an env whose episode has ended is never stepped again.

A gymnasium vector env resets an env as soon as it reports the end of its
episode, then steps it again: stepping a vector env until *every* episode is over
plays hidden episodes in the envs that finished first. They cost env steps that no
transition count sees, and they advance those envs' RNG by an amount that depends
on how long the other episodes lasted, so that the start states of the next
batch of episodes (the next evaluation) depended on what the policy did before.

`HoldAfterEpisodeEnd`, the outermost wrapper of each env in full-episode mode,
hides the end of the episode from the vector env: the ending step is reported as
an ordinary one, with the real flags in its info (`episode_end_flags` reads
them), and every later step returns the final observation again, reward 0,
without stepping the env. The vector env never resets on its own
(``AutoresetMode.DISABLED``); the env agent's reset at ``t=0`` resets everything.
This relies only on the vector envs' public behaviour, so it is the same for
`SyncVectorEnv` and `AsyncVectorEnv`.

A vector implementation (gymnasium's vector entry point, ``vectorization="vector"``)
has no per-env layer to wrap, and it does step finished envs: `HeldEpisodes`
rewrites its outputs into the same frames, and the env agent reseeds it at every
reset from a seed stream of its own, so that what its hidden steps drew cannot
reach the next batch's start states.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

#: The info keys that carry the real end-of-episode flags past the vector env.
TERMINATED_KEY = "bbrl_ppo.terminated"
TRUNCATED_KEY = "bbrl_ppo.truncated"


class HoldAfterEpisodeEnd(gym.Wrapper):
    """After its episode ends, the env is held: steps repeat the final observation.

    The step that ends the episode returns ``terminated = truncated = False`` and
    puts the real flags under `TERMINATED_KEY` / `TRUNCATED_KEY` in its info, so
    that the vector env does not reset the env; later steps return the final
    observation, reward 0, no flags, and do not reach the env. `reset` releases it.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.held = False
        self.final_observation: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.held = False
        self.final_observation = None
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self.held:
            return self.final_observation, 0.0, False, False, {}
        observation, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.held = True
            self.final_observation = observation
            info = {**info, TERMINATED_KEY: bool(terminated), TRUNCATED_KEY: bool(truncated)}
        return observation, reward, False, False, info


def episode_end_flags(infos: dict[str, Any], num_envs: int) -> tuple[np.ndarray, np.ndarray]:
    """The real (terminated, truncated) flags of a vector step over held envs, (B,) each."""
    terminated = infos.get(TERMINATED_KEY)
    truncated = infos.get(TRUNCATED_KEY)
    if terminated is None:  # no episode ended at this step
        return np.zeros(num_envs, dtype=bool), np.zeros(num_envs, dtype=bool)
    return terminated.astype(bool, copy=False), truncated.astype(bool, copy=False)


class HeldEpisodes:
    """The hold of `HoldAfterEpisodeEnd`, applied to a whole vector step at once.

    A vector implementation (``vectorization="vector"``) steps all its envs in one
    array operation, so no env can be wrapped alone, and it resets and keeps
    stepping an env whose episode ended. Its outputs are rewritten here instead:
    the step where an env's episode ends keeps its real flags, and every later step
    of that env reports the final observation again, reward 0 and no flags, which
    is what `HoldAfterEpisodeEnd` and `episode_end_flags` report for the other
    vectorizations. The hidden steps still move the vector env's generator: the
    env agent reseeds it at every reset for that reason.
    """

    def __init__(self, num_envs: int):
        self.held = np.zeros(num_envs, dtype=bool)
        #: (B, ...) the observation each held env ended on; None before any end.
        self.final_observations: np.ndarray | None = None

    def reset(self) -> None:
        self.held = np.zeros_like(self.held)
        self.final_observations = None

    def step(
        self,
        observations: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The vector step's outputs, (B, ...) each, with the held envs' rewritten."""
        held = self.held
        if held.any():
            rows = held.reshape(-1, *([1] * (observations.ndim - 1)))
            observations = np.where(rows, self.final_observations, observations)
            rewards = np.where(held, 0.0, rewards).astype(rewards.dtype, copy=False)
            terminated = terminated & ~held
            truncated = truncated & ~held
        ended = terminated | truncated
        if ended.any():
            if self.final_observations is None:
                self.final_observations = np.array(observations, copy=True)
            else:
                self.final_observations[ended] = observations[ended]
            self.held = held | ended
        return observations, rewards, terminated, truncated

    def get_state(self) -> dict[str, Any]:
        """The held envs and their final observations, as tensors."""
        final = self.final_observations
        return {
            "held": torch.from_numpy(self.held.copy()),
            "final_observations": None if final is None else torch.from_numpy(final.copy()),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.held = state["held"].numpy().copy()
        final = state["final_observations"]
        self.final_observations = None if final is None else final.numpy().copy()
