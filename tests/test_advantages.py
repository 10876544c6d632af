"""GAE with separate termination / episode-end masks, against a per-episode reference."""

import pytest
import torch

from bbrl_ppo.algorithms.advantages import generalized_advantages, transition_mask


def reference_gae(reward, values, terminated, done, gamma, lam):
    """Plain loops over each env's transitions, written independently of the code.

    Walks forward to cut the stream into episodes, then backward within each.
    """
    T, B = reward.shape
    advantages = torch.zeros(T - 1, B, dtype=torch.float64)
    for b in range(B):
        segments, current = [], []
        for t in range(T - 1):
            if done[t, b]:  # t -> t+1 is a final -> first pair: no transition
                if current:
                    segments.append(current)
                current = []
                continue
            current.append(t)
            if done[t + 1, b]:  # the episode ends at t+1
                segments.append(current)
                current = []
        if current:
            segments.append(current)
        for segment in segments:
            following = 0.0
            for t in reversed(segment):
                bootstrap = 0.0 if terminated[t + 1, b] else gamma * float(values[t + 1, b])
                delta = float(reward[t + 1, b]) + bootstrap - float(values[t, b])
                following = delta + gamma * lam * following
                advantages[t, b] = following
    return advantages


def scenario(T=12, B=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    reward = torch.rand(T, B, generator=generator)
    values = torch.randn(T, B, generator=generator)
    terminated = torch.zeros(T, B, dtype=torch.bool)
    truncated = torch.zeros(T, B, dtype=torch.bool)
    # env 0: terminates at t=4 (t=5 is a reset), env 1: truncated at t=6 (t=7 reset),
    # env 2: truncated at the last step (the next workspace starts with it).
    terminated[4, 0] = True
    truncated[6, 1] = True
    truncated[T - 1, 2] = True
    reward[5, 0] = reward[7, 1] = 0.0  # reset steps pay nothing
    return reward, values, terminated, terminated | truncated


@pytest.mark.parametrize("gamma, lam", [(0.99, 0.95), (0.9, 1.0), (0.98, 0.0), (1.0, 0.8)])
def test_gae_matches_the_per_episode_reference(gamma, lam):
    reward, values, terminated, done = scenario()
    advantages, returns = generalized_advantages(reward, values, terminated, done, gamma, lam)
    expected = reference_gae(reward, values, terminated, done, gamma, lam)
    torch.testing.assert_close(advantages.double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(returns, advantages + values[:-1])


def test_truncation_bootstraps_from_the_final_observation_value():
    reward, values, terminated, done = scenario()
    advantages, _ = generalized_advantages(reward, values, terminated, done, 0.9, 0.5)
    # env 1 is truncated at t=6: the last transition 5 -> 6 bootstraps from V(s_6).
    expected = reward[6, 1] + 0.9 * values[6, 1] - values[5, 1]
    torch.testing.assert_close(advantages[5, 1], expected)
    # env 0 terminates at t=4: no bootstrap.
    torch.testing.assert_close(advantages[3, 0], reward[4, 0] - values[3, 0])


def test_final_to_first_pairs_are_masked_and_do_not_leak():
    reward, values, terminated, done = scenario()
    advantages, _ = generalized_advantages(reward, values, terminated, done, 0.99, 0.95)
    valid = transition_mask(done)
    assert not valid[4, 0] and not valid[6, 1]
    assert advantages[4, 0] == 0 and advantages[6, 1] == 0
    # Changing the next episode's values cannot change the finished episode's advantages.
    changed = values.clone()
    changed[7:, 1] += 100.0
    other, _ = generalized_advantages(reward, changed, terminated, done, 0.99, 0.95)
    torch.testing.assert_close(other[:6, 1], advantages[:6, 1])


def test_gae_over_two_workspaces_equals_gae_over_one_when_split_at_an_episode_end():
    """The boundary: the second workspace starts with the first's last step."""
    reward, values, terminated, done = scenario(T=12, B=3, seed=3)
    reward, values, terminated, done = reward[:, :1], values[:, :1], terminated[:, :1], done[:, :1]
    terminated[:] = False
    terminated[6, 0] = True
    done = terminated.clone()
    whole, _ = generalized_advantages(reward, values, terminated, done, 0.97, 0.9)
    first, _ = generalized_advantages(reward[:7], values[:7], terminated[:7], done[:7], 0.97, 0.9)
    second, _ = generalized_advantages(reward[6:], values[6:], terminated[6:], done[6:], 0.97, 0.9)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    assert second[0, 0] == 0, "the copied final step -> next first step is no transition"


def test_constant_critic_hand_computation():
    """Reward 1 at every step of a 3-step episode ended by termination, V = 1."""
    reward = torch.tensor([[0.0], [1.0], [1.0], [1.0]])
    values = torch.ones(4, 1)
    terminated = torch.tensor([[False], [False], [False], [True]])
    gamma, lam = 0.5, 0.5
    advantages, returns = generalized_advantages(
        reward, values, terminated, terminated.clone(), gamma, lam
    )
    delta_0 = delta_1 = 1 + gamma * 1 - 1  # 0.5
    delta_2 = 1 - 1  # terminal: no bootstrap
    a2 = delta_2
    a1 = delta_1 + gamma * lam * a2
    a0 = delta_0 + gamma * lam * a1
    torch.testing.assert_close(advantages[:, 0], torch.tensor([a0, a1, a2]))
    torch.testing.assert_close(returns[:, 0], torch.tensor([a0 + 1, a1 + 1, a2 + 1]))


def test_lambda_one_gives_discounted_returns_minus_values():
    reward = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [0.2], [0.1], [7.0]])
    never = torch.zeros(4, 1, dtype=torch.bool)
    advantages, _ = generalized_advantages(reward, values, never, never, 0.9, 1.0)
    # Bootstraps from V(s_3) = 7 at the workspace end.
    g2 = 3 + 0.9 * 7
    g1 = 2 + 0.9 * g2
    g0 = 1 + 0.9 * g1
    torch.testing.assert_close(advantages[:, 0], torch.tensor([g0 - 0.5, g1 - 0.2, g2 - 0.1]))


def test_numpy_and_torch_recursions_agree():
    from bbrl_ppo.algorithms.advantages import _backward_recursion

    def loop_in_torch(deltas, decays):
        advantages, running = torch.zeros_like(deltas), torch.zeros_like(deltas[0])
        for t in reversed(range(deltas.shape[0])):
            running = deltas[t] + decays[t] * running
            advantages[t] = running
        return advantages

    generator = torch.Generator().manual_seed(2)
    deltas = torch.randn(40, 5, generator=generator)
    decays = 0.9 * (torch.rand(40, 5, generator=generator) > 0.1).float()
    expected = loop_in_torch(deltas, decays)
    torch.testing.assert_close(_backward_recursion(deltas, decays), expected)
    # By hand for the last two steps of env 0.
    assert expected[-1, 0] == deltas[-1, 0]
    torch.testing.assert_close(expected[-2, 0], deltas[-2, 0] + decays[-2, 0] * deltas[-1, 0])
