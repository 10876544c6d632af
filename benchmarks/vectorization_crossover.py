"""Sync or async vector envs: where does stepping in subprocesses start to pay?

Usage: python benchmarks/vectorization_crossover.py [--costs 0 100 300 1000] \\
    [--envs 4 16] [--steps 4000] [--repeats 3] [--env LunarLander-v3]

`VectorGymAgent` steps its envs in this process (``vectorization: sync``) or in one
subprocess per env (``async``). Async costs a pipe round trip per step and per env,
and gains only when the env's own step is expensive enough to spread over the
cores. Here each env's step is made dearer by a busy wait of `cost` microseconds
(0: the env as is), and a random policy drives both variants in the same
workspace loop as training; the table gives env steps/s and async/sync. Rounds
alternate sync and async; medians are reported. Uses every core (async needs
them): run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import gymnasium as gym
import torch
from env_throughput import workspace_rollouts  # the same timed loop (benchmarks/ is on sys.path)

from bbrl_ppo import VectorGymAgent

#: Steps per workspace, as in a PPO rollout.
CHUNK = 64


class BusyStep(gym.Wrapper):
    """Spends `cost_us` microseconds of CPU in each step: a stand-in for a costly simulator."""

    def __init__(self, env: gym.Env, cost_us: float):
        super().__init__(env)
        self.cost_s = cost_us / 1e6

    def step(self, action):
        deadline = time.perf_counter() + self.cost_s
        while time.perf_counter() < deadline:
            pass
        return self.env.step(action)


def steps_per_second(env_name: str, n_envs: int, cost_us: float, mode: str, steps: int) -> float:
    wrappers = [partial(BusyStep, cost_us=cost_us)] if cost_us > 0 else []
    env_agent = VectorGymAgent(env_name, n_envs, wrappers=wrappers, vectorization=mode, seed=0)
    try:
        n_actions = int(env_agent.action_space.n)
        return workspace_rollouts(env_agent, n_envs, steps, n_actions=n_actions, chunk=CHUNK)
    finally:
        env_agent.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="LunarLander-v3", help="a discrete-action env id")
    parser.add_argument("--costs", type=float, nargs="+", default=[0, 100, 300, 1000])
    parser.add_argument("--envs", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--steps", type=int, default=4000, help="env steps timed per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f"{args.env}, random actions, busy wait added to each env step; env steps/s (median)")
    print(f"{'envs':>4} | {'extra us/step':>13} | {'sync':>9} | {'async':>9} | async/sync")
    print("-" * 55)
    for n_envs in args.envs:
        for cost in args.costs:
            sync, asynchronous = [], []
            # Cost-free envs run many more steps in the same time: scale the count.
            steps = args.steps if cost > 0 else args.steps * 10
            for _ in range(args.repeats):
                sync.append(steps_per_second(args.env, n_envs, cost, "sync", steps))
                asynchronous.append(steps_per_second(args.env, n_envs, cost, "async", steps))
            s, a = statistics.median(sync), statistics.median(asynchronous)
            print(f"{n_envs:>4} | {cost:>13,.0f} | {s:>9,.0f} | {a:>9,.0f} | {a / s:>10.2f}")


if __name__ == "__main__":
    main()
