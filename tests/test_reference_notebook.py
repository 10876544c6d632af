"""The reference notebook's PPO-clip, imports changed only, learns CartPole."""

import pytest

from tests import reference_notebook_ppo_clip as notebook

RANDOM_POLICY_RETURN = 22  # CartPole-v1 with uniform random actions, about


@pytest.mark.slow
def test_reference_notebook_learns_cartpole_within_400_epochs():
    algo = notebook.main(seed=12, max_epochs=400)
    assert algo.epoch == 400
    assert algo.best_reward >= 100, f"best eval mean {algo.best_reward}"
    assert algo.best_reward > 4 * RANDOM_POLICY_RETURN
    video = algo.visualize_best()
    assert video.exists()
