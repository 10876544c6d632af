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
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

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
