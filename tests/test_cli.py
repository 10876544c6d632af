"""The bbrl-ppo command line: help, smoke run, replay and evaluation, errors."""

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
