"""Saving and restoring the state of gymnasium envs as plain data.

An exact resume needs every env exactly where it was: CartPole's ``state``
vector, its RNG, the time limit's step counter, the vector env's auto-reset
flags. Gymnasium has no state API, but most envs keep their state in plain
attributes (numbers, arrays, RNGs) on each wrapper layer; those are captured here
as tensors and numbers, so that the checkpoint loads with
``torch.load(weights_only=True)``.

A MuJoCo simulation (`mujoco.MjData`) is captured through MuJoCo's own state API
(`bbrl_ppo.persistence.mujoco_state`); its model and renderer hold no state.

A vector implementation (gymnasium's vector entry point, e.g. `CartPoleVectorEnv`)
keeps every env's state in arrays of its own (state, step counters, pending
auto-resets) and one generator: its attributes are captured the same way, minus
its rendering objects (pygame surfaces and clocks draw the state, never change it).

An env whose state lives in other objects (a Box2D world, an `AsyncVectorEnv`'s
subprocesses, a JAX vector env's device arrays) is reported as *not exact*: its
attributes that could be captured are restored (its RNG, so resets still follow the
seed), and the caller restarts its episodes.
"""

from __future__ import annotations

import types
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv, VectorEnv

from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.persistence import mujoco_state

#: Attributes that hold configuration or links, not state: never captured.
_STATIC_NAMES = frozenset(
    {"env", "spec", "metadata", "_saved_kwargs", "_ezpickle_args", "_ezpickle_kwargs"}
)
#: Values of these types are not state either (spaces are rebuilt by the constructor).
_STATIC_TYPES = (gym.Env, gym.spaces.Space, EnvSpec, type, types.FunctionType, types.MethodType)
#: Rendering objects of a vector implementation: they draw its state, never change it.
_RENDERING_NAMES = frozenset({"screen", "screens", "surf", "clock", "window"})
#: What a `SyncVectorEnv` carries from one step to the next.
_VECTOR_STATE = ("_autoreset_envs",)

_NOT_PLAIN = object()


def _encode(value: Any) -> Any:
    """`value` as tensors and plain containers, or `_NOT_PLAIN`."""
    # Before Python's types: np.float64 is a float subclass that pickles as numpy's.
    if isinstance(value, np.generic):
        return {"__numpy_scalar__": value.item(), "dtype": value.dtype.str}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if mujoco_state.is_simulation(value):
        return {"__mujoco_data__": _encode(mujoco_state.capture_simulation(value))}
    if isinstance(value, np.random.Generator):
        return {"__rng__": value.bit_generator.state}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":  # objects, bytes, strings: torch has no such tensors
            return _NOT_PLAIN
        return {
            "__ndarray__": torch.from_numpy(np.array(value, copy=True)),
            "dtype": value.dtype.str,
        }
    if isinstance(value, (list, tuple)):
        items = [_encode(item) for item in value]
        if any(item is _NOT_PLAIN for item in items):
            return _NOT_PLAIN
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        encoded = {key: _encode(item) for key, item in value.items()}
        if any(item is _NOT_PLAIN for item in encoded.values()):
            return _NOT_PLAIN
        return {"__dict__": encoded}
    return _NOT_PLAIN


def _decode(value: Any, current: Any = None) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_decode(item) for item in value)
    if not isinstance(value, dict):
        return value
    if "__rng__" in value:
        generator = current if isinstance(current, np.random.Generator) else None
        if generator is None:
            bit_generator = getattr(np.random, value["__rng__"]["bit_generator"])()
            generator = np.random.Generator(bit_generator)
        generator.bit_generator.state = value["__rng__"]
        return generator
    if "__mujoco_data__" in value:
        if not mujoco_state.is_simulation(current):
            raise InvalidInputError(
                "The checkpoint holds a MuJoCo simulation where the env has "
                f"{type(current).__name__}"
            )
        mujoco_state.restore_simulation(current, _decode(value["__mujoco_data__"]))
        return current
    if "__numpy_scalar__" in value:
        return np.dtype(value["dtype"]).type(value["__numpy_scalar__"])
    if "__ndarray__" in value:
        return value["__ndarray__"].numpy().astype(np.dtype(value["dtype"]), copy=True)
    return {key: _decode(item) for key, item in value["__dict__"].items()}


def _is_static(name: str, value: Any) -> bool:
    return (
        name in _STATIC_NAMES or isinstance(value, _STATIC_TYPES) or mujoco_state.is_static(value)
    )


def _layers(env: gym.Env) -> list[gym.Env]:
    layers = [env]
    while isinstance(layers[-1], gym.Wrapper):
        layers.append(layers[-1].env)
    return layers


def _capture_attributes(owner: Any, ignored: frozenset[str] = frozenset()) -> tuple[dict, list]:
    """`owner`'s plain attributes, encoded, and the names of those that are not plain."""
    attributes, uncaptured = {}, []
    for name, value in vars(owner).items():
        if name in ignored or _is_static(name, value):
            continue
        encoded = _encode(value)
        if encoded is _NOT_PLAIN:
            uncaptured.append(f"{type(owner).__name__}.{name} ({type(value).__name__})")
        else:
            attributes[name] = encoded
    return attributes, uncaptured


def _restore_attributes(owner: Any, attributes: dict[str, Any]) -> None:
    for name, value in attributes.items():
        setattr(owner, name, _decode(value, getattr(owner, name, None)))


def capture_env(env: gym.Env) -> dict[str, Any]:
    """The plain attributes of each layer of `env`, and whether that is all its state."""
    layers, uncaptured = [], []
    for layer in _layers(env):
        attributes, not_plain = _capture_attributes(layer)
        uncaptured.extend(not_plain)
        layers.append({"type": type(layer).__qualname__, "attributes": attributes})
    return {"layers": layers, "uncaptured": uncaptured}


def restore_env(env: gym.Env, state: dict[str, Any]) -> None:
    """Set back what `capture_env` saved, layer by layer."""
    layers = _layers(env)
    saved_types = [layer["type"] for layer in state["layers"]]
    if saved_types != [type(layer).__qualname__ for layer in layers]:
        raise InvalidInputError(
            f"The env's wrappers changed since the checkpoint: {saved_types} were saved, "
            f"{[type(layer).__qualname__ for layer in layers]} are there now"
        )
    for layer, saved in zip(layers, state["layers"], strict=True):
        _restore_attributes(layer, saved["attributes"])


def capture_vector_env(envs: VectorEnv) -> dict[str, Any]:
    """Each sub-env's state and the vector env's own; ``exact`` says if that is all.

    A `SyncVectorEnv` is captured env by env; an `AsyncVectorEnv` not at all (its
    envs live in other processes); any other vector env, a vector implementation
    that steps all its envs itself, from its own attributes.
    """
    if isinstance(envs, AsyncVectorEnv):
        reason = f"{type(envs).__name__} keeps its envs in other processes"
        return {"exact": False, "reason": reason, "envs": None, "vector": {}}
    if not isinstance(envs, SyncVectorEnv):
        return _capture_vector_implementation(envs)
    sub_states = [capture_env(env) for env in envs.envs]
    uncaptured = sorted({item for state in sub_states for item in state["uncaptured"]})
    vector = {name: _encode(getattr(envs, name)) for name in _VECTOR_STATE}
    return _vector_state(uncaptured, envs=sub_states, vector=vector)


def _capture_vector_implementation(envs: VectorEnv) -> dict[str, Any]:
    """Its attributes: it keeps every env's state in them, there are no sub-envs."""
    vector, uncaptured = _capture_attributes(envs, _RENDERING_NAMES)
    state = _vector_state(sorted(uncaptured), envs=None, vector=vector)
    state["implementation"] = type(envs).__qualname__
    return state


def _vector_state(uncaptured: list[str], **captured: Any) -> dict[str, Any]:
    return {
        "exact": not uncaptured,
        "reason": f"not saved: {', '.join(uncaptured)}" if uncaptured else "",
        **captured,
    }


def restore_vector_env(envs: VectorEnv, state: dict[str, Any]) -> None:
    """Restore what `capture_vector_env` saved (the captured part, when not exact)."""
    if state["envs"] is not None:
        _restore_sync_vector_env(envs, state)
    elif "implementation" in state:
        _restore_vector_implementation(envs, state)
    # else: the envs lived in subprocesses, nothing was saved


def _restore_sync_vector_env(envs: VectorEnv, state: dict[str, Any]) -> None:
    if not isinstance(envs, SyncVectorEnv) or len(envs.envs) != len(state["envs"]):
        raise InvalidInputError("The checkpoint's envs do not match this vector env")
    for env, env_state in zip(envs.envs, state["envs"], strict=True):
        restore_env(env, env_state)
    for name, value in state["vector"].items():
        setattr(envs, name, _decode(value))


def _restore_vector_implementation(envs: VectorEnv, state: dict[str, Any]) -> None:
    saved = state["implementation"]
    saved_envs = _decode(state["vector"].get("num_envs"))
    if type(envs).__qualname__ != saved or saved_envs != envs.num_envs:
        raise InvalidInputError(
            f"The checkpoint holds a {saved} of {saved_envs} envs, this vector env is a "
            f"{type(envs).__qualname__} of {envs.num_envs}"
        )
    _restore_attributes(envs, state["vector"])
