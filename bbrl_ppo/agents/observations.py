"""From the observations an env agent writes to the float vectors an MLP reads.

The env agent writes observations as the env gives them (bbrl's layout: a
`Discrete` observation is one int64 per env, an (H, W) `Box` stays (H, W)), so
that tabular code and bbrl's own agents read them unchanged. Policies and critics
encode them on the way in, as Stable-Baselines3's ``preprocess_obs`` does:
`Discrete` and `MultiDiscrete` values one-hot (one block per dimension), `Box`
and `MultiBinary` values flattened, as floats.

The encoding is plain data (`observation_encoding`), so it is a constructor
argument that a weights-only checkpoint records; `ObservationEncoder` has no
state, so agents saved before it existed load unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from bbrl_ppo.agents.normalizers import make_normalizer
from bbrl_ppo.errors import InvalidInputError

Encoding = dict[str, Any]
KINDS = ("flatten", "one_hot")


def observation_encoding(space: gym.Space) -> Encoding | None:
    """How observations of `space` become float vectors; None: they already are.

    ``{"kind": "flatten", "shape": [...]}`` for `Box` and `MultiBinary`;
    ``{"kind": "one_hot", "shape": [...], "sizes": [...], "starts": [...]}`` for
    `Discrete` (shape ``[]``) and `MultiDiscrete` (a size and a start per value).
    """
    if isinstance(space, gym.spaces.Discrete):
        sizes, starts = [int(space.n)], [int(space.start)]
        return {"kind": "one_hot", "shape": [], "sizes": sizes, "starts": starts}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "kind": "one_hot",
            "shape": list(space.shape),
            "sizes": [int(size) for size in space.nvec.flatten()],
            "starts": [int(start) for start in space.start.flatten()],
        }
    floating = np.issubdtype(space.dtype, np.floating)
    if isinstance(space, gym.spaces.Box) and floating and len(space.shape) == 1:
        return None
    return {"kind": "flatten", "shape": list(space.shape)}


class ObservationEncoder(nn.Module):
    """Raw observations (..., *space_shape) -> float features (..., size).

    Args:
        encoding: `observation_encoding`'s description, or None for observations
            that are float vectors already (then the encoder returns them as given).
        size: the number of features the network after it expects; checked
            against the encoding.
    """

    def __init__(self, encoding: Encoding | None, size: int):
        super().__init__()
        self.kind = None if encoding is None else encoding.get("kind")
        self.size = int(size)
        if encoding is None:
            return
        if self.kind not in KINDS:
            raise InvalidInputError(
                f"Unknown observation encoding kind {self.kind!r}: one of {KINDS}"
            )
        self.space_rank = len(encoding["shape"])
        if self.kind == "one_hot":
            sizes = torch.tensor(encoding["sizes"], dtype=torch.long)
            starts = torch.tensor(encoding["starts"], dtype=torch.long)
            encoded_size = int(sizes.sum())
            # Value v of dimension i sets feature offset_i + v - start_i.
            offsets = torch.cumsum(sizes, 0) - sizes
            # Not persistent: the encoding is a constructor argument, not state.
            self.register_buffer("index_shift", offsets - starts, persistent=False)
        else:
            encoded_size = math.prod(encoding["shape"])
        if encoded_size != self.size:
            raise InvalidInputError(
                f"The observation encoding {encoding} gives {encoded_size} features, but the "
                f"network expects state_dim={self.size}"
            )

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        if self.kind is None:
            return observation
        batch_shape = observation.shape[: observation.dim() - self.space_rank]
        if self.kind == "flatten":
            return observation.reshape(*batch_shape, self.size).to(torch.float32)
        index = observation.reshape(*batch_shape, -1).long() + self.index_shift
        features = torch.zeros(*batch_shape, self.size, device=observation.device)
        return features.scatter_(-1, index, 1.0)


def observation_input(
    state_dim: int, encoding: Encoding | None, normalize: bool, clip: float
) -> tuple[ObservationEncoder, nn.Module]:
    """The encoder, then the normalizer (or identity), that every policy and critic applies.

    Normalization is refused for one-hot observations (as SB3's VecNormalize does):
    their running statistics would be those of indices, and there is nothing to
    rescale in a one-hot vector.
    """
    if normalize and encoding is not None and encoding.get("kind") == "one_hot":
        raise InvalidInputError(
            "normalize_observations=True (algorithm.normalize_observations) needs Box or "
            "MultiBinary observations; Discrete and MultiDiscrete observations are one-hot "
            "encoded: leave it off"
        )
    return ObservationEncoder(encoding, state_dim), make_normalizer(state_dim, normalize, clip)
