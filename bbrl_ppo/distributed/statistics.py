"""Statistics over every rank's data, where PPO needs them global.

Each rank holds a part of the rollout and of each minibatch; the statistics below
are those of the whole, identical on every rank. With one process each is exactly
the single-process computation (`bbrl_ppo.algorithms.losses`), bit for bit. Sums
travel in float64, so that the sum-of-squares form of a variance loses nothing
that matters at PPO's scales.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from bbrl_ppo.agents.normalizers import Moments, batch_moments
from bbrl_ppo.algorithms.losses import explained_variance, normalize_advantages
from bbrl_ppo.distributed.collectives import collective, sum_over_ranks
from bbrl_ppo.distributed.context import DistributedContext


def _sums(values: torch.Tensor) -> torch.Tensor:
    """``[count, sum, sum of squares]`` of `values`, in float64."""
    flat = values.detach().reshape(-1).to(torch.float64)
    return torch.stack((flat.new_tensor(flat.numel()), flat.sum(), flat.square().sum()))


def _mean_and_unbiased_variance(count: float, total: float, squares: float) -> tuple[float, float]:
    mean = total / count
    return mean, max(squares - count * mean * mean, 0.0) / (count - 1)


def normalize_advantages_over_ranks(
    context: DistributedContext, advantages: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """`normalize_advantages` with the mean and std of the whole minibatch, every rank's part.

    A minibatch split over ranks must be normalized as the single-process run
    normalizes it whole, or each rank would learn from differently scaled advantages.
    """
    if not context.is_distributed:
        return normalize_advantages(advantages, eps)
    count, total, squares = sum_over_ranks(
        context, _sums(advantages).to(advantages.device), "the advantage statistics"
    ).tolist()
    if count < 2:
        return advantages
    mean, variance = _mean_and_unbiased_variance(count, total, squares)
    return (advantages - mean) / (math.sqrt(variance) + eps)


def mean_over_ranks(context: DistributedContext, values: torch.Tensor, what: str) -> float:
    """The mean of every rank's `values` together."""
    if not context.is_distributed:
        return values.mean().item()
    count, total, _ = sum_over_ranks(context, _sums(values), what).tolist()
    return total / count if count else math.nan


def explained_variance_over_ranks(
    context: DistributedContext, predictions: torch.Tensor, targets: torch.Tensor
) -> float:
    """`explained_variance` of every rank's predictions and targets together."""
    if not context.is_distributed:
        return explained_variance(predictions, targets)
    sums = torch.cat((_sums(targets), _sums(targets - predictions)))
    count, total, squares, _, residual_total, residual_squares = sum_over_ranks(
        context, sums, "the explained variance"
    ).tolist()
    if count < 2:
        return math.nan
    _, target_variance = _mean_and_unbiased_variance(count, total, squares)
    if target_variance == 0:
        return math.nan
    _, residual_variance = _mean_and_unbiased_variance(count, residual_total, residual_squares)
    return 1 - residual_variance / target_variance


def moments_of_every_rank(context: DistributedContext, batch: torch.Tensor) -> list[Moments]:
    """Each rank's `batch_moments` of its (N, *shape) batch, in rank order, on every rank.

    A running normalizer that merges them in this order ends with the same
    statistics on every rank; with one process it merges the batch as before. The
    moments, not the observations, travel: a few floats per feature, whatever the
    rollout's size.
    """
    own = batch_moments(batch)
    if not context.is_distributed:
        return [own]
    packed = torch.cat(
        (own.mean.new_tensor([own.count]), own.mean.reshape(-1), own.var.reshape(-1))
    ).to(context.communication_device)
    parts = [torch.empty_like(packed) for _ in range(context.world_size)]
    with collective(context, "the observation statistics"):
        dist.all_gather(parts, packed)
    size = own.mean.numel()
    return [
        Moments(
            count=int(part[0].item()),
            mean=part[1 : 1 + size].reshape(own.mean.shape).to(own.mean.device),
            var=part[1 + size :].reshape(own.var.shape).to(own.var.device),
        )
        for part in parts
    ]
