"""PPOClip / PPOPenalty: minibatch coverage, early stopping, annealing, checkpoints."""

import pytest
import torch
from omegaconf import OmegaConf

from bbrl_ppo import load_agent, minibatch_indices, read_checkpoint
from bbrl_ppo.algorithms.ppo import PPOClip, PPOPenalty
from bbrl_ppo.config.schema import ConfigError


def config(env="CartPole-v1", **algorithm):
    return OmegaConf.create(
        {
            "base_dir": "test/ppo_${current_time:}",
            "progress_bar": False,
            "gym_env": {"env_name": env},
            "algorithm": {
                "seed": 1,
                "n_envs": 4,
                "transitions_per_env": 16,
                "batch_size": 16,
                "opt_epochs": 3,
                "max_steps": 256,
                "eval_interval": 10_000,
                "nb_evals": 2,
                **algorithm,
            },
        }
    )


def test_minibatch_indices_visit_every_index_exactly_once():
    for size, batch in [(10, 3), (256, 64), (7, 7), (5, 16), (45, 44)]:
        seen = torch.cat(list(minibatch_indices(size, batch, torch.Generator().manual_seed(0))))
        assert sorted(seen.tolist()) == list(range(size))


@pytest.mark.parametrize(
    "size, batch, sizes",
    [(45, 44, [45]), (100, 44, [44, 56]), (10, 3, [3, 3, 4]), (64, 16, [16] * 4), (5, 16, [5])],
)
def test_the_remainder_joins_the_last_minibatch(size, batch, sizes):
    assert [len(slice_) for slice_ in minibatch_indices(size, batch)] == sizes


def test_no_gradient_step_on_a_short_last_minibatch():
    """45 transitions, batch_size 44: one step on 45 per epoch, not one on 44 and one on 1."""
    algo = PPOClip(config(batch_size=44, opt_epochs=2))
    workspace = next(algo.iter_partial_episodes())
    rollout = algo.prepare_rollout(workspace)
    rollout = rollout.select(torch.arange(45))
    sizes = []
    original = algo.train_minibatch

    def recording(batch):
        sizes.append(len(batch))
        return original(batch)

    algo.train_minibatch = recording
    metrics = algo.update(rollout)
    assert sizes == [45, 45]
    assert metrics["minibatches"] == 2


class CountingPPO(PPOClip):
    """Records which rollout samples each minibatch used."""

    def prepare_rollout(self, workspace):
        rollout = super().prepare_rollout(workspace)
        # Tag each transition with its index in the observation's first slot.
        rollout.observations = rollout.observations.clone()
        rollout.observations[:, 0] = torch.arange(len(rollout), dtype=torch.float32)
        self.visits = []
        self.rollout_size = len(rollout)
        return rollout

    def train_minibatch(self, batch):
        self.visits.append(batch.observations[:, 0].long().tolist())
        return super().train_minibatch(batch)


def test_each_epoch_visits_every_valid_transition_exactly_once():
    algo = CountingPPO(config(max_steps=64, opt_epochs=3, batch_size=16))
    algo.run()
    per_epoch = algo.rollout_size // 16  # minibatches in one pass: the remainder joins the last
    assert len(algo.visits) == 3 * per_epoch
    assert all(16 <= len(visit) < 32 for visit in algo.visits)
    for epoch in range(3):
        indices = sum(algo.visits[epoch * per_epoch : (epoch + 1) * per_epoch], [])
        assert sorted(indices) == list(range(algo.rollout_size))


def parameters(algo):
    """Copies of the policy's and the critic's parameters."""
    agents = (algo.train_policy, algo.critic_agent)
    return [p.clone() for agent in agents for p in agent.parameters()]


def test_target_kl_stops_the_update_before_the_step():
    algo = PPOClip(config(max_steps=128, target_kl=1e-12, opt_epochs=5))
    calls = []  # (parameters before, result, parameters after) of each minibatch
    original = algo.train_minibatch

    def recording(batch):
        before = parameters(algo)
        metrics = original(batch)
        calls.append((before, metrics, parameters(algo)))
        return metrics

    algo.train_minibatch = recording
    algo.run()
    # The first minibatch of each rollout has ratio 1 (KL 0) and steps; the
    # second sees KL > 1.5e-12 and stops: two calls per rollout, not 5 epochs' worth.
    assert len(calls) == 2 * algo.nb_rollouts
    assert algo.stopped_early
    for number, (before, metrics, after) in enumerate(calls):
        stopped = number % 2 == 1
        assert (metrics is None) == stopped
        unchanged = all(torch.equal(b, a) for b, a in zip(before, after, strict=True))
        assert unchanged == stopped, f"call {number}: stopped {stopped}, unchanged {unchanged}"


def test_an_update_stopped_at_its_first_minibatch_leaves_the_parameters_as_they_were():
    algo = PPOClip(config(target_kl=1e-3))
    workspace = next(algo.iter_partial_episodes())
    rollout = algo.prepare_rollout(workspace)
    with torch.no_grad():  # the policy has moved away from the old one: KL > 1.5e-3 at once
        for parameter in algo.train_policy.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    before = parameters(algo)
    metrics = algo.update(rollout)
    assert algo.stopped_early and metrics["minibatches"] == 0
    for b, a in zip(before, parameters(algo), strict=True):
        assert torch.equal(b, a)


def test_learning_rate_and_clip_range_anneal_linearly():
    algo = PPOClip(config(max_steps=256, anneal_lr=True, anneal_clip_range=True))
    rates, clips, steps = [], [], []
    original = algo.update

    def recording(rollout):
        metrics = original(rollout)
        rates.append(algo.learning_rate)
        clips.append(algo.clip_range)
        steps.append(algo.nb_steps)
        return metrics

    algo.update = recording
    algo.run()
    steps.insert(0, 0)
    assert rates[0] == pytest.approx(3e-4) and clips[0] == pytest.approx(0.2)
    for before, rate, clip in zip(steps, rates, clips, strict=False):
        assert rate == pytest.approx(3e-4 * (1 - before / 256))
        assert clip == pytest.approx(0.2 * (1 - before / 256))
    assert rates[-1] < 3e-4 * 0.3


def gradients(agent):
    """An agent's gradients after a step; flat parameters keep a zeroed one allocated."""
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in agent.parameters()]


@pytest.mark.parametrize("flat", [True, False])
def test_each_loss_reaches_only_its_own_agent_through_the_summed_backward(flat):
    """One backward pass through the weighted sum: with the critic's weight at 0, the
    critic gets no gradient (the policy loss does not reach it), and with the policy's
    and entropy's at 0, the policy gets none (the value loss does not reach it)."""
    results = {}
    for zeroed in ("critic_coef", "policy_coef"):
        algo = PPOClip(config(entropy_coef=0.01, flat_parameters=flat))
        workspace = next(algo.iter_partial_episodes())
        rollout = algo.prepare_rollout(workspace)
        setattr(algo.config.algorithm, zeroed, 0.0)
        if zeroed == "policy_coef":
            algo.config.algorithm.entropy_coef = 0.0
        algo.train_minibatch(rollout)
        results[zeroed] = gradients(algo.train_policy), gradients(algo.critic_agent)
    policy_gradients, critic_gradients = results["critic_coef"]
    assert not any(g.any() for g in critic_gradients)
    assert any(g.any() for g in policy_gradients)
    policy_gradients, critic_gradients = results["policy_coef"]
    assert not any(g.any() for g in policy_gradients)
    assert any(g.any() for g in critic_gradients)


def test_old_agents_follow_the_trained_ones_after_each_update():
    algo = PPOClip(config(max_steps=128))
    algo.run()
    for new, old in zip(algo.train_policy.parameters(), algo.old_policy.parameters(), strict=True):
        assert torch.equal(new, old)
    assert not any(p.requires_grad for p in algo.old_policy.parameters())


def test_policy_type_that_does_not_fit_the_action_space_is_a_clear_error():
    with pytest.raises(ValueError, match="use 'GaussianPolicy'"):
        PPOClip(config(env="Pendulum-v1", policy_type="DiscretePolicy"))


def test_bad_config_fails_before_training():
    with pytest.raises(ConfigError, match="algorithm.clip_range"):
        PPOClip(config(clip_range=-0.1))


def test_penalty_variant_adapts_its_kl_coefficient():
    algo = PPOPenalty(config(max_steps=128, kl_penalty={"target": 1e-9, "initial_coef": 1.0}))
    algo.run()
    # The KL after an update is far above 1.5e-9: beta doubles each update.
    assert algo.kl_coef == pytest.approx(2.0**algo.nb_rollouts)


def test_continuous_control_with_normalization_saves_statistics_that_replay():
    algo = PPOClip(
        config(
            env="Pendulum-v1",
            transitions_per_env=32,
            batch_size=32,
            max_steps=512,
            normalize_observations=True,
            normalize_rewards=True,
        )
    )
    algo.run()
    algo.evaluate(force=True)
    stats = algo.train_policy.obs_normalizer.stats
    assert float(stats.count) > 0 and not torch.allclose(stats.mean, torch.zeros(3).double())
    checkpoint = read_checkpoint(algo.base_dir / "best_agent.pt")
    assert float(checkpoint["reward_scaler"]["stats.count"]) > 0
    replayed = load_agent(algo.base_dir / "best_agent.pt")
    obs = torch.randn(5, 3) * 3
    best = algo.best_policy.wrapped
    torch.testing.assert_close(replayed.wrapped.dist(obs).mean, best.dist(obs).mean)


def test_stop_at_reward_ends_training_with_the_best_agent_saved(capsys):
    algo = PPOClip(config(max_steps=10_000, eval_interval=64, stop_at_reward=-1e9))
    algo.run()
    assert algo.nb_steps < 10_000
    assert (algo.base_dir / "best_agent.pt").exists()
    assert "stop_at_reward" in capsys.readouterr().out


def test_training_metrics_reach_tensorboard():
    algo = PPOClip(config(max_steps=256))
    algo.run()
    algo.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(algo.base_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "train/policy_loss", "train/value_loss", "train/entropy", "train/approx_kl",
        "train/clip_fraction", "train/explained_variance", "train/learning_rate",
        "train/steps_per_second", "rollout/episode_return", "rollout/episode_length",
    }  # fmt: skip
    assert expected <= tags


class GradientRecordingPPO(PPOClip):
    """Keeps the policy's gradients of the first minibatch step, then stops learning."""

    def train_minibatch(self, batch):
        metrics = super().train_minibatch(batch)
        if not hasattr(self, "first_gradients"):
            self.first_gradients = [p.grad.clone() for p in self.train_policy.parameters()]
            self.first_entropy = metrics["entropy"]
        return metrics


def test_a_rollout_in_one_minibatch_gets_the_gradient_of_its_shuffled_copy():
    # batch_size 64 >= the 64 transitions of a 4 x 16 rollout: no shuffle is drawn, and
    # the gradient is that of the same transitions in a shuffled order.
    algo = GradientRecordingPPO(config(max_steps=64, batch_size=64, opt_epochs=1))
    generator_state = algo._generator.get_state()
    workspace = next(algo.iter_partial_episodes(algo.config.algorithm.transitions_per_env + 1))
    rollout = algo.prepare_rollout(workspace)
    algo.update(rollout)
    assert torch.equal(algo._generator.get_state(), generator_state)

    shuffled_run = GradientRecordingPPO(config(max_steps=64, batch_size=64, opt_epochs=1))
    workspace = next(
        shuffled_run.iter_partial_episodes(algo.config.algorithm.transitions_per_env + 1)
    )
    shuffled = shuffled_run.prepare_rollout(workspace)
    shuffled = shuffled.select(
        torch.randperm(len(shuffled), generator=torch.Generator().manual_seed(3))
    )
    shuffled_run.update(shuffled)
    for ours, reference in zip(algo.first_gradients, shuffled_run.first_gradients, strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-7)
    assert algo.first_entropy == pytest.approx(shuffled_run.first_entropy, rel=1e-6)
    algo.close()
    shuffled_run.close()


def test_flat_parameters_train_like_separate_parameters():
    """Same updates, one tensor: the runs differ only by float rounding (norm sums)."""
    runs = {}
    for flat in (True, False):
        algo = PPOClip(config(max_steps=256, flat_parameters=flat, anneal_lr=True))
        algo.run()
        runs[flat] = algo
        assert hasattr(algo.policy_optimizer, "flat_parameters") is flat
        algo.close()
    for ours, theirs in zip(
        runs[True].train_policy.parameters(), runs[False].train_policy.parameters(), strict=True
    ):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    for ours, theirs in zip(
        runs[True].critic_agent.parameters(), runs[False].critic_agent.parameters(), strict=True
    ):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    assert runs[True].nb_steps == runs[False].nb_steps


@pytest.mark.parametrize("target_kl", [None, 10.0])
def test_log_only_diagnostics_come_from_the_last_pass(target_kl):
    """entropy and clip_fraction cost operations every step: measured on the last pass only,
    or on every minibatch when target_kl may end the update before its last pass."""
    algo = PPOClip(config(opt_epochs=3, target_kl=target_kl))
    rollout = algo.prepare_rollout(next(algo.iter_partial_episodes()))
    seen = []
    original = algo.train_minibatch

    def recording(batch):
        seen.append(algo._diagnose)
        return original(batch)

    algo.train_minibatch = recording
    metrics = algo.update(rollout)
    per_pass = len(seen) // 3
    expected = [True] * len(seen) if target_kl else [False] * 2 * per_pass + [True] * per_pass
    assert seen == expected
    assert {"entropy", "clip_fraction", "approx_kl", "policy_loss", "value_loss"} <= set(metrics)
    assert 0.0 <= metrics["clip_fraction"] <= 1.0 and metrics["entropy"] > 0.0
    assert algo._diagnose  # a notebook's own call to train_minibatch gets every diagnostic
    assert "clip_fraction" in algo.train_minibatch(rollout)
