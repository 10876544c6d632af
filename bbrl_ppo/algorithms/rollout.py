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


def minibatch_count(size: int, batch_size: int) -> int:
    """How many minibatches a pass over `size` transitions makes (see `minibatch_indices`)."""
    return size // batch_size if size >= batch_size else min(size, 1)


def minibatch_indices(
    size: int, batch_size: int, generator: torch.Generator | None = None, count: int | None = None
) -> Iterator[torch.Tensor]:
    """One shuffled pass over ``range(size)``: every index exactly once, in slices.

    Sampling minibatches with replacement would use some transitions twice and skip
    others. There are ``size // batch_size`` slices (one when `size` is smaller):
    the remainder joins the last slice, so no gradient step is taken on a few
    transitions alone (see `PPOClip.update`). A smaller `count` makes fewer slices,
    the last one taking the rest: the ranks of a distributed run, whose rollouts
    differ in size, must all take the same number of steps.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
    most = minibatch_count(size, batch_size)
    if count is None:
        count = most
    elif not 1 <= count <= max(most, 1):
        raise ValueError(f"count must be in [1, {max(most, 1)}] for {size} indices, got {count}")
    permutation = torch.randperm(size, generator=generator)
    for number in range(count):
        stop = size if number == count - 1 else (number + 1) * batch_size
        yield permutation[number * batch_size : stop]
