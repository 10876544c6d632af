"""Which gymnasium spaces bbrl_ppo learns from, checked before any env is stepped.

The spaces Stable-Baselines3 handles with an MLP:

- observations: `Box` of any rank (flattened), `Discrete` and `MultiDiscrete`
  (one-hot, per dimension), `MultiBinary` (its bits as floats). Image
  observations (a uint8 `Box` of rank 3, SB3's test) need a CNN encoder, which
  bbrl_ppo does not have; `Dict`, `Tuple` and the other composite spaces need a
  network per part.
- actions: `Discrete` (a categorical), `Box` (a diagonal Gaussian, clipped to the
  bounds by the env agent), `MultiDiscrete` (a categorical per dimension) and
  `MultiBinary` (a Bernoulli per bit).

An env outside these fails with one `UnsupportedSpaceError` line when its env
agent is created, not with a traceback deep in a network after some steps.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from bbrl_ppo.errors import UnsupportedSpaceError

OBSERVATION_SPACES: tuple[type[gym.Space], ...] = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiDiscrete,
    gym.spaces.MultiBinary,
)
ACTION_SPACES: tuple[type[gym.Space], ...] = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiDiscrete,
    gym.spaces.MultiBinary,
)

#: Spaces whose values are integers: the env agent refuses float actions for them.
INTEGER_SPACES: tuple[type[gym.Space], ...] = (
    gym.spaces.Discrete,
    gym.spaces.MultiDiscrete,
    gym.spaces.MultiBinary,
)


def is_image_space(space: gym.Space) -> bool:
    """SB3's test: a uint8 `Box` of rank 3 (height, width, channels, in either order)."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def check_observation_space(space: gym.Space, env_name: str) -> None:
    """Raise `UnsupportedSpaceError` unless an MLP can learn from `space`."""
    if is_image_space(space):
        raise UnsupportedSpaceError(
            f"{env_name} has image observations ({space}): image observations need a CNN "
            "encoder, which bbrl_ppo does not have yet; flatten them with a wrapper "
            "(e.g. gymnasium.wrappers.GrayscaleObservation, ResizeObservation, then "
            "FlattenObservation) to train an MLP on the pixels"
        )
    if not isinstance(space, OBSERVATION_SPACES):
        raise UnsupportedSpaceError(
            f"Unsupported observation space {space} of {env_name}: bbrl_ppo handles "
            f"{_names(OBSERVATION_SPACES)} observations. Wrap the env (e.g. "
            "gymnasium.wrappers.FlattenObservation for Dict and Tuple) to get one of them."
        )


def check_action_space(space: gym.Space, env_name: str) -> None:
    """Raise `UnsupportedSpaceError` unless a bbrl_ppo policy can act in `space`."""
    if not isinstance(space, ACTION_SPACES):
        raise UnsupportedSpaceError(
            f"Unsupported action space {space} of {env_name}: bbrl_ppo handles "
            f"{_names(ACTION_SPACES)} actions."
        )


def observation_size(space: gym.Space) -> int:
    """How many features an MLP gets from one observation (one-hot or flattened)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(space.nvec.sum())
    return math.prod(space.shape)


def action_size(space: gym.Space) -> int | list[int]:
    """What a policy head needs: ``n`` (Discrete), one size per dimension (MultiDiscrete),
    the number of values otherwise (Box and MultiBinary, flattened)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return [int(size) for size in space.nvec.flatten()]
    return math.prod(space.shape)


def _names(spaces: tuple[type[gym.Space], ...]) -> str:
    names = [cls.__name__ for cls in spaces]
    return f"{', '.join(names[:-1])} and {names[-1]}"
