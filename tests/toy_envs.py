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


class Faulty(gym.Env):
    """A random walk that misbehaves on purpose in the env seeded `fail_seed`.

    From the `fail_step`-th step of that env's episode number `fail_episode` (0:
    the first) on, it raises, or, with ``nan_reward=True``, pays a NaN reward
    instead. Episodes end after 20 steps.
    """

    def __init__(
        self,
        fail_seed: int = -1,
        fail_step: int = 3,
        nan_reward: bool = False,
        fail_episode: int = 0,
    ):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.fail_seed, self.fail_step, self.nan_reward = fail_seed, fail_step, nan_reward
        self.fail_episode = fail_episode
        self.episode = -1
        self.seed_used: int | None = None
        self.position = 0.0
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.seed_used = seed
        self.episode += 1
        self.position, self.steps = 0.0, 0
        return self._observation(), {}

    def step(self, action):
        self.steps += 1
        self.position += float(action) - 0.5 + 0.1 * float(self.np_random.normal())
        failing = (
            self.seed_used == self.fail_seed
            and self.episode >= self.fail_episode
            and self.steps >= self.fail_step
        )
        if failing and not self.nan_reward:
            raise RuntimeError("the simulator diverged")
        reward = float("nan") if failing else -abs(self.position)
        return self._observation(), reward, self.steps >= 20, False, {}

    def _observation(self):
        return np.array([self.position, self.steps / 20], dtype=np.float32)


gym.register("Faulty-v0", entry_point=Faulty)
gym.register("LineWorld-v0", entry_point=LineWorld, max_episode_steps=5)
gym.register("RecordingBox-v0", entry_point=RecordingBox, max_episode_steps=50)
gym.register("DictObservation-v0", entry_point=DictObservation)


class TimeLimitedReward(gym.Env):
    """Pays 1 at every step and never terminates: only its time limit ends an episode.

    The observation never changes, so nothing tells how many steps are left: with
    truncations bootstrapped, V = 1 + gamma V, i.e. V = 1 / (1 - gamma); a truncation
    taken for a termination makes V the mean of the truncated returns instead.
    """

    def __init__(self):
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, dtype=np.float32), {}

    def step(self, action):
        return np.ones(1, dtype=np.float32), 1.0, False, False, {}


gym.register("TimeLimitedReward-v0", entry_point=TimeLimitedReward, max_episode_steps=10)
