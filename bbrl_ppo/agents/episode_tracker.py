"""Per-env episode bookkeeping behind the env agent: counters, flags, final frames.

Pure numpy over the arrays a gymnasium vector env returns, so that the step path
costs a handful of vectorized operations whatever the number of envs.
"""

from __future__ import annotations

import numpy as np
import torch

#: The variables an env agent writes at every step (after its ``env/`` prefix), in
#: the order `EpisodeTracker` returns them.
ENV_VARIABLES = (
    "env_obs",
    "terminated",
    "truncated",
    "done",
    "reward",
    "cumulated_reward",
    "timestep",
)

Frame = tuple[torch.Tensor, ...]


class EpisodeTracker:
    """Turns vector-env outputs into BBRL's per-step variables.

    With ``autoreset``, gymnasium's next-step auto-reset is assumed: the step after
    an episode end only resets that env (reward 0, flags False), so its counters
    restart there. Without it, a finished env repeats its final frame, with
    reward 0 and ``done`` True, until the next reset.
    """

    __slots__ = (
        "autoreset",
        "obs_dtype",
        "num_envs",
        "cumulated_reward",
        "timestep",
        "done",
        "any_done",
        "final_frame",
    )

    def __init__(self, num_envs: int, *, autoreset: bool, obs_dtype: np.dtype):
        self.num_envs = num_envs
        self.autoreset = autoreset
        self.obs_dtype = obs_dtype
        self._clear()

    def _clear(self) -> None:
        self.cumulated_reward = np.zeros(self.num_envs, dtype=np.float64)
        self.timestep = np.zeros(self.num_envs, dtype=np.int64)
        self.done = np.zeros(self.num_envs, dtype=bool)
        self.any_done = False
        self.final_frame: Frame | None = None

    def get_state(self) -> dict:
        """The counters and flags, as tensors (for training checkpoints)."""
        return {
            "cumulated_reward": torch.from_numpy(self.cumulated_reward.copy()),
            "timestep": torch.from_numpy(self.timestep.copy()),
            "done": torch.from_numpy(self.done.copy()),
            "final_frame": self.final_frame,
        }

    def set_state(self, state: dict) -> None:
        self.cumulated_reward = state["cumulated_reward"].numpy().copy()
        self.timestep = state["timestep"].numpy().copy()
        self.done = state["done"].numpy().copy()
        self.any_done = bool(self.done.any())
        self.final_frame = state["final_frame"]

    def reset(self, observations: np.ndarray) -> Frame:
        """The frame of a reset: reward 0 and every flag False."""
        self._clear()
        flags = np.zeros(self.num_envs, dtype=bool)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        return self._frame(observations, flags, flags, flags, rewards)

    def step(self, observations, rewards, terminated, truncated) -> Frame:
        """The frame after one vector-env step."""
        was_done, any_was_done = self.done, self.any_done
        if any_was_done and not self.autoreset:
            rewards = np.where(was_done, 0.0, rewards)
        timestep = self.timestep + 1
        cumulated_reward = self.cumulated_reward + rewards
        if any_was_done:
            if self.autoreset:
                timestep[was_done] = 0
                cumulated_reward[was_done] = 0.0
            else:
                timestep[was_done] -= 1
        self.timestep, self.cumulated_reward = timestep, cumulated_reward
        done = terminated | truncated
        frame = self._frame(observations, terminated, truncated, done, rewards)
        if not self.autoreset:
            if any_was_done:
                frame = self._repeat_final_frame(frame, was_done)
                done = done | was_done
            self.final_frame = frame
        self.done, self.any_done = done, bool(np.count_nonzero(done))
        return frame

    def _repeat_final_frame(self, frame: Frame, was_done: np.ndarray) -> Frame:
        keep = torch.from_numpy(was_done)
        repeated = list(frame)
        # env_obs, terminated, truncated, done come back as they were at the end.
        for index in range(4):
            value = frame[index]
            mask = keep.view(-1, *([1] * (value.dim() - 1)))
            repeated[index] = torch.where(mask, self.final_frame[index], value)
        return tuple(repeated)

    def _frame(self, observations, terminated, truncated, done, rewards) -> Frame:
        # Always a copy: vector envs may reuse their observation buffer.
        observations = np.array(observations, dtype=self.obs_dtype)
        return (
            torch.from_numpy(observations),
            torch.from_numpy(terminated),
            torch.from_numpy(truncated),
            torch.from_numpy(done),
            torch.from_numpy(rewards.astype(np.float32)),
            torch.from_numpy(self.cumulated_reward.astype(np.float32)),
            torch.from_numpy(self.timestep),
        )
