"""The names bbrl notebooks import, the logger helpers, and tensorboard set-up."""

import bbrl.agents
import bbrl.utils.functional
import bbrl.workspace
import torch
from omegaconf import OmegaConf

import bbrl_ppo
from bbrl_ppo import Logger, setup_tensorboard


def test_bbrl_classes_are_re_exported_not_rewritten():
    assert bbrl_ppo.Agent is bbrl.agents.Agent
    assert bbrl_ppo.Agents is bbrl.agents.Agents
    assert bbrl_ppo.TemporalAgent is bbrl.agents.TemporalAgent
    assert bbrl_ppo.KWAgentWrapper is bbrl.agents.KWAgentWrapper
    assert bbrl_ppo.Workspace is bbrl.workspace.Workspace
    assert bbrl_ppo.gae is bbrl.utils.functional.gae


def test_every_name_of_the_reference_notebook_is_importable():
    names = [
        "Agent", "Agents", "TemporalAgent", "KWAgentWrapper", "Workspace", "build_ortho_mlp",
        "ortho_init", "build_mlp", "setup_optimizer", "copy_parameters", "gae", "EpisodicAlgo",
        "iter_partial_episodes", "iter_episodes", "setup_tensorboard", "VAgent", "DiscretePolicy",
    ]  # fmt: skip
    missing = [name for name in names if not hasattr(bbrl_ppo, name)]
    assert not missing


def test_current_time_resolver_is_registered_on_import():
    cfg = OmegaConf.create({"base_dir": "run_${current_time:}"})
    assert cfg.base_dir.startswith("run_2")


def test_logger_writes_scalars_and_converts_tensors(tmp_path):
    logger = Logger({"every_n_seconds": 10}, tmp_path)
    logger.add_log("loss", torch.tensor(0.5), 10)
    logger.log_losses(torch.tensor(1.0), torch.tensor(2.0), 3.0, 20)
    logger.log_reward_losses(torch.tensor([1.0, 2.0, 3.0]), 30)
    logger.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "critic_loss", "entropy_loss", "actor_loss", "reward/mean"} <= tags
    assert {"reward/min", "reward/max", "reward/median", "reward/std"} <= tags
    assert events.Scalars("reward/mean")[0].value == 2.0
    assert events.Scalars("actor_loss")[0].value == 3.0


def test_setup_tensorboard_prints_the_command_outside_notebooks(capsys, tmp_path):
    setup_tensorboard(tmp_path)
    assert f"tensorboard --logdir {tmp_path}" in capsys.readouterr().out


def test_experiment_functions_are_exported_and_matplotlib_loads_only_when_used():
    import subprocess
    import sys

    code = (
        "import sys, bbrl_ppo; assert 'matplotlib' not in sys.modules; "
        "from bbrl_ppo.experiments.plotting import plot_runs; "
        "from bbrl_ppo.experiments.report import report_runs; "
        "assert bbrl_ppo.plot_runs is plot_runs and bbrl_ppo.report_runs is report_runs; "
        "assert callable(bbrl_ppo.run_seeds) and callable(bbrl_ppo.resume_experiment)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert set(bbrl_ppo.__all__) >= {"plot_runs", "report_runs", "run_seeds", "resume_experiment"}
