"""EpisodicAlgo end to end: step counting, evaluation, best agent, replay, video."""

import csv
import math

import gymnasium as gym
import pytest
import torch
from omegaconf import OmegaConf

from bbrl_ppo import (
    DiscretePolicy,
    EpisodicAlgo,
    KWAgentWrapper,
    iter_episodes,
    iter_partial_episodes,
    load_agent,
    read_checkpoint,
)
from bbrl_ppo.algorithms.episodic import count_transitions


class StepCounter(gym.Wrapper):
    """Counts the real `step` calls the vector env makes (resets are not steps)."""

    calls = 0

    def step(self, action):
        StepCounter.calls += 1
        return self.env.step(action)


def config(**algorithm):
    return OmegaConf.create(
        {
            "base_dir": "test/run_${current_time:}",
            "logger": {"every_n_seconds": 10},
            "progress_bar": False,
            "gym_env": {"env_name": "CartPole-v1"},
            "algorithm": {
                "seed": 3,
                "n_envs": 4,
                "n_steps": 16,
                "nb_evals": 3,
                "eval_interval": 100,
                "max_epochs": 10,
                **algorithm,
            },
        }
    )


class UntrainedDiscrete(EpisodicAlgo):
    """The smallest algorithm: an untrained policy, nothing learnt."""

    #: Every instance of the running test, closed after it (`_close_algorithms`).
    made: list["UntrainedDiscrete"] = []

    def __init__(self, cfg, autoreset=True, env_wrappers=()):
        super().__init__(cfg, autoreset=autoreset, env_wrappers=env_wrappers)
        UntrainedDiscrete.made.append(self)
        obs_size, act_size = self.train_env.get_obs_and_actions_sizes()
        self.train_policy = DiscretePolicy(obs_size, [8], act_size)
        self.eval_policy = KWAgentWrapper(self.train_policy, stochastic=False)


@pytest.fixture(autouse=True)
def _close_algorithms():
    """Stop each test's tensorboard writers with the test.

    Left open, a writer's thread flushes two minutes later, into a temporary directory
    that pytest has removed by then (a warning from another test's time).
    """
    yield
    while UntrainedDiscrete.made:
        algo = UntrainedDiscrete.made.pop()
        if algo.logger is not None:
            algo.logger.close()


def test_count_transitions_skips_reset_steps_and_the_copied_step():
    done = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 1]], dtype=torch.bool)
    # Pairs 0->1 (2 envs), 1->2 (env 1 only: env 0 was reset), 2->3 (2 envs).
    assert count_transitions(done) == 5


def test_partial_episodes_copy_the_last_step_and_count_real_transitions():
    StepCounter.calls = 0
    algo = UntrainedDiscrete(config(max_epochs=6), env_wrappers=[StepCounter])
    previous_last_obs = None
    for workspace in iter_partial_episodes(algo, 16):
        assert workspace.time_size() == 16
        obs = workspace["env/env_obs"]
        if previous_last_obs is not None:
            assert torch.equal(obs[0], previous_last_obs)
        previous_last_obs = obs[-1].clone()
    assert algo.epoch == 6
    assert algo.nb_steps == StepCounter.calls


def test_step_budget_stops_the_loop():
    algo = UntrainedDiscrete(config(max_epochs=None, max_steps=200))
    epochs = sum(1 for _ in algo.iter_partial_episodes())
    # 4 envs x 15 new steps per workspace at most: 200 steps need at least 4 workspaces.
    assert algo.nb_steps >= 200 and epochs >= 4
    assert algo.nb_steps - 60 < 200, "stops as soon as the budget is reached"


def test_full_episodes_and_their_step_count():
    algo = UntrainedDiscrete(config(max_epochs=3), autoreset=False)
    episode_steps = 0
    for workspace in iter_episodes(algo):
        assert workspace["env/done"][-1].all()
        episode_steps += int(workspace["env/timestep"][-1].sum())
    assert algo.nb_steps == episode_steps


def test_wrong_iteration_for_the_reset_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="autoreset=True"):
        next(UntrainedDiscrete(config(), autoreset=False).iter_partial_episodes())
    with pytest.raises(ValueError, match="autoreset=False"):
        next(UntrainedDiscrete(config(), autoreset=True).iter_episodes())


def test_missing_budget_and_missing_keys_are_clear_errors():
    with pytest.raises(ValueError, match="budget"):
        UntrainedDiscrete(config(max_epochs=None))
    broken = config()
    del broken.algorithm["nb_evals"]
    with pytest.raises(ValueError, match="algorithm.nb_evals"):
        UntrainedDiscrete(broken)


def test_evaluate_runs_every_eval_interval_and_writes_evals_csv():
    algo = UntrainedDiscrete(config(max_epochs=8, eval_interval=100))
    steps_after_each_epoch = []
    for _ in algo.iter_partial_episodes():
        algo.evaluate()
        steps_after_each_epoch.append(algo.nb_steps)
    # On the grid of multiples of 100: the first epoch after each one is crossed.
    expected, last = [], 0
    for steps in steps_after_each_epoch:
        if steps // 100 > last // 100:
            expected.append(steps)
            last = steps
    assert len(expected) >= 3
    assert any(b - a < 100 for a, b in zip(expected[:-1], expected[1:], strict=True))
    with (algo.base_dir / "evals.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [int(row["nb_steps"]) for row in rows] == expected
    for row in rows:
        assert float(row["reward_min"]) <= float(row["reward_mean"]) <= float(row["reward_max"])
        assert float(row["wall_s"]) >= 0


def test_evaluation_uses_nb_evals_full_episodes_with_other_seeds_than_training():
    algo = UntrainedDiscrete(config())
    assert algo.eval_env.num_envs == 3 and not algo.eval_env.autoreset
    assert algo.train_env.autoreset
    algo.evaluate(force=True)
    assert math.isfinite(algo.best_reward) and algo.best_reward > 0
    train_first, _ = algo.train_env.envs.reset(seed=algo.cfg.algorithm.seed)
    eval_first, _ = algo.eval_env.envs.reset(seed=algo.cfg.algorithm.seed + 1_000_003)
    assert not (train_first[:3] == eval_first).all()


def test_best_policy_is_kept_saved_reloaded_and_replays_the_same_actions():
    algo = UntrainedDiscrete(config())
    assert algo.evaluate(force=True) is True
    assert algo.best_policy is not algo.eval_policy
    # A worse evaluation does not replace the best one.
    assert algo.register_evaluation(torch.tensor([-1.0, -2.0])) is False
    checkpoint_path = algo.base_dir / "best_agent.pt"
    checkpoint = read_checkpoint(checkpoint_path)
    assert checkpoint["env_name"] == "CartPole-v1"
    assert checkpoint["wrapper_kwargs"] == {"stochastic": False}
    assert checkpoint["reward"] == algo.best_reward

    # Plain data only: loadable without unpickling code.
    torch.load(checkpoint_path, weights_only=True)
    replayed = load_agent(checkpoint_path)
    obs = torch.randn(32, 4)
    expected = algo.best_policy.wrapped.model(obs).argmax(-1)
    from bbrl.workspace import Workspace

    workspace = Workspace()
    workspace.set("env/env_obs", 0, obs)
    replayed(workspace, t=0)
    assert torch.equal(workspace.get("action", 0), expected)


def test_best_policy_copy_does_not_follow_later_training():
    algo = UntrainedDiscrete(config())
    algo.evaluate(force=True)
    saved = algo.best_policy.wrapped.model[0].weight.clone()
    with torch.no_grad():
        algo.train_policy.model[0].weight.add_(1.0)
    assert torch.equal(algo.best_policy.wrapped.model[0].weight, saved)


def test_save_best_false_writes_no_checkpoint():
    cfg = config()
    cfg.save_best = False
    algo = UntrainedDiscrete(cfg)
    algo.evaluate(force=True)
    assert algo.best_policy is not None
    assert not (algo.base_dir / "best_agent.pt").exists()


def test_run_directory_config_and_tensorboard_events():
    algo = UntrainedDiscrete(config())
    assert str(algo.base_dir).startswith("outputs/test/run_")
    saved = OmegaConf.load(algo.base_dir / "config.yaml")
    assert saved.base_dir == algo.cfg.base_dir and "${" not in saved.base_dir
    algo.evaluate(force=True)
    algo.logger.flush()
    assert list(algo.base_dir.glob("events.out.tfevents.*"))


def test_visualize_best_writes_a_video_headless():
    algo = UntrainedDiscrete(config())
    with pytest.raises(RuntimeError, match="No best policy"):
        algo.visualize_best()
    algo.evaluate(force=True)
    path = algo.visualize_best()
    assert path.name == "best_agent.mp4" and path.parent == algo.base_dir
    assert path.stat().st_size > 1000
    import imageio.v3 as iio

    frames = iio.imread(path)
    assert frames.ndim == 4 and frames.shape[0] > 5


def test_a_user_policy_class_is_saved_and_reloaded_into_an_instance():
    from torch import nn

    from bbrl_ppo import Agent

    class UserPolicy(Agent):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 2)

        def forward(self, t, **kwargs):
            self.set(("action", t), self.layer(self.get(("env/env_obs", t))).argmax(-1))

    algo = UntrainedDiscrete(config())
    algo.eval_policy = UserPolicy()
    algo.evaluate(force=True)
    path = algo.base_dir / "best_agent.pt"
    with pytest.raises(ValueError, match="pass an instance"):
        load_agent(path)
    fresh = load_agent(path, agent=UserPolicy())
    assert torch.equal(fresh.layer.weight, algo.best_policy.layer.weight)


def test_collected_evaluation_returns_are_saved_as_a_numpy_array():
    import numpy as np

    cfg = config(max_epochs=3)
    cfg.collect_stats = True
    algo = UntrainedDiscrete(cfg)
    for _ in algo.iter_partial_episodes():
        algo.evaluate(force=True)
    path = algo.save_stats()
    algo.close()
    stats = np.load(path)
    assert stats.shape == (3, 3)  # nb_evals episodes x 3 evaluations
    assert stats.min() >= 1.0  # CartPole returns count steps


def test_bbrl_utils_spellings_work_for_episodic_algorithms():
    # max_epochs is bbrl_utils' max_rollouts; n_steps the workspace length.
    algo = UntrainedDiscrete(config(max_epochs=2))
    sizes = [workspace.time_size() for workspace in iter_partial_episodes(algo)]
    assert sizes == [16, 16] and algo.epoch == algo.nb_rollouts == 2
    algo.close()
