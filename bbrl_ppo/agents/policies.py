"""Policy agents: they read ``env/env_obs`` and write ``action`` (or log-probs).

Keyword arguments of `forward`, as in the bbrl notebooks:

- ``stochastic`` (default True): sample the action; False takes the most likely
  action (the deterministic evaluation policy).
- ``predict_proba``: instead of acting, write ``{prefix}logprob_predict``, the
  log-probability of the ``action`` already in the workspace (PPO's ratio).
- ``compute_entropy``: also write ``{prefix}entropy``.

One policy per kind of action space (`POLICY_TYPES`): `DiscretePolicy`
(Discrete), `GaussianPolicy` (Box), `MultiDiscretePolicy` (MultiDiscrete) and
`MultiBinaryPolicy` (MultiBinary). Each reads observations as the env agent wrote
them and encodes them first (``observation_encoding``, see
`bbrl_ppo.agents.observations`): one-hot for Discrete observations, flattened
for a Box of rank > 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from bbrl.agents import Agent
from torch import nn
from torch.distributions import Distribution

from bbrl_ppo.agents.distributions import (
    DiagonalGaussian,
    IndependentBernoulli,
    LogitsCategorical,
    MultiCategorical,
)
from bbrl_ppo.agents.networks import build_ortho_mlp, make_activation
from bbrl_ppo.agents.observations import observation_input
from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.persistence.agent_checkpoint import RecordsInitArgs


class StochasticPolicy(RecordsInitArgs, Agent):
    """The workspace I/O shared by policies; subclasses define `dist`."""

    def _build_network(
        self,
        state_dim: int,
        hidden_size: Sequence[int],
        n_outputs: int,
        activation: str,
        normalize_observations: bool,
        observation_clip: float,
        observation_encoding: dict[str, Any] | None,
    ) -> None:
        """The observation input and an MLP to `n_outputs` (output gain 0.01: near-uniform)."""
        self.obs_encoder, self.obs_normalizer = observation_input(
            state_dim, observation_encoding, normalize_observations, observation_clip
        )
        self.model = build_ortho_mlp(
            [state_dim, *hidden_size, n_outputs], make_activation(activation), output_std=0.01
        )

    def features(self, observation: torch.Tensor) -> torch.Tensor:
        """The network's input: the observation encoded, then normalized (when enabled)."""
        return self.obs_normalizer(self.obs_encoder(observation))

    def dist(self, observation: torch.Tensor) -> Distribution:
        """The action distribution for a batch of observations, (..., *observation shape)."""
        if type(self).distribution is StochasticPolicy.distribution:
            raise NotImplementedError(f"{type(self).__name__} must define dist() or distribution()")
        return self.distribution(self.model(self.features(observation)))

    def distribution(self, output: torch.Tensor) -> Distribution:
        """The action distribution for the network's output, ``model(features(obs))``.

        Separate from `dist` so that PPO's update can compute the output of policy and
        critic in one batched pass (`bbrl_ppo.agents.batched_actor_critic`).
        """
        raise NotImplementedError(f"{type(self).__name__} must define distribution() or dist()")

    def log_prob(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """log pi(action | observation), computed from logits / log-densities."""
        return self.dist(observation).log_prob(action)

    def best_action(self, distribution: Distribution) -> torch.Tensor:
        """The action a deterministic policy takes."""
        raise NotImplementedError(f"{type(self).__name__} must define best_action()")

    def forward(
        self,
        t: int,
        *,
        stochastic: bool = True,
        predict_proba: bool = False,
        compute_entropy: bool = False,
        **kwargs,
    ) -> None:
        """Act on ``env/env_obs[t]``, or score the action already there (see the module)."""
        observation = self.get(("env/env_obs", t))
        distribution = self.dist(observation)
        if predict_proba:
            action = self.get(("action", t))
            self.set((f"{self.prefix}logprob_predict", t), distribution.log_prob(action))
        else:
            action = distribution.sample() if stochastic else self.best_action(distribution)
            self.set(("action", t), action)
        if compute_entropy:
            self.set((f"{self.prefix}entropy", t), distribution.entropy())


class DiscretePolicy(StochasticPolicy):
    """A categorical policy over `n_actions` actions.

    Log-probabilities come from the logits (`LogitsCategorical` normalizes them
    with log-softmax), never from ``probs.log()``, which underflows to -inf once
    a probability rounds to 0.
    """

    def __init__(
        self,
        state_dim: int,
        hidden_size: Sequence[int],
        n_actions: int,
        name: str = "policy",
        *,
        activation: str = "relu",
        normalize_observations: bool = False,
        observation_clip: float = 10.0,
        observation_encoding: dict[str, Any] | None = None,
    ):
        super().__init__(name=name)
        self._build_network(
            state_dim, hidden_size, n_actions, activation, normalize_observations,
            observation_clip, observation_encoding,
        )  # fmt: skip

    def distribution(self, output: torch.Tensor) -> LogitsCategorical:
        """The categorical of logits `output` (normalized by one log-softmax)."""
        return LogitsCategorical(output)

    def best_action(self, distribution: LogitsCategorical) -> torch.Tensor:
        """The most likely action: the index of the largest logit."""
        return distribution.logits.argmax(dim=-1)


class GaussianPolicy(StochasticPolicy):
    """A diagonal Gaussian policy for continuous actions.

    By default the log-std is a learned vector independent of the state (PPO's
    usual choice: exploration shrinks as a whole as learning goes); with
    ``state_dependent_std=True`` a second head predicts it, clamped to
    `log_std_bounds` to keep the density finite. The action is not squashed: the
    env agent clips it to the action bounds when stepping, and the workspace keeps
    the sampled value, whose log-probability PPO needs.
    """

    def __init__(
        self,
        state_dim: int,
        hidden_size: Sequence[int],
        action_dim: int,
        name: str = "policy",
        *,
        activation: str = "tanh",
        state_dependent_std: bool = False,
        init_log_std: float = 0.0,
        log_std_bounds: Sequence[float] = (-20.0, 2.0),
        normalize_observations: bool = False,
        observation_clip: float = 10.0,
        observation_encoding: dict[str, Any] | None = None,
    ):
        super().__init__(name=name)
        self._build_network(
            state_dim, hidden_size, action_dim, activation, normalize_observations,
            observation_clip, observation_encoding,
        )  # fmt: skip
        self.state_dependent_std = state_dependent_std
        self.log_std_bounds = (float(log_std_bounds[0]), float(log_std_bounds[1]))
        if state_dependent_std:
            self.log_std_head = build_ortho_mlp(
                [state_dim, *hidden_size, action_dim], make_activation(activation), output_std=0.01
            )
            nn.init.constant_(self.log_std_head[-1].bias, init_log_std)
        else:
            self.log_std = nn.Parameter(torch.full((action_dim,), float(init_log_std)))

    def dist(self, observation: torch.Tensor) -> DiagonalGaussian:
        """The Gaussian for a batch of observations; its log-std from the features when
        ``state_dependent_std`` (a second head), else the learned vector."""
        if not self.state_dependent_std:
            return super().dist(observation)
        features = self.features(observation)
        log_std = self.log_std_head(features).clamp(*self.log_std_bounds)
        return DiagonalGaussian(self.model(features), log_std)

    def distribution(self, output: torch.Tensor) -> DiagonalGaussian:
        """The Gaussian of mean `output`, with the state-independent log-std.

        With ``state_dependent_std`` the log-std depends on the features, which the
        network output alone does not give: `dist` is the only way in then.
        """
        if self.state_dependent_std:
            raise NotImplementedError("a state-dependent std needs the features: use dist()")
        # Log-probs and entropies are summed over action dimensions.
        return DiagonalGaussian(output, self.log_std.expand_as(output))

    def best_action(self, distribution: DiagonalGaussian) -> torch.Tensor:
        """The mean: the most likely action of a Gaussian."""
        return distribution.mean


class MultiDiscretePolicy(StochasticPolicy):
    """A categorical per action dimension, for a MultiDiscrete action space.

    One network outputs ``sum(action_sizes)`` logits, one block per dimension
    (SB3's ``MultiCategoricalDistribution``); the action is (..., len(action_sizes)),
    int64, one index per dimension, its log-probability the sum over dimensions.
    """

    def __init__(
        self,
        state_dim: int,
        hidden_size: Sequence[int],
        action_sizes: Sequence[int],
        name: str = "policy",
        *,
        activation: str = "tanh",
        normalize_observations: bool = False,
        observation_clip: float = 10.0,
        observation_encoding: dict[str, Any] | None = None,
    ):
        super().__init__(name=name)
        self.action_sizes = [int(size) for size in action_sizes]
        if not self.action_sizes or min(self.action_sizes) < 1:
            raise InvalidInputError(
                f"action_sizes must list one size >= 1 per action dimension, got {action_sizes}"
            )
        self._build_network(
            state_dim, hidden_size, sum(self.action_sizes), activation,
            normalize_observations, observation_clip, observation_encoding,
        )  # fmt: skip

    def distribution(self, output: torch.Tensor) -> MultiCategorical:
        """One categorical per action dimension, each over its block of `output`."""
        return MultiCategorical(output, self.action_sizes)

    def best_action(self, distribution: MultiCategorical) -> torch.Tensor:
        """The most likely index of each action dimension."""
        return distribution.mode


class MultiBinaryPolicy(StochasticPolicy):
    """A Bernoulli per bit, for a MultiBinary action space.

    One network outputs a logit per bit; the action is (..., n_bits), int64 0/1.
    The deterministic action sets the bits whose probability is above 1/2.
    """

    def __init__(
        self,
        state_dim: int,
        hidden_size: Sequence[int],
        n_bits: int,
        name: str = "policy",
        *,
        activation: str = "tanh",
        normalize_observations: bool = False,
        observation_clip: float = 10.0,
        observation_encoding: dict[str, Any] | None = None,
    ):
        super().__init__(name=name)
        self._build_network(
            state_dim, hidden_size, n_bits, activation, normalize_observations,
            observation_clip, observation_encoding,
        )  # fmt: skip

    def distribution(self, output: torch.Tensor) -> IndependentBernoulli:
        """One Bernoulli per bit, of logit `output`."""
        return IndependentBernoulli(output)

    def best_action(self, distribution: IndependentBernoulli) -> torch.Tensor:
        """The bits whose probability is above 1/2."""
        return distribution.mode


#: The policy classes a config's ``algorithm.policy_type`` may name.
POLICY_TYPES: dict[str, type[StochasticPolicy]] = {
    "DiscretePolicy": DiscretePolicy,
    "GaussianPolicy": GaussianPolicy,
    "MultiDiscretePolicy": MultiDiscretePolicy,
    "MultiBinaryPolicy": MultiBinaryPolicy,
}
