"""Replaying a saved agent: returns over fresh episodes, and an optional video."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from bbrl.agents import Agents, TemporalAgent

from bbrl_ppo.agents.env import VectorGymAgent
from bbrl_ppo.algorithms.base import BEST_AGENT_FILE
from bbrl_ppo.algorithms.evaluation import play_episodes
from bbrl_ppo.errors import InvalidInputError, MissingFileError
from bbrl_ppo.persistence.agent_checkpoint import UnsafeCheckpointError, load_agent, read_checkpoint
from bbrl_ppo.reporting.video import record_video

#: Seeds for replays, away from the training and evaluation seeds.
REPLAY_SEED = 2_000_003


@dataclass
class ReplayResult:
    returns: torch.Tensor
    video: Path | None = None

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std()) if self.returns.numel() > 1 else 0.0


def checkpoint_path(run_or_file: str | Path) -> Path:
    """Accept a run directory (holding ``best_agent.pt``) or the checkpoint itself."""
    path = Path(run_or_file)
    if path.is_dir():
        path = path / BEST_AGENT_FILE
    if not path.is_file():
        raise MissingFileError(
            f"No {BEST_AGENT_FILE} in {run_or_file}: train with save_best: true first"
        )
    return path


def replay(
    run_or_file: str | Path,
    episodes: int = 10,
    seed: int = REPLAY_SEED,
    video: str | Path | None = None,
    import_env_module: bool = False,
) -> ReplayResult:
    """Play `episodes` full episodes with the saved agent, side by side.

    With `video`, one more episode is rendered and written there as an mp4. An
    env id of the form ``"my_module:MyEnv-v0"`` makes gymnasium import
    ``my_module``; a checkpoint may only cause that with `import_env_module`
    (or once the module is imported).
    """
    if episodes < 1:
        raise InvalidInputError(f"episodes must be >= 1, got {episodes}")
    path = checkpoint_path(run_or_file)
    checkpoint = read_checkpoint(path)
    if checkpoint.get("env_wrappers"):
        warnings.warn(
            f"The run used the env wrappers {checkpoint['env_wrappers']}, which cannot be "
            "restored from a checkpoint: the replay runs without them",
            stacklevel=2,
        )
    env_name, env_args = checkpoint["env_name"], checkpoint.get("env_args") or {}
    _refuse_module_import(path, env_name, import_env_module)
    policy = load_agent(path)

    env_agent = VectorGymAgent(env_name, episodes, env_args=env_args, autoreset=False, seed=seed)
    try:
        returns = play_episodes(TemporalAgent(Agents(env_agent, policy)))
    finally:
        env_agent.close()

    video_path = None
    if video is not None:
        video_path, _ = record_video(
            lambda: VectorGymAgent(
                env_name, 1, env_args=env_args, autoreset=False, seed=seed, render_mode="rgb_array"
            ),
            policy,
            video,
        )
    return ReplayResult(returns=returns, video=video_path)


def _refuse_module_import(path: Path, env_name: str, allowed: bool) -> None:
    """A downloaded checkpoint must not make us import (run) a module it names."""
    module = env_name.partition(":")[0] if ":" in env_name else None
    if module is None or allowed or module in sys.modules:
        return
    raise UnsafeCheckpointError(
        f"{path} names the env {env_name!r}: replaying it would import the module "
        f"{module!r} and run its code. If you trust it, import it first or pass "
        "--import-env-module (import_env_module=True)"
    )
