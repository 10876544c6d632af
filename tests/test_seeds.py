"""bbrl-ppo train CONFIG --seeds: one process per seed, a failing seed, Ctrl-C and resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bbrl_ppo.cli import main
from bbrl_ppo.experiments.seeds import Experiment, format_summary

ROOT = Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "cartpole.yaml")
TINY = [
    "algorithm.n_envs=2",
    "algorithm.transitions_per_env=64",
    "algorithm.batch_size=64",
    "algorithm.opt_epochs=2",
    "algorithm.max_steps=768",
    "algorithm.eval_interval=256",
    "algorithm.nb_evals=2",
]


@pytest.fixture(autouse=True)
def _children_find_the_tests(monkeypatch):
    """Seeds run in child processes: let them import tests.toy_envs."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )


def _evals(run_dir: Path) -> list[tuple[int, float]]:
    with (run_dir / "evals.csv").open() as file:
        return [(int(row["nb_steps"]), float(row["reward_mean"])) for row in csv.DictReader(file)]


def test_two_seeds_give_the_runs_of_two_single_trainings(capsys):
    code = main(["train", CONFIG, *TINY, "--seeds", "1", "2", "--jobs", "2", "--name", "exp"])
    assert code == 0
    out = capsys.readouterr().out
    experiment = Experiment.load("outputs/exp")
    assert [(run.seed, run.status) for run in experiment.seeds] == [(1, "done"), (2, "done")]
    for run in experiment.seeds:
        assert f"algorithm.seed={run.seed}" in (run.run_dir / "train.log").read_text()
        progress = json.loads((run.run_dir / "progress.json").read_text())
        assert progress["state"] == "finished" and progress["nb_steps"] >= 768
    assert "bbrl-ppo plot" in out and format_summary(experiment).splitlines()[0] in out

    # Each seed's process trains exactly what a single run with that seed trains.
    assert main(["train", CONFIG, *TINY, "algorithm.seed=2", "base_dir=single-2"]) == 0
    assert _evals(Path("outputs/exp/seed-2")) == _evals(Path("outputs/single-2"))
    assert _evals(Path("outputs/exp/seed-1")) != _evals(Path("outputs/exp/seed-2"))


def test_a_failing_seed_is_reported_and_the_others_finish(capsys):
    faulty = [
        "gym_env.env_name=tests.toy_envs:Faulty-v0",
        "gym_env.env_args.fail_seed=2",
        "algorithm.n_envs=1",
        "algorithm.transitions_per_env=64",
        "algorithm.batch_size=32",
        "algorithm.max_steps=256",
        "algorithm.eval_interval=128",
        "algorithm.nb_evals=1",
    ]
    code = main(["train", CONFIG, *faulty, "--seeds", "1", "2", "--name", "faulty"])
    assert code == 1
    out = capsys.readouterr().out
    experiment = Experiment.load("outputs/faulty")
    statuses = {run.seed: run.status for run in experiment.seeds}
    assert statuses == {1: "done", 2: "failed"}
    assert "simulator diverged" in experiment.seeds[1].error
    assert "seed 2 failed" in out and "simulator diverged" in out


def test_resume_by_a_relative_path_runs_a_pending_seed_in_the_experiment(capsys):
    assert main(["train", CONFIG, *TINY, "--seeds", "1", "--name", "relative"]) == 0
    # Seed 2 never started (as after a Ctrl-C before its turn with --jobs 1).
    state_file = Path("outputs/relative/experiment.json")
    state = json.loads(state_file.read_text())
    state["seeds"]["2"] = {"status": "pending", "returncode": None, "error": None}
    state_file.write_text(json.dumps(state))
    assert main(["train", "--resume", "outputs/relative", "--jobs", "1"]) == 0
    assert _evals(Path("outputs/relative/seed-2"))  # its files, in the experiment
    assert not Path("outputs/outputs").exists()
    experiment = Experiment.load("outputs/relative")
    assert [(run.seed, run.status) for run in experiment.seeds] == [(1, "done"), (2, "done")]


def test_seed_and_base_dir_overrides_are_refused(capsys):
    assert main(["train", CONFIG, "algorithm.seed=3", "--seeds", "1", "2"]) == 2
    assert "remove 'algorithm.seed=3'" in capsys.readouterr().err
    assert main(["train", CONFIG, "algorithm.bogus=1", "--seeds", "1"]) == 2
    assert not Path("outputs").exists() or not any(Path("outputs").iterdir())


def test_ctrl_c_stops_every_seed_with_a_checkpoint_and_resume_finishes_them(tmp_path):
    # Long enough (about 10 s a seed here) that both seeds are still training when the
    # signal comes: at 6,000 steps a seed could finish before its sibling had started.
    longer = [*TINY, "algorithm.max_steps=24000", "algorithm.eval_interval=4000"]
    command = [sys.executable, "-m", "bbrl_ppo", "train", CONFIG, *longer]
    command += ["--seeds", "1", "2", "--jobs", "2", "--name", "stopped"]
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    experiment_dir = tmp_path / "outputs" / "stopped"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = [experiment_dir / f"seed-{seed}" / "progress.json" for seed in (1, 2)]
        if all(path.is_file() for path in progress):
            break
        time.sleep(0.2)
    parent.send_signal(signal.SIGINT)
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 130, err
    assert f"bbrl-ppo train --resume {experiment_dir}" in out
    experiment = Experiment.load(experiment_dir)
    for run in experiment.seeds:
        assert run.status == "stopped"
        assert (run.run_dir / "checkpoints" / "last.pt").is_file()
        assert json.loads((run.run_dir / "progress.json").read_text())["nb_steps"] < 24000

    assert main(["train", "--resume", str(experiment_dir), "--jobs", "2"]) == 0
    experiment = Experiment.load(experiment_dir)
    assert [run.status for run in experiment.seeds] == ["done", "done"]
    # Resumed exactly: seed 1 ends with the evaluations of an uninterrupted run.
    assert main(["train", CONFIG, *longer, "algorithm.seed=1", "base_dir=whole-1"]) == 0
    assert _evals(experiment_dir / "seed-1") == _evals(tmp_path / "outputs" / "whole-1")
