"""``vectorization="vector"``: gymnasium's own vector CartPole behind the env agent.

The vector implementation must give the workspace `SyncVectorEnv` gives from the same
states and actions (with auto-reset, and in full-episode mode through the whole hold),
keep evaluations independent of the policies played before, and resume bit for bit.
"""

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from bbrl.agents import Agent, Agents, TemporalAgent
from bbrl.workspace import Workspace
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode

from bbrl_ppo import VectorGymAgent, load_config
from bbrl_ppo.agents.full_episodes import HeldEpisodes
from bbrl_ppo.algorithms.ppo import PPOClip
from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.persistence.training_checkpoint import last_step, workspace_ending_with
from tests.scripted import ScriptedActions, random_actions
from tests.test_env_agent import ENV_VARIABLES
from tests.test_resume import RecordingClip, assert_resumed_run_matches, run_dir_from
from tests.test_resume import config as resume_config


class Balancing(Agent):
    """Pushes the cart under the falling pole: CartPole stays up for 500 steps."""

    def __init__(self):
        super().__init__(name="balancing")

    def forward(self, t: int, **kwargs) -> None:
        obs = self.get(("env/env_obs", t))
        self.set(("action", t), (obs[:, 2] + 0.5 * obs[:, 3] > 0).long())


class NoisyBalancing(Agent):
    """`Balancing` with actions flipped by a fixed (T, B) mask: episodes of many lengths.

    The flips depend on t only, so that two runs over the same steps act alike.
    """

    def __init__(self, flips: torch.Tensor):
        super().__init__(name="noisy_balancing")
        self.flips = flips

    def forward(self, t: int, **kwargs) -> None:
        obs = self.get(("env/env_obs", t))
        balancing = obs[:, 2] + 0.5 * obs[:, 3] > 0
        self.set(("action", t), (balancing ^ self.flips[t % len(self.flips)]).long())


class ConstantAction(Agent):
    def __init__(self, action: int):
        super().__init__(name="constant")
        self.action = action

    def forward(self, t: int, **kwargs) -> None:
        n_envs = self.get(("env/env_obs", t)).shape[0]
        self.set(("action", t), torch.full((n_envs,), self.action, dtype=torch.long))


def vector_agent(n_envs=4, **kwargs) -> VectorGymAgent:
    return VectorGymAgent("CartPole-v1", n_envs, vectorization="vector", **kwargs)


def run_episodes(env_agent: VectorGymAgent, policy: Agent) -> Workspace:
    workspace = Workspace()
    TemporalAgent(Agents(env_agent, policy))(workspace, t=0, stop_variable="env/done")
    return workspace


def play(env_agent: VectorGymAgent, policy: Agent, workspace: Workspace, start: int, stop: int):
    for t in range(start, stop):
        env_agent(workspace, t=t)
        policy(workspace, t=t)
    return workspace


def assert_same_steps(ours: Workspace, reference: Workspace, steps: slice) -> None:
    for name in ENV_VARIABLES:
        got, expected = ours[name][steps], reference[name][steps]
        assert got.dtype == expected.dtype, name
        assert torch.equal(got, expected), f"{name} differs"


# -- refused settings --------------------------------------------------------------------
def test_an_env_without_a_vector_implementation_is_refused_with_those_that_have_one():
    with pytest.raises(InvalidInputError, match="Pendulum-v1 has no vector.*CartPole-v1"):
        VectorGymAgent("Pendulum-v1", 2, vectorization="vector")


def test_env_wrappers_are_refused_with_the_sync_advice():
    with pytest.raises(InvalidInputError, match="RecordEpisodeStatistics.*vectorization='sync'"):
        vector_agent(wrappers=[gym.wrappers.RecordEpisodeStatistics])


def test_an_argument_the_vector_implementation_does_not_take_is_refused():
    with pytest.raises(InvalidInputError, match="'disable_env_checker'.*sutton_barto_reward"):
        vector_agent(env_args={"disable_env_checker": True})


def test_an_unknown_id_names_the_close_ones():
    with pytest.raises(InvalidInputError, match="CartPole-v1"):
        VectorGymAgent("CartPol-v1", 2, vectorization="vector")


class SameStepCartPole(CartPoleVectorEnv):
    metadata = {**CartPoleVectorEnv.metadata, "autoreset_mode": AutoresetMode.SAME_STEP}


@pytest.fixture
def same_step_id():
    env_id = "SameStepCartPole-v0"
    gym.register(env_id, vector_entry_point=SameStepCartPole, max_episode_steps=500)
    yield env_id
    del gym.registry[env_id]


def test_a_vector_implementation_without_next_step_autoreset_is_refused(same_step_id):
    with pytest.raises(InvalidInputError, match="SameStep.*use vectorization='sync'"):
        VectorGymAgent(same_step_id, 2, vectorization="vector")


# -- the layout of SyncVectorEnv ---------------------------------------------------------
def play_side_by_side(
    n_envs: int, *, autoreset: bool, n_steps: int, choose, env_args=None
) -> tuple[Workspace, Workspace]:
    """Sync and vector agents from sync's start states, fed the actions `choose` picks.

    ``choose(observations)`` gets sync's (B, 4) observations; the runs stop after
    `n_steps` steps, or in full-episode mode once every env is done.
    """
    kwargs = {"autoreset": autoreset, "env_args": env_args, "seed": 4}
    sync = VectorGymAgent("CartPole-v1", n_envs, **kwargs)
    vector = vector_agent(n_envs, **kwargs)
    sync_run, vector_run = Workspace(), Workspace()
    sync(sync_run, t=0)
    vector(vector_run, t=0)
    starts = np.stack([env.unwrapped.state for env in sync.envs.envs], axis=1)
    vector.envs.unwrapped.state = starts.copy()
    vector_run.set("env/env_obs", 0, sync_run.get("env/env_obs", 0).clone())
    for t in range(n_steps):
        if not autoreset and sync_run.get("env/done", t).all():
            break
        actions = choose(sync_run.get("env/env_obs", t))
        sync_run.set("action", t, actions)
        vector_run.set("action", t, actions.clone())
        sync(sync_run, t=t + 1)
        vector(vector_run, t=t + 1)
    return sync_run, vector_run


def random_choice(seed: int):
    generator = torch.Generator().manual_seed(seed)
    return lambda observations: torch.randint(0, 2, (len(observations),), generator=generator)


def balancing_choice(observations: torch.Tensor) -> torch.Tensor:
    return (observations[:, 2] + 0.5 * observations[:, 3] > 0).long()


def test_same_layout_as_sync_until_the_first_episode_end():
    sync_run, vector_run = play_side_by_side(5, autoreset=True, n_steps=80, choose=random_choice(0))
    first_end = int(torch.nonzero(sync_run["env/done"].any(dim=1))[0])
    assert first_end > 3
    assert_same_steps(vector_run, sync_run, slice(0, first_end + 1))


def test_truncation_at_the_time_limit_then_a_reset_step_like_sync():
    sync_run, vector_run = play_side_by_side(
        3, autoreset=True, n_steps=53, choose=balancing_choice, env_args={"max_episode_steps": 50}
    )
    assert_same_steps(vector_run, sync_run, slice(0, 51))
    assert vector_run["env/truncated"][50].all() and not vector_run["env/done"][:50].any()
    # The next step only resets: reward 0, every flag off, counters back to 0.
    assert vector_run["env/reward"][51].eq(0).all()
    assert not vector_run["env/done"][51].any()
    assert vector_run["env/timestep"][51].eq(0).all()
    assert vector_run["env/cumulated_reward"][51].eq(0).all()
    assert vector_run["env/timestep"][52].eq(1).all()


def test_the_time_limit_of_the_registration_truncates_at_500():
    sync_run, vector_run = play_side_by_side(
        2, autoreset=False, n_steps=600, choose=balancing_choice
    )
    assert len(vector_run["env/done"]) == 501
    assert vector_run["env/truncated"][500].all()
    assert_same_steps(vector_run, sync_run, slice(None))


def test_same_layout_as_sync_in_full_episode_mode_through_the_hold():
    sync_run, vector_run = play_side_by_side(
        6, autoreset=False, n_steps=600, choose=random_choice(1)
    )
    lengths = sync_run["env/timestep"][-1]
    assert lengths.min() < lengths.max() - 5, "the scenario must hold some envs for a while"
    assert len(vector_run["env/done"]) == len(sync_run["env/done"])
    assert_same_steps(vector_run, sync_run, slice(None))


def test_held_episodes_report_what_hold_after_episode_end_reports():
    """Env 0 terminates at the first step, env 1 is truncated at the second; env 2 runs on."""
    hold = HeldEpisodes(3)
    no = np.zeros(3, dtype=bool)
    observations = np.arange(6, dtype=np.float32).reshape(3, 2)
    rewards = np.ones(3, dtype=np.float32)
    steps = [
        (observations, rewards, np.array([True, False, False]), no),
        (observations + 10, rewards * 2, no, np.array([False, True, False])),
        # The vector env reset env 0 and ends its new episode: hidden, like its reset.
        (observations + 20, rewards * 3, np.array([True, False, False]), no),
    ]
    outputs = [hold.step(*step) for step in steps]
    obs, reward, terminated, truncated = outputs[-1]
    assert obs.tolist() == [[0, 1], [12, 13], [24, 25]]
    assert reward.tolist() == [0, 0, 3]
    assert not terminated.any() and not truncated.any()
    # The ending steps keep their real flags.
    assert outputs[0][2].tolist() == [True, False, False]
    assert outputs[1][3].tolist() == [False, True, False]
    hold.reset()
    obs, reward, _, _ = hold.step(observations, rewards, no, no)
    assert obs.tolist() == observations.tolist() and reward.tolist() == [1, 1, 1]


# -- seeds -------------------------------------------------------------------------------
@pytest.mark.parametrize("autoreset", [True, False])
def test_same_seed_same_workspace_and_different_seeds_differ(autoreset):
    actions = random_actions("discrete", 150, 4, seed=2, n=2)

    def workspaces_for(seed):
        env_agent = vector_agent(autoreset=autoreset, seed=seed)
        runs = []
        for _ in range(2):  # two evaluations in full-episode mode, one run with auto-reset
            workspace = Workspace()
            agent = TemporalAgent(Agents(env_agent, ScriptedActions(actions)))
            agent(workspace, t=0, n_steps=150)
            runs.append(workspace)
        return runs

    first, again, other = workspaces_for(5), workspaces_for(5), workspaces_for(6)
    for run, run_again in zip(first, again, strict=True):
        assert_same_steps(run_again, run, slice(None))
    assert not torch.equal(first[0]["env/env_obs"][0], other[0]["env/env_obs"][0])


def test_evaluation_start_states_do_not_depend_on_the_policies_evaluated_before():
    first, second = vector_agent(autoreset=False, seed=21), vector_agent(autoreset=False, seed=21)
    # Two evaluations of very different lengths: hidden auto-resets differ in number.
    for policy_first, policy_second in [
        (ConstantAction(0), Balancing()),
        (Balancing(), ConstantAction(1)),
    ]:
        a = run_episodes(first, policy_first)
        b = run_episodes(second, policy_second)
        assert torch.equal(a["env/env_obs"][0], b["env/env_obs"][0])
        assert a.time_size() != b.time_size(), "the two runs must differ in length"
    a = run_episodes(first, ConstantAction(0))
    b = run_episodes(second, ConstantAction(0))
    assert torch.equal(a["env/env_obs"], b["env/env_obs"])


def test_each_evaluation_starts_from_new_states():
    env_agent = vector_agent(autoreset=False, seed=3)
    a, b = run_episodes(env_agent, ConstantAction(0)), run_episodes(env_agent, ConstantAction(0))
    assert not torch.equal(a["env/env_obs"][0], b["env/env_obs"][0])


# -- exact resume ------------------------------------------------------------------------
def saved(state: dict) -> dict:
    """`state` after a trip through a weights-only checkpoint file."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("autoreset", [True, False])
def test_a_restored_agent_continues_bit_for_bit(autoreset):
    # From always balanced (env 0) to often wrong: episodes of 15 to 500 steps.
    flip_rates = torch.tensor([0.0, 0.2, 0.3, 0.35, 0.4, 0.45])
    n_envs = len(flip_rates)
    flips = torch.rand((600, n_envs), generator=torch.Generator().manual_seed(0)) < flip_rates
    policy = NoisyBalancing(flips)
    # Full-episode mode: envs held across the save point, env 0 truncated after it.
    env_args = None if autoreset else {"max_episode_steps": 420}
    original = vector_agent(n_envs, autoreset=autoreset, seed=8, env_args=env_args)
    first_part = play(original, policy, Workspace(), 0, 300)
    state = saved(original.get_state())
    assert state["envs"]["exact"], state["envs"]["reason"]

    def continue_from(env_agent):
        workspace = play(env_agent, policy, workspace_ending_with(last_step(first_part)), 300, 600)
        next_run = play(env_agent, policy, Workspace(), 0, 200)  # a new batch of episodes
        return workspace, next_run

    expected, expected_next = continue_from(original)
    restored = vector_agent(n_envs, autoreset=autoreset, seed=999, env_args=env_args)
    assert restored.set_state(state)
    got, got_next = continue_from(restored)
    done = expected["env/done"]
    assert done[300:].any() and not done[300].all(), "episodes must end after the save point"
    if not autoreset:
        assert done[299].any(), "some envs must be held across the save point"
    assert_same_steps(got, expected, slice(300, 600))
    assert_same_steps(got_next, expected_next, slice(None))


def test_a_sync_checkpoint_is_refused_by_a_vector_agent():
    sync = VectorGymAgent("CartPole-v1", 2, seed=0)
    run_episodes(sync, ConstantAction(0))
    with pytest.raises(InvalidInputError, match="do not match"):
        vector_agent(2).set_state(sync.get_state())


# -- training ----------------------------------------------------------------------------
def test_ppo_trains_on_the_vector_implementation_and_writes_its_evaluations():
    cfg = load_config(
        "cartpole",
        [
            "gym_env.vectorization=vector",
            "algorithm.max_steps=2048",
            "algorithm.eval_interval=1024",
            "algorithm.opt_epochs=2",
            "algorithm.nb_evals=4",
            "progress_bar=false",
            "save_best=false",
            "base_dir=vector_run",
        ],
    )
    algo = PPOClip(cfg)
    try:
        assert isinstance(algo.train_env.envs, CartPoleVectorEnv)
        assert isinstance(algo.eval_env.envs, CartPoleVectorEnv)
        algo.run()
        assert algo.training_state()["train_env"]["envs"]["exact"]
    finally:
        algo.close()
    rows = (algo.base_dir / "evals.csv").read_text().strip().splitlines()
    assert algo.nb_steps >= 2048
    assert len(rows) >= 1 + 2  # the header, then one row per evaluation


def test_a_training_run_resumed_from_a_checkpoint_matches_the_uninterrupted_run():
    cfg = resume_config()
    cfg.gym_env.vectorization = "vector"
    uninterrupted = RecordingClip(cfg)
    uninterrupted.run()
    uninterrupted.close()
    run = uninterrupted.base_dir
    checkpoints = sorted((run.parent / f"{run.name}-checkpoints").glob("*.pt"))
    checkpoint = checkpoints[len(checkpoints) // 2]
    resumed_dir = run_dir_from(checkpoint, run, run.parent / "resumed")
    resumed = RecordingClip.resume(resumed_dir)
    assert resumed.new_episodes_reason is None  # the envs were restored, not restarted
    resumed.run()
    resumed.close()
    assert_resumed_run_matches(resumed_dir, run)
