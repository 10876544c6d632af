"""A rollout's real transitions, flattened for minibatch updates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch


@dataclass
class Rollout:
    """The real transitions of one rollout, flattened: every tensor is (N, ...)."""

    observations: torch.Tensor
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    def __len__(self) -> int:
        return self.observations.shape[0]

    def select(self, indices: torch.Tensor) -> Rollout:
        return Rollout(*(getattr(self, field.name)[indices] for field in fields(self)))


def minibatch_indices(
    size: int, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """One shuffled pass over ``range(size)``: every index exactly once, in slices.

    Sampling minibatches with replacement would use some transitions twice and skip
    others. The last slice is shorter when `batch_size` does not divide `size`.
    """
    permutation = torch.randperm(size, generator=generator)
    for start in range(0, size, batch_size):
        yield permutation[start : start + batch_size]
