"""An agent's trainable parameters and their gradients, each in one contiguous buffer.

Why: clipping the gradient norm and stepping the optimizer loop over parameters,
a few tensor operations per parameter and per minibatch (torch's ``foreach`` and
fused CPU paths still launch one kernel per tensor). PPO's networks are small,
so these launches, not the arithmetic, are most of their cost. With every
parameter a view into one buffer (and every gradient a view into another), the
norm is one operation, the clipping one more, and an element-wise optimizer
(Adam, SGD...) updates the whole agent in one step over one tensor: the same
arithmetic, element by element, as over the separate parameters. Measured on a
CartPole minibatch: about 18% less time per gradient step (BENCHMARKS.md).

The agent is unchanged for everything else: its parameters are still its own
`nn.Parameter` objects (``state_dict``, ``load_state_dict``, `copy_parameters`
and deep copies behave as before); only their storage moved.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Optimizers whose update of an element depends only on that element's own
#: gradient and state, so that one flat tensor is updated exactly as its pieces.
ELEMENTWISE_OPTIMIZERS: frozenset[type[torch.optim.Optimizer]] = frozenset(
    {
        torch.optim.Adam,
        torch.optim.AdamW,
        torch.optim.Adamax,
        torch.optim.NAdam,
        torch.optim.RAdam,
        torch.optim.SGD,
        torch.optim.RMSprop,
        torch.optim.Adagrad,
    }
)


class FlatParameters:
    """Moves `module`'s trainable parameters and gradients into two flat buffers.

    ``data`` holds the parameters, ``grad`` their gradients; each parameter's
    ``.data`` and ``.grad`` are views into them. Backward passes accumulate into
    the gradient views in place, so the gradients must be zeroed with
    `zero_grad` (an optimizer from `flat_optimizer` does it in its own
    ``zero_grad``). A gradient that left its view (``module.zero_grad()`` sets
    gradients to None, and the next backward pass makes new tensors) is copied
    back by `sync_gradients`, which the optimizer runs before each step.
    """

    def __init__(self, module: nn.Module):
        parameters = [p for p in module.parameters() if p.requires_grad]
        if not parameters:
            raise ValueError(f"{type(module).__name__} has no trainable parameter to flatten")
        kinds = {(p.dtype, p.device, p.layout) for p in parameters}
        if len(kinds) != 1:
            raise ValueError(
                f"Cannot flatten the parameters of {type(module).__name__}: they mix "
                f"dtypes, devices or layouts {sorted(map(str, kinds))}"
            )
        total = sum(p.numel() for p in parameters)
        self.data = torch.empty(total, dtype=parameters[0].dtype, device=parameters[0].device)
        self.grad = torch.zeros_like(self.data)
        self.parameters = parameters
        self._slots: list[tuple[nn.Parameter, int, torch.Tensor]] = []
        offset = 0
        with torch.no_grad():
            for parameter in parameters:
                size = parameter.numel()
                data_view = self.data[offset : offset + size].view_as(parameter)
                grad_view = self.grad[offset : offset + size].view_as(parameter)
                data_view.copy_(parameter)
                if parameter.grad is not None:
                    grad_view.copy_(parameter.grad)
                parameter.data = data_view
                parameter.grad = grad_view
                self._slots.append((parameter, data_view.data_ptr(), grad_view))
                offset += size
        self.data.grad = self.grad

    def zero_grad(self) -> None:
        """Zero every gradient, in place (the views stay attached)."""
        self.grad.zero_()
        for parameter, _, grad_view in self._slots:
            if parameter.grad is not grad_view:
                parameter.grad = grad_view
        self.data.grad = self.grad

    def sync_gradients(self) -> None:
        """Copy back gradients that left the buffer; refuse parameters that left it."""
        for parameter, data_pointer, grad_view in self._slots:
            if parameter.data_ptr() != data_pointer:
                raise RuntimeError(
                    f"A parameter of shape {tuple(parameter.shape)} no longer lives in its "
                    f"optimizer's flat buffer (moved with .to(), or its .data replaced) after "
                    f"the optimizer was built: build the optimizer again"
                )
            grad = parameter.grad
            if grad is grad_view:
                continue
            if grad is None:
                grad_view.zero_()
            else:
                grad_view.copy_(grad)
            parameter.grad = grad_view
        self.data.grad = self.grad

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """`torch.nn.utils.clip_grad_norm_` over all the gradients, in three operations.

        Returns the total 2-norm before clipping; gradients are scaled by
        ``min(1, max_norm / (norm + 1e-6))``, torch's rule.
        """
        self.sync_gradients()
        norm = torch.linalg.vector_norm(self.grad)
        self.grad.mul_((max_norm / (norm + 1e-6)).clamp_(max=1.0))
        return norm


class FlatGradientsOptimizer:
    """Mixed into an optimizer class by `flat_optimizer`: zeroes and syncs flat gradients."""

    flat_parameters: FlatParameters

    def zero_grad(self, set_to_none: bool = True) -> None:
        # Gradients stay allocated (zeroed): they are views into the flat buffer.
        self.flat_parameters.zero_grad()

    def step(self, closure=None):
        self.flat_parameters.sync_gradients()
        return super().step(closure)  # type: ignore[misc]


_FLAT_CLASSES: dict[type, type] = {}


def _flat_class(optimizer_class: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    if optimizer_class not in _FLAT_CLASSES:
        _FLAT_CLASSES[optimizer_class] = type(
            f"Flat{optimizer_class.__name__}", (FlatGradientsOptimizer, optimizer_class), {}
        )
    return _FLAT_CLASSES[optimizer_class]


def can_flatten(optimizer_class: type, module: nn.Module) -> bool:
    """Whether `flat_optimizer` gives the same updates as the optimizer over `module`."""
    parameters = [p for p in module.parameters() if p.requires_grad]
    return (
        optimizer_class in ELEMENTWISE_OPTIMIZERS
        and bool(parameters)
        and len({(p.dtype, p.device, p.layout) for p in parameters}) == 1
    )


def flat_optimizer(
    optimizer_class: type[torch.optim.Optimizer], module: nn.Module, **arguments: Any
) -> torch.optim.Optimizer:
    """An `optimizer_class` instance over `module`'s parameters, flattened (see module doc).

    The result is an instance of `optimizer_class` (a subclass of it), with one
    parameter, the flat buffer, and the `FlatParameters` as ``.flat_parameters``.
    A parameter that gets no gradient in a step is updated as with a zero
    gradient (momentum still moves it), where torch skips a parameter whose
    gradient is None.
    """
    if optimizer_class not in ELEMENTWISE_OPTIMIZERS:
        raise ValueError(
            f"{optimizer_class.__name__} is not an element-wise optimizer; flat parameters "
            f"need one of {sorted(cls.__name__ for cls in ELEMENTWISE_OPTIMIZERS)}"
        )
    flat = FlatParameters(module)
    optimizer = _flat_class(optimizer_class)([flat.data], **arguments)
    optimizer.flat_parameters = flat
    return optimizer
