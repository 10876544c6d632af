"""Full-episode mode steps only the envs still running: no hidden episodes.

A vector env resets a finished env and steps it again; stepping until every env
is done used to play hidden episodes in the envs that finished first (measured:
369 env steps for 270 counted by `iter_episodes`, 494 for an evaluation of 302),
and those moved the envs' RNG, so the next evaluation's start states depended on
the policy evaluated before.
"""

import gymnasium as gym
import pytest
import torch
from bbrl.agents import Agent, Agents, KWAgentWrapper, TemporalAgent
from bbrl.workspace import Workspace
from omegaconf import OmegaConf

from bbrl_ppo import DiscretePolicy, EpisodicAlgo, VectorGymAgent
from bbrl_ppo.algorithms.episodic import count_transitions
from bbrl_ppo.algorithms.evaluation import play_episodes
from tests.space_envs import CheckedActions


class StepCounter(gym.Wrapper):
    """Counts the real `step` calls the vector env makes (resets are not steps)."""

    calls = 0

    def step(self, action):
        StepCounter.calls += 1
        return self.env.step(action)


class ConstantAction(Agent):
    """Always the same discrete action: short CartPole episodes of different lengths."""

    def __init__(self, action: int):
        super().__init__(name="constant")
        self.action = action

    def forward(self, t: int, **kwargs) -> None:
        n_envs = self.get(("env/env_obs", t)).shape[0]
        self.set(("action", t), torch.full((n_envs,), self.action, dtype=torch.long))


class Alternating(Agent):
    """Left, right, left...: CartPole episodes much longer than a constant action's."""

    def __init__(self):
        super().__init__(name="alternating")

    def forward(self, t: int, **kwargs) -> None:
        n_envs = self.get(("env/env_obs", t)).shape[0]
        self.set(("action", t), torch.full((n_envs,), t % 2, dtype=torch.long))


class UntrainedEpisodes(EpisodicAlgo):
    """Full episodes of an untrained policy, nothing learnt."""

    def __init__(self, cfg, env_wrappers=()):
        super().__init__(cfg, autoreset=False, env_wrappers=env_wrappers)
        obs_size, act_size = self.train_env.get_obs_and_actions_sizes()
        self.train_policy = DiscretePolicy(obs_size, [8], act_size)
        self.eval_policy = KWAgentWrapper(self.train_policy, stochastic=False)


def config(**algorithm):
    return OmegaConf.create(
        {
            "base_dir": "test/full_${current_time:}",
            "progress_bar": False,
            "gym_env": {"env_name": "CartPole-v1"},
            "algorithm": {
                "seed": 3,
                "n_envs": 4,
                "nb_evals": 3,
                "eval_interval": 100,
                "max_epochs": 3,
                **algorithm,
            },
        }
    )


def test_iter_episodes_makes_exactly_the_env_steps_it_counts():
    StepCounter.calls = 0
    algo = UntrainedEpisodes(config(), env_wrappers=[StepCounter])
    episode_steps = 0
    for workspace in algo.iter_episodes():
        episode_steps += int(workspace["env/timestep"][-1].sum())
    assert algo.nb_steps == episode_steps
    assert StepCounter.calls == algo.nb_steps


def test_each_evaluation_makes_exactly_its_episodes_steps():
    cfg = config(nb_evals=6)
    cfg.collect_stats = True
    algo = UntrainedEpisodes(cfg, env_wrappers=[StepCounter])
    for _ in range(3):
        StepCounter.calls = 0
        algo.evaluate(force=True)
        # CartPole pays 1 a step: the returns add up to the steps played.
        assert StepCounter.calls == int(algo.eval_rewards[-1].sum())


def run_episodes(env_agent: VectorGymAgent, policy: Agent) -> Workspace:
    workspace = Workspace()
    TemporalAgent(Agents(env_agent, policy))(workspace, t=0, stop_variable="env/done")
    return workspace


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_full_episodes_step_each_env_once_per_counted_step(vectorization):
    env_agent = VectorGymAgent(
        "CartPole-v1",
        4,
        autoreset=False,
        seed=11,
        wrappers=[CheckedActions],
        vectorization=vectorization,
    )
    try:
        for policy in (ConstantAction(0), Alternating(), ConstantAction(1)):
            before = sum(env_agent.envs.call("steps"))
            workspace = run_episodes(env_agent, policy)
            steps = sum(env_agent.envs.call("steps")) - before
            assert workspace["env/done"][-1].all()
            assert steps == count_transitions(workspace["env/done"])
            assert steps == int(workspace["env/timestep"][-1].sum())
    finally:
        env_agent.close()


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_partial_episodes_step_each_env_once_per_counted_step(vectorization):
    env_agent = VectorGymAgent(
        "CartPole-v1", 3, seed=5, wrappers=[CheckedActions], vectorization=vectorization
    )
    try:
        workspace = Workspace()
        TemporalAgent(Agents(env_agent, ConstantAction(1)))(workspace, t=0, n_steps=40)
        assert workspace["env/done"].any(), "the scenario must cross episode ends"
        assert sum(env_agent.envs.call("steps")) == count_transitions(workspace["env/done"])
    finally:
        env_agent.close()


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_evaluation_start_states_do_not_depend_on_the_policies_evaluated_before(vectorization):
    """Two evaluation envs with one seed, driven by different policies, then by the same one."""

    def eval_env():
        return VectorGymAgent(
            "CartPole-v1", 4, autoreset=False, seed=21, vectorization=vectorization
        )

    first, second = eval_env(), eval_env()
    try:
        # Evaluations 1 and 2: episodes of very different lengths in the two env agents.
        for policy_first, policy_second in [
            (ConstantAction(0), Alternating()),
            (Alternating(), ConstantAction(1)),
        ]:
            a = run_episodes(first, policy_first)
            b = run_episodes(second, policy_second)
            assert torch.equal(a["env/env_obs"][0], b["env/env_obs"][0])
            assert a.time_size() != b.time_size(), "the two runs must differ in length"
        # Evaluation 3, with one policy: the same start states, hence the same episodes.
        a = run_episodes(first, ConstantAction(0))
        b = run_episodes(second, ConstantAction(0))
        assert torch.equal(a["env/env_obs"], b["env/env_obs"])
    finally:
        first.close()
        second.close()


def test_play_episodes_returns_match_the_steps_made():
    env_agent = VectorGymAgent("CartPole-v1", 5, autoreset=False, seed=2, wrappers=[CheckedActions])
    for policy in (Alternating(), ConstantAction(0)):
        before = sum(env_agent.envs.call("steps"))
        returns = play_episodes(TemporalAgent(Agents(env_agent, policy)))
        # CartPole pays 1 a step: each return is its episode's length.
        assert sum(env_agent.envs.call("steps")) - before == int(returns.sum())


def test_a_finished_env_repeats_its_final_frame_and_is_not_stepped():
    # Env 0 moves right every step: terminates at t=3. Env 1 never moves: truncated at t=5.
    env_agent = VectorGymAgent(
        "tests.toy_envs:LineWorld-v0", 2, autoreset=False, seed=0, wrappers=[CheckedActions]
    )
    workspace = Workspace()
    actions = torch.tensor([[1, 0]] * 10)
    for t in range(6):
        env_agent(workspace, t=t)
        workspace.set("action", t, actions[t])
    assert env_agent.envs.call("steps") == (3, 5)
    assert workspace["env/env_obs"][:, 0, 0].tolist() == [0, 1, 2, 3, 3, 3]
    assert workspace["env/done"][:, 0].tolist() == [0, 0, 0, 1, 1, 1]
    assert workspace["env/terminated"][:, 0].tolist() == [0, 0, 0, 1, 1, 1]
    assert workspace["env/truncated"][:, 1].tolist() == [0, 0, 0, 0, 0, 1]
    assert workspace["env/reward"][:, 0].tolist() == [0, 1, 2, 10, 0, 0]
    assert workspace["env/timestep"][:, 0].tolist() == [0, 1, 2, 3, 3, 3]
