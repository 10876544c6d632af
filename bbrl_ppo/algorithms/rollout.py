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
    others. There are ``size // batch_size`` slices (one when `size` is smaller):
    the remainder joins the last slice, so no gradient step is taken on a few
    transitions alone (see `PPOClip.update`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
    permutation = torch.randperm(size, generator=generator)
    count = size // batch_size if size >= batch_size else min(size, 1)
    for number in range(count):
        stop = size if number == count - 1 else (number + 1) * batch_size
        yield permutation[number * batch_size : stop]
