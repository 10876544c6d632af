"""Running statistics, observation normalization and reward scaling."""

import numpy as np
import pytest
import torch

from bbrl_ppo.agents.normalizers import ObservationNormalizer, RewardScaler, RunningMeanStd


def test_running_mean_std_matches_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)) for n in (1, 7, 50, 2)]
    stats = RunningMeanStd(3)
    for batch in batches:
        stats.update(torch.from_numpy(batch))
    everything = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean.numpy(), everything.mean(0), rtol=1e-10)
    np.testing.assert_allclose(stats.var.numpy(), everything.var(0), rtol=1e-10)
    assert float(stats.count) == len(everything)


def test_observation_normalizer_standardizes_and_clips():
    normalizer = ObservationNormalizer(2, clip=3.0)
    data = torch.tensor([[0.0, 10.0], [2.0, 30.0]])
    normalizer.update(data)
    out = normalizer(torch.tensor([[1.0, 20.0], [100.0, 20.0]]))
    torch.testing.assert_close(out[0], torch.zeros(2), atol=1e-4, rtol=0)
    assert float(out[1, 0]) == 3.0


def test_normalizer_statistics_travel_in_the_state_dict():
    normalizer = ObservationNormalizer(2)
    normalizer.update(torch.randn(10, 2) + 5)
    state = normalizer.state_dict()
    assert {"stats.mean", "stats.var", "stats.count"} <= set(state)
    fresh = ObservationNormalizer(2)
    fresh.load_state_dict(state)
    x = torch.randn(4, 2)
    torch.testing.assert_close(fresh(x), normalizer(x))


def test_reward_scaler_divides_by_the_std_of_the_transitions_discounted_returns():
    gamma = 0.9
    # Env 1 ends an episode at row 0: row 1 is its reset-only step (reward 0, no transition).
    rewards = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0], [0.0, 1.0]])
    starts = torch.tensor([[False, False], [False, True], [False, False], [True, False]])
    scaler = RewardScaler(num_envs=2, discount_factor=gamma)
    scaled = scaler.scale(rewards, starts)

    # By hand: env 0's returns 1, 0.9, 3.81 (row 3 is a reset), env 1's 2, 1, 1.9.
    seen = [1.0, 0.9, 0.9 * 0.9 + 3.0, 2.0, 1.0, 0.9 * 1.0 + 1.0]
    std = np.sqrt(np.var(seen) + 1e-8)
    torch.testing.assert_close(scaled, rewards / std)
    assert scaled.dtype == rewards.dtype
    assert float(scaler.stats.count) == pytest.approx(6)  # the two reset-only steps left out


def _expected(normalizer: ObservationNormalizer, x: torch.Tensor) -> torch.Tensor:
    stats = normalizer.stats
    std = (stats.var + normalizer.eps).sqrt()
    return ((x.double() - stats.mean) / std).clamp(-normalizer.clip, normalizer.clip).float()


def test_normalizer_follows_every_change_of_its_statistics():
    from bbrl_ppo.agents.networks import copy_parameters

    normalizer, x = ObservationNormalizer(3), torch.randn(5, 3) * 4
    torch.testing.assert_close(normalizer(x), _expected(normalizer, x))  # fills the cache
    normalizer.update(torch.randn(20, 3) * 2 + 1)  # in-place update of the buffers
    torch.testing.assert_close(normalizer(x), _expected(normalizer, x))

    other = ObservationNormalizer(3)
    other.update(torch.randn(20, 3) - 7)
    normalizer.load_state_dict(other.state_dict())
    torch.testing.assert_close(normalizer(x), _expected(other, x))

    other.update(torch.randn(20, 3) * 9)
    copy_parameters(other, normalizer)  # the old agents' refresh: copy_ into the buffers
    torch.testing.assert_close(normalizer(x), _expected(other, x))
    assert normalizer(x.double()).dtype == torch.float64


def test_normalizer_cache_filled_under_inference_mode_serves_training():
    normalizer = ObservationNormalizer(2)
    normalizer.update(torch.randn(30, 2) + 3)
    with torch.inference_mode():
        normalizer(torch.randn(4, 2))  # as in an evaluation, before any training step
    layer = torch.nn.Linear(2, 1)
    layer(normalizer(torch.randn(4, 2))).sum().backward()
    assert layer.weight.grad is not None


def test_reward_scaler_matches_a_step_by_step_merge_across_rollouts():
    generator = torch.Generator().manual_seed(4)
    scaler, reference_stats = RewardScaler(num_envs=3, discount_factor=0.97), RunningMeanStd(())
    running = torch.zeros(3, dtype=torch.float64)
    for _ in range(3):  # the return runs on from one rollout to the next
        rewards = torch.randn(50, 3, generator=generator) * 5
        starts = torch.rand(50, 3, generator=generator) < 0.05
        scaled = scaler.scale(rewards, starts)
        for t in range(50):
            running = torch.where(starts[t], 0.0, running * 0.97 + rewards[t].double())
            reference_stats.update(running[~starts[t]])
        expected = rewards.double() / (reference_stats.var + scaler.eps).sqrt()
        torch.testing.assert_close(scaled, expected.float())
        torch.testing.assert_close(scaler.returns, running)
        torch.testing.assert_close(scaler.stats.var, reference_stats.var)
