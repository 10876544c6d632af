"""Playing one episode with a policy and writing it as an mp4."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from bbrl.agents import Agent
from bbrl.workspace import Workspace

from bbrl_ppo.agents.env import VectorGymAgent


def headless_rendering() -> None:
    """Let pygame-based envs render off-screen when there is no display."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def record_episode(env_agent: VectorGymAgent, policy: Agent) -> tuple[list[np.ndarray], float]:
    """Frames of one full episode of `policy` and its return.

    `env_agent` must hold one env created with ``render_mode="rgb_array"`` and
    ``autoreset=False``.
    """
    if env_agent.num_envs != 1 or env_agent.autoreset:
        raise ValueError("record_episode needs a single env without auto-reset")
    workspace = Workspace()
    frames = []
    t = 0
    with torch.inference_mode():
        while True:
            env_agent(workspace, t=t)
            frames.append(env_agent.render()[0])
            if bool(workspace.get("env/done", t).all()):
                break
            policy(workspace, t=t)
            t += 1
    episode_return = float(workspace.get("env/cumulated_reward", t)[0])
    return frames, episode_return


def record_video(
    make_env_agent: Callable[[], VectorGymAgent], policy: Agent, path: str | Path
) -> tuple[Path, float]:
    """Play one episode of `policy` and write it as an mp4 at `path`; returns path and return.

    `make_env_agent` builds a one-env agent with ``render_mode="rgb_array"`` and
    ``autoreset=False``; it is called after off-screen rendering is set up, and
    its env is closed here.
    """
    headless_rendering()
    env_agent = make_env_agent()
    try:
        frames, episode_return = record_episode(env_agent, policy)
        fps = env_agent.envs.metadata.get("render_fps") or 30
    finally:
        env_agent.close()
    return write_video(frames, path, fps=int(fps)), episode_return


def write_video(frames: list[np.ndarray], path: str | Path, fps: int = 30) -> Path:
    """Write RGB frames as an H.264 mp4 (frames padded to even sizes, as the codec needs)."""
    if not frames:
        raise ValueError("No frames to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=fps, codec="libx264", macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(_even_sized(np.asarray(frame, dtype=np.uint8)))
    return path


def _even_sized(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
