"""Bad input gets one clear line naming its cause, never a torch or gymnasium traceback.

Before: a NaN observation failed inside torch's Categorical (discrete policy) or
was reported as a non-finite reward (continuous policy); an unknown
``gym_env.env_args`` key ended in a 37-line gymnasium traceback; a hidden layer of
width 0 was built without complaint and a negative one failed inside torch.
"""

import pytest
import torch
from bbrl.agents import Agents, TemporalAgent
from bbrl.workspace import Workspace
from omegaconf import OmegaConf

from bbrl_ppo import DiscretePolicy, PPOClip, VAgent, VectorGymAgent
from bbrl_ppo.agents.networks import build_mlp, build_ortho_mlp, make_activation
from bbrl_ppo.errors import InvalidInputError, NumericalError, UserError
from tests.scripted import ScriptedActions


def config(env, env_args=None, **algorithm):
    return OmegaConf.create(
        {
            "base_dir": "test/bad_${current_time:}",
            "progress_bar": False,
            "gym_env": {"env_name": env, "env_args": env_args or {}},
            "algorithm": {
                "seed": 1,
                "n_envs": 3,
                "transitions_per_env": 8,
                "batch_size": 8,
                "opt_epochs": 1,
                "max_steps": 96,
                "eval_interval": 10_000,
                "nb_evals": 1,
                **algorithm,
            },
        }
    )


# -- non-finite observations ------------------------------------------------------------
@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_a_nan_observation_names_the_env_and_its_step(vectorization):
    # Env i is seeded 7 + i: env 1 (seed 8) sends a NaN at step 3 of its episode.
    env_agent = VectorGymAgent(
        "tests.space_envs:NanObservation-v0",
        3,
        env_args={"nan_seed": 8, "nan_step": 3},
        seed=7,
        vectorization=vectorization,
    )
    workspace = Workspace()
    try:
        with pytest.raises(NumericalError) as error:
            run = TemporalAgent(Agents(env_agent, ScriptedActions(torch.ones(10, 3).long())))
            run(workspace, t=0, n_steps=10)
    finally:
        env_agent.close()
    message = str(error.value)
    assert "Non-finite observation [nan, 3.0]" in message
    assert "env 1 of 3 at step 3 of its episode" in message
    assert not isinstance(error.value, UserError), "a run set up right, stopped: not a user error"


@pytest.mark.parametrize(
    "env_name",
    ["tests.space_envs:NanObservation-v0", "tests.space_envs:ContinuousNanObservation-v0"],
)
def test_training_on_a_nan_observation_stops_on_the_observation(env_name):
    algo = PPOClip(config(env_name, {"nan_seed": 2, "nan_step": 5}))
    with pytest.raises(NumericalError, match="Non-finite observation .* env 1 of 3 at step 5"):
        algo.run()


# -- unknown env arguments --------------------------------------------------------------
def test_an_unknown_env_argument_names_the_accepted_ones():
    with pytest.raises(InvalidInputError) as error:
        VectorGymAgent("FrozenLake-v1", 1, env_args={"bad_key": 1})
    message = str(error.value)
    assert "\n" not in message
    assert "'bad_key'" in message and "FrozenLake-v1" in message
    for accepted in ("map_name", "is_slippery", "desc", "max_episode_steps"):
        assert accepted in message


def test_a_misspelt_env_argument_suggests_the_right_one():
    with pytest.raises(InvalidInputError, match="did you mean 'is_slippery'"):
        PPOClip(config("FrozenLake-v1", {"is_slipery": False}))


def test_env_arguments_of_a_module_env_are_checked_too():
    with pytest.raises(InvalidInputError, match="'begin'.*it accepts start, render_mode"):
        VectorGymAgent("tests.toy_envs:LineWorld-v0", 1, env_args={"begin": 1})


def test_accepted_env_arguments_still_reach_the_env():
    frozen = VectorGymAgent("FrozenLake-v1", 1, env_args={"map_name": "8x8", "is_slippery": False})
    assert frozen.observation_space.n == 64
    limited = VectorGymAgent("CartPole-v1", 1, env_args={"max_episode_steps": 7})
    assert limited.envs.envs[0].spec.max_episode_steps == 7


def test_an_env_taking_any_keyword_is_left_to_decide():
    agent = VectorGymAgent("tests.space_envs:AnyArguments-v0", 1, env_args={"whatever": 3})
    assert agent.envs.envs[0].unwrapped.options == {"whatever": 3}


# -- hidden-layer widths -----------------------------------------------------------------
@pytest.mark.parametrize("builder", [build_mlp, build_ortho_mlp])
@pytest.mark.parametrize("sizes", [[4, 0, 2], [4, 16, -3, 2], [4, 2.5, 2], [(2, 2), 8, 2]])
def test_mlp_widths_must_be_integers_of_at_least_one(builder, sizes):
    with pytest.raises(InvalidInputError, match=r"MLP layer sizes must be integers >= 1") as error:
        builder(sizes, make_activation("tanh"))
    assert str(sizes) in str(error.value)


def test_agents_with_an_empty_hidden_layer_are_refused():
    with pytest.raises(InvalidInputError, match=r"hidden \[64, 0\]"):
        DiscretePolicy(4, [64, 0], 2)
    with pytest.raises(InvalidInputError, match=r"hidden \[-1\]"):
        VAgent(4, [-1])
