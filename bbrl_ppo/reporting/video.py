"""Playing one episode with a policy and writing it as an mp4."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import torch
from bbrl.agents import Agent
from bbrl.workspace import Workspace

from bbrl_ppo.agents.env import VectorGymAgent
from bbrl_ppo.errors import UserError

#: MuJoCo's off-screen OpenGL backends, in order of preference, with the library each loads:
#: EGL (a GPU's driver, or Mesa's software renderer) and OSMesa (software only).
MUJOCO_HEADLESS_BACKENDS = {"egl": "EGL", "osmesa": "OSMesa"}
#: Draws one frame of an empty model with the backend MUJOCO_GL names, in a fresh process:
#: a backend that failed in this process could not be replaced by another (PyOpenGL binds
#: its platform at its first import).
_PROBE = (
    "import mujoco; mujoco.Renderer(mujoco.MjModel.from_xml_string('<mujoco/>'), 8, 8).render()"
)
_PROBE_TIMEOUT_S = 60


class RenderingBackendError(UserError):
    """No OpenGL backend can draw a MuJoCo env off-screen on this machine."""


def headless_rendering() -> None:
    """Let pygame-based envs render off-screen when there is no display."""
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def select_mujoco_backend() -> str | None:
    """Set ``MUJOCO_GL`` to an off-screen backend that works, when nothing chose one.

    Without a display, gymnasium's MuJoCo renderer, left to itself, picks GLFW, which
    cannot open a window and says nothing; the first frame then fails with MuJoCo's
    "an OpenGL platform library has not been loaded". The renderer reads ``MUJOCO_GL``
    when it opens its OpenGL context at the first render (mujoco reads it at its import
    only for its own `mujoco.Renderer`), so setting it here, after the env is created
    and before its first frame, is in time even when training imported mujoco long
    before. A ``MUJOCO_GL`` the user set, or a display (GLFW works there), is left alone.
    Returns the backend set, or None when none was needed.

    Raises:
        RenderingBackendError: no backend can draw here.
    """
    if os.environ.get("MUJOCO_GL") or os.environ.get("DISPLAY"):
        return None
    failures = []
    for backend, library in MUJOCO_HEADLESS_BACKENDS.items():
        failure = _backend_failure(backend, library)
        if failure is None:
            os.environ["MUJOCO_GL"] = backend
            return backend
        failures.append(f"{backend}: {failure}")
    raise RenderingBackendError(
        "No OpenGL backend can render MuJoCo off-screen here (no DISPLAY, MUJOCO_GL unset; "
        f"{'; '.join(failures)}): install EGL (Debian: libegl1) or OSMesa (libosmesa6), "
        "or set MUJOCO_GL to a backend that works on this machine"
    )


def _backend_failure(backend: str, library: str) -> str | None:
    """Why `backend` cannot draw here, in a few words; None when it can."""
    if ctypes.util.find_library(library) is None:
        return f"no lib{library} found"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env={**os.environ, "MUJOCO_GL": backend},
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"no frame within {_PROBE_TIMEOUT_S} s"
    if probe.returncode == 0:
        return None
    lines = [line.strip() for line in probe.stderr.splitlines() if line.strip()]
    return lines[-1][:200] if lines else f"exit status {probe.returncode}"


def _is_mujoco(env_agent: VectorGymAgent) -> bool:
    """Whether `env_agent`'s envs are gymnasium MuJoCo envs (looked up without importing it)."""
    module = sys.modules.get("gymnasium.envs.mujoco.mujoco_env")
    envs = getattr(env_agent.envs, "envs", ())  # a SyncVectorEnv's; the recorder uses one
    return module is not None and any(isinstance(env.unwrapped, module.MujocoEnv) for env in envs)


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

    `make_env_agent` builds a one-env agent (a sync vector env) with
    ``render_mode="rgb_array"`` and ``autoreset=False``; it is called after off-screen
    rendering is set up, and its env is closed here. Without a display, MuJoCo envs
    render with the first of `MUJOCO_HEADLESS_BACKENDS` that works (`select_mujoco_backend`).

    Raises:
        RenderingBackendError: a MuJoCo env, no display, and no off-screen backend works.
    """
    headless_rendering()
    env_agent = make_env_agent()
    try:
        if _is_mujoco(env_agent):
            select_mujoco_backend()
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
