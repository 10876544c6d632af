"""Returns and lengths of the training episodes that ended recently (SB3's ``rollout/ep_*``)."""

from __future__ import annotations

from collections import deque
from typing import Any

from bbrl.workspace import Workspace


class EpisodeStatistics:
    """The last `window` training episodes' returns and lengths."""

    def __init__(self, window: int = 100):
        self.returns: deque[float] = deque(maxlen=window)
        self.lengths: deque[int] = deque(maxlen=window)

    def record(self, workspace: Workspace) -> None:
        """Add the episodes that ended in the new steps of a rollout workspace."""
        done = workspace["env/done"][1:]
        if done.any():
            self.returns.extend(workspace["env/cumulated_reward"][1:][done].tolist())
            self.lengths.extend(workspace["env/timestep"][1:][done].tolist())

    def __bool__(self) -> bool:
        return bool(self.returns)

    def mean_return(self) -> float:
        return sum(self.returns) / len(self.returns)

    def mean_length(self) -> float:
        return sum(self.lengths) / len(self.lengths)

    def state_dict(self) -> dict[str, Any]:
        return {"returns": list(self.returns), "lengths": list(self.lengths)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns.clear()
        self.lengths.clear()
        self.returns.extend(state["returns"])
        self.lengths.extend(state["lengths"])
