"""PPO loss terms against hand computations."""

import math

import pytest
import torch

from bbrl_ppo.algorithms.losses import (
    adapt_kl_coef,
    approx_kl,
    clipped_surrogate,
    explained_variance,
    kl_penalized_surrogate,
    normalize_advantages,
    value_loss,
    weighted_objective,
)


def test_clipped_surrogate_by_hand():
    old = torch.zeros(4)
    # ratios 1.5, 0.5, 1.1, 0.7 with advantages +1, -1, +2, +1
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 0.7]))
    advantages = torch.tensor([1.0, -1.0, 2.0, 1.0])
    terms = clipped_surrogate(new, old, advantages, clip_range=0.2)
    # min(r A, clip(r) A): 1.2, -0.8 (clip 0.8*-1 = -0.8 < -0.5), 2.2, 0.7
    torch.testing.assert_close(terms.loss, -torch.tensor([1.2, -0.8, 2.2, 0.7]).mean())
    assert float(terms.clip_fraction) == pytest.approx(3 / 4)  # 1.5, 0.5, 0.7 are outside


def test_clipped_surrogate_has_no_gradient_once_clipped_in_the_favourable_direction():
    new = torch.log(torch.tensor([1.5])).requires_grad_()
    clipped_surrogate(new, torch.zeros(1), torch.tensor([1.0]), 0.2).loss.backward()
    assert new.grad.abs().item() == 0.0


def test_approx_kl_estimator():
    log_ratio = torch.tensor([0.1, -0.2, 0.0, 0.3])
    expected = sum(math.exp(x) - 1 - x for x in log_ratio.tolist()) / 4
    assert float(approx_kl(log_ratio)) == pytest.approx(expected, rel=1e-5)
    assert float(approx_kl(torch.randn(1000))) >= 0


def test_approx_kl_is_close_to_the_true_kl_for_nearby_policies():
    old = torch.distributions.Categorical(logits=torch.tensor([0.0, 0.3, -0.2]))
    new = torch.distributions.Categorical(logits=torch.tensor([0.05, 0.25, -0.1]))
    torch.manual_seed(0)
    actions = old.sample((200_000,))
    estimate = approx_kl(new.log_prob(actions) - old.log_prob(actions))
    true_kl = torch.distributions.kl_divergence(old, new)
    assert float(estimate) == pytest.approx(float(true_kl), rel=0.1)


@pytest.mark.parametrize(
    "kl, expected",
    [(0.001, 0.5), (0.0066, 0.5), (0.01, 1.0), (0.0149, 1.0), (0.016, 2.0), (1.0, 2.0)],
)
def test_kl_coefficient_update_rule(kl, expected):
    assert adapt_kl_coef(1.0, kl, kl_target=0.01) == expected


def test_kl_penalized_surrogate_by_hand():
    new = torch.log(torch.tensor([1.2, 0.9]))
    kl = torch.tensor([0.02, 0.04])
    terms = kl_penalized_surrogate(new, torch.zeros(2), torch.tensor([1.0, 2.0]), kl, kl_coef=3.0)
    expected = -((1.2 * 1 + 0.9 * 2) / 2) + 3.0 * 0.03
    assert float(terms.loss) == pytest.approx(expected)


def test_value_loss_unclipped_and_clipped():
    values = torch.tensor([1.0, 3.0])
    old = torch.tensor([0.0, 2.5])
    returns = torch.tensor([2.0, 2.0])
    assert float(value_loss(values, old, returns, None)) == pytest.approx((1 + 1) / 2)
    # clipped values: 0 + clip(1, -.5, .5) = 0.5 ; 2.5 + clip(.5) = 3.0
    # max((1-2)^2, (0.5-2)^2) = 2.25 ; max((3-2)^2, (3-2)^2) = 1
    assert float(value_loss(values, old, returns, 0.5)) == pytest.approx((2.25 + 1) / 2)


def test_explained_variance():
    targets = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(targets, targets) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), 2.5), targets) == pytest.approx(0.0)
    assert math.isnan(explained_variance(targets, torch.ones(4)))


def test_normalize_advantages():
    normalized = normalize_advantages(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert float(normalized.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(normalized.std()) == pytest.approx(1.0, abs=1e-6)
    single = torch.tensor([5.0])
    assert torch.equal(normalize_advantages(single), single)


@pytest.mark.parametrize(
    "coefficients",
    [
        {"policy_coef": 1.0, "entropy_coef": 0.0, "critic_coef": 0.5},
        {"policy_coef": 0.7, "entropy_coef": 0.01, "critic_coef": 1.0},
        {"policy_coef": 2.0, "entropy_coef": 0.3, "critic_coef": 0.25},
    ],
)
def test_objective_is_the_weighted_sum_of_the_terms_and_its_gradients(coefficients):
    policy_loss = torch.tensor(0.8, requires_grad=True)
    entropy = torch.tensor(0.6, requires_grad=True)
    critic_loss = torch.tensor(1.9, requires_grad=True)
    objective = weighted_objective(policy_loss, entropy, critic_loss, **coefficients)
    expected = (
        coefficients["policy_coef"] * 0.8
        - coefficients["entropy_coef"] * 0.6
        + coefficients["critic_coef"] * 1.9
    )
    assert objective.item() == pytest.approx(expected)
    objective.backward()
    assert policy_loss.grad.item() == pytest.approx(coefficients["policy_coef"])
    assert critic_loss.grad.item() == pytest.approx(coefficients["critic_coef"])
    entropy_grad = 0.0 if entropy.grad is None else entropy.grad.item()
    assert entropy_grad == pytest.approx(-coefficients["entropy_coef"])
