"""Agents that replay fixed actions, to drive env agents identically in tests."""

from __future__ import annotations

import torch
from bbrl.agents import Agent


class ScriptedActions(Agent):
    """Writes ``action[t] = actions[t]`` from a (T, B, ...) tensor."""

    def __init__(self, actions: torch.Tensor):
        super().__init__(name="scripted")
        self.actions = actions

    def forward(self, t: int, **kwargs) -> None:
        self.set(("action", t), self.actions[t])


def random_actions(space_kind: str, steps: int, n_envs: int, seed: int, **kw) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if space_kind == "discrete":
        return torch.randint(0, kw["n"], (steps, n_envs), generator=generator)
    low, high, dim = kw["low"], kw["high"], kw["dim"]
    return low + (high - low) * torch.rand((steps, n_envs, dim), generator=generator)
