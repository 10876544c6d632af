"""Policy and critic in one stacked pass: the same step as two passes, agents unchanged."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from omegaconf import OmegaConf

from bbrl_ppo.agents.batched_actor_critic import BatchedActorCritic
from bbrl_ppo.agents.critics import VAgent
from bbrl_ppo.agents.policies import DiscretePolicy, GaussianPolicy
from bbrl_ppo.algorithms.ppo import PPOClip, PPOPenalty


def config(env="CartPole-v1", **algorithm):
    return OmegaConf.create(
        {
            "base_dir": "test/batched_${current_time:}",
            "progress_bar": False,
            "save_best": False,
            "gym_env": {"env_name": env},
            "algorithm": {
                "seed": 3,
                "n_envs": 4,
                "transitions_per_env": 32,
                "batch_size": 32,
                "opt_epochs": 2,
                "max_steps": 2048,
                "eval_interval": 100_000,
                "nb_evals": 2,
                **algorithm,
            },
        }
    )


def _trained_pair(cfg_algorithm: dict, env: str, algo_class=PPOClip, updates: int = 3):
    """The same training, batched and not: both algos after `updates` rollouts."""
    pair = []
    for batched in (True, False):
        algo = algo_class(config(env, batched_actor_critic=batched, **cfg_algorithm))
        for number, workspace in enumerate(algo.iter_partial_episodes()):
            rollout = algo.prepare_rollout(workspace)
            metrics = algo.update(rollout)
            algo.after_update(workspace, rollout, metrics)
            if number + 1 == updates:
                break
        pair.append(algo)
    return pair


@pytest.mark.parametrize(
    ("env", "algorithm", "algo_class"),
    [
        ("CartPole-v1", {}, PPOClip),
        ("CartPole-v1", {"entropy_coef": 0.01, "target_kl": 0.05}, PPOPenalty),
        (
            "Pendulum-v1",
            {"normalize_observations": True, "normalize_rewards": True, "init_log_std": -0.5},
            PPOClip,
        ),
    ],
)
def test_batched_training_follows_the_separate_passes(env, algorithm, algo_class):
    batched, separate = _trained_pair(algorithm, env, algo_class)
    assert batched._batched is not None and separate._batched is None
    for agent in ("train_policy", "critic_agent"):
        ours, theirs = getattr(batched, agent), getattr(separate, agent)
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        for name, value in ours.state_dict().items():
            # Float rounding only: a batched matrix product sums in another order.
            torch.testing.assert_close(value, theirs.state_dict()[name], rtol=1e-4, atol=1e-5)
    for optimizer in ("policy_optimizer", "critic_optimizer"):
        ours, theirs = getattr(batched, optimizer), getattr(separate, optimizer)
        state, other = ours.state_dict()["state"], theirs.state_dict()["state"]
        assert state.keys() == other.keys()
        for key in state:
            assert state[key]["exp_avg"].shape == other[key]["exp_avg"].shape


def test_one_minibatch_gives_the_gradients_of_separate_passes():
    batched, separate = (
        PPOClip(config(batched_actor_critic=flag, n_envs=2)) for flag in (True, False)
    )
    separate.train_policy.load_state_dict(batched.train_policy.state_dict())
    separate.critic_agent.load_state_dict(batched.critic_agent.state_dict())
    rollout = batched.prepare_rollout(next(batched.iter_partial_episodes()))
    gradients = []
    for algo in (batched, separate):
        algo.policy_optimizer.zero_grad()
        algo.critic_optimizer.zero_grad()
        distribution, values = algo._policy_and_values(rollout.observations)
        loss = distribution.log_prob(rollout.actions).mean() + values.square().mean()
        algo._backward(loss)
        gradients.append(
            [
                p.grad.clone()
                for p in (*algo.train_policy.parameters(), *algo.critic_agent.parameters())
            ]
        )
    for ours, theirs in zip(*gradients, strict=True):
        assert ours.abs().sum() > 0
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_backward_raises_no_layout_warning():
    algo = PPOClip(config())
    rollout = algo.prepare_rollout(next(algo.iter_partial_episodes()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        algo.train_minibatch(rollout)


def test_parameters_live_in_the_shared_rows_and_the_grads_accumulate_there():
    algo = PPOClip(config())
    batched = algo._batched
    for index, agent in enumerate((algo.train_policy, algo.critic_agent)):
        data, grad = batched.storage(index)
        assert algo.policy_optimizer.flat_parameters.data.data_ptr() != grad.data_ptr()
        for parameter in agent.parameters():
            assert (
                parameter.untyped_storage().data_ptr() == batched.data.untyped_storage().data_ptr()
            )
            assert (
                parameter.grad.untyped_storage().data_ptr()
                == batched.grad.untyped_storage().data_ptr()
            )
        optimizer = (algo.policy_optimizer, algo.critic_optimizer)[index]
        assert optimizer.flat_parameters.data.data_ptr() == data.data_ptr()
    rollout = algo.prepare_rollout(next(algo.iter_partial_episodes()))
    before = [p.detach().clone() for p in algo.critic_agent.parameters()]
    assert algo.train_minibatch(rollout) is not None
    assert any(
        not torch.equal(old, new)
        for old, new in zip(before, algo.critic_agent.parameters(), strict=True)
    )


@pytest.mark.parametrize(
    "algorithm",
    [
        {"state_dependent_std": True},  # its log-std head reads the features
        {"architecture": {"actor_hidden_size": [64, 64], "critic_hidden_size": [32, 32]}},
        {"architecture": {"actor_hidden_size": [64], "critic_hidden_size": [64, 64]}},
        {"flat_parameters": False},
        {"batched_actor_critic": False},
    ],
)
def test_falls_back_to_separate_passes_when_the_agents_do_not_stack(algorithm):
    algo = PPOClip(config("Pendulum-v1", **algorithm))
    assert algo._batched is None
    rollout = algo.prepare_rollout(next(algo.iter_partial_episodes()))
    assert algo.train_minibatch(rollout) is not None


def test_a_non_elementwise_optimizer_falls_back():
    cfg = config()
    cfg.optimizer = {"classname": "torch.optim.Adadelta", "lr": 1.0}  # not in the flat list
    algo = PPOClip(cfg)
    assert algo._batched is None
    rollout = algo.prepare_rollout(next(algo.iter_partial_episodes()))
    assert algo.train_minibatch(rollout) is not None


def test_subclassed_agents_are_not_stacked():
    class MyPolicy(DiscretePolicy):
        pass

    policy = MyPolicy(4, [8, 8], 2, activation="tanh")
    critic = VAgent(4, [8, 8], activation="tanh")
    assert BatchedActorCritic.for_agents(policy, critic) is None
    assert BatchedActorCritic.for_agents(DiscretePolicy(4, [8, 8], 2, activation="tanh"), critic)
    relu_policy = DiscretePolicy(4, [8, 8], 2, activation="relu")
    assert BatchedActorCritic.for_agents(relu_policy, critic) is None


def test_a_swapped_agent_is_evaluated_on_its_own():
    """A notebook may replace ``algo.train_policy``: the stacked pass must not serve the old one."""
    algo = PPOClip(config())
    algo.train_policy = copy.deepcopy(algo.train_policy)
    rollout = algo.prepare_rollout(next(algo.iter_partial_episodes()))
    distribution, _ = algo._policy_and_values(rollout.observations)
    expected = algo.train_policy.dist(rollout.observations)
    assert torch.equal(distribution.logits, expected.logits)


def test_a_gaussian_policy_distribution_matches_dist():
    policy = GaussianPolicy(3, [16, 16], 2, init_log_std=-0.3)
    observations = torch.randn(5, 3)
    direct = policy.dist(observations)
    rebuilt = policy.distribution(policy.model(policy.features(observations)))
    assert torch.equal(direct.mean, rebuilt.mean) and torch.equal(direct.stddev, rebuilt.stddev)
