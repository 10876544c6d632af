"""Checkpoints and exact resume: a resumed run continues the same computation."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from omegaconf import OmegaConf

from bbrl_ppo.algorithms.ppo import PPOClip, PPOPenalty
from bbrl_ppo.persistence import training_checkpoint
from bbrl_ppo.persistence.training_checkpoint import CheckpointMismatchError, checkpoint_file


def config(env="CartPole-v1", base_dir="A", **algorithm):
    return OmegaConf.create(
        {
            "base_dir": base_dir,
            "progress_bar": False,
            "gym_env": {"env_name": env},
            "algorithm": {
                "seed": 3,
                "n_envs": 4,
                "transitions_per_env": 16,
                "batch_size": 32,
                "opt_epochs": 2,
                "max_steps": 1600,
                "eval_interval": 200,
                "checkpoint_interval": 300,
                "nb_evals": 3,
                "anneal_lr": True,
                **algorithm,
            },
        }
    )


def eval_rows(run_dir):
    """evals.csv without its wall-clock column."""
    with open(Path(run_dir) / "evals.csv") as file:
        return [[row[0], *row[2:]] for row in csv.reader(file)]


def final_parameters(run_dir):
    state = torch.load(checkpoint_file(run_dir), weights_only=True)
    return state["training_state"]["modules"], state["training_state"]["nb_steps"]


class KeepsEveryCheckpoint:
    """Mixin: copies each checkpoint aside, as a run killed right after it would leave it."""

    def save_checkpoint(self):
        path = super().save_checkpoint()
        copies = self.base_dir.parent / f"{self.base_dir.name}-checkpoints"
        copies.mkdir(exist_ok=True)
        shutil.copy(path, copies / f"{self.nb_steps:06d}.pt")
        return path


class RecordingClip(KeepsEveryCheckpoint, PPOClip):
    pass


class RecordingPenalty(KeepsEveryCheckpoint, PPOPenalty):
    pass


def run_dir_from(checkpoint, original_run, new_run):
    """A run directory as a crash right after `checkpoint` would have left it."""
    new_run.mkdir(parents=True)
    shutil.copy(original_run / "config.yaml", new_run / "config.yaml")
    (new_run / "checkpoints").mkdir()
    shutil.copy(checkpoint, checkpoint_file(new_run))
    return new_run


def assert_same_parameters(first, second):
    assert first.keys() == second.keys()
    for name in first:
        for key in first[name]:
            assert torch.equal(first[name][key], second[name][key]), f"{name}.{key}"


@pytest.mark.parametrize(
    "algo_class, cfg",
    [
        (RecordingClip, config()),
        (
            RecordingPenalty,
            config(
                "Pendulum-v1",
                variant="ppo_kl",
                normalize_observations=True,
                normalize_rewards=True,
                max_steps=1200,
            ),
        ),
    ],
    ids=["clip-cartpole", "kl-pendulum-normalized"],
)
def test_a_run_resumed_from_any_checkpoint_matches_the_uninterrupted_run(algo_class, cfg):
    uninterrupted = algo_class(cfg)
    uninterrupted.run()
    uninterrupted.close()
    run = uninterrupted.base_dir
    checkpoints = sorted((run.parent / f"{run.name}-checkpoints").glob("*.pt"))
    assert len(checkpoints) >= 4
    for checkpoint in checkpoints[1:-1]:
        resumed_dir = run_dir_from(checkpoint, run, run.parent / f"resumed-{checkpoint.stem}")
        resumed = algo_class.resume(resumed_dir)
        assert resumed.nb_steps == int(checkpoint.stem)
        resumed.run()
        resumed.close()
        assert_resumed_run_matches(resumed_dir, run)


def assert_resumed_run_matches(resumed_dir, run):
    """The resumed run wrote the uninterrupted run's evaluations and ended on its parameters."""
    assert eval_rows(resumed_dir) == eval_rows(run)
    parameters, steps = final_parameters(resumed_dir)
    expected_parameters, expected_steps = final_parameters(run)
    assert steps == expected_steps
    assert_same_parameters(parameters, expected_parameters)


class StopsItselfWithSigterm(PPOClip):
    def after_update(self, workspace, rollout, metrics):
        super().after_update(workspace, rollout, metrics)
        if self.epoch == 5:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_stops_at_the_rollout_boundary_with_a_checkpoint():
    algo = StopsItselfWithSigterm(config())
    algo.run()
    assert algo.interrupted
    assert algo.epoch == 6, "the rollout under way was finished, no other was started"
    state = torch.load(algo.checkpoint_path, weights_only=True)
    assert state["training_state"]["nb_rollouts"] == 6
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handler was removed"


def trained_run(**algorithm):
    algo = PPOClip(config(max_steps=400, **algorithm))
    algo.run()
    algo.close()
    return algo.base_dir


def test_a_checkpoint_from_another_config_is_refused():
    run = trained_run()
    path = run / "config.yaml"
    path.write_text(path.read_text().replace("gae_lambda: 0.95", "gae_lambda: 0.9"))
    with pytest.raises(CheckpointMismatchError, match="differs at: algorithm.gae_lambda"):
        PPOClip.resume(run)


def test_a_checkpoint_from_another_algorithm_is_refused():
    with pytest.raises(CheckpointMismatchError, match="written by bbrl_ppo.algorithms.ppo.PPOClip"):
        PPOPenalty.resume(trained_run())


def test_a_checkpoint_from_other_code_is_refused_unless_allowed(monkeypatch):
    run = trained_run()
    current = training_checkpoint.code_versions()
    monkeypatch.setattr(training_checkpoint, "code_versions", lambda: {**current, "torch": "9.9.9"})
    with pytest.raises(CheckpointMismatchError, match=r"other code \(torch .* -> 9.9.9\)"):
        PPOClip.resume(run)
    assert PPOClip.resume(run, allow_code_change=True).nb_steps >= 400


def test_resuming_may_raise_the_budget_but_change_nothing_else():
    run = trained_run()
    with pytest.raises(CheckpointMismatchError, match="Cannot change 'algorithm.gae_lambda'"):
        PPOClip.resume(run, overrides=["algorithm.gae_lambda=0.5"])
    algo = PPOClip.resume(run, overrides=["algorithm.max_steps=800"])
    start = algo.nb_steps
    algo.run()
    assert start >= 400 and algo.nb_steps >= 800


def test_envs_whose_state_cannot_be_saved_resume_with_new_episodes():
    run = trained_run(**{"checkpoint_interval": 200})
    config_path = run / "config.yaml"
    # Same run, but its envs live in subprocesses: their state cannot be captured.
    cfg = OmegaConf.load(config_path)
    cfg.gym_env.vectorization = "async"
    algo = PPOClip(cfg)
    algo.save_checkpoint()
    algo.close()
    with pytest.warns(UserWarning, match="with new episodes.*does not continue exactly"):
        resumed = PPOClip.resume(run)
    assert resumed.rollout_workspace is None
    resumed.close()


SIGKILL_CONFIG = """
progress_bar: false
gym_env: {env_name: CartPole-v1}
algorithm: {seed: 3, n_envs: 4, transitions_per_env: 32, max_steps: 4000, eval_interval: 500,
  nb_evals: 3, checkpoint_interval: 700, opt_epochs: 4, batch_size: 64, anneal_lr: true,
  anneal_clip_range: true}
optimizer: {lr: 0.001}
"""


def train_command(*arguments):
    return [sys.executable, "-m", "bbrl_ppo", "train", *arguments]


@pytest.fixture(scope="module")
def uninterrupted_cli_run(tmp_path_factory):
    """The CLI run the killed ones must reproduce: (working directory, environment, run)."""
    directory = tmp_path_factory.mktemp("sigkill")
    (directory / "cfg.yaml").write_text(SIGKILL_CONFIG)
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    run = subprocess.run(
        train_command("cfg.yaml", "base_dir=whole"),
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return directory, environment, directory / "outputs" / "whole"


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.35])
def test_a_run_killed_with_sigkill_and_resumed_matches_the_uninterrupted_run(
    uninterrupted_cli_run, delay
):
    directory, environment, whole = uninterrupted_cli_run
    name = f"killed-{delay}"
    killed = subprocess.Popen(
        train_command("cfg.yaml", f"base_dir={name}"),
        cwd=directory,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    resumed = directory / "outputs" / name
    checkpoint = checkpoint_file(resumed)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            if torch.load(checkpoint, weights_only=True)["training_state"]["nb_steps"] >= 1400:
                break
        except (FileNotFoundError, RuntimeError, EOFError):
            continue
    time.sleep(delay)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL

    resume = subprocess.run(
        train_command("--resume", f"outputs/{name}"),
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert resume.returncode == 0, resume.stderr
    assert "Resuming" in resume.stdout
    assert len(eval_rows(whole)) >= 8
    assert eval_rows(resumed) == eval_rows(whole)
    assert_same_parameters(final_parameters(resumed)[0], final_parameters(whole)[0])


def test_tensorboard_drops_what_the_interrupted_run_logged_after_the_checkpoint():
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    run = trained_run()
    resumed = PPOClip.resume(run)
    resumed.close()
    starts = [
        event.step
        for path in run.glob("events.out.tfevents.*")
        for event in EventFileLoader(str(path)).Load()
        if event.HasField("session_log") and event.session_log.status == SessionLog.START
    ]
    assert resumed.nb_steps + 1 in starts


def test_optimizer_state_of_another_parameter_layout_is_a_mismatch(tmp_path):
    separate = PPOClip(config(base_dir=str(tmp_path / "separate"), flat_parameters=False))
    state = training_checkpoint.load_training_checkpoint(separate.save_checkpoint())
    separate.close()
    flat = PPOClip(config(base_dir=str(tmp_path / "flat")))
    with pytest.raises(
        CheckpointMismatchError, match="optimizer 'critic_optimizer'|'policy_optimizer'"
    ):
        flat.load_training_state(state["training_state"])
    flat.close()


def _run_files(run_dir):
    return {
        path.name: path.read_bytes()
        for path in sorted(Path(run_dir).iterdir())
        if path.is_file() and path.name != "best_agent.pt"
    }


def test_a_refused_resume_writes_nothing_in_the_run_directory():
    run = trained_run()
    before = _run_files(run)
    assert "evals.csv" in before and len(before["evals.csv"].splitlines()) > 1
    # An optimizer state of the other parameter layout: refused only when it is loaded,
    # after the constructor ran.
    separate = PPOClip(config(base_dir=str(run.parent / "separate"), flat_parameters=False))
    state = torch.load(checkpoint_file(run), weights_only=True)
    good = state["training_state"]["optimizers"]["policy_optimizer"]
    bad = separate.policy_optimizer.state_dict()
    separate.close()
    state["training_state"]["optimizers"]["policy_optimizer"] = bad
    torch.save(state, checkpoint_file(run))
    with pytest.raises(CheckpointMismatchError, match="policy_optimizer"):
        PPOClip.resume(run)
    assert _run_files(run) == before
    state["training_state"]["optimizers"]["policy_optimizer"] = good
    torch.save(state, checkpoint_file(run))
    PPOClip.resume(run).close()


def test_a_resume_with_other_env_wrappers_is_refused():
    run = trained_run()
    with pytest.raises(CheckpointMismatchError, match="env wrappers"):
        PPOClip.resume(run, env_wrappers=[gym.wrappers.RecordEpisodeStatistics])


def test_the_tune_search_space_is_not_part_of_what_resume_compares():
    """A checkpoint from before `tune:` existed, or with another search space, resumes."""
    base = {"base_dir": "run", "algorithm": {"seed": 1}}
    with_space = {**base, "tune": {"parameters": {"optimizer.lr": {"low": 1e-4}}}}
    assert training_checkpoint.comparable_config(with_space) == (
        training_checkpoint.comparable_config(base)
    )
    assert "tune" not in training_checkpoint.comparable_config(with_space)
