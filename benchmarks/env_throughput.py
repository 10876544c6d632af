"""Env steps per second with random actions: ours vs bbrl's agent vs a raw gymnasium loop.

Usage: python benchmarks/env_throughput.py [--steps 4000] [--repeats 5] [--envs 8 32]

Pins itself to the last core with one torch thread (core 0 also runs the
machine's services), alternates the three contenders, and prints the median
steps/s of each with ratios.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import gymnasium as gym
import torch
from bbrl.agents import Agent, Agents, TemporalAgent
from bbrl.agents.gymnasium import ParallelGymAgent
from bbrl.agents.gymnasium import make_env as bbrl_make_env
from bbrl.workspace import Workspace
from bench_common import pin_to_last_core, print_rates_table  # benchmarks/ is on sys.path

from bbrl_ppo import VectorGymAgent

ENV_NAME = "CartPole-v1"
#: Steps per workspace, as a rollout of a PPO run would hold.
CHUNK = 128


class RandomDiscreteAgent(Agent):
    def __init__(self, n_envs: int, n_actions: int):
        super().__init__()
        self.n_envs, self.n_actions = n_envs, n_actions

    def forward(self, t: int, **kwargs) -> None:
        self.set(("action", t), torch.randint(0, self.n_actions, (self.n_envs,)))


def workspace_rollouts(
    env_agent: Agent, n_envs: int, total_steps: int, n_actions: int = 2, chunk: int = CHUNK
) -> float:
    """Steps/s of `env_agent` driven by a random policy, in workspaces of `chunk` steps."""
    agent = TemporalAgent(Agents(env_agent, RandomDiscreteAgent(n_envs, n_actions)))
    workspace = Workspace()
    agent(workspace, t=0, n_steps=chunk)  # warm-up and first reset, not timed
    steps = 0
    start = time.perf_counter()
    while steps < total_steps:
        workspace.copy_n_last_steps(1)
        agent(workspace, t=1, n_steps=chunk - 1)
        steps += (chunk - 1) * n_envs
    return steps / (time.perf_counter() - start)


def ours(n_envs: int, total_steps: int) -> float:
    env_agent = VectorGymAgent(ENV_NAME, n_envs, seed=0)
    return workspace_rollouts(env_agent, n_envs, total_steps)


def bbrl(n_envs: int, total_steps: int) -> float:
    env_agent = ParallelGymAgent(partial(bbrl_make_env, ENV_NAME, autoreset=True), n_envs).seed(0)
    return workspace_rollouts(env_agent, n_envs, total_steps)


def raw_gymnasium(n_envs: int, total_steps: int) -> float:
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_NAME)] * n_envs)
    envs.reset(seed=0)
    steps = 0
    start = time.perf_counter()
    while steps < total_steps:
        # Same action source as the agents' (torch.randint), so that the ratios
        # measure the workspace agents' overhead and nothing else.
        envs.step(torch.randint(0, 2, (n_envs,)).numpy())
        steps += n_envs
    elapsed = time.perf_counter() - start
    envs.close()
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per measurement")
    parser.add_argument("--repeats", type=int, default=11, help="alternated rounds")
    parser.add_argument("--envs", type=int, nargs="+", default=[8, 32])
    parser.add_argument(
        "--single",
        choices=["ours", "bbrl", "raw"],
        help="run one contender once, untimed (for instruction counts under valgrind)",
    )
    args = parser.parse_args()
    if args.single:
        torch.set_num_threads(1)
        {"ours": ours, "bbrl": bbrl, "raw": raw_gymnasium}[args.single](args.envs[0], args.steps)
        return
    core = pin_to_last_core()
    contenders = {
        "bbrl_ppo VectorGymAgent": ours,
        "bbrl ParallelGymAgent": bbrl,
        "raw gymnasium SyncVectorEnv": raw_gymnasium,
    }
    print(
        f"{ENV_NAME}, random actions, core {core}, 1 torch thread, {args.repeats} alternated "
        f"rounds of {args.steps:,} steps: median steps/s, and median of the per-round ratios"
    )
    print_rates_table(
        {name: partial(measure, total_steps=args.steps) for name, measure in contenders.items()},
        args.envs,
        args.repeats,
        ours="bbrl_ppo VectorGymAgent",
    )


if __name__ == "__main__":
    main()
