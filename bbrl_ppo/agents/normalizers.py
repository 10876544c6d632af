"""Running statistics that live inside agents, so a saved agent replays as trained.

Observation normalization and reward scaling matter for continuous control
("The 37 implementation details of PPO", details 4 and 5 of the continuous list).
Kept as torch buffers: they travel in ``state_dict()``, hence in ``best_agent.pt``,
and `copy_parameters` copies them to the old policy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn


class Moments(NamedTuple):
    """A batch's size, mean and (population) variance per feature, in float64."""

    count: int
    mean: torch.Tensor
    var: torch.Tensor


def batch_moments(batch: torch.Tensor) -> Moments:
    """The `Moments` of a batch of shape (N, *shape), over its first dimension."""
    batch = batch.detach().to(torch.float64)
    if batch.shape[0] == 0:  # nothing to merge (and no mean to take)
        zeros = batch.new_zeros(batch.shape[1:])
        return Moments(0, zeros, zeros)
    return Moments(batch.shape[0], batch.mean(0), batch.var(0, unbiased=False))


class RunningMeanStd(nn.Module):
    """Mean and variance of everything seen so far, merged batch by batch.

    Uses the parallel-variance formula (Chan et al. 1979), exact for any batch
    split, in float64 so that millions of updates do not drift. The same formula
    merges `Moments` computed elsewhere: those of each process of a distributed run.
    """

    def __init__(self, shape: tuple[int, ...] | int = ()):
        super().__init__()
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def update(self, batch: torch.Tensor) -> None:
        """Merge a batch of shape (N, *shape)."""
        self.merge(batch_moments(batch.reshape(-1, *self.mean.shape)))

    @torch.no_grad()
    def merge(self, moments: Moments) -> None:
        """Merge the moments of a batch (`batch_moments`) as `update` merges the batch."""
        batch_count = moments.count
        if batch_count == 0:
            return
        batch_mean, batch_var = moments.mean, moments.var
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * batch_count / total
        merged = self.var * self.count + batch_var * batch_count
        self.var.copy_((merged + delta**2 * self.count * batch_count / total) / total)
        self.count.copy_(total)


class ObservationNormalizer(nn.Module):
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)`` with running statistics.

    Frozen while acting and learning; the algorithm calls `update` once per
    rollout, so a rollout is normalized with one set of statistics throughout.
    """

    def __init__(self, size: int, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.stats = RunningMeanStd(size)
        self.clip = clip
        self.eps = eps

    def update(self, observations: torch.Tensor) -> None:
        self.stats.update(observations)

    def merge_moments(self, moments: Moments) -> None:
        """Merge the moments of a batch of observations (of one rank of a distributed run)."""
        self.stats.merge(moments)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        scale = (self.stats.var + self.eps).rsqrt()
        shift = -self.stats.mean * scale
        # obs * scale + shift == (obs - mean) / std, in one op instead of two.
        normalized = torch.addcmul(
            shift.to(observations.dtype), observations, scale.to(observations.dtype)
        )
        return normalized.clamp(-self.clip, self.clip)


def make_normalizer(size: int, normalize: bool, clip: float) -> nn.Module:
    """A running observation normalizer, or the identity when normalization is off."""
    return ObservationNormalizer(size, clip=clip) if normalize else nn.Identity()


class RewardScaler(nn.Module):
    """Divides rewards by the running std of the discounted return (no centering).

    As in OpenAI baselines' VecNormalize: keeps the critic's targets near unit
    scale whatever the env's reward scale, without changing the optimal policy.
    """

    def __init__(self, num_envs: int, discount_factor: float, eps: float = 1e-8):
        super().__init__()
        self.stats = RunningMeanStd(())
        self.discount_factor = discount_factor
        self.eps = eps
        self.register_buffer("returns", torch.zeros(num_envs, dtype=torch.float64))

    @torch.no_grad()
    def scale(self, rewards: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        """Update the statistics with a (T, B) rollout and return its scaled rewards.

        ``starts[t]`` marks the reset-only steps: with auto-reset, the step after an
        episode end holds the next episode's first observation and no transition
        (its reward is gymnasium's 0). The return restarts there, and, as in
        Stable-Baselines3's `VecNormalize`, only real transitions' returns enter the
        statistics. The running returns are a recursion over time, computed in numpy;
        the statistics then take the rollout's returns in one merge, which is
        exactly the merge of them step by step (`RunningMeanStd` is exact for any
        split into batches).
        """
        rewards64 = rewards.detach().to(torch.float64)
        reward_rows = rewards64.cpu().numpy()
        start_rows = starts.detach().cpu().numpy().astype(bool)
        running = self.returns.cpu().numpy().copy()
        returns = np.empty_like(reward_rows)
        gamma = self.discount_factor
        for t in range(reward_rows.shape[0]):
            running = np.where(start_rows[t], 0.0, running * gamma + reward_rows[t])
            returns[t] = running
        self.returns.copy_(torch.from_numpy(running))
        transitions = torch.from_numpy(returns[~start_rows]).to(self.returns.device)
        self.stats.update(transitions)
        std = (self.stats.var + self.eps).sqrt()
        return (rewards64 / std).to(rewards.dtype)
