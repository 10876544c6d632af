"""Policy and critic agents: workspace I/O, stable log-probs, prefixes."""

import math

import pytest
import torch
from bbrl.workspace import Workspace

from bbrl_ppo import DiscretePolicy, GaussianPolicy, KWAgentWrapper, VAgent


def workspace_with(obs, action=None):
    workspace = Workspace()
    workspace.set("env/env_obs", 0, obs)
    if action is not None:
        workspace.set("action", 0, action)
    return workspace


def test_discrete_policy_writes_sampled_action():
    torch.manual_seed(0)
    policy = DiscretePolicy(4, [16], 3)
    workspace = workspace_with(torch.randn(5, 4))
    policy(workspace, t=0)
    action = workspace.get("action", 0)
    assert action.shape == (5,) and action.dtype == torch.long
    assert ((action >= 0) & (action < 3)).all()


def test_discrete_policy_deterministic_takes_the_argmax():
    policy = DiscretePolicy(4, [16], 3)
    obs = torch.randn(7, 4)
    workspace = workspace_with(obs)
    policy(workspace, t=0, stochastic=False)
    assert torch.equal(workspace.get("action", 0), policy.model(obs).argmax(-1))


def test_predict_proba_writes_log_prob_of_the_stored_action_with_prefix():
    policy = DiscretePolicy(4, [16], 3).with_prefix("old_policy/")
    obs, action = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    workspace = workspace_with(obs, action)
    policy(workspace, t=0, predict_proba=True, compute_entropy=True)
    expected = torch.log_softmax(policy.model(obs), -1)[torch.arange(6), action]
    torch.testing.assert_close(workspace.get("old_policy/logprob_predict", 0), expected)
    probs = torch.softmax(policy.model(obs), -1)
    entropy = -(probs * probs.log()).sum(-1)
    torch.testing.assert_close(workspace.get("old_policy/entropy", 0), entropy)
    assert torch.equal(workspace.get("action", 0), action), "predict_proba must not act"


def test_discrete_log_prob_stays_finite_for_extreme_logits():
    policy = DiscretePolicy(1, [4], 2)
    with torch.no_grad():
        policy.model[-1].weight.zero_()
        policy.model[-1].bias.copy_(torch.tensor([0.0, 200.0]))
    workspace = workspace_with(torch.zeros(1, 1), torch.tensor([0]))
    policy(workspace, t=0, predict_proba=True)
    log_prob = workspace.get("logprob_predict", 0)
    # softmax(..)[0] underflows to 0 (log = -inf); from the logits it is exactly -200.
    assert torch.isfinite(log_prob).all()
    torch.testing.assert_close(log_prob, torch.tensor([-200.0]))


def test_gaussian_policy_log_prob_and_entropy_match_the_formula():
    policy = GaussianPolicy(3, [8], 2, init_log_std=-0.5)
    obs, action = torch.randn(4, 3), torch.randn(4, 2)
    workspace = workspace_with(obs, action)
    policy(workspace, t=0, predict_proba=True, compute_entropy=True)
    mean, std = policy.model(obs), math.exp(-0.5)
    expected = (
        -((action - mean) ** 2) / (2 * std**2) - math.log(std) - 0.5 * math.log(2 * math.pi)
    ).sum(-1)
    torch.testing.assert_close(workspace.get("logprob_predict", 0), expected)
    entropy = 2 * (0.5 + 0.5 * math.log(2 * math.pi) + math.log(std))
    torch.testing.assert_close(workspace.get("entropy", 0), torch.full((4,), entropy))


def test_gaussian_policy_deterministic_action_is_the_mean():
    policy = GaussianPolicy(3, [8], 2)
    obs = torch.randn(4, 3)
    workspace = workspace_with(obs)
    KWAgentWrapper(policy, stochastic=False)(workspace, t=0)
    torch.testing.assert_close(workspace.get("action", 0), policy.model(obs))


def test_gaussian_log_std_is_state_independent_by_default_and_learnable():
    policy = GaussianPolicy(3, [8], 2)
    assert policy.log_std.requires_grad and policy.log_std.shape == (2,)
    assert not hasattr(policy, "log_std_head")


def test_state_dependent_std_is_clamped():
    policy = GaussianPolicy(3, [8], 2, state_dependent_std=True, log_std_bounds=(-1.0, 0.5))
    with torch.no_grad():
        policy.log_std_head[-1].bias.fill_(100.0)
    distribution = policy.dist(torch.randn(4, 3))
    torch.testing.assert_close(distribution.stddev, torch.full((4, 2), math.exp(0.5)))


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown activation 'sigmoidd'"):
        DiscretePolicy(4, [8], 2, activation="sigmoidd")


def test_v_agent_writes_prefixed_values():
    critic = VAgent(4, [8]).with_prefix("critic/")
    obs = torch.randn(5, 4)
    workspace = workspace_with(obs)
    critic(workspace, t=0)
    torch.testing.assert_close(workspace.get("critic/v_values", 0), critic.model(obs).squeeze(-1))


def test_policies_record_their_constructor_arguments():
    policy = DiscretePolicy(4, [32, 32], 2, activation="tanh")
    assert policy.init_args == {
        "state_dim": 4,
        "hidden_size": [32, 32],
        "n_actions": 2,
        "name": "policy",
        "activation": "tanh",
        "normalize_observations": False,
        "observation_clip": 10.0,
        "observation_encoding": None,
    }
