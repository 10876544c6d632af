"""A MuJoCo simulation's state (`mujoco.MjData`) as plain arrays, for an exact resume.

Positions and velocities are not enough to continue bit for bit. MuJoCo's next step reads
its whole *integration state* (``mjSTATE_INTEGRATION``: the time, positions, velocities,
activations, the constraint solver's warm start, controls, applied forces, mocap poses,
user data, plugin state): without the warm start, say, the solver starts from elsewhere
and the trajectory drifts in its last bits. And envs read more than that state between
steps: Ant's reward reads a body position, Humanoid's observation the contact forces.
MuJoCo computes those during a step, from the state before its last sub-step, so
`mujoco.mj_forward` on the restored state would compute other values.

Both are therefore saved: the integration state, through MuJoCo's own
`mj_getState`/`mj_setState`, and every array of `MjData` whose size the model fixes, as the
last step left it. Arrays whose size depends on the contacts of the moment (``efc_*``,
``contact``) are left to `mj_forward`: the next step computes them anew before reading them.
Not saved: the `MjModel`, which the env's constructor builds from its XML (an env that
edits its model while running cannot resume exactly).

Nothing here imports mujoco: an `MjData` can exist only once mujoco is imported, so its
types are looked up among the imported modules, and bbrl_ppo works without mujoco.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np

from bbrl_ppo.errors import InvalidInputError

#: Where gymnasium keeps its MuJoCo renderer (a rendering context: no simulation state).
_RENDERING_MODULE = "gymnasium.envs.mujoco.mujoco_rendering"


def _mujoco() -> ModuleType | None:
    return sys.modules.get("mujoco")


def is_simulation(value: Any) -> bool:
    """Whether `value` is a MuJoCo `MjData`, whose state `capture_simulation` saves."""
    mujoco = _mujoco()
    return mujoco is not None and isinstance(value, mujoco.MjData)


def is_static(value: Any) -> bool:
    """Whether `value` is a MuJoCo object that holds no state to save.

    An `MjModel` is rebuilt by the env's constructor; gymnasium's `MujocoRenderer` holds
    OpenGL contexts, opened again at the next render.
    """
    mujoco = _mujoco()
    if mujoco is not None and isinstance(value, mujoco.MjModel):
        return True
    rendering = sys.modules.get(_RENDERING_MODULE)
    return rendering is not None and isinstance(value, rendering.MujocoRenderer)


def capture_simulation(data: Any) -> dict[str, Any]:
    """The integration state of `data` and copies of its arrays of fixed size (numpy)."""
    mujoco = _mujoco()
    integration_kind = mujoco.mjtState.mjSTATE_INTEGRATION
    integration = np.empty(mujoco.mj_stateSize(data.model, integration_kind), dtype=np.float64)
    mujoco.mj_getState(data.model, data, integration, integration_kind)
    arrays = {name: np.array(getattr(data, name), copy=True) for name in _fixed_arrays(data)}
    return {"integration": integration, "arrays": arrays}


def restore_simulation(data: Any, state: dict[str, Any]) -> None:
    """Put `data` back where `capture_simulation` saw it, in place (the env keeps its object)."""
    mujoco = _mujoco()
    integration_kind = mujoco.mjtState.mjSTATE_INTEGRATION
    integration = np.asarray(state["integration"], dtype=np.float64)
    expected = mujoco.mj_stateSize(data.model, integration_kind)
    if integration.shape != (expected,):
        raise InvalidInputError(
            f"The checkpoint's MuJoCo state has {integration.size} values, this env's model "
            f"needs {expected}: it was saved from another model"
        )
    mujoco.mj_setState(data.model, data, integration, integration_kind)
    # Contact-sized arrays and counters for the restored state; the fixed-size ones are
    # then set back to what the last step left (see the module's docstring).
    mujoco.mj_forward(data.model, data)
    for name, saved in state["arrays"].items():
        target = getattr(data, name, None)
        if not isinstance(target, np.ndarray) or target.shape != saved.shape:
            found = getattr(target, "shape", None)
            raise InvalidInputError(
                f"The checkpoint's MuJoCo array {name!r} has shape {saved.shape}, this env's "
                f"has {found}: it was saved from another model or MuJoCo version"
            )
        target[...] = saved


def _fixed_arrays(data: Any) -> list[str]:
    """Names of the non-empty arrays of `data` whose shape the model alone sets.

    Found by comparison with a new `MjData` of the same model, where no contact exists:
    an array of the same shape there is allocated by the model (a contact-sized one of
    the same shape by chance is harmless to save, being recomputed before use).
    """
    fresh = _mujoco().MjData(data.model)
    names = []
    for name in dir(data):
        if name.startswith("_"):
            continue
        value = getattr(data, name)
        if isinstance(value, np.ndarray) and value.size:
            reference = getattr(fresh, name, None)
            if isinstance(reference, np.ndarray) and reference.shape == value.shape:
                names.append(name)
    return names
