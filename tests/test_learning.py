"""Learning tests with fixed seeds and real thresholds (slow)."""

import csv

import pytest

from bbrl_ppo.cli.training import train_from_file


@pytest.mark.slow
def test_ppo_clip_solves_cartpole_within_60k_steps(request):
    config = request.config.rootpath / "configs" / "cartpole.yaml"
    algo = train_from_file(
        config,
        ["algorithm.seed=1", "algorithm.max_steps=60000", "algorithm.stop_at_reward=475"],
    )
    with (algo.base_dir / "evals.csv").open() as file:
        rows = list(csv.DictReader(file))
    reached = [int(row["nb_steps"]) for row in rows if float(row["reward_mean"]) >= 475]
    assert reached and reached[0] <= 60_000
    assert algo.best_reward >= 475
