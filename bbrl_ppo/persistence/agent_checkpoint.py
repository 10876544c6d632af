"""Saving agents so that they can be rebuilt and replayed without pickling code.

A checkpoint is a plain dict of tensors, numbers, strings and lists, readable with
``torch.load(path, weights_only=True)``: the agent's class path, the keyword
arguments its constructor was called with, its prefix, its state dict, and the
keyword arguments of a `KWAgentWrapper` around it (the deterministic evaluation
policy is usually ``KWAgentWrapper(policy, stochastic=False)``).

Agents of this package record their constructor arguments (`RecordsInitArgs`);
for a user's own agent class, the checkpoint holds no constructor arguments and
loading needs an instance to fill (``load_agent(path, agent=MyPolicy(...))``).
"""

from __future__ import annotations

import functools
import inspect
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from bbrl.agents import Agent, KWAgentWrapper
from omegaconf import DictConfig, ListConfig, OmegaConf

from bbrl_ppo.errors import InvalidInputError, MissingFileError
from bbrl_ppo.persistence.registry import register_class, resolve_agent

CHECKPOINT_FORMAT = 1


class RecordsInitArgs:
    """Mixin that remembers the arguments of the most derived ``__init__``.

    Needed to rebuild an agent from a weights-only checkpoint: the state dict
    alone does not say how large the network was. Subclasses also register
    themselves (`bbrl_ppo.persistence.registry`): a checkpoint can only name a class whose
    definition the user ran.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        register_class(cls)
        if "__init__" not in cls.__dict__:
            return
        original_init = cls.__dict__["__init__"]
        signature = inspect.signature(original_init)

        @functools.wraps(original_init)
        def recording_init(self, *args, **kwargs):
            if "_init_args" not in self.__dict__:
                bound = signature.bind(self, *args, **kwargs)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop(next(iter(signature.parameters)))
                self.__dict__["_init_args"] = arguments
            original_init(self, *args, **kwargs)

        cls.__init__ = recording_init

    @property
    def init_args(self) -> dict[str, Any]:
        """The arguments the agent was built with, by name (a copy): what `save_agent` stores."""
        return dict(self.__dict__.get("_init_args", {}))


def save_agent(path: str | Path, agent: Agent, **extra: Any) -> Path:
    """Write `agent` (possibly a `KWAgentWrapper`) as a weights-only checkpoint.

    `extra` entries (environment id, evaluation score...) are stored alongside;
    they must be plain data. Written to a temporary file first, so an
    interrupted save never leaves a truncated checkpoint behind.
    """
    path = Path(path)
    wrapper_kwargs: dict[str, Any] | None = None
    inner = agent
    if isinstance(agent, KWAgentWrapper):
        wrapper_kwargs = _plain(agent.kwargs)
        inner = agent.wrapped
    init_args = _plain_or_none(getattr(inner, "init_args", None))
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "class": f"{type(inner).__module__}:{type(inner).__qualname__}",
        "init_args": init_args,
        "prefix": inner.prefix,
        "wrapper_kwargs": wrapper_kwargs,
        "state_dict": {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()},
        **{key: _plain(value) for key, value in extra.items()},
    }
    return atomic_save(checkpoint, path)


class UnsafeCheckpointError(InvalidInputError):
    """A file that holds more than tensors and plain data: refused, never executed."""


def atomic_save(data: dict[str, Any], path: str | Path) -> Path:
    """`torch.save` to a temporary file, fsync it, then rename it over `path`.

    A crash (even SIGKILL or a power cut) leaves either the previous file or the
    new one, never a truncated mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(path.name + ".partial")
    with partial_path.open("wb") as file:
        torch.save(data, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial_path, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # makes the rename itself durable
    finally:
        os.close(directory)
    return path


def load_plain(path: str | Path) -> dict[str, Any]:
    """Load a file written by `atomic_save` without running any code it may hold.

    `torch.load(weights_only=True)` only rebuilds tensors and plain containers; a
    file that pickles anything else (a downloaded ``best_agent.pt`` crafted to run
    a command, say) is refused with `UnsafeCheckpointError`.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"No checkpoint at {path}")
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        lines = [line for line in str(error).splitlines() if "GLOBAL" in line]
        reason = f" ({lines[0].strip()})" if lines else ""
        raise UnsafeCheckpointError(
            f"Refused to load {path}: it holds Python objects other than tensors and plain "
            f"data, which could run code{reason}"
        ) from None
    except (RuntimeError, EOFError) as error:
        raise InvalidInputError(f"{path} is not a readable checkpoint: {error}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{path} is not a bbrl_ppo checkpoint (it holds a {type(data).__name__})"
        )
    return data


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The best-agent checkpoint dict, loaded without executing any pickled code."""
    checkpoint = load_plain(path)
    if checkpoint.get("format") != CHECKPOINT_FORMAT or "state_dict" not in checkpoint:
        raise InvalidInputError(
            f"{path} is not a bbrl_ppo checkpoint (format {checkpoint.get('format')})"
        )
    return checkpoint


def load_agent(path: str | Path, agent: Agent | None = None) -> Agent:
    """Rebuild the saved agent (wrapped again in its `KWAgentWrapper`, if any).

    With `agent` given, its parameters are overwritten by the saved ones (the way
    to load a user-defined class, whose constructor arguments are unknown).
    """
    checkpoint = read_checkpoint(path)
    if agent is None:
        if checkpoint["init_args"] is None:
            raise InvalidInputError(
                f"{path} holds a {checkpoint['class']} whose constructor arguments were not "
                "recorded; pass an instance to fill: load_agent(path, agent=MyPolicy(...))"
            )
        agent = resolve_agent(checkpoint["class"])(**checkpoint["init_args"])
    elif isinstance(agent, KWAgentWrapper):
        agent = agent.wrapped
    agent.load_state_dict(checkpoint["state_dict"])
    agent.with_prefix(checkpoint["prefix"])
    if checkpoint["wrapper_kwargs"] is not None:
        return LoadedWrapper(agent, **checkpoint["wrapper_kwargs"])
    return agent


class LoadedWrapper(KWAgentWrapper):
    """The `KWAgentWrapper` `load_agent` returns, shown as the agent it calls.

    A saved evaluation policy is a wrapper that calls its policy with fixed keyword
    arguments (``stochastic=False``). Shown as a plain ``KWAgentWrapper(...)``, a
    loaded ``GaussianPolicy`` would not read as the class its checkpoint and the
    notebooks name; the policy's own lines come first, then how it is called.
    """

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={value!r}" for name, value in self.kwargs.items())
        return (
            f"{self.wrapped!r}\ncalled with {arguments} "
            f"(a KWAgentWrapper; .wrapped is the {type(self.wrapped).__name__})"
        )


def _plain(value: Any) -> Any:
    """Convert omegaconf containers and tuples into what `weights_only` accepts."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


_PLAIN_TYPES = (type(None), bool, int, float, str, torch.Tensor)


def _plain_or_none(arguments: dict[str, Any] | None) -> dict[str, Any] | None:
    """The arguments as plain data, or None if one of them is not (a module, a lambda)."""
    if arguments is None:
        return None
    plain = _plain(arguments)

    def is_plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(is_plain(item) for item in value)
        return isinstance(value, _PLAIN_TYPES)

    return plain if is_plain(plain) else None
