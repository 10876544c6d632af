"""Observation and action spaces: what SB3 supports works, the rest is refused in one line.

Before: FrozenLake's Discrete observations ended in a 54-line dtype traceback, an
image observation in a TypeError inside the MLP builder, and a MultiDiscrete env
trained silently with a Gaussian policy sending actions outside its space.
"""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from bbrl.agents import Agents, TemporalAgent
from bbrl.workspace import Workspace
from omegaconf import OmegaConf
from torch.distributions import Bernoulli, Categorical, kl_divergence

from bbrl_ppo import GaussianPolicy, PPOClip, VectorGymAgent, load_agent
from bbrl_ppo.agents.distributions import IndependentBernoulli, MultiCategorical
from bbrl_ppo.agents.observations import ObservationEncoder, observation_encoding
from bbrl_ppo.agents.policies import POLICY_TYPES, MultiBinaryPolicy, MultiDiscretePolicy
from bbrl_ppo.agents.spaces import ACTION_SPACES
from bbrl_ppo.algorithms.ppo import PPOPenalty
from bbrl_ppo.algorithms.ppo_agents import FITTING_POLICY, policy_for_env
from bbrl_ppo.config.schema import ConfigError
from bbrl_ppo.errors import InvalidInputError, UnsupportedSpaceError
from tests.space_envs import CheckedActions


def config(env, **algorithm):
    return OmegaConf.create(
        {
            "base_dir": "test/spaces_${current_time:}",
            "progress_bar": False,
            "gym_env": {"env_name": env},
            "algorithm": {
                "seed": 1,
                "n_envs": 4,
                "transitions_per_env": 16,
                "batch_size": 16,
                "opt_epochs": 2,
                "max_steps": 300,
                "eval_interval": 100,
                "nb_evals": 3,
                **algorithm,
            },
        }
    )


def steps_made(algo) -> int:
    return sum(algo.train_env.envs.call("steps")) + sum(algo.eval_env.envs.call("steps"))


@pytest.mark.parametrize(
    "env_name, policy_name",
    [
        ("FrozenLake-v1", "DiscretePolicy"),
        ("tests.space_envs:MultiDiscreteTarget-v0", "MultiDiscretePolicy"),
        ("tests.space_envs:MultiDiscreteTargetBox-v0", "MultiDiscretePolicy"),
        ("tests.space_envs:MultiBinaryTarget-v0", "MultiBinaryPolicy"),
        ("tests.space_envs:ShapedSpaces-v0", "MultiDiscretePolicy"),
        ("tests.space_envs:ShiftedDiscrete-v0", "DiscretePolicy"),
    ],
)
def test_ppo_trains_with_every_action_in_the_space(env_name, policy_name):
    algo = PPOClip(config(env_name), env_wrappers=[CheckedActions])
    algo.run()  # CheckedActions raises on an action outside the space
    assert type(algo.train_policy).__name__ == policy_name
    assert algo.nb_steps >= 300 and len(algo.eval_history) == 3
    assert steps_made(algo) > algo.nb_steps, "evaluations stepped the envs too"
    # The best agent reloads from its weights-only checkpoint and acts in the space.
    policy = load_agent(algo.base_dir / "best_agent.pt")
    env_agent = VectorGymAgent(env_name, 2, autoreset=False, seed=0, wrappers=[CheckedActions])
    workspace = Workspace()
    TemporalAgent(Agents(env_agent, policy))(workspace, t=0, stop_variable="env/done")
    assert workspace["env/done"][-1].all()


def test_kl_penalty_variant_runs_on_multi_discrete_and_multi_binary_actions():
    for env_name in ("MultiDiscreteTarget-v0", "MultiBinaryTarget-v0"):
        algo = PPOPenalty(config(f"tests.space_envs:{env_name}", max_steps=128))
        algo.run()
        assert math.isfinite(algo.kl_coef) and algo.nb_steps >= 128


@pytest.mark.slow
def test_ppo_learns_the_right_action_of_each_dimension():
    # A uniform policy earns 0.36 a step (2.9 an episode), the best one 1 (8).
    algo = PPOClip(
        config(
            "tests.space_envs:MultiDiscreteTarget-v0",
            max_steps=3000,
            eval_interval=3000,
            nb_evals=8,
            opt_epochs=4,
        )
    )
    algo.run()
    assert algo.last_eval_reward >= 7.5


@pytest.mark.parametrize(
    "env_name, message",
    [
        ("tests.space_envs:ImageObservation-v0", "image observations need a CNN encoder"),
        ("tests.toy_envs:DictObservation-v0", "Unsupported observation space Dict"),
        ("tests.space_envs:TupleObservation-v0", "Unsupported observation space Tuple"),
        ("tests.space_envs:TextAction-v0", "Unsupported action space Text"),
    ],
)
def test_unsupported_spaces_are_refused_in_one_line_before_any_step(env_name, message):
    # The envs' step() raises: the refusal must come first.
    with pytest.raises(UnsupportedSpaceError, match=message) as error:
        PPOClip(config(env_name))
    assert "\n" not in str(error.value)
    assert isinstance(error.value, InvalidInputError)


def test_a_policy_type_for_another_action_space_is_refused():
    with pytest.raises(ConfigError, match="use 'MultiDiscretePolicy'"):
        PPOClip(config("tests.space_envs:MultiDiscreteTarget-v0", policy_type="GaussianPolicy"))
    with pytest.raises(ConfigError, match="use 'MultiBinaryPolicy'"):
        PPOClip(config("tests.space_envs:MultiBinaryTarget-v0", policy_type="DiscretePolicy"))


def test_every_supported_action_space_has_its_policy():
    assert set(FITTING_POLICY) == set(ACTION_SPACES)
    assert set(FITTING_POLICY.values()) <= set(POLICY_TYPES)


def test_float_actions_are_never_sent_to_an_integer_action_space():
    env_agent = VectorGymAgent("tests.space_envs:MultiDiscreteTargetBox-v0", 2, seed=0)
    policy = GaussianPolicy(2, [8], 3)
    workspace = Workspace()
    with pytest.raises(InvalidInputError, match=r"takes integers"):
        TemporalAgent(Agents(env_agent, policy))(workspace, t=0, n_steps=3)


def test_normalizing_one_hot_observations_is_refused():
    with pytest.raises(InvalidInputError, match="normalize_observations"):
        PPOClip(config("FrozenLake-v1", normalize_observations=True))


def test_sizes_are_those_of_the_policy_input_and_output():
    assert VectorGymAgent("FrozenLake-v1", 1).get_obs_and_actions_sizes() == (16, 4)
    multi = VectorGymAgent("tests.space_envs:MultiDiscreteTarget-v0", 1)
    assert multi.get_obs_and_actions_sizes() == (2, [3, 2, 4])
    assert not multi.is_discrete_action() and not multi.is_continuous_action()
    shaped = VectorGymAgent("tests.space_envs:ShapedSpaces-v0", 1)
    assert shaped.get_obs_and_actions_sizes() == (6, [2, 3, 4, 2])
    binary = VectorGymAgent("tests.space_envs:MultiBinaryTarget-v0", 1)
    assert binary.get_obs_and_actions_sizes() == (2, 4)


def test_observations_are_written_raw_and_encoded_by_the_policy():
    # bbrl's layout in the workspace: one int64 per env for a Discrete observation.
    env_agent = VectorGymAgent("FrozenLake-v1", 3, seed=0)
    workspace = Workspace()
    env_agent(workspace, t=0)
    observation = workspace.get("env/env_obs", 0)
    assert observation.dtype == torch.long and observation.shape == (3,)


def test_one_hot_encoding_of_discrete_and_multi_discrete_observations():
    discrete = gym.spaces.Discrete(5, start=10)
    encoder = ObservationEncoder(observation_encoding(discrete), 5)
    expected = torch.tensor([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    assert torch.equal(encoder(torch.tensor([10, 14])), expected)

    multi = gym.spaces.MultiDiscrete([3, 2], start=[1, -1])
    encoder = ObservationEncoder(observation_encoding(multi), 5)
    observations = torch.tensor([[[1, -1], [3, 0]]])  # (T=1, B=2, 2)
    features = encoder(observations)
    assert features.shape == (1, 2, 5)
    for row, (first, second) in zip(features[0], observations[0].tolist(), strict=True):
        reference = torch.cat(
            (
                torch.nn.functional.one_hot(torch.tensor(first - 1), 3),
                torch.nn.functional.one_hot(torch.tensor(second + 1), 2),
            )
        ).float()
        assert torch.equal(row, reference)


def test_boxes_of_any_rank_and_multi_binary_are_flattened_as_floats():
    box = gym.spaces.Box(-1.0, 1.0, shape=(2, 3), dtype=np.float32)
    encoder = ObservationEncoder(observation_encoding(box), 6)
    observations = torch.arange(48.0).reshape(4, 2, 2, 3)  # (T, B, 2, 3)
    assert torch.equal(encoder(observations), observations.reshape(4, 2, 6))

    bits = gym.spaces.MultiBinary(3)
    encoder = ObservationEncoder(observation_encoding(bits), 3)
    features = encoder(torch.tensor([[1, 0, 1]]))
    assert features.dtype == torch.float32 and features.tolist() == [[1.0, 0.0, 1.0]]

    flat = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
    assert observation_encoding(flat) is None  # float vectors go in as they are


def test_an_encoding_that_does_not_give_state_dim_features_is_refused():
    with pytest.raises(InvalidInputError, match="state_dim=4"):
        MultiDiscretePolicy(
            4, [8], [2], observation_encoding=observation_encoding(gym.spaces.Discrete(5))
        )


def test_multi_categorical_matches_independent_categoricals():
    torch.manual_seed(0)
    sizes = [3, 2, 4]
    logits = torch.randn(6, sum(sizes), requires_grad=True)
    other = torch.randn(6, sum(sizes))
    ours, theirs = MultiCategorical(logits, sizes), MultiCategorical(other, sizes)
    actions = torch.stack([torch.randint(0, n, (6,)) for n in sizes], -1)

    blocks, other_blocks = logits.split(sizes, -1), other.split(sizes, -1)
    log_prob = entropy = kl = 0.0
    for i in range(len(sizes)):
        reference = Categorical(logits=blocks[i])
        log_prob = log_prob + reference.log_prob(actions[:, i])
        entropy = entropy + reference.entropy()
        kl = kl + kl_divergence(reference, Categorical(logits=other_blocks[i]))
    torch.testing.assert_close(ours.log_prob(actions), log_prob)
    torch.testing.assert_close(ours.entropy(), entropy)
    torch.testing.assert_close(kl_divergence(ours, theirs), kl)
    mode = torch.stack([block.argmax(-1) for block in blocks], -1)
    assert torch.equal(ours.mode, mode)

    samples = ours.sample((500,))
    assert samples.shape == (500, 6, 3) and samples.dtype == torch.long
    for i, n in enumerate(sizes):
        assert set(samples[..., i].unique().tolist()) == set(range(n))


def test_independent_bernoulli_sums_over_bits_and_acts_on_logit_signs():
    torch.manual_seed(1)
    logits, other = torch.randn(5, 4), torch.randn(5, 4)
    ours = IndependentBernoulli(logits)
    actions = torch.randint(0, 2, (5, 4))
    p, q = torch.sigmoid(logits), torch.sigmoid(other)
    log_prob = (actions * p.log() + (1 - actions) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(ours.log_prob(actions), log_prob)
    torch.testing.assert_close(ours.entropy(), Bernoulli(logits=logits).entropy().sum(-1))
    kl = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).sum(-1)
    torch.testing.assert_close(kl_divergence(ours, IndependentBernoulli(other)), kl)
    assert ours.sample().dtype == torch.long
    # At probability 1/2, torch's Bernoulli.mode is NaN; the deterministic action is 0.
    assert IndependentBernoulli(torch.zeros(1, 3)).mode.tolist() == [[0, 0, 0]]


@pytest.mark.parametrize("cls, sizes", [(MultiDiscretePolicy, [3, 2]), (MultiBinaryPolicy, 4)])
def test_new_policies_write_actions_log_probs_and_entropies(cls, sizes):
    policy = cls(5, [8], sizes).with_prefix("old_policy/")
    workspace = Workspace()
    workspace.set("env/env_obs", 0, torch.randn(7, 5))
    policy(workspace, t=0)
    action = workspace.get("action", 0)
    assert action.dtype == torch.long
    assert action.shape == (7, 2 if cls is MultiDiscretePolicy else 4)
    policy(workspace, t=0, predict_proba=True, compute_entropy=True)
    log_prob = workspace.get("old_policy/logprob_predict", 0)
    torch.testing.assert_close(log_prob, policy.log_prob(workspace.get("env/env_obs", 0), action))
    assert log_prob.shape == (7,) and workspace.get("old_policy/entropy", 0).shape == (7,)
    policy(workspace, t=0, stochastic=False)
    expected = policy.dist(workspace.get("env/env_obs", 0)).mode
    assert torch.equal(workspace.get("action", 0), expected)


def test_shaped_actions_reach_the_env_in_its_shape_and_range():
    env_agent = VectorGymAgent(
        "tests.space_envs:ShapedSpaces-v0", 3, seed=0, wrappers=[CheckedActions]
    )
    policy = policy_for_env(env_agent, [8])
    assert isinstance(policy, MultiDiscretePolicy) and policy.action_sizes == [2, 3, 4, 2]
    workspace = Workspace()
    TemporalAgent(Agents(env_agent, policy))(workspace, t=0, n_steps=12)
    assert sum(env_agent.envs.call("steps")) > 0
