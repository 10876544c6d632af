"""CartPole through `VectorGymAgent`: SyncVectorEnv vs gymnasium's numpy CartPoleVectorEnv.

Usage: python benchmarks/vector_env_cost.py [--repeats 7] [--rollouts 100]

Two measurements, each for ``vectorization: sync`` and ``vector``:

- an evaluation: 10 full episodes side by side, played to their 500-step time limit
  by a balancing policy (a bbrl Agent), through ``TemporalAgent(Agents(env, policy))``
  and `play_episodes`, as a training run evaluates; ms per evaluation;
- collection: 8 envs x 32 steps with auto-reset and random actions (the shape of the
  cartpole config's rollouts, episodes ending often), in the workspace loop of
  training; microseconds per vector step (one step of all 8 envs).

Pins itself to the last core with one torch thread; contenders alternate within each
round, and the table gives the medians over rounds and the median per-round ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from bbrl.agents import Agent, Agents, TemporalAgent
from bbrl.workspace import Workspace
from bench_common import pin_to_last_core  # benchmarks/ is on sys.path

from bbrl_ppo import VectorGymAgent
from bbrl_ppo.algorithms.evaluation import play_episodes

ENV_NAME = "CartPole-v1"
VECTORIZATIONS = ("sync", "vector")
EVAL_ENVS = 10
COLLECT_ENVS, COLLECT_STEPS = 8, 32


class Balancing(Agent):
    """Pushes the cart under the falling pole: every episode lasts its 500 steps."""

    def __init__(self):
        super().__init__(name="balancing")

    def forward(self, t: int, **kwargs) -> None:
        obs = self.get(("env/env_obs", t))
        self.set(("action", t), (obs[:, 2] + 0.5 * obs[:, 3] > 0).long())


class RandomActions(Agent):
    def __init__(self):
        super().__init__(name="random")

    def forward(self, t: int, **kwargs) -> None:
        n_envs = self.get(("env/env_obs", t)).shape[0]
        self.set(("action", t), torch.randint(0, 2, (n_envs,)))


def evaluation_ms(vectorization: str) -> Callable[[], float]:
    """A measure: ms of one evaluation (10 episodes of 500 steps), the env agent made once."""
    env_agent = VectorGymAgent(
        ENV_NAME, EVAL_ENVS, autoreset=False, seed=0, vectorization=vectorization
    )
    agent = TemporalAgent(Agents(env_agent, Balancing()))
    play_episodes(agent)  # warm-up

    def measure() -> float:
        start = time.perf_counter()
        returns = play_episodes(agent)
        elapsed = time.perf_counter() - start
        if not bool((returns == 500).all()):
            raise RuntimeError(f"the balancing policy must play 500 steps, got {returns}")
        return 1e3 * elapsed

    return measure


def collection_us(vectorization: str, rollouts: int) -> Callable[[], float]:
    """A measure: microseconds per vector step over `rollouts` rollouts of 32 steps."""
    env_agent = VectorGymAgent(ENV_NAME, COLLECT_ENVS, seed=0, vectorization=vectorization)
    agent = TemporalAgent(Agents(env_agent, RandomActions()))
    workspace = Workspace()
    agent(workspace, t=0, n_steps=COLLECT_STEPS)  # the first reset, untimed

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(rollouts):
            # As training does: the next rollout starts from the last step of this one.
            workspace.copy_n_last_steps(1)
            agent(workspace, t=1, n_steps=COLLECT_STEPS - 1)
        elapsed = time.perf_counter() - start
        return 1e6 * elapsed / (rollouts * (COLLECT_STEPS - 1))

    return measure


def alternated(measures: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each measure once per round, `repeats` rounds."""
    values: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeats):
        for name, measure in measures.items():
            values[name].append(measure())
    return values


def print_row(label: str, values: dict[str, list[float]]) -> None:
    sync, vector = values["sync"], values["vector"]
    ratio = statistics.median(s / v for s, v in zip(sync, vector, strict=True))
    print(
        f"{label:<38} | {statistics.median(sync):>9.1f} | {statistics.median(vector):>9.1f} "
        f"| {ratio:>11.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="alternated rounds")
    parser.add_argument("--rollouts", type=int, default=100, help="rollouts per collection")
    args = parser.parse_args()
    core = pin_to_last_core()
    print(
        f"{ENV_NAME}, core {core}, 1 torch thread, {args.repeats} alternated rounds: "
        "medians, and the median of the per-round ratios"
    )
    header = f"{'measure':<38} | {'sync':>9} | {'vector':>9} | {'sync/vector':>11}"
    print(header)
    print("-" * len(header))
    evaluations = {name: evaluation_ms(name) for name in VECTORIZATIONS}
    print_row(f"evaluation, {EVAL_ENVS} x 500 steps (ms)", alternated(evaluations, args.repeats))
    collections = {name: collection_us(name, args.rollouts) for name in VECTORIZATIONS}
    print_row(
        f"collection, {COLLECT_ENVS} x {COLLECT_STEPS} (us / vector step)",
        alternated(collections, args.repeats),
    )


if __name__ == "__main__":
    main()
