"""benchmarks/compare_peers.py: the SB3 mirror of our configs, the summary, one tiny run."""

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from bbrl_ppo.cli.training import load_config
from bbrl_ppo.persistence.run_files import EVALS_CSV_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "compare_peers.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("compare_peers", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


compare_peers = _load_script()


def test_cartpole_mirror_passes_every_hyper_parameter_under_sb3_names():
    cfg = load_config(ROOT / "configs" / "cartpole.yaml")
    mirror = compare_peers.sb3_mirror(cfg)
    assert mirror["n_envs"] == 8
    assert mirror["normalize"] is None
    assert mirror["ppo"] == {
        "n_steps": 32,
        "batch_size": 256,
        "n_epochs": 20,
        "gamma": 0.98,
        "gae_lambda": 0.8,
        "learning_rate": {"linear": 0.001},
        "clip_range": {"linear": 0.2},
        "clip_range_vf": None,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "target_kl": None,
        "normalize_advantage": True,
    }
    assert mirror["policy_kwargs"] == {
        "net_arch": {"pi": [64, 64], "vf": [64, 64]},
        "activation_fn": "Tanh",
        "ortho_init": True,
        "optimizer_class": "Adam",
        "optimizer_kwargs": {"eps": 1e-5},
    }
    # The rl-zoo preset of the cartpole-defaults case holds the same values.
    zoo = compare_peers.RL_ZOO_CARTPOLE["ppo"]
    assert {key: mirror["ppo"][key] for key in zoo} == zoo


def test_pendulum_mirror_normalizes_and_sets_the_initial_log_std():
    cfg = load_config(ROOT / "configs" / "pendulum.yaml")
    mirror = compare_peers.sb3_mirror(cfg)
    assert mirror["normalize"] == {
        "norm_obs": True,
        "norm_reward": True,
        "clip_obs": 10.0,
        "clip_reward": float("inf"),
        "gamma": 0.9,
    }
    assert mirror["ppo"]["target_kl"] == 0.03
    assert mirror["ppo"]["learning_rate"] == {"linear": 0.001}
    assert mirror["ppo"]["clip_range"] == 0.2
    assert mirror["policy_kwargs"]["log_std_init"] == 0.0


def test_halfcheetah_mirror_is_the_papers_mujoco_set_up_on_the_configs_evaluation_grid():
    pytest.importorskip("mujoco", reason="the mirror makes the env: needs the mujoco extra")
    cfg = load_config(ROOT / "configs" / "halfcheetah.yaml")
    mirror = compare_peers.sb3_mirror(cfg)
    assert mirror["n_envs"] == 1
    assert mirror["normalize"] == {
        "norm_obs": True,
        "norm_reward": True,
        "clip_obs": 10.0,
        "clip_reward": float("inf"),
        "gamma": 0.99,
    }
    assert mirror["ppo"] == {
        "n_steps": 2048,
        "batch_size": 64,
        "n_epochs": 10,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "learning_rate": {"linear": 0.0003},
        "clip_range": 0.2,
        "clip_range_vf": None,
        "ent_coef": 0.0,
        "vf_coef": 0.5,
        "max_grad_norm": 0.5,
        "target_kl": None,
        "normalize_advantage": True,
    }
    assert mirror["policy_kwargs"]["log_std_init"] == 0.0
    assert mirror["policy_kwargs"]["net_arch"] == {"pi": [64, 64], "vf": [64, 64]}
    case = compare_peers.CASES["halfcheetah"]
    assert (case.target, case.seeds, case.max_steps) == (1442.0, (1, 2), None)
    assert compare_peers.case_eval_interval(case) == cfg.algorithm.eval_interval
    assert compare_peers.case_eval_interval(compare_peers.CASES["pendulum"]) == 2048


def test_kl_penalty_variant_has_no_sb3_counterpart():
    cfg = load_config(ROOT / "configs" / "cartpole_kl.yaml")
    with pytest.raises(ValueError, match="ppo_kl"):
        compare_peers.sb3_mirror(cfg)


def test_summary_reads_the_first_evaluation_that_reaches_the_target():
    rows = [
        {"steps": 2048, "train_s": 2.0, "mean": 300.0},
        {"steps": 4096, "train_s": 4.5, "mean": 500.0},
        {"steps": 6144, "train_s": 7.0, "mean": 450.0},
    ]
    result = {
        "steps": 8192,
        "train_s": 8.0,
        "wall_s": 9.5,
        "eval_s": 1.5,
        "evals": rows,
        "peak_rss_mib": 300.0,
    }
    summary = compare_peers.summarize(result, target=500.0)
    assert summary["steps_to_target"] == 4096
    assert summary["train_s_to_target"] == 4.5
    assert summary["final_eval"] == 450.0
    assert summary["steps_per_s"] == 1024.0
    assert compare_peers.summarize(result, target=600.0)["steps_to_target"] is None


def test_the_common_final_evaluation_starts_both_sides_from_the_same_states():
    """Ours and SB3's final-evaluation envs, seeded alike, start from identical states."""
    pytest.importorskip("stable_baselines3")
    from bbrl.workspace import Workspace
    from stable_baselines3.common.env_util import make_vec_env

    from bbrl_ppo.agents.env import VectorGymAgent

    seed, episodes = compare_peers.FINAL_EVAL_SEED, 6
    ours = VectorGymAgent("Pendulum-v1", episodes, autoreset=False, seed=seed)
    workspace = Workspace()
    ours(workspace, t=0)
    theirs = make_vec_env("Pendulum-v1", episodes, seed=seed)
    start_states = theirs.reset()
    assert workspace.get("env/env_obs", 0).numpy() == pytest.approx(start_states)
    # Six different states: each env has a seed of its own.
    assert len({tuple(row) for row in start_states.round(6).tolist()}) == episodes
    ours.close()
    theirs.close()


def test_sb3_side_steps_envs_without_render_work():
    """SB3's make_vec_env would render-prepare LunarLander: a Box2D body per engine firing."""
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_util import make_vec_env

    def particles_after_firing(env_kwargs: dict) -> int:
        envs = make_vec_env("LunarLander-v3", 1, seed=0, env_kwargs=env_kwargs)
        envs.reset()
        for _ in range(10):
            envs.step(np.array([2]))  # the main engine
        count = len(envs.envs[0].unwrapped.particles)
        envs.close()
        return count

    assert particles_after_firing({}) > 0  # SB3's default: render_mode="rgb_array"
    assert particles_after_firing(compare_peers.sb3_env_kwargs({"env_kwargs": {}})) == 0
    # A render mode the config asks for is kept.
    spec = {"env_kwargs": {"render_mode": "rgb_array"}}
    assert compare_peers.sb3_env_kwargs(spec)["render_mode"] == "rgb_array"


def test_a_negative_number_of_final_episodes_is_refused(tmp_path):
    command = [sys.executable, str(SCRIPT), "--final-episodes", "-1", "--out", str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert completed.returncode == 2
    assert "--final-episodes must be 0 (none) or more, got -1" in completed.stderr
    assert not any(tmp_path.iterdir())  # refused before any run started


@pytest.mark.slow
def test_tiny_comparison_runs_both_sides_and_reports(tmp_path):
    pytest.importorskip("stable_baselines3")
    command = [sys.executable, str(SCRIPT), "--case", "cartpole", "--seeds", "1"]
    command += ["--max-steps", "600", "--eval-interval", "200", "--out", str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    assert "   1 | bbrl_ppo |" in completed.stdout
    assert "   1 | SB3      |" in completed.stdout
    for side in ("ours", "sb3"):
        result = json.loads((tmp_path / "cartpole" / f"{side}-S1.json").read_text())
        assert result["steps"] >= 600
        assert result["torch_threads"] == 1
        assert len(result["evals"]) >= 2
        assert 0 < result["train_s"] < result["wall_s"]
        # The default final evaluation: 100 episodes over the common start states.
        assert len(result["final_common"]) == 100
        assert all(1 <= value <= 500 for value in result["final_common"])
    report = subprocess.run(
        [*command, "--report"], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert completed.stdout.splitlines()[-3:] == report.stdout.splitlines()[-3:]

    # SB3's run is also a run directory like ours, for `bbrl-ppo plot` / `report`.
    sb3 = json.loads((tmp_path / "cartpole" / "sb3-S1.json").read_text())
    run_dir = tmp_path / "cartpole" / "sb3-S1"
    config = OmegaConf.load(run_dir / "config.yaml")
    assert config.peer.name == "Stable-Baselines3"
    assert (config.gym_env.env_name, config.algorithm.seed) == ("CartPole-v1", 1)
    with (run_dir / "evals.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert tuple(rows[0]) == EVALS_CSV_COLUMNS
    assert [int(row["nb_steps"]) for row in rows] == [row["steps"] for row in sb3["evals"]]
    assert [float(row["reward_mean"]) for row in rows] == [row["mean"] for row in sb3["evals"]]


def test_whole_process_times_the_train_command_and_sb3_without_evaluation(tmp_path):
    pytest.importorskip("stable_baselines3")
    command = [sys.executable, str(SCRIPT), "--case", "cartpole", "--seeds", "1"]
    # Past 2,048 steps: the config's evaluation grid gives our side one evaluation.
    command += ["--max-steps", "2100", "--whole-process", "--out", str(tmp_path)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    out = tmp_path / "cartpole-whole-process"
    ours = json.loads((out / "ours-S1.process.json").read_text())
    theirs = json.loads((out / "sb3-S1.process.json").read_text())
    for measured in (ours, theirs):
        assert measured["returncode"] == 0
        assert measured["process_s"] > 1.0  # imports alone take about that
        assert measured["peak_rss_mib"] > 50
    # Ours ran the command a user types, with the config's own evaluation protocol.
    start = ours["command"].index("-m")
    assert ours["command"][start : start + 4] == [
        "-m",
        "bbrl_ppo",
        "train",
        "configs/cartpole.yaml",
    ]
    assert not any("eval" in item for item in ours["command"][start + 4 :])
    assert ours["final_eval"] is not None
    assert (out / "ours-S1" / "best_agent.pt").is_file()  # save_best as configured
    # SB3 learned without an evaluation.
    assert json.loads((out / "sb3-S1.json").read_text())["evals"] == []
    assert "ours/SB3 process s: median" in completed.stdout
