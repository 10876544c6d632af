"""Errors that say what failed and where.

Two families. A `UserError` is a mistake the user can fix (a config value, an
unsupported space, a foreign checkpoint, a missing file): its message is the
whole story, and the CLI prints it as one line. `NumericalError`, `EnvStepError`
and `CollectiveError` stop a training run that was set up right: a NaN deep in an
update, an exception raised by env 13 of 16 inside a subprocess or a process of a
distributed run that died, otherwise reported as a bare traceback far from their
cause. Anything else is a bug, and keeps its traceback.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterable

import torch


class UserError(Exception):
    """A mistake the user can fix; the message names the value and what is allowed."""


class InvalidInputError(UserError, ValueError):
    """A value given to bbrl_ppo that cannot work (a ValueError, for code that catches those)."""


class UnsupportedSpaceError(InvalidInputError):
    """An env whose observation or action space bbrl_ppo cannot learn from (Dict, images...)."""


class MissingFileError(UserError, FileNotFoundError):
    """A config, run directory or checkpoint that is not where the user said."""


class NumericalError(RuntimeError):
    """A non-finite loss, gradient, parameter, reward or evaluation return."""


class EnvStepError(RuntimeError):
    """An environment raised while being reset or stepped."""


class CollectiveError(RuntimeError):
    """A process of a distributed run lost the others: one died, or stopped answering."""


def check_finite_value(name: str, value: float, where: str) -> None:
    """Raise `NumericalError` naming `name` and `where` unless `value` is finite."""
    if not math.isfinite(value):
        raise NumericalError(f"Non-finite {name} ({value}) {where}")


def check_finite_tensor(name: str, tensor: torch.Tensor, where: str) -> None:
    """Raise `NumericalError` unless every element of `tensor` is finite."""
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NumericalError(f"Non-finite {name} ({bad} of {tensor.numel()} values) {where}")


def check_finite_parameters(module: torch.nn.Module, name: str, where: str) -> None:
    """Raise `NumericalError` naming the first parameter or buffer that is not finite."""
    tensors: Iterable[tuple[str, torch.Tensor]] = (
        *module.named_parameters(),
        *module.named_buffers(),
    )
    for tensor_name, tensor in tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NumericalError(f"Non-finite {name} parameter '{tensor_name}' {where}")


def failing_env_index(error: BaseException) -> int | None:
    """Which env of a gymnasium vector env raised `error`, when it can be told.

    `SyncVectorEnv.step`/`reset` loop over their envs with an index ``i``;
    `AsyncVectorEnv` re-raises a worker's error where the worker's ``index`` is a
    local. Reading it from the traceback costs nothing on the step path (a
    per-env wrapper would cost a Python call per env step).
    """
    for tb in _traceback_entries(error.__traceback__):
        names = tb.tb_frame.f_locals
        vector_env = type(names.get("self")).__name__
        key = _INDEX_NAMES.get(vector_env)
        if key is not None and isinstance(names.get(key), int):
            return names[key]
    return None


#: The local naming the failing env, in the vector envs' methods that raise.
_INDEX_NAMES = {"SyncVectorEnv": "i", "AsyncVectorEnv": "index"}


def _traceback_entries(tb: types.TracebackType | None) -> Iterable[types.TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next
