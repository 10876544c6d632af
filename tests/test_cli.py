"""The bbrl-ppo command line: help, smoke run, replay and evaluation, errors."""

import re
import subprocess
import sys

import pytest

from bbrl_ppo.cli import main


def test_module_entry_point_prints_help():
    completed = subprocess.run(
        [sys.executable, "-m", "bbrl_ppo", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("smoke", "play", "eval"):
        assert command in completed.stdout


def test_smoke_then_play_and_eval(capsys, tmp_path):
    assert main(["smoke", "--steps", "300"]) == 0
    out = capsys.readouterr().out
    run_dir = out.strip().splitlines()[-1].split("Results in ")[1].split(" (")[0]

    video = tmp_path / "replay.mp4"
    assert main(["play", run_dir, "--episodes", "2", "--video", str(video)]) == 0
    out = capsys.readouterr().out
    assert "2 episode(s): return mean" in out
    assert video.stat().st_size > 0

    assert main(["eval", run_dir, "--episodes", "3"]) == 0
    assert "3 episode(s): return mean" in capsys.readouterr().out


def test_missing_checkpoint_is_an_error_without_traceback(capsys, tmp_path):
    assert main(["eval", str(tmp_path)]) == 2
    assert "No best_agent.pt" in capsys.readouterr().err


def test_unknown_command_exits_non_zero():
    with pytest.raises(SystemExit) as exit_info:
        main(["fly"])
    assert exit_info.value.code != 0


def test_train_with_overrides_then_play(capsys, request):
    config = request.config.rootpath / "configs" / "cartpole.yaml"
    code = main(
        [
            "train",
            str(config),
            "algorithm.max_steps=600",
            "algorithm.eval_interval=300",
            "algorithm.nb_evals=2",
            "progress_bar=false",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    run_dir = out.split("Run directory: ")[1].splitlines()[0]
    assert "best evaluation mean" in out
    assert main(["eval", run_dir, "--episodes", "2"]) == 0


def test_train_with_a_typo_prints_one_line_and_exits_non_zero(capsys, request):
    config = request.config.rootpath / "configs" / "cartpole.yaml"
    assert main(["train", str(config), "algorithm.n_env=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'algorithm.n_envs'" in err
    assert "Traceback" not in err


def test_train_with_a_missing_config_file(capsys):
    assert main(["train", "no/such.yaml"]) == 2
    assert "No config file" in capsys.readouterr().err


def test_train_needs_a_config_or_a_run_to_resume(capsys, tmp_path):
    assert main(["train"]) == 2
    assert "train needs a CONFIG file, or --resume RUN_DIR" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_train_then_resume_with_a_larger_budget(capsys, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "base_dir: tiny\nprogress_bar: false\ngym_env: {env_name: CartPole-v1}\n"
        "algorithm: {n_envs: 2, transitions_per_env: 16, batch_size: 32, max_steps: 64,\n"
        "  eval_interval: 32}\n"
    )
    assert main(["train", str(config)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "outputs/tiny", "algorithm.max_steps=128"]) == 0
    out = capsys.readouterr().out
    resumed_at = int(re.search(r"Resuming .* at (\d+) env steps", out).group(1))
    done_at = int(re.search(r"Done: (\d+) env steps", out).group(1))
    assert 64 <= resumed_at < 128 <= done_at
    assert main(["train", "--resume", "outputs/tiny", "algorithm.gae_lambda=0.5"]) == 2
    assert "Cannot change 'algorithm.gae_lambda'" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_instead_of_posing_as_a_user_error(monkeypatch, request):
    # A torch shape error or an internal ValueError is not the user's mistake.
    from bbrl_ppo.algorithms.ppo import PPOClip

    def broken_update(self, rollout):
        raise ValueError("mat1 and mat2 shapes cannot be multiplied (an internal bug)")

    monkeypatch.setattr(PPOClip, "update", broken_update)
    monkeypatch.chdir(request.config.rootpath)
    config = str(request.config.rootpath / "configs" / "cartpole.yaml")
    with pytest.raises(ValueError, match="internal bug"):
        main(
            [
                "train",
                config,
                "algorithm.max_steps=300",
                "base_dir=/tmp/bug_run",
                "progress_bar=false",
            ]
        )


def test_every_user_facing_error_shares_one_base_class():
    from bbrl_ppo import ConfigError, UserError
    from bbrl_ppo.errors import InvalidInputError, MissingFileError
    from bbrl_ppo.persistence.agent_checkpoint import UnsafeCheckpointError
    from bbrl_ppo.persistence.registry import UnknownClassError
    from bbrl_ppo.persistence.training_checkpoint import CheckpointMismatchError

    for error in (
        ConfigError,
        CheckpointMismatchError,
        UnsafeCheckpointError,
        UnknownClassError,
        InvalidInputError,
        MissingFileError,
    ):
        assert issubclass(error, UserError), error
