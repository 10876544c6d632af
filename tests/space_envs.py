"""Tiny envs over the observation and action spaces bbrl_ppo supports or refuses.

Registered on import; ``gymnasium.make("tests.space_envs:MultiDiscreteTarget-v0")``
imports this module first. `CheckedActions` is the wrapper the tests put around
every env: an action outside the space fails the run.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class CheckedActions(gym.Wrapper):
    """Refuses an action outside the action space; counts the env steps it passes on
    (``vector_env.call("steps")`` reads the counts, from subprocesses too)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        self.steps += 1
        return self.env.step(action)


class MultiDiscreteTarget(gym.Env):
    """A context c in {0, 1} (a Discrete observation, or one-hot floats with
    `box_observation`); the right action per dimension depends on it. Each step pays
    the fraction of dimensions right (0..1) and draws a new context; episodes last 8
    steps (time limit). A uniform policy earns 0.36 a step, the best one 1.
    """

    TARGETS = np.array([[2, 0, 3], [0, 1, 1]])

    def __init__(self, box_observation: bool = False):
        self.box_observation = box_observation
        if box_observation:
            self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        else:
            self.observation_space = gym.spaces.Discrete(2)
        self.action_space = gym.spaces.MultiDiscrete([3, 2, 4])
        self.context = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.context = int(self.np_random.integers(2))
        return self._observation(), {}

    def step(self, action):
        reward = float(np.mean(np.asarray(action) == self.TARGETS[self.context]))
        self.context = int(self.np_random.integers(2))
        return self._observation(), reward, False, False, {}

    def _observation(self):
        if self.box_observation:
            return np.eye(2, dtype=np.float32)[self.context]
        return self.context


class MultiBinaryTarget(gym.Env):
    """A one-hot context (float Box); the right bits depend on it. Each step pays the
    fraction of bits right; episodes last 8 steps."""

    TARGETS = np.array([[1, 0, 1, 1], [0, 1, 1, 0]])

    def __init__(self):
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.MultiBinary(4)
        self.context = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.context = int(self.np_random.integers(2))
        return self._observation(), {}

    def step(self, action):
        reward = float(np.mean(np.asarray(action) == self.TARGETS[self.context]))
        self.context = int(self.np_random.integers(2))
        return self._observation(), reward, False, False, {}

    def _observation(self):
        return np.eye(2, dtype=np.float32)[self.context]


class ShapedSpaces(gym.Env):
    """A (2, 3) float Box observation and a MultiDiscrete action with a 2-D ``nvec`` and
    non-zero starts: what the env agent must reshape and shift. Episodes last 6 steps."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
        self.action_space = gym.spaces.MultiDiscrete([[2, 3], [4, 2]], start=[[1, -1], [0, 5]])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


class ShiftedDiscrete(gym.Env):
    """``Discrete(3, start=-1)`` actions and ``Discrete(5, start=10)`` observations."""

    def __init__(self):
        self.observation_space = gym.spaces.Discrete(5, start=10)
        self.action_space = gym.spaces.Discrete(3, start=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 10, {}

    def step(self, action):
        return int(self.np_random.integers(10, 15)), float(action), False, False, {}


class NeverStepped(gym.Env):
    """Base of envs that must be refused before any step: stepping one fails."""

    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        raise AssertionError(f"{type(self).__name__} was stepped: it should have been refused")


class ImageObservation(NeverStepped):
    """Atari-like 8x8 RGB frames (uint8, height x width x channels)."""

    observation_space = gym.spaces.Box(0, 255, shape=(8, 8, 3), dtype=np.uint8)


class TupleObservation(NeverStepped):
    observation_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))


class TextAction(NeverStepped):
    observation_space = gym.spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Text(4)


class NanObservation(gym.Env):
    """A float observation that turns NaN at step `nan_step` of the env seeded `nan_seed`."""

    def __init__(self, nan_seed: int = -1, nan_step: int = 3):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.nan_seed, self.nan_step = nan_seed, nan_step
        self.seed_used = None
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.seed_used = seed
        self.steps = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.steps += 1
        value = np.nan if self.seed_used == self.nan_seed and self.steps >= self.nan_step else 0.0
        return np.array([value, self.steps], dtype=np.float32), 1.0, False, False, {}


class ContinuousNanObservation(NanObservation):
    def __init__(self, nan_seed: int = -1, nan_step: int = 3):
        super().__init__(nan_seed, nan_step)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


class AnyArguments(gym.Env):
    """Takes ``**options``: which argument it understands is its own business."""

    def __init__(self, **options):
        self.options = options
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(1, dtype=np.float32), 0.0, False, False, {}


gym.register("MultiDiscreteTarget-v0", entry_point=MultiDiscreteTarget, max_episode_steps=8)
gym.register(
    "MultiDiscreteTargetBox-v0",
    entry_point=MultiDiscreteTarget,
    max_episode_steps=8,
    kwargs={"box_observation": True},
)
gym.register("MultiBinaryTarget-v0", entry_point=MultiBinaryTarget, max_episode_steps=8)
gym.register("ShapedSpaces-v0", entry_point=ShapedSpaces, max_episode_steps=6)
gym.register("ShiftedDiscrete-v0", entry_point=ShiftedDiscrete, max_episode_steps=6)
gym.register("ImageObservation-v0", entry_point=ImageObservation)
gym.register("TupleObservation-v0", entry_point=TupleObservation)
gym.register("TextAction-v0", entry_point=TextAction)
gym.register("NanObservation-v0", entry_point=NanObservation, max_episode_steps=20)
gym.register(
    "ContinuousNanObservation-v0", entry_point=ContinuousNanObservation, max_episode_steps=20
)
gym.register("AnyArguments-v0", entry_point=AnyArguments, max_episode_steps=5)
