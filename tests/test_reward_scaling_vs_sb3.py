"""Reward scaling against Stable-Baselines3's VecNormalize on a real env stream.

Skipped without stable-baselines3 (the `bench` extra).
"""

import gymnasium as gym
import numpy as np
import pytest
import torch
from bbrl.agents import Agent

from bbrl_ppo import Agents, TemporalAgent, VectorGymAgent, Workspace
from bbrl_ppo.agents.normalizers import RewardScaler

GAMMA = 0.99
N_ENVS = 3


class RandomTorque(Agent):
    def forward(self, t, **kwargs):
        n_envs = self.get(("env/env_obs", t)).shape[0]
        self.set(("action", t), torch.rand(n_envs, 1) * 4 - 2)


def pendulum_stream(steps: int) -> Workspace:
    """One auto-reset workspace of Pendulum-v1 (episodes end by truncation at 200)."""
    workspace = Workspace()
    env = VectorGymAgent("Pendulum-v1", N_ENVS, autoreset=True, seed=5)
    torch.manual_seed(0)
    TemporalAgent(Agents(env, RandomTorque()))(workspace, t=0, n_steps=steps)
    env.close()
    return workspace


class Replay(gym.Env):
    """Plays back one env's real transitions: (reward, episode ended)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
    action_space = gym.spaces.Discrete(1)

    def __init__(self, transitions):
        self.transitions, self.position = transitions, 0

    def reset(self, *, seed=None, options=None):
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        reward, ended = self.transitions[self.position]
        self.position += 1
        return np.zeros(1, dtype=np.float32), reward, False, ended, {}


def test_reward_statistics_equal_stable_baselines3s_vec_normalize():
    sb3_vec_env = pytest.importorskip("stable_baselines3.common.vec_env")
    workspace = pendulum_stream(650)
    reward = workspace["env/reward"].double().numpy()
    done = workspace["env/done"].numpy()
    # Each env's real transitions t -> t+1 (not after an episode end), in order.
    per_env = [
        [(reward[t + 1, b], bool(done[t + 1, b])) for t in range(len(done) - 1) if not done[t, b]]
        for b in range(N_ENVS)
    ]
    length = min(len(transitions) for transitions in per_env)
    per_env = [transitions[:length] for transitions in per_env]
    assert sum(ended for _, ended in per_env[0]) >= 2, "the stream should cross episode ends"

    venv = sb3_vec_env.VecNormalize(
        sb3_vec_env.DummyVecEnv([lambda t=t: Replay(t) for t in per_env]),
        norm_obs=False,
        norm_reward=True,
        gamma=GAMMA,
    )
    venv.reset()
    for _ in range(length):
        venv.step(np.zeros(N_ENVS, dtype=np.int64))

    # The same transitions in our layout: a reset-only row (reward 0) after each episode
    # end, columns padded at the end with reset-only rows.
    columns = []
    for transitions in per_env:
        rows = []
        for transition_reward, ended in transitions:
            rows.append((transition_reward, False))
            if ended:
                rows.append((0.0, True))
        columns.append(rows)
    height = max(len(rows) for rows in columns)
    rewards = torch.zeros(height, N_ENVS, dtype=torch.float64)
    starts = torch.ones(height, N_ENVS, dtype=torch.bool)
    for b, rows in enumerate(columns):
        for t, (transition_reward, is_reset) in enumerate(rows):
            rewards[t, b], starts[t, b] = transition_reward, is_reset
    scaler = RewardScaler(N_ENVS, GAMMA)
    for chunk in range(0, height, 100):  # rollout by rollout, as PPO calls it
        scaler.scale(rewards[chunk : chunk + 100], starts[chunk : chunk + 100])

    assert float(scaler.stats.count) == pytest.approx(N_ENVS * length)
    # SB3's statistics start from a count of 1e-4: equal to about 1e-7 here.
    assert float(scaler.stats.mean) == pytest.approx(float(venv.ret_rms.mean), rel=1e-5)
    assert float(scaler.stats.var) == pytest.approx(float(venv.ret_rms.var), rel=1e-5)


def test_ppo_feeds_the_scaler_only_real_transitions():
    # The call PPOClip makes: rewards of steps 1..T-1, starts = done of steps 0..T-2.
    workspace = pendulum_stream(450)
    reward, done = workspace["env/reward"], workspace["env/done"]
    scaler = RewardScaler(N_ENVS, GAMMA)
    scaler.scale(reward[1:], starts=done[:-1])
    transitions = int((~done[:-1]).sum())
    assert transitions < (len(done) - 1) * N_ENVS  # the stream holds reset-only steps
    assert float(scaler.stats.count) == transitions
