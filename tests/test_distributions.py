"""The lean distributions compute what torch.distributions computes, gradients included."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from bbrl_ppo.agents.distributions import DiagonalGaussian, LogitsCategorical


def _gradients(value: torch.Tensor, *inputs: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(value.sum(), inputs))


def test_categorical_matches_torch_in_values_and_gradients():
    torch.manual_seed(0)
    logits = torch.randn(7, 4, requires_grad=True)
    actions = torch.randint(0, 4, (7,))
    ours, reference = LogitsCategorical(logits), Categorical(logits=logits)

    torch.testing.assert_close(ours.logits, reference.logits)
    torch.testing.assert_close(ours.log_prob(actions), reference.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), reference.entropy())
    torch.testing.assert_close(
        _gradients(ours.log_prob(actions) + ours.entropy(), logits),
        _gradients(reference.log_prob(actions) + reference.entropy(), logits),
    )
    assert ours.batch_shape == reference.batch_shape == torch.Size([7])


def test_categorical_log_prob_of_float_actions_and_of_sample_shapes():
    logits = torch.randn(5, 3)
    ours, reference = LogitsCategorical(logits), Categorical(logits=logits)
    float_actions = torch.tensor([0.0, 2.0, 1.0, 1.0, 0.0])
    torch.testing.assert_close(ours.log_prob(float_actions), reference.log_prob(float_actions))
    samples = ours.sample((2,))
    assert samples.shape == (2, 5)
    torch.testing.assert_close(ours.log_prob(samples), reference.log_prob(samples))


def test_categorical_entropy_of_a_masked_action_is_finite():
    logits = torch.tensor([[0.0, float("-inf"), 1.0]])
    entropy = LogitsCategorical(logits).entropy()
    torch.testing.assert_close(entropy, Categorical(logits=logits).entropy())
    assert torch.isfinite(entropy).all()


def test_categorical_rejects_a_scalar():
    with pytest.raises(ValueError, match="at least one dimension"):
        LogitsCategorical(torch.tensor(1.0))


def test_categorical_kl_uses_torch_registry():
    old, new = torch.randn(6, 3), torch.randn(6, 3)
    torch.testing.assert_close(
        kl_divergence(LogitsCategorical(old), LogitsCategorical(new)),
        kl_divergence(Categorical(logits=old), Categorical(logits=new)),
    )


def test_gaussian_matches_independent_normal_in_values_and_gradients():
    torch.manual_seed(1)
    mean = torch.randn(9, 2, requires_grad=True)
    log_std = torch.randn(2, requires_grad=True)
    actions = torch.randn(9, 2)
    ours = DiagonalGaussian(mean, log_std.expand_as(mean))
    reference = Independent(Normal(mean, log_std.exp().expand_as(mean)), 1)

    torch.testing.assert_close(ours.log_prob(actions), reference.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), reference.entropy())
    torch.testing.assert_close(
        _gradients(ours.log_prob(actions) + ours.entropy(), mean, log_std),
        _gradients(reference.log_prob(actions) + reference.entropy(), mean, log_std),
    )
    assert ours.mean is mean
    assert ours.event_shape == torch.Size([2]) and ours.batch_shape == torch.Size([9])


def test_gaussian_log_prob_broadcasts_sample_shapes_and_kl_works():
    mean, log_std = torch.randn(4, 3), torch.full((4, 3), -0.5)
    ours = DiagonalGaussian(mean, log_std)
    reference = Independent(Normal(mean, log_std.exp()), 1)
    samples = ours.sample((5,))
    assert samples.shape == (5, 4, 3)
    torch.testing.assert_close(ours.log_prob(samples), reference.log_prob(samples))
    other = DiagonalGaussian(mean + 0.1, log_std + 0.2)
    torch.testing.assert_close(
        kl_divergence(ours, other),
        kl_divergence(reference, Independent(Normal(mean + 0.1, (log_std + 0.2).exp()), 1)),
    )


def test_expand_keeps_the_lean_types():
    categorical = LogitsCategorical(torch.randn(3, 4)).expand((2, 3))
    assert isinstance(categorical, LogitsCategorical) and categorical.batch_shape == (2, 3)
    torch.testing.assert_close(categorical.probs.sum(-1), torch.ones(2, 3))
    gaussian = DiagonalGaussian(torch.zeros(3, 2), torch.zeros(3, 2)).expand((5, 3))
    assert isinstance(gaussian, DiagonalGaussian)
    assert gaussian.batch_shape == (5, 3) and gaussian.event_shape == (2,)
    assert gaussian.sample().shape == (5, 3, 2)


@pytest.mark.parametrize("shape", [(8, 2), (3, 5, 4), (6,)])
def test_logits_categorical_draws_what_categorical_draws(shape):
    """Its lean `sample` keeps Categorical's operations: the same actions from the same seed."""
    logits = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * 3
    for sample_shape in ((), (7,)):
        torch.manual_seed(0)
        expected = Categorical(logits=logits).sample(sample_shape)
        torch.manual_seed(0)
        drawn = LogitsCategorical(logits).sample(sample_shape)
        assert drawn.shape == expected.shape and torch.equal(drawn, expected)
