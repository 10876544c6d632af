"""Action distributions with torch.distributions' interface and fewer tensor ops.

PPO evaluates log-probabilities and entropies of a whole minibatch at every
gradient step, thousands of times per run. On the small networks PPO uses, a
step costs about as many tens of microseconds as it launches tensor operations
(forward and backward), whatever their size; so these subclasses compute the
same quantities as `Categorical` and `Independent(Normal)` with fewer operations
(no broadcast or re-derived log-std) while keeping their type, so that
`torch.distributions.kl_divergence`, `sample` and every other method still
apply. All skip argument validation: their parameters come from our networks.

`MultiCategorical` (MultiDiscrete actions: categoricals of unequal sizes, which
``Independent(Categorical)`` cannot hold) registers its own KL;
`IndependentBernoulli` (MultiBinary actions) uses torch's KL of `Independent`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    Normal,
    kl_divergence,
    register_kl,
)

HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)
_NO_SAMPLE_SHAPE = torch.Size()


class LogitsCategorical(Categorical):
    """A categorical distribution from unnormalized logits of shape (..., n_actions).

    The logits are normalized by one ``log_softmax`` (Categorical: ``logsumexp``
    and a subtraction); `log_prob` of actions shaped like the batch is one
    ``gather`` (Categorical broadcasts first); `entropy` reuses the normalized logits.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        if logits.dim() < 1:
            raise ValueError("logits must have at least one dimension (the actions)")
        normalized = torch.log_softmax(logits, dim=-1)
        self.logits = normalized
        self._param = normalized
        self._num_events = normalized.shape[-1]
        Distribution.__init__(self, normalized.shape[:-1], validate_args=False)

    def expand(self, batch_shape, _instance=None) -> LogitsCategorical:
        shape = torch.Size(batch_shape) + (self._num_events,)
        return LogitsCategorical(self.logits.expand(shape))

    def sample(self, sample_shape: torch.Size | Sequence[int] = _NO_SAMPLE_SHAPE) -> torch.Tensor:
        """Categorical's draw (``multinomial`` of the softmax), without its generic shapes.

        The same operations on the same values, so the same actions from the same
        random state; a sample shape goes to Categorical.
        """
        if len(sample_shape) != 0:
            return super().sample(torch.Size(sample_shape))
        probabilities = torch.softmax(self.logits, dim=-1).reshape(-1, self._num_events)
        return torch.multinomial(probabilities, 1, True).reshape(self.batch_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if value.shape != self.batch_shape:
            return super().log_prob(value)  # a sample shape to broadcast against the batch
        if value.dtype != torch.long:
            value = value.long()
        return self.logits.gather(-1, value.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        # Clamped like Categorical: a -inf logit (a masked action) gives 0 * finite, not NaN.
        logits = self.logits.clamp(min=torch.finfo(self.logits.dtype).min)
        return -(logits.exp() * logits).sum(-1)


class DiagonalGaussian(Independent):
    """``Independent(Normal(mean, exp(log_std)), 1)`` that keeps ``log_std`` at hand.

    `log_prob` and `entropy` use ``log_std`` directly (Normal takes the log of
    the std it was given, and squares it); results are summed over the last
    (action) dimension, as Independent does.
    """

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        self.log_std = log_std
        super().__init__(Normal(mean, log_std.exp(), validate_args=False), 1, validate_args=False)

    def expand(self, batch_shape, _instance=None) -> DiagonalGaussian:
        shape = torch.Size(batch_shape) + self.event_shape
        return DiagonalGaussian(self.base_dist.loc.expand(shape), self.log_std.expand(shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        base = self.base_dist
        standardized = (value - base.loc) / base.scale
        # log_std + z^2 / 2 in one op (addcmul), summed over the action dimensions.
        per_sample = torch.addcmul(self.log_std, standardized, standardized, value=0.5).sum(-1)
        return (-HALF_LOG_TWO_PI * base.loc.shape[-1]) - per_sample

    def entropy(self) -> torch.Tensor:
        return (self.log_std + (0.5 + HALF_LOG_TWO_PI)).sum(-1)


class MultiCategorical(Distribution):
    """Independent categoricals, one per action dimension, each with its own size.

    The logits (..., sum(sizes)) are split into one block per dimension; an action
    is (..., len(sizes)), one index per dimension. Log-probabilities and entropies
    are sums over the dimensions (they are independent), as SB3's
    ``MultiCategoricalDistribution`` computes them.
    """

    arg_constraints: dict = {}

    def __init__(self, logits: torch.Tensor, sizes: Sequence[int]) -> None:
        self.sizes = tuple(int(size) for size in sizes)
        if logits.dim() < 1 or logits.shape[-1] != sum(self.sizes):
            raise ValueError(
                f"logits of shape {tuple(logits.shape)} do not end with sum(sizes) = "
                f"{sum(self.sizes)} (sizes {list(self.sizes)})"
            )
        self.components = tuple(
            LogitsCategorical(block) for block in logits.split(self.sizes, dim=-1)
        )
        super().__init__(logits.shape[:-1], torch.Size((len(self.sizes),)), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        per_dimension = zip(self.components, value.unbind(-1), strict=True)
        return _sum(component.log_prob(action) for component, action in per_dimension)

    def entropy(self) -> torch.Tensor:
        return _sum(component.entropy() for component in self.components)

    def sample(self, sample_shape: torch.Size = _NO_SAMPLE_SHAPE) -> torch.Tensor:
        return torch.stack([component.sample(sample_shape) for component in self.components], -1)

    @property
    def mode(self) -> torch.Tensor:
        """The most likely action: the argmax of each dimension."""
        return torch.stack([component.logits.argmax(-1) for component in self.components], -1)


@register_kl(MultiCategorical, MultiCategorical)
def _kl_multi_categorical(p: MultiCategorical, q: MultiCategorical) -> torch.Tensor:
    if p.sizes != q.sizes:
        raise ValueError(f"KL between MultiCategoricals of sizes {p.sizes} and {q.sizes}")
    return _sum(kl_divergence(a, b) for a, b in zip(p.components, q.components, strict=True))


def _sum(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(tensors)).sum(0)


class IndependentBernoulli(Independent):
    """``Independent(Bernoulli(logits), 1)`` over (..., n_bits), with integer samples.

    Samples are int64, as MultiBinary actions and categorical samples are (the env
    agent refuses float actions for integer spaces); `log_prob` takes them back as
    floats. The mode is ``logits > 0``: torch's `Bernoulli.mode` is NaN at p = 0.5.
    """

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)

    @property
    def logits(self) -> torch.Tensor:
        return self.base_dist.logits

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return super().log_prob(value.to(self.logits.dtype))

    def sample(self, sample_shape: torch.Size = _NO_SAMPLE_SHAPE) -> torch.Tensor:
        return super().sample(sample_shape).long()

    @property
    def mode(self) -> torch.Tensor:
        return (self.logits > 0).long()
