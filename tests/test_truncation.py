"""Time-limit truncations end to end: `prepare_rollout` bootstraps them, the critic learns so."""

import pytest
import torch
from bbrl.agents import Agents, TemporalAgent
from bbrl.workspace import Workspace

import tests.toy_envs  # noqa: F401  (registers the toy envs)
from bbrl_ppo.algorithms.ppo import PPOClip
from tests.scripted import ScriptedActions
from tests.test_ppo import config

GAMMA, LAMBDA, VALUE = 0.9, 0.8, 2.0


def constant_critic(algo: PPOClip, value: float) -> None:
    """Make the old critic (the one `prepare_rollout` reads) output `value` everywhere."""
    with torch.no_grad():
        for parameter in algo.old_critic_agent.parameters():
            parameter.zero_()
        last_layer = [m for m in algo.old_critic_agent.modules() if isinstance(m, torch.nn.Linear)]
        last_layer[-1].bias.fill_(value)


def test_prepare_rollout_bootstraps_truncations_and_not_terminations():
    """LineWorld from position 1 (5-step limit): env 0 moves right and terminates every two
    steps (reward 2, then 10); env 1 stays put, paid 1 per step, until truncated at t=5."""
    cfg = config(
        "tests.toy_envs:LineWorld-v0",
        n_envs=2,
        transitions_per_env=7,
        batch_size=7,
        discount_factor=GAMMA,
        gae_lambda=LAMBDA,
    )
    cfg.gym_env.env_args = {"start": 1}
    algo = PPOClip(cfg)
    constant_critic(algo, VALUE)
    workspace = Workspace()
    actions = torch.tensor([[1, 0]] * 8)
    TemporalAgent(Agents(algo.train_env, ScriptedActions(actions)))(workspace, t=0, n_steps=8)
    assert workspace["env/env_obs"][:, 0, 0].tolist() == [1, 2, 3, 1, 2, 3, 1, 2]
    assert workspace["env/terminated"][:, 0].tolist() == [0, 0, 1, 0, 0, 1, 0, 0]
    assert workspace["env/reward"][:, 1].tolist() == [0, 1, 1, 1, 1, 1, 0, 1]
    assert workspace["env/truncated"][:, 1].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert not workspace["env/terminated"][:, 1].any()

    rollout = algo.prepare_rollout(workspace)

    decay = GAMMA * LAMBDA
    move = 2 + GAMMA * VALUE - VALUE  # 1 -> 2, bootstrapped
    reach = 10 - VALUE  # 2 -> 3 terminates: no bootstrap
    stay = 1 + GAMMA * VALUE - VALUE  # 1 -> 1, bootstrapped, at the truncation too
    # Rows t = 0..6 (the pair t -> t+1); final -> first pairs (t = 2, 5 / t = 5) are 0.
    env_0 = [move + decay * reach, reach, 0, move + decay * reach, reach, 0, move]
    env_1 = [stay * sum(decay**k for k in range(5 - t)) for t in range(5)] + [0, stay]
    expected = torch.tensor([env_0, env_1]).T
    torch.testing.assert_close(workspace["advantage"][:-1], expected)
    valid = torch.ones(7, 2, dtype=torch.bool)
    valid[[2, 5], 0] = valid[5, 1] = False
    torch.testing.assert_close(rollout.advantages, expected[valid])
    torch.testing.assert_close(rollout.returns, expected[valid] + VALUE)


def test_the_critic_learns_the_infinite_horizon_value_of_a_time_limited_env():
    """Reward 1 per step, episodes ended only by a 10-step time limit, a constant observation:
    V = 1 / (1 - 0.98) = 50. Truncation taken for termination gives about 5.5 instead
    (the mean discounted return of the steps left, 9.1 down to 1)."""
    cfg = config(
        "tests.toy_envs:TimeLimitedReward-v0",
        n_envs=4,
        transitions_per_env=32,
        batch_size=64,
        opt_epochs=10,
        discount_factor=0.98,
        gae_lambda=0.95,
        max_steps=None,
        max_rollouts=50,
        eval_interval=10**9,
    )
    cfg.optimizer = {"lr": 0.01}  # V moves from about 0 to 50 in 50 updates
    algo = PPOClip(cfg)
    algo.run()
    with torch.no_grad():
        start_value = float(algo.critic_agent.value(torch.ones(1, 1)))
    assert start_value == pytest.approx(1 / (1 - 0.98), abs=4.0)
