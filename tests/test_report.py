"""bbrl-ppo report: finding and grouping runs, and each number of the table against a hand count."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bbrl_ppo.cli import main
from bbrl_ppo.errors import InvalidInputError, MissingFileError
from bbrl_ppo.experiments.report import format_markdown, format_text, report_runs
from bbrl_ppo.experiments.runs import find_run_dirs, load_groups

HEADER = "nb_steps,wall_s,reward_mean,reward_std,reward_min,reward_max\n"


def write_run(
    run_dir: Path,
    rows: list[tuple[float, float, float]],
    *,
    env: str = "CartPole-v1",
    seed: int = 1,
    variant: str = "ppo_clip",
    nb_evals: int = 10,
    peer: str | None = None,
) -> Path:
    """A run directory as `bbrl-ppo train` (or compare_peers.py, with `peer`) leaves it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = (
        f"gym_env:\n  env_name: {env}\n"
        f"algorithm:\n  seed: {seed}\n  variant: {variant}\n  nb_evals: {nb_evals}\n"
        "base_dir: ${current_time:}\n"  # an unresolvable interpolation must not matter
    )
    if peer is not None:
        config += f"peer:\n  name: {peer}\n  version: 2.9.2\n"
    (run_dir / "config.yaml").write_text(config)
    lines = "".join(f"{steps},{wall},{mean},1.0,0.0,2.0\n" for steps, wall, mean in rows)
    (run_dir / "evals.csv").write_text(HEADER + lines)
    return run_dir


def write_experiment(directory: Path, seeds: dict[int, list[tuple[float, float, float]]]) -> Path:
    """An experiment directory: experiment.json and one seed-N run per seed."""
    directory.mkdir(parents=True)
    (directory / "experiment.json").write_text("{}")
    (directory / "config.yaml").write_text("gym_env:\n  env_name: CartPole-v1\n")
    for seed, rows in seeds.items():
        write_run(directory / f"seed-{seed}", rows, seed=seed)
    return directory


#: Four seeds: final returns 100, 200, 300, 1000; best returns 150, 400, 300, 1000.
FOUR_SEEDS = {
    1: [(100, 1.0, 150.0), (200, 2.0, 100.0)],  # never reaches 250
    2: [(110, 1.0, 400.0), (220, 2.0, 200.0)],  # reaches 250 at 110 steps, 1 s
    3: [(100, 2.0, 50.0), (200, 4.0, 300.0)],  # at 200 steps, 4 s
    4: [(120, 1.5, 10.0), (240, 3.0, 1000.0)],  # at 240 steps, 3 s
}


def _rows(table) -> list[dict]:
    return table.to_dict("records") if hasattr(table, "to_dict") else table


def _iqm(values, axis=-1):
    return stats.trim_mean(values, 0.25, axis=axis)


def test_numbers_equal_a_hand_computation(tmp_path):
    experiment = write_experiment(tmp_path / "exp-four", FOUR_SEEDS)
    [row] = _rows(report_runs([experiment], target=250))

    assert row["group"] == "exp-four"
    assert row["env"] == "CartPole-v1"
    assert (row["seeds"], row["evaluated"], row["reached"]) == (4, 4, 3)
    assert row["steps_to_target"] == 200.0  # median of 110, 200, 240
    assert row["wall_s_to_target"] == 3.0  # median of 1, 4, 3
    assert row["final_mean"] == pytest.approx(400.0)
    assert row["final_std"] == pytest.approx(np.std([100, 200, 300, 1000], ddof=1))
    assert row["final_iqm"] == pytest.approx(250.0)  # mean of 200 and 300
    assert row["best_mean"] == pytest.approx((150 + 400 + 300 + 1000) / 4)
    assert row["best_iqm"] == pytest.approx(350.0)  # mean of 300 and 400
    # steps/s: 100, 110, 50, 80 -> median 90
    assert row["steps_per_s"] == pytest.approx(90.0)

    finals = np.array([100.0, 200.0, 300.0, 1000.0])
    expected = stats.bootstrap(
        (finals,),
        _iqm,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert row["final_iqm_ci_low"] == pytest.approx(expected.low)
    assert row["final_iqm_ci_high"] == pytest.approx(expected.high)
    assert row["final_iqm_ci_low"] < 250.0 < row["final_iqm_ci_high"]


def test_text_and_markdown_show_the_table(tmp_path):
    write_experiment(tmp_path / "exp-four", FOUR_SEEDS)
    write_run(tmp_path / "kl" / "run", [(100, 1.0, 20.0)], variant="ppo_kl")
    table = report_runs([tmp_path], target=250)

    text = format_text(table)
    assert "reached 250" in text
    assert "3/4" in text and "0/1" in text
    assert "400.0 ± 408.2" in text  # final mean ± std of the four seeds
    assert "250.0 [" in text  # the IQM and its interval
    assert "no CI" in text  # one seed: no bootstrap

    markdown = format_markdown(table).splitlines()
    assert markdown[0].startswith("| group | env | seeds | reached 250 |")
    assert set(markdown[1].replace(" ", "")) <= set("|-:")
    rows = [line for line in markdown[2:] if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows] == ["| exp-four", "| CartPole-v1 bbrl_ppo ppo_kl"]


def test_without_target_the_target_columns_are_left_out(tmp_path):
    write_experiment(tmp_path / "exp", FOUR_SEEDS)
    table = report_runs([tmp_path / "exp"])
    assert _rows(table)[0]["reached"] == 0
    assert "reached" not in format_text(table)
    assert "reached" not in format_markdown(table)


def test_a_run_without_evaluations_is_counted_and_said(tmp_path):
    experiment = write_experiment(tmp_path / "exp", {1: [(100, 1.0, 5.0)], 2: [(100, 1.0, 7.0)]})
    write_run(experiment / "seed-3", [], seed=3)  # header only: not evaluated yet

    table = report_runs([experiment])
    [row] = _rows(table)
    assert (row["seeds"], row["evaluated"]) == (3, 2)
    assert row["final_mean"] == pytest.approx(6.0)
    text = format_text(table)
    assert "3 (1 not evaluated yet)" in text
    assert "without any evaluation" in text


def test_one_seed_has_no_interval_and_no_std(tmp_path):
    run = write_run(tmp_path / "run", [(100, 2.0, 5.0), (200, 4.0, 9.0)])
    [row] = _rows(report_runs([run], target=100))
    assert row["final_mean"] == 9.0 and row["final_iqm"] == 9.0
    assert np.isnan(row["final_std"]) and np.isnan(row["final_iqm_ci_low"])
    assert row["reached"] == 0 and np.isnan(row["steps_to_target"])
    assert "9.0 (1 seed)" in format_text(report_runs([run]))


def test_a_list_of_dicts_without_pandas(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    write_experiment(tmp_path / "exp", FOUR_SEEDS)
    table = report_runs([tmp_path / "exp"], target=250)
    assert isinstance(table, list) and table[0]["reached"] == 3
    assert "3/4" in format_text(table)


def test_default_labels_name_experiment_ours_and_peer(tmp_path):
    write_experiment(tmp_path / "exp-a", FOUR_SEEDS)
    write_run(tmp_path / "ours" / "s1", [(100, 1.0, 1.0)], seed=1)
    write_run(tmp_path / "ours" / "s2", [(100, 1.0, 2.0)], seed=2)
    write_run(tmp_path / "sb3" / "s1", [(100, 1.0, 3.0)], peer="Stable-Baselines3")
    write_run(tmp_path / "pend" / "s1", [(100, 1.0, -900.0)], env="Pendulum-v1")

    groups = {group.label: group for group in load_groups([tmp_path])}
    assert list(groups) == [
        "exp-a",
        "CartPole-v1 bbrl_ppo ppo_clip",
        "Pendulum-v1 bbrl_ppo ppo_clip",
        "CartPole-v1 Stable-Baselines3 ppo_clip",
    ]
    assert [run.seed for run in groups["CartPole-v1 bbrl_ppo ppo_clip"].runs] == [1, 2]
    assert groups["Pendulum-v1 bbrl_ppo ppo_clip"].env_name == "Pendulum-v1"


def test_labels_override_and_pool_per_path(tmp_path):
    write_experiment(tmp_path / "exp-a", FOUR_SEEDS)
    sb3 = write_run(tmp_path / "sb3" / "s1", [(100, 1.0, 3.0)], peer="Stable-Baselines3")
    more = write_run(tmp_path / "more" / "s9", [(100, 1.0, 4.0)], seed=9)

    table = _rows(report_runs([tmp_path / "exp-a", more, sb3], labels=["ours", "ours", "SB3"]))
    assert [(row["group"], row["seeds"]) for row in table] == [("ours", 5), ("SB3", 1)]
    with pytest.raises(InvalidInputError, match="one label per path"):
        report_runs([tmp_path / "exp-a", sb3], labels=["ours"])


def test_paths_without_runs_are_one_line_errors(tmp_path):
    with pytest.raises(MissingFileError, match="No such run or experiment directory"):
        find_run_dirs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="holds no run"):
        find_run_dirs(tmp_path / "empty")
    broken = write_run(tmp_path / "broken", [(100, 1.0, 1.0)])
    (broken / "evals.csv").write_text("steps,mean\n1,2\n")
    with pytest.raises(InvalidInputError, match="lacks the column"):
        report_runs([broken])
    (broken / "evals.csv").write_text(HEADER + "100,1.0,oops,1,0,2\n")
    with pytest.raises(InvalidInputError, match="line 2: reward_mean is 'oops'"):
        report_runs([broken])


def test_cli_prints_the_table_and_writes_markdown(tmp_path, capsys):
    write_experiment(tmp_path / "exp-a", FOUR_SEEDS)
    code = main(["report", "exp-a", "--target", "250", "--label", "ours", "--markdown", "t.md"])
    assert code == 0
    out = capsys.readouterr().out
    assert "ours" in out and "3/4" in out
    assert "Markdown table written to" in out
    assert (tmp_path / "t.md").read_text().startswith("| group | env | seeds |")


def test_cli_missing_path_exits_2(capsys):
    assert main(["report", "no-such-dir"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bbrl-ppo: error: No such run or experiment directory: no-such-dir")
    assert len(err.strip().splitlines()) == 1
