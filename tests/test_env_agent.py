"""VectorGymAgent: same workspace as bbrl's ParallelGymAgent, seeding, errors."""

from functools import partial

import numpy as np
import pytest
import torch
from bbrl.agents import Agents, TemporalAgent
from bbrl.agents.gymnasium import ParallelGymAgent
from bbrl.agents.gymnasium import make_env as bbrl_make_env
from bbrl.workspace import Workspace

from bbrl_ppo import VectorGymAgent
from tests.scripted import ScriptedActions, random_actions

ENV_VARIABLES = [
    "env/env_obs",
    "env/reward",
    "env/terminated",
    "env/truncated",
    "env/done",
    "env/cumulated_reward",
    "env/timestep",
]


def run(env_agent, actions, n_steps=None):
    workspace = Workspace()
    agent = TemporalAgent(Agents(env_agent, ScriptedActions(actions)))
    if n_steps is None:
        agent(workspace, t=0, stop_variable="env/done")
    else:
        agent(workspace, t=0, n_steps=n_steps)
    return workspace


def bbrl_first_reset_seeds(seed: int, n_envs: int) -> list[int]:
    """The seeds bbrl's ParallelGymAgent gives its envs at its first reset."""
    return [2 * n_envs * seed + k + 1 for k in range(n_envs)]


def assert_same_workspace(ours: Workspace, reference: Workspace, float_tolerance: float = 0.0):
    assert ours.time_size() == reference.time_size()
    for name in ENV_VARIABLES:
        expected, got = reference[name], ours[name]
        assert got.dtype == expected.dtype, name
        assert got.shape == expected.shape, name
        if float_tolerance and got.is_floating_point():
            torch.testing.assert_close(got, expected, atol=float_tolerance, rtol=1e-4)
        else:
            assert torch.equal(got, expected), f"{name} differs"


@pytest.mark.parametrize(
    "env_name, kind, space, float_tolerance",
    [
        ("CartPole-v1", "discrete", {"n": 2}, 0.0),
        # Intended difference: bbrl hands the env float64 actions (via .tolist()),
        # we hand it the action space's dtype (float32), as gymnasium's vector envs
        # do; Pendulum's dynamics then round differently in the last float32 bits.
        ("Pendulum-v1", "continuous", {"low": -2.0, "high": 2.0, "dim": 1}, 1e-2),
    ],
)
def test_same_workspace_as_bbrl_parallel_gym_agent_with_autoreset(
    env_name, kind, space, float_tolerance
):
    n_envs, steps, seed = 3, 450, 7
    actions = random_actions(kind, steps, n_envs, seed=0, **space)
    reference_agent = ParallelGymAgent(
        partial(bbrl_make_env, env_name, autoreset=True), n_envs
    ).seed(seed)
    ours_agent = VectorGymAgent(env_name, n_envs, seed=bbrl_first_reset_seeds(seed, n_envs))

    reference = run(reference_agent, actions, n_steps=steps)
    ours = run(ours_agent, actions, n_steps=steps)

    assert reference["env/done"].any(), "the scenario must cross episode ends"
    assert_same_workspace(ours, reference, float_tolerance)


def test_same_workspace_as_bbrl_in_full_episode_mode():
    n_envs, seed = 4, 3
    actions = random_actions("discrete", 600, n_envs, seed=1, n=2)
    reference_agent = ParallelGymAgent(
        partial(bbrl_make_env, "CartPole-v1", autoreset=False), n_envs
    ).seed(seed)
    ours_agent = VectorGymAgent(
        "CartPole-v1", n_envs, autoreset=False, seed=bbrl_first_reset_seeds(seed, n_envs)
    )
    reference = run(reference_agent, actions)
    ours = run(ours_agent, actions)
    assert_same_workspace(ours, reference)


def test_episode_layout_on_a_scripted_env():
    """Final obs stays at t, next episode starts at t+1 with reward 0 and flags off."""
    # Env 0 moves right every step: terminates at t=3. Env 1 never moves: truncated at t=5.
    actions = torch.tensor([[1, 0]] * 10)
    env_agent = VectorGymAgent("tests.toy_envs:LineWorld-v0", 2, seed=0)
    workspace = run(env_agent, actions, n_steps=8)

    obs = workspace["env/env_obs"][:, :, 0]
    assert obs[:, 0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert workspace["env/reward"][:, 0].tolist() == [0, 1, 2, 10, 0, 1, 2, 10]
    assert workspace["env/terminated"][:, 0].tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
    assert workspace["env/cumulated_reward"][:, 0].tolist() == [0, 1, 3, 13, 0, 1, 3, 13]
    assert workspace["env/timestep"][:, 0].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]

    assert obs[:, 1].tolist() == [0] * 8
    assert workspace["env/truncated"][:, 1].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert workspace["env/terminated"][:, 1].tolist() == [0] * 8
    assert workspace["env/done"][:, 1].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert workspace["env/timestep"][:, 1].tolist() == [0, 1, 2, 3, 4, 5, 0, 1]


def test_full_episode_mode_repeats_the_final_frame_until_all_are_done():
    actions = torch.tensor([[1, 0]] * 10)
    env_agent = VectorGymAgent("tests.toy_envs:LineWorld-v0", 2, autoreset=False, seed=0)
    workspace = run(env_agent, actions)

    assert workspace.time_size() == 6  # env 1 is truncated at t=5
    assert workspace["env/env_obs"][:, 0, 0].tolist() == [0, 1, 2, 3, 3, 3]
    assert workspace["env/reward"][:, 0].tolist() == [0, 1, 2, 10, 0, 0]
    assert workspace["env/done"][:, 0].tolist() == [0, 0, 0, 1, 1, 1]
    assert workspace["env/terminated"][:, 0].tolist() == [0, 0, 0, 1, 1, 1]
    assert workspace["env/cumulated_reward"][:, 0].tolist() == [0, 1, 3, 13, 13, 13]
    assert workspace["env/done"][-1].all()


def test_same_seed_same_workspace_and_different_seeds_differ():
    actions = random_actions("discrete", 100, 4, seed=2, n=2)

    def workspace_for(seed):
        return run(VectorGymAgent("CartPole-v1", 4, seed=seed), actions, n_steps=100)

    first, again, other = workspace_for(5), workspace_for(5), workspace_for(6)
    for name in ENV_VARIABLES:
        assert torch.equal(first[name], again[name]), name
    assert not torch.equal(first["env/env_obs"], other["env/env_obs"])


def test_async_vectorization_gives_the_sync_workspace():
    actions = random_actions("discrete", 60, 2, seed=3, n=2)
    sync = run(VectorGymAgent("CartPole-v1", 2, seed=1), actions, n_steps=60)
    async_agent = VectorGymAgent("CartPole-v1", 2, seed=1, vectorization="async")
    try:
        asynchronous = run(async_agent, actions, n_steps=60)
    finally:
        async_agent.close()
    for name in ENV_VARIABLES:
        assert torch.equal(sync[name], asynchronous[name]), name


def test_continuous_actions_are_clipped_for_the_env_only():
    actions = torch.tensor([[[3.0, -0.5]], [[-7.0, 0.25]], [[0.0, 0.0]]])
    workspace = run(VectorGymAgent("tests.toy_envs:RecordingBox-v0", 1, seed=0), actions, 3)
    # The env echoes what it received: clipped to [-1, 1].
    assert workspace["env/env_obs"][1:, 0].tolist() == [[1.0, -0.5], [-1.0, 0.25]]
    # The workspace still holds what the policy sampled.
    assert workspace["action"][:2, 0].tolist() == [[3.0, -0.5], [-7.0, 0.25]]


def test_env_args_reach_gymnasium_make():
    agent = VectorGymAgent("tests.toy_envs:LineWorld-v0", 1, env_args={"start": 2}, seed=0)
    workspace = run(agent, torch.ones(3, 1, dtype=torch.long), n_steps=2)
    assert workspace["env/env_obs"][:, 0, 0].tolist() == [2, 3]


def test_time_limit_comes_from_the_registration():
    agent = VectorGymAgent("CartPole-v1", 1, autoreset=False, seed=0)
    assert agent.envs.envs[0].spec.max_episode_steps == 500


def test_sizes_and_space_kinds_like_bbrl():
    cartpole = VectorGymAgent("CartPole-v1", 2)
    assert cartpole.get_obs_and_actions_sizes() == (4, 2)
    assert cartpole.is_discrete_action() and not cartpole.is_continuous_action()
    pendulum = VectorGymAgent("Pendulum-v1", 2)
    assert pendulum.get_obs_and_actions_sizes() == (3, 1)
    assert pendulum.is_continuous_action() and pendulum.is_continuous_state()


def test_unknown_env_id_suggests_close_ids():
    with pytest.raises(ValueError, match="CartPole-v1"):
        VectorGymAgent("CartPol-v1", 1)


def test_action_batch_of_the_wrong_size_is_refused():
    agent = VectorGymAgent("CartPole-v1", 3, seed=0)
    with pytest.raises(ValueError, match="3 environments"):
        run(agent, torch.zeros(5, 2, dtype=torch.long), n_steps=2)


def test_unsupported_observation_space_is_refused():
    with pytest.raises(ValueError, match="Unsupported observation space"):
        VectorGymAgent("tests.toy_envs:DictObservation-v0", 1)


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_number_of_envs_is_refused(bad):
    with pytest.raises(ValueError, match="num_envs"):
        VectorGymAgent("CartPole-v1", bad)


def test_render_gives_one_frame_per_env():
    agent = VectorGymAgent("tests.toy_envs:LineWorld-v0", 2, render_mode="rgb_array", seed=0)
    run(agent, torch.ones(2, 2, dtype=torch.long), n_steps=1)
    frames = agent.render()
    assert len(frames) == 2 and all(isinstance(f, np.ndarray) for f in frames)
