"""Playing full episodes side by side: the evaluation of a training run and of a replay."""

from __future__ import annotations

import torch
from bbrl.agents import TemporalAgent
from bbrl.workspace import Workspace


def play_episodes(agent: TemporalAgent) -> torch.Tensor:
    """Each env's return over one full episode, (B,); no gradients.

    `agent` runs an env agent without auto-reset, then a policy: every env plays
    until its episode ends, and repeats its final step until all are done.
    """
    workspace = Workspace()
    with torch.inference_mode():
        agent(workspace, t=0, stop_variable="env/done")
    return workspace.get("env/cumulated_reward", workspace.time_size() - 1).clone()
