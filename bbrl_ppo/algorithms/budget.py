"""A training budget in env steps and/or rollouts, and how much of it is spent."""

from __future__ import annotations

from dataclasses import dataclass

from bbrl_ppo.errors import InvalidInputError


@dataclass(frozen=True)
class Budget:
    """``max_steps`` env steps and/or ``max_rollouts`` rollouts; None: no limit of that kind."""

    max_steps: int | None
    max_rollouts: int | None

    def __post_init__(self) -> None:
        if self.max_steps is None and self.max_rollouts is None:
            raise InvalidInputError(
                "Give a budget: algorithm.max_steps and/or algorithm.max_rollouts "
                "(max_epochs in bbrl_utils notebooks)"
            )

    def left(self, nb_steps: int, nb_rollouts: int) -> bool:
        """Whether another rollout may start."""
        if self.max_rollouts is not None and nb_rollouts >= self.max_rollouts:
            return False
        return self.max_steps is None or nb_steps < self.max_steps

    def fraction_spent(self, nb_steps: int, nb_rollouts: int) -> float:
        """How far training is, in [0, 1]: the larger fraction of either limit."""
        fractions = []
        if self.max_steps:
            fractions.append(nb_steps / self.max_steps)
        if self.max_rollouts:
            fractions.append(nb_rollouts / self.max_rollouts)
        return min(1.0, max(fractions))

    def total_steps(self, steps_per_rollout: int | None) -> int | None:
        """The env steps training will take at most, when that can be known."""
        totals = []
        if self.max_steps is not None:
            totals.append(self.max_steps)
        if self.max_rollouts is not None and steps_per_rollout is not None:
            totals.append(self.max_rollouts * steps_per_rollout)
        return min(totals) if totals else None
