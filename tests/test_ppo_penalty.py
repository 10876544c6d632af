"""PPOPenalty: the paper's KL-coefficient rule on the KL the update reached; each stage alone."""

import pytest
import torch

from bbrl_ppo.algorithms.ppo import PPOPenalty
from tests.test_ppo import config

INITIAL_COEF = 0.5


def penalty(env="CartPole-v1", target=0.01, lr=3e-4, **algorithm):
    cfg = config(env, kl_penalty={"target": target, "initial_coef": INITIAL_COEF}, **algorithm)
    cfg.optimizer = {"lr": lr}
    return PPOPenalty(cfg)


def first_rollout(algo):
    workspace = next(algo.iter_partial_episodes())
    return workspace, algo.prepare_rollout(workspace)


def kl_by_hand(old_distribution, new_distribution) -> torch.Tensor:
    """KL(old || new) per observation, from the distributions' parameters (in float64)."""
    if hasattr(old_distribution, "base_dist"):  # diagonal Gaussian
        old_mean, new_mean = old_distribution.mean.double(), new_distribution.mean.double()
        old_std, new_std = old_distribution.stddev.double(), new_distribution.stddev.double()
        per_dimension = (
            torch.log(new_std / old_std)
            + (old_std**2 + (old_mean - new_mean) ** 2) / (2 * new_std**2)
            - 0.5
        )
        return per_dimension.sum(-1)
    old_p = torch.softmax(old_distribution.logits.double(), -1)
    new_p = torch.softmax(new_distribution.logits.double(), -1)
    return (old_p * (old_p.log() - new_p.log())).sum(-1)


def papers_rule(beta: float, d: float, d_targ: float) -> float:
    """Schulman et al. 2017, section 4, as written there."""
    if d < d_targ / 1.5:
        return beta / 2
    if d > d_targ * 1.5:
        return beta * 2
    return beta


def update_and_measure(algo):
    """One update on the first rollout; E[KL(pi_old || pi)] over its transitions, by hand."""
    _, rollout = first_rollout(algo)
    metrics = algo.update(rollout)
    with torch.no_grad():
        kl = kl_by_hand(
            algo.old_policy.dist(rollout.observations),
            algo.train_policy.dist(rollout.observations),
        )
    return metrics, float(kl.mean())


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_kl_coef_follows_the_papers_rule_on_the_kl_the_update_reached(env):
    """Section 4: d = E[KL(old || new)] after the update's epochs; beta halves, doubles or stays.

    The target does not change the update (beta does), so every run reaches the same
    d; the targets are set around it so that each branch of the rule is taken.
    """
    metrics, reached = update_and_measure(penalty(env, target=0.02))
    assert reached > 0
    assert metrics["mean_kl"] == pytest.approx(reached, rel=1e-4)
    assert metrics["kl_coef"] == INITIAL_COEF  # the beta the update used
    for target, factor in [(10 * reached, 0.5), (reached, 1.0), (reached / 10, 2.0)]:
        algo = penalty(env, target=target)
        metrics, kl = update_and_measure(algo)
        assert kl == pytest.approx(reached, rel=1e-5)
        assert metrics["mean_kl"] == pytest.approx(kl, rel=1e-4)
        assert algo.kl_coef == INITIAL_COEF * factor, f"target {target}, KL {kl}"


def test_after_an_early_stop_the_rule_sees_the_kl_of_the_steps_taken():
    # The first minibatch has KL 0 and steps; the second exceeds 1.5 * target_kl and
    # stops the update before its step: d is the KL after that one (large) step.
    algo = penalty(target_kl=1e-12, opt_epochs=4, lr=0.01)
    metrics, kl = update_and_measure(algo)
    assert algo.stopped_early and metrics["minibatches"] == 1
    assert kl > 0
    assert metrics["mean_kl"] == pytest.approx(kl, rel=1e-4)
    assert algo.kl_coef == papers_rule(INITIAL_COEF, kl, 0.01)


def test_each_stage_runs_on_its_own_on_a_fresh_algorithm():
    """What a notebook does: call one stage of a new PPOPenalty, without `run` or `update`."""
    workspace, rollout = first_rollout(penalty())

    prepared = penalty().prepare_rollout(workspace)
    assert len(prepared) == len(rollout)

    algo = penalty()
    before = [p.clone() for p in algo.train_policy.parameters()]
    metrics = algo.train_minibatch(rollout)
    assert {"policy_loss", "value_loss", "approx_kl"} <= set(metrics)
    after = algo.train_policy.parameters()
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))

    algo = penalty()
    distribution = algo.train_policy.dist(rollout.observations)
    log_probs = distribution.log_prob(rollout.actions)
    terms = algo.policy_loss(rollout, distribution, log_probs, rollout.advantages)
    # Before any step the policy is the old one: ratio 1, KL 0, loss -E[A].
    assert terms.loss.item() == pytest.approx(-float(rollout.advantages.mean()), abs=1e-6)

    algo = penalty()
    metrics = algo.update(rollout)
    assert metrics["mean_kl"] > 0 and metrics["kl_coef"] == INITIAL_COEF

    algo = penalty()
    algo.after_update(workspace, rollout, {"policy_loss": 0.0})
    for new, old in zip(algo.train_policy.parameters(), algo.old_policy.parameters(), strict=True):
        assert torch.equal(new, old)


def test_the_kl_and_the_coefficient_reach_tensorboard():
    algo = penalty(max_steps=128)
    algo.run()
    algo.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(algo.base_dir))
    events.Reload()
    assert {"train/mean_kl", "train/kl_coef"} <= set(events.Tags()["scalars"])
    logged = [event.value for event in events.Scalars("train/kl_coef")]
    assert logged[0] == pytest.approx(INITIAL_COEF)
