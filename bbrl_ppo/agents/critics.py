"""Critic agents: they read ``env/env_obs`` and write ``{prefix}v_values``.

Observations are encoded as the policies encode them (``observation_encoding``,
see `bbrl_ppo.agents.observations`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from bbrl.agents import Agent

from bbrl_ppo.agents.networks import build_ortho_mlp, make_activation
from bbrl_ppo.agents.observations import observation_input
from bbrl_ppo.persistence.agent_checkpoint import RecordsInitArgs


class VAgent(RecordsInitArgs, Agent):
    """A state-value critic V(s), written as ``{prefix}v_values`` with shape (B,)."""

    def __init__(
        self,
        state_dim: int,
        hidden_layers: Sequence[int],
        name: str = "critic",
        *,
        activation: str = "relu",
        normalize_observations: bool = False,
        observation_clip: float = 10.0,
        observation_encoding: dict[str, Any] | None = None,
    ):
        super().__init__(name)
        self.is_q_function = False
        self.obs_encoder, self.obs_normalizer = observation_input(
            state_dim, observation_encoding, normalize_observations, observation_clip
        )
        self.model = build_ortho_mlp(
            [state_dim, *hidden_layers, 1], make_activation(activation), output_std=1.0
        )

    def features(self, observation: torch.Tensor) -> torch.Tensor:
        """The network's input: the observation encoded, then normalized (when enabled)."""
        return self.obs_normalizer(self.obs_encoder(observation))

    def value(self, observation: torch.Tensor) -> torch.Tensor:
        """V(s) for observations as the env agent writes them, (..., *observation shape),
        returned with shape (...)."""
        return self.model(self.features(observation)).squeeze(-1)

    def forward(self, t: int, **kwargs) -> None:
        """Write ``{prefix}v_values[t]``, V of ``env/env_obs[t]``."""
        observation = self.get(("env/env_obs", t))
        self.set((f"{self.prefix}v_values", t), self.value(observation))
