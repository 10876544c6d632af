"""Generalized advantage estimation over a BBRL workspace, with truncation done right.

Workspace layout (BBRL's): step t holds observation t, the reward of the
transition that led to it, and ``done[t]`` (observation t is the last of its
episode), split into ``terminated[t]`` and ``truncated[t]``. The transition
t -> t+1 exists only if ``done[t]`` is False; with auto-reset, ``done[t]`` True
means step t+1 holds the next episode's first observation (a final -> first
pair, which is no transition at all).

Two masks, as in TorchRL's GAE (Schulman et al. 2016, arXiv:1506.02438):

- ``terminated[t+1]`` decides the bootstrap: ``delta_t = r_{t+1} + gamma *
  V(s_{t+1}) * (1 - terminated[t+1]) - V(s_t)``. A time-limit truncation keeps
  the bootstrap, from the value of the final observation, which the workspace
  holds at t+1 (no final-observation bookkeeping needed).
- ``done[t+1]`` stops the recursion: ``A_t = delta_t + gamma * lambda *
  (1 - done[t+1]) * A_{t+1}``, so an advantage never runs into the next episode.

The last transition of a workspace bootstraps from the value of its last step;
that step is copied to the start of the next workspace, so every transition is
estimated exactly once, across workspace boundaries too.
"""

from __future__ import annotations

import numpy as np
import torch


def transition_mask(done: torch.Tensor) -> torch.Tensor:
    """(T-1, B) mask of the pairs t -> t+1 that are real transitions (not final -> first)."""
    return ~done[:-1].bool()


def generalized_advantages(
    reward: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    done: torch.Tensor,
    discount_factor: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advantages and value targets (returns) for each pair t -> t+1 of a workspace.

    Args:
        reward: ``env/reward``, (T, B); ``reward[t+1]`` rewards the move t -> t+1.
        values: V(observation t), (T, B).
        terminated: ``env/terminated``, (T, B).
        done: ``env/done``, (T, B).
        discount_factor: gamma.
        gae_lambda: lambda; 0 gives the TD(0) error, 1 the Monte-Carlo return
            minus V (bootstrapped at the workspace end or a truncation).

    Returns:
        ``(advantages, returns)``, each (T-1, B), with ``returns = advantages +
        values[:-1]``. Entries of final -> first pairs (see `transition_mask`) are 0
        for advantages and are not meaningful targets: drop them.
    """
    values = values.detach()
    not_terminated = (~terminated[1:].bool()).to(values.dtype)
    continues = (~done[1:].bool()).to(values.dtype)
    valid = transition_mask(done).to(values.dtype)
    deltas = (reward[1:] + discount_factor * values[1:] * not_terminated - values[:-1]) * valid

    advantages = _backward_recursion(deltas, discount_factor * gae_lambda * continues)
    advantages = advantages * valid
    return advantages, advantages + values[:-1]


def _backward_recursion(deltas: torch.Tensor, decays: torch.Tensor) -> torch.Tensor:
    """``A[t] = deltas[t] + decays[t] * A[t+1]`` (A past the end is 0), over the time axis.

    A loop over time, run in numpy on the CPU whatever the tensors' device (see
    BENCHMARKS.md for why numpy).
    """
    delta_rows = deltas.detach().cpu().numpy()
    decay_rows = decays.detach().cpu().numpy()
    advantages = np.empty_like(delta_rows)
    running = np.zeros_like(delta_rows[0])
    for t in range(delta_rows.shape[0] - 1, -1, -1):
        running = delta_rows[t] + decay_rows[t] * running
        advantages[t] = running
    return torch.from_numpy(advantages).to(deltas.device)
