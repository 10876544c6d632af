"""MuJoCo: the paper's configs train, a simulation resumes bit for bit, videos render headless."""

import csv
import ctypes.util
import io
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from bbrl_ppo.algorithms.ppo import PPOClip
from bbrl_ppo.cli.training import load_config
from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.persistence.env_state import capture_env, restore_env
from bbrl_ppo.persistence.mujoco_state import capture_simulation, restore_simulation
from bbrl_ppo.persistence.training_checkpoint import checkpoint_file
from bbrl_ppo.reporting.video import select_mujoco_backend

pytest.importorskip(
    "mujoco", reason="mujoco is not installed: install the extra with pip install -e '.[mujoco]'"
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = {
    "halfcheetah.yaml": "HalfCheetah-v5",
    "hopper.yaml": "Hopper-v5",
    "walker2d.yaml": "Walker2d-v5",
}


# -- the configs -------------------------------------------------------------------------
#: The PPO paper's MuJoCo settings (Schulman et al. 2017, Table 3) with CleanRL's additions.
PAPER_SETTINGS = {
    "n_envs": 1,
    "transitions_per_env": 2048,
    "max_steps": 1_000_000,
    "opt_epochs": 10,
    "batch_size": 64,
    "discount_factor": 0.99,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "anneal_lr": True,
    "anneal_clip_range": False,
    "entropy_coef": 0.0,
    "critic_coef": 0.5,
    "max_grad_norm": 0.5,
    "normalize_observations": True,
    "observation_clip": 10.0,
    "normalize_rewards": True,
    "state_dependent_std": False,
    "init_log_std": 0.0,
    "nb_evals": 10,
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_mujoco_config_holds_the_papers_settings(name):
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.gym_env.env_name == CONFIGS[name]
    assert {key: cfg.algorithm[key] for key in PAPER_SETTINGS} == PAPER_SETTINGS
    assert cfg.algorithm.architecture.actor_hidden_size == [64, 64]
    assert cfg.algorithm.architecture.critic_hidden_size == [64, 64]
    assert cfg.algorithm.architecture.activation == "tanh"
    assert (cfg.optimizer.lr, cfg.optimizer.eps) == (3e-4, 1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_mujoco_config_trains_a_few_hundred_steps(name):
    overrides = [
        "algorithm.max_steps=256",
        "algorithm.transitions_per_env=128",
        "algorithm.opt_epochs=1",
        "algorithm.eval_interval=128",
        "algorithm.nb_evals=1",
        "gym_env.env_args.max_episode_steps=50",
        "progress_bar=false",
        "base_dir=run",
    ]
    algo = PPOClip(load_config(ROOT / "configs" / name, overrides))
    algo.run()
    algo.close()
    assert algo.nb_steps >= 256
    with open(algo.base_dir / "evals.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) >= 1
    assert all(math.isfinite(float(row["reward_mean"])) for row in rows)


# -- the simulation's state --------------------------------------------------------------
def _step_results(env, actions):
    """Everything `env` returns for `actions` (resetting at episode ends), as a list."""
    results = []
    for action in actions:
        observation, reward, terminated, truncated, info = env.step(action)
        results.append((observation, reward, terminated, truncated, info))
        if terminated or truncated:
            results.append(env.reset())
    return results


def _same(first, second):
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(_same(first[k], second[k]) for k in first)
    if isinstance(first, tuple):
        return len(first) == len(second) and all(map(_same, first, second))
    return np.array_equal(first, second)


@pytest.mark.parametrize(
    "env_name, max_episode_steps",
    # HalfCheetah truncates after the save (the time limit's counter); Hopper and Walker2d
    # fall (termination), then reset from their RNG. Ant reads body positions and contact
    # forces that MuJoCo computed during the last step, which qpos and qvel do not give.
    [("HalfCheetah-v5", 200), ("Hopper-v5", None), ("Walker2d-v5", None), ("Ant-v5", 200)],
)
def test_a_simulation_saved_mid_episode_continues_bit_for_bit(env_name, max_episode_steps):
    rng = np.random.default_rng(0)
    original = gym.make(env_name, max_episode_steps=max_episode_steps)
    original.reset(seed=3)
    _step_results(original, rng.uniform(-1, 1, (137, *original.action_space.shape)))
    buffer = io.BytesIO()
    torch.save(capture_env(original), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # what a checkpoint reads back
    assert state["uncaptured"] == []

    restored = gym.make(env_name, max_episode_steps=max_episode_steps)
    restored.reset(seed=99)
    _step_results(restored, rng.uniform(-1, 1, (5, *restored.action_space.shape)))
    restore_env(restored, state)
    assert restored.unwrapped.data.time == original.unwrapped.data.time  # no observation shows it

    actions = rng.uniform(-1, 1, (400, *original.action_space.shape))
    expected, got = _step_results(original, actions), _step_results(restored, actions)
    assert len(expected) > len(actions)  # an episode ended and both reset
    assert [_same(a, b) for a, b in zip(expected, got, strict=True)] == [True] * len(expected)


def test_a_simulation_of_another_model_is_refused():
    cheetah, hopper = gym.make("HalfCheetah-v5"), gym.make("Hopper-v5")
    cheetah.reset(seed=0)
    hopper.reset(seed=0)
    state = capture_simulation(cheetah.unwrapped.data)
    with pytest.raises(InvalidInputError, match="another model"):
        restore_simulation(hopper.unwrapped.data, state)


# -- resuming a killed run ---------------------------------------------------------------
SIGKILL_CONFIG = """
progress_bar: false
gym_env: {env_name: HalfCheetah-v5, env_args: {max_episode_steps: 100}}
algorithm: {seed: 3, n_envs: 2, transitions_per_env: 64, max_steps: 2400, eval_interval: 400,
  nb_evals: 2, checkpoint_interval: 500, opt_epochs: 2, batch_size: 64, anneal_lr: true,
  normalize_observations: true, normalize_rewards: true}
"""


def _train(*arguments):
    return [sys.executable, "-m", "bbrl_ppo", "train", *arguments]


def _eval_rows(run_dir):
    """evals.csv without its wall-clock column."""
    with open(Path(run_dir) / "evals.csv") as file:
        return [[row[0], *row[2:]] for row in csv.reader(file)]


def _checkpoint_steps(path):
    try:
        return torch.load(path, weights_only=True)["training_state"]["nb_steps"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


@pytest.mark.slow
def test_a_halfcheetah_run_killed_with_sigkill_and_resumed_matches_the_uninterrupted_run():
    Path("cfg.yaml").write_text(SIGKILL_CONFIG)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole = subprocess.run(
        _train("cfg.yaml", "base_dir=whole"), env=environment, capture_output=True, text=True
    )
    assert whole.returncode == 0, whole.stderr

    killed = subprocess.Popen(
        _train("cfg.yaml", "base_dir=killed"),
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = checkpoint_file(Path("outputs/killed"))
    deadline = time.monotonic() + 120
    while _checkpoint_steps(checkpoint) < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
    saved = torch.load(checkpoint, weights_only=True)["training_state"]
    assert 1000 <= saved["nb_steps"] < 2400  # killed mid-run, evaluations still to come
    assert saved["train_env"]["envs"]["exact"]

    resume = subprocess.run(
        _train("--resume", "outputs/killed"), env=environment, capture_output=True, text=True
    )
    assert resume.returncode == 0, resume.stderr
    assert "new episodes" not in resume.stderr
    assert len(_eval_rows("outputs/whole")) == 7  # the header and evaluations at 400...2400
    assert _eval_rows("outputs/killed") == _eval_rows("outputs/whole")


# -- videos without a display ------------------------------------------------------------
VIDEO_SIZE = (64, 96)  # height, width: not MuJoCo's 480 x 480 default


@pytest.fixture(scope="module")
def tiny_halfcheetah_run(tmp_path_factory):
    """A run with a best agent, on 20-step episodes drawn at 96 x 64."""
    directory = tmp_path_factory.mktemp("video")
    run_dir = directory / "run"
    height, width = VIDEO_SIZE
    cfg = load_config(
        ROOT / "configs" / "halfcheetah.yaml",
        [
            "algorithm.max_steps=64",
            "algorithm.transitions_per_env=64",
            "algorithm.opt_epochs=1",
            "algorithm.eval_interval=64",
            "algorithm.nb_evals=1",
            "gym_env.env_args.max_episode_steps=20",
            f"gym_env.env_args.width={width}",
            f"gym_env.env_args.height={height}",
            "progress_bar=false",
            f"base_dir={run_dir}",
        ],
    )
    with pytest.MonkeyPatch.context() as patch:
        # Before the tests' own folders: MuJoCo 4 logs HalfCheetah's XML warning to the
        # working directory (MUJOCO_LOG.TXT).
        patch.chdir(directory)
        algo = PPOClip(cfg)
        algo.run()
        algo.close()
    return run_dir


def test_a_chosen_backend_or_a_display_is_left_alone(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert select_mujoco_backend() is None
    assert os.environ["MUJOCO_GL"] == "osmesa"
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setenv("DISPLAY", ":0")
    assert select_mujoco_backend() is None
    assert "MUJOCO_GL" not in os.environ


def _headless_environment(**extra):
    """This process's environment without a display or a chosen OpenGL backend."""
    removed = ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL", "PYOPENGL_PLATFORM")
    environment = {key: value for key, value in os.environ.items() if key not in removed}
    return {**environment, "PYTHONPATH": str(ROOT), **extra}


def _play(run_dir, video, environment):
    command = [sys.executable, "-m", "bbrl_ppo", "play", str(run_dir), "--video", str(video)]
    return subprocess.run(command, env=environment, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.skipif(
    ctypes.util.find_library("EGL") is None and ctypes.util.find_library("OSMesa") is None,
    reason="neither libEGL nor libOSMesa is installed: MuJoCo cannot render off-screen here",
)
def test_play_writes_a_mujoco_video_without_a_display(tiny_halfcheetah_run):
    played = _play(tiny_halfcheetah_run, "cheetah.mp4", _headless_environment())
    assert played.returncode == 0, played.stderr
    with imageio.get_reader("cheetah.mp4") as reader:
        frames = list(reader.iter_data())  # the reader's len() is inf: list(reader) fails
    assert len(frames) == 21  # the reset and 20 steps
    assert frames[0].shape == (*VIDEO_SIZE, 3)
    assert float(np.std(frames[0])) > 1.0  # a drawn scene, not a blank frame


@pytest.mark.slow
def test_play_says_in_one_line_that_no_opengl_backend_works(tiny_halfcheetah_run):
    # PyOpenGL bound to GLX: neither EGL nor OSMesa can load, as on a machine without them.
    played = _play(
        tiny_halfcheetah_run, "cheetah.mp4", _headless_environment(PYOPENGL_PLATFORM="glx")
    )
    assert played.returncode == 2
    errors = [line for line in played.stderr.splitlines() if line.startswith("bbrl-ppo:")]
    assert len(errors) == 1
    assert errors[0].startswith("bbrl-ppo: error: No OpenGL backend can render MuJoCo off-screen")
    assert "egl:" in errors[0] and "osmesa:" in errors[0]
    assert "Traceback" not in played.stderr
    assert not Path("cheetah.mp4").exists()
