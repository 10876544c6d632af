"""`replay` warns (Python warnings, not prints) about what a checkpoint cannot restore."""

import warnings

import pytest

from bbrl_ppo import DiscretePolicy, save_agent
from bbrl_ppo.cli.replay import replay


def test_replaying_a_run_that_used_env_wrappers_warns_that_they_are_not_restored(tmp_path, capsys):
    policy = DiscretePolicy(4, [8], 2)
    path = save_agent(
        tmp_path / "best_agent.pt",
        policy,
        env_name="CartPole-v1",
        env_wrappers=["gymnasium.wrappers.RecordEpisodeStatistics"],
    )
    with pytest.warns(UserWarning, match="RecordEpisodeStatistics.*cannot be restored"):
        result = replay(path, episodes=1)
    assert result.returns.numel() == 1
    assert "Warning" not in capsys.readouterr().out


def test_replaying_a_run_without_env_wrappers_warns_nothing(tmp_path):
    path = save_agent(tmp_path / "best_agent.pt", DiscretePolicy(4, [8], 2), env_name="CartPole-v1")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*env wrappers")
        replay(path, episodes=1)
