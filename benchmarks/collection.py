"""Env steps per second of PPO's rollout collection alone: our agents vs hand-written loops.

Usage: python benchmarks/collection.py [--steps 20000] [--repeats 11] [--envs 8 32] \\
    [--n-steps 32] [--no-sb3]

Pins itself to the last core with one torch thread, alternates the contenders round by
round, and prints the median steps/s of each with the median of the per-round ratios.
Every contender collects CartPole-v1 rollouts of ``n_steps`` steps per env with a 64x64
tanh categorical policy that samples its actions, under ``torch.no_grad()``:

- bbrl_ppo: `TemporalAgent(Agents(VectorGymAgent, DiscretePolicy))` over workspaces of
  ``n_steps + 1`` steps, each continued from the previous one as PPOClip's rollout does
  (``zero_grad``, ``copy_n_last_steps(1)``, then ``agent(workspace, t=1,
  n_steps=n_steps)``). It computes neither values nor log-probs while collecting: PPOClip
  computes both afterwards, in one batched call over the workspace.
- raw loop: gymnasium's ``SyncVectorEnv`` (``NEXT_STEP`` auto-reset, ``copy=False`` as
  our agent) and the same MLP written out by hand, sampling from a ``Categorical``, with
  observations, actions, log-probs, rewards and dones written into preallocated
  ``(n_steps, n_envs)`` tensors (CleanRL's loop, without its value call).
- raw loop + critic: the same, plus a 64x64 critic evaluated at every step, as CleanRL
  and SB3 do while collecting: a heavier loop than ours, shown for reference.
- SB3 collect_rollouts (when stable-baselines3 is installed, unless ``--no-sb3``): PPO's
  own collection into its ``RolloutBuffer``, over ``make_vec_env`` (``DummyVecEnv`` with
  ``Monitor``); it evaluates the critic at every step and computes GAE at the end of each
  rollout. It is driven through SB3's private ``_setup_learn``, as ``learn`` does.

Env steps = vector steps x n_envs for every contender (with ``NEXT_STEP`` auto-reset, the
step after an episode end only resets that env; SB3's ``DummyVecEnv`` resets within the
step that ended the episode). Building the envs and networks and a first rollout are not
timed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import gymnasium as gym
import numpy as np
import torch
from bench_common import pin_to_last_core, print_rates_table  # benchmarks/ is on sys.path
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from torch import nn
from torch.distributions import Categorical

from bbrl_ppo import Agents, DiscretePolicy, TemporalAgent, VectorGymAgent, Workspace

ENV_NAME = "CartPole-v1"
OBS_SIZE, N_ACTIONS = 4, 2
HIDDEN = [64, 64]


def timed_rollouts(rollout: Callable[[], None], steps_per_rollout: int, total: int) -> float:
    """Steps/s of repeated `rollout` calls, after one untimed warm-up rollout."""
    with torch.no_grad():
        rollout()
        steps = 0
        start = time.perf_counter()
        while steps < total:
            rollout()
            steps += steps_per_rollout
        return steps / (time.perf_counter() - start)


def ours(n_envs: int, n_steps: int, total_steps: int) -> float:
    env_agent = VectorGymAgent(ENV_NAME, n_envs, seed=0)
    policy = DiscretePolicy(OBS_SIZE, HIDDEN, N_ACTIONS, activation="tanh")
    agent = TemporalAgent(Agents(env_agent, policy))
    workspace = Workspace()
    agent(workspace, t=0, n_steps=n_steps + 1)

    def rollout() -> None:
        workspace.zero_grad()
        workspace.copy_n_last_steps(1)
        agent(workspace, t=1, n_steps=n_steps)

    rate = timed_rollouts(rollout, n_steps * n_envs, total_steps)
    env_agent.close()
    return rate


def mlp(n_outputs: int) -> nn.Sequential:
    sizes = [OBS_SIZE, *HIDDEN]
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], n_outputs))


def raw_loop(n_envs: int, n_steps: int, total_steps: int, with_critic: bool) -> float:
    envs = SyncVectorEnv(
        [lambda: gym.make(ENV_NAME)] * n_envs, copy=False, autoreset_mode=AutoresetMode.NEXT_STEP
    )
    policy, critic = mlp(N_ACTIONS), mlp(1)
    observations = torch.zeros((n_steps, n_envs, OBS_SIZE))
    actions = torch.zeros((n_steps, n_envs), dtype=torch.long)
    log_probs, rewards, values = (torch.zeros((n_steps, n_envs)) for _ in range(3))
    dones = torch.zeros((n_steps, n_envs), dtype=torch.bool)
    next_obs, _ = envs.reset(seed=0)

    def rollout() -> None:
        nonlocal next_obs
        for t in range(n_steps):
            observation = torch.from_numpy(next_obs)
            observations[t] = observation
            distribution = Categorical(logits=policy(observation))
            action = distribution.sample()
            actions[t] = action
            log_probs[t] = distribution.log_prob(action)
            if with_critic:
                values[t] = critic(observation).squeeze(-1)
            next_obs, reward, terminated, truncated, _ = envs.step(action.numpy())
            rewards[t] = torch.from_numpy(reward)
            dones[t] = torch.from_numpy(np.logical_or(terminated, truncated))

    rate = timed_rollouts(rollout, n_steps * n_envs, total_steps)
    envs.close()
    return rate


def sb3_collect(n_envs: int, n_steps: int, total_steps: int) -> float:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(ENV_NAME, n_envs, seed=0)
    model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=n_steps * n_envs, device="cpu")
    _, callback = model._setup_learn(total_timesteps=2**62)

    def rollout() -> None:
        model.collect_rollouts(model.env, callback, model.rollout_buffer, n_steps)

    rate = timed_rollouts(rollout, n_steps * n_envs, total_steps)
    env.close()
    return rate


def contenders(with_sb3: bool) -> dict[str, Callable[[int, int, int], float]]:
    found = {
        "bbrl_ppo agents": ours,
        "raw loop": partial(raw_loop, with_critic=False),
        "raw loop + critic": partial(raw_loop, with_critic=True),
    }
    if with_sb3:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            print("stable-baselines3 is not installed (pip install -e '.[bench]'): left out")
        else:
            found["SB3 collect_rollouts"] = sb3_collect
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per measurement")
    parser.add_argument("--repeats", type=int, default=11, help="alternated rounds")
    parser.add_argument("--envs", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--n-steps", type=int, default=32, help="steps per env per rollout")
    parser.add_argument("--no-sb3", action="store_true", help="leave SB3's collection out")
    args = parser.parse_args()
    core = pin_to_last_core()
    measures = contenders(with_sb3=not args.no_sb3)
    print(
        f"{ENV_NAME}, 64x64 tanh policy sampling, rollouts of {args.n_steps} steps per env, "
        f"core {core}, 1 torch thread, {args.repeats} alternated rounds of {args.steps:,} "
        "steps: median steps/s, and median of the per-round ratios"
    )
    print_rates_table(
        {
            name: partial(measure, n_steps=args.n_steps, total_steps=args.steps)
            for name, measure in measures.items()
        },
        args.envs,
        args.repeats,
        ours="bbrl_ppo agents",
    )


if __name__ == "__main__":
    main()
