"""Tiny deterministic envs for scenario tests (registered on import).

``gymnasium.make("tests.toy_envs:LineWorld-v0")`` imports this module first, the
way a user's own env is found.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class LineWorld(gym.Env):
    """Positions 0..3 on a line; action 1 moves right, 0 stays.

    Reaching position 3 terminates with reward 10; every other step pays the
    position reached. The registration adds a 5-step time limit, so staying put
    ends in a truncation.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, start: int = 0, render_mode: str | None = None):
        self.observation_space = gym.spaces.Box(0.0, 3.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.start = start
        self.render_mode = render_mode
        self.position = start

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = self.start
        return np.array([self.position], dtype=np.float32), {}

    def step(self, action):
        self.position += int(action)
        terminated = self.position >= 3
        reward = 10.0 if terminated else float(self.position)
        return np.array([self.position], dtype=np.float32), reward, terminated, False, {}

    def render(self):
        frame = np.zeros((8, 12, 3), dtype=np.uint8)
        frame[:, 3 * self.position : 3 * self.position + 3] = 255
        return frame


class RecordingBox(gym.Env):
    """Continuous actions in [-1, 1]; the observation echoes the action received.

    Lets a test see what the env was given, next to what the workspace kept.
    """

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.asarray(action, dtype=np.float32), 0.0, False, False, {}


class DictObservation(gym.Env):
    """An env whose observation space VectorGymAgent does not handle."""

    def __init__(self):
        self.observation_space = gym.spaces.Dict({"a": gym.spaces.Discrete(2)})
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"a": 0}, {}

    def step(self, action):
        return {"a": 0}, 0.0, False, False, {}


gym.register("LineWorld-v0", entry_point=LineWorld, max_episode_steps=5)
gym.register("RecordingBox-v0", entry_point=RecordingBox, max_episode_steps=50)
gym.register("DictObservation-v0", entry_point=DictObservation)
