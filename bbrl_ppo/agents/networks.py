"""Network builders and parameter copies, with the names bbrl notebooks use."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from bbrl_ppo.errors import InvalidInputError

#: The activations a config may name, by name (names keep checkpoints plain data).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    """The activation module for a name (names keep checkpoints plain data)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise InvalidInputError(
            f"Unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None


def build_mlp(
    sizes: Sequence[int], activation: nn.Module, output_activation: nn.Module | None = None
) -> nn.Sequential:
    """A multi-layer perceptron ``sizes[0] -> ... -> sizes[-1]`` with default init.

    `activation` follows every hidden layer; `output_activation` (identity by
    default) follows the last one.
    """
    return _mlp(sizes, activation, output_activation, init=None)


def ortho_init(layer: nn.Linear, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    """Orthogonal weights of gain `std` and constant bias: PPO's initialization.

    Orthogonal init keeps activations' scale through ReLU/tanh layers; the
    gain sqrt(2) suits hidden layers (see "The 37 implementation details of PPO",
    detail 2).
    """
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


def build_ortho_mlp(
    sizes: Sequence[int],
    activation: nn.Module,
    output_activation: nn.Module | None = None,
    *,
    output_std: float = math.sqrt(2),
) -> nn.Sequential:
    """Like `build_mlp`, with every layer orthogonally initialized.

    Hidden layers get gain sqrt(2); the output layer gets `output_std` (PPO uses
    0.01 for a policy head so that the initial policy is close to uniform, and 1
    for a value head).
    """
    return _mlp(sizes, activation, output_activation, init=output_std)


def _mlp(sizes, activation, output_activation, init: float | None) -> nn.Sequential:
    sizes = _layer_sizes(sizes)
    layers: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        is_last = index == len(sizes) - 2
        linear = nn.Linear(n_in, n_out)
        if init is not None:
            ortho_init(linear, std=init if is_last else math.sqrt(2))
        layers.append(linear)
        if not is_last:
            layers.append(activation)
        elif output_activation is not None:
            layers.append(output_activation)
    return nn.Sequential(*layers)


def _layer_sizes(sizes: Sequence[int]) -> list[int]:
    """`sizes` as ints, each >= 1: torch builds a Linear of width 0 without complaint,
    and a negative width fails deep inside it."""
    sizes = list(sizes)
    if len(sizes) < 2:
        raise InvalidInputError(f"An MLP needs at least an input and an output size, got {sizes}")
    if not all(isinstance(size, (int, np.integer)) and size >= 1 for size in sizes):
        raise InvalidInputError(
            f"MLP layer sizes must be integers >= 1, got {sizes} (input {sizes[0]!r}, hidden "
            f"{sizes[1:-1]}, output {sizes[-1]!r})"
        )
    return [int(size) for size in sizes]


@torch.no_grad()
def copy_parameters(source: nn.Module, target: nn.Module) -> None:
    """Copy the parameters (and buffers) of `source` into `target`, in place.

    Used to refresh the old policy/critic after an update; in place so that an
    agent already wrapped in a `TemporalAgent` sees the new values.
    """
    _copy_all(source.parameters(), target.parameters(), "parameters")
    _copy_all(source.buffers(), target.buffers(), "buffers")


def _copy_all(sources: Iterable[torch.Tensor], targets: Iterable[torch.Tensor], what: str):
    sources, targets = list(sources), list(targets)
    if len(sources) != len(targets):
        raise InvalidInputError(
            f"Cannot copy {what}: the source has {len(sources)}, the target {len(targets)}"
        )
    for source, target in zip(sources, targets, strict=True):
        target.copy_(source)
