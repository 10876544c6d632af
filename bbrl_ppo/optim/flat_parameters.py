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
import torch.optim.optimizer as _optimizer_module
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

    `storage`, a ``(data, grad)`` pair of 1-D tensors of the parameters' total size,
    places the buffers inside memory the caller owns: `BatchedActorCritic` lays the
    policy's and the critic's buffers side by side in one (2, L) tensor, so that their
    layers of equal shape are one stacked tensor. Without it the buffers are new.
    """

    def __init__(self, module: nn.Module, storage: tuple[torch.Tensor, torch.Tensor] | None = None):
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
        if storage is None:
            self.data = torch.empty(total, dtype=parameters[0].dtype, device=parameters[0].device)
            self.grad = torch.zeros_like(self.data)
        else:
            self.data, self.grad = _checked_storage(storage, parameters[0], total)
            self.grad.zero_()
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


def _checked_storage(
    storage: tuple[torch.Tensor, torch.Tensor], like: torch.Tensor, total: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`storage` if both are 1-D, contiguous, of `total` elements and of `like`'s kind."""
    for name, tensor in zip(("data", "grad"), storage, strict=True):
        if (
            tensor.dim() != 1
            or tensor.numel() != total
            or not tensor.is_contiguous()
            or (tensor.dtype, tensor.device) != (like.dtype, like.device)
        ):
            raise ValueError(
                f"The {name} storage must be a contiguous 1-D {like.dtype} tensor of "
                f"{total} elements on {like.device}, got {tuple(tensor.shape)} "
                f"{tensor.dtype} on {tensor.device}"
            )
    return storage


class FlatGradientsOptimizer:
    """Mixed into an optimizer class by `flat_optimizer`: zeroes and syncs flat gradients.

    A fused Adam (or AdamW) over the one flat tensor also skips torch's per-call
    bookkeeping (profiler record, hooks, grouping the tensors by device, a dozen
    checks): measured at about 80 us a step on this machine, for a kernel of 6 us on
    a CartPole network (BENCHMARKS.md, "Speed, round two"). `step` then runs what
    torch's fused Adam runs on one parameter -- the step count's increment and the
    same ``_fused_adam_`` kernel with the group's settings, so the same values -- and
    falls back to torch's `step` for anything else: a closure, hooks, AMSGrad, a
    tensor learning rate, a differentiable or capturable group, the first step (it
    creates the state).
    """

    flat_parameters: FlatParameters

    def zero_grad(self, set_to_none: bool = True) -> None:
        # Gradients stay allocated (zeroed): they are views into the flat buffer.
        self.flat_parameters.zero_grad()

    def step(self, closure=None):
        self.flat_parameters.sync_gradients()
        if closure is None and self._fused_adam_step():
            return None
        # torch wraps the step of every optimizer class (this one's and its parent's) in
        # its hooks: the parent's own function, unwrapped, runs each hook once.
        parent_step = super().step.__func__  # type: ignore[misc]
        return getattr(parent_step, "__wrapped__", parent_step)(self, closure)

    def fast_step(self) -> None:
        """`step`, without the wrapper torch puts around every optimizer's ``step``.

        That wrapper (a profiler record and the loops over step hooks) costs about 30 us
        a call here, five times the fused Adam kernel of a CartPole network. It has
        nothing to do when no hook is registered and no learning-rate scheduler patched
        this optimizer's ``step``: then the update is made directly (the same values);
        otherwise `step` is called, wrapper and all.
        """
        if (
            "step" in vars(self)  # a scheduler wraps the instance's step
            or self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or _optimizer_module._global_optimizer_pre_hooks
            or _optimizer_module._global_optimizer_post_hooks
        ):
            self.step()
            return
        self.flat_parameters.sync_gradients()
        if not self._fused_adam_step():
            self.step()

    def _fused_adam_step(self) -> bool:
        """torch's fused Adam update of the flat tensor, if the group allows it; done?

        Hooks are not its concern: `step` is reached through torch's wrapper, which has
        run them, and `fast_step` only comes here when there are none.
        """
        if not isinstance(self, torch.optim.Adam) or len(self.param_groups) != 1:
            return False
        group = self.param_groups[0]
        if (
            not group.get("fused")
            or group["amsgrad"]
            or group["differentiable"]
            or group["capturable"]
            or isinstance(group["lr"], torch.Tensor)
        ):
            return False
        parameter = self.flat_parameters.data
        state = self.state.get(parameter)
        if not state or "step" not in state:
            return False  # the first step: torch creates the state
        beta1, beta2 = group["betas"]
        kernel = torch._fused_adamw_ if group.get("decoupled_weight_decay") else torch._fused_adam_
        step = state["step"]
        torch._foreach_add_([step], 1)
        kernel(
            [parameter],
            [parameter.grad],
            [state["exp_avg"]],
            [state["exp_avg_sq"]],
            [],
            [step],
            amsgrad=False,
            lr=group["lr"],
            beta1=float(beta1),
            beta2=float(beta2),
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
            grad_scale=None,
            found_inf=None,
        )
        return True


_FLAT_CLASSES: dict[type, type] = {}


def step_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """``optimizer.fast_step()`` for a flat optimizer, else ``optimizer.step()``."""
    fast_step = getattr(optimizer, "fast_step", None)
    if fast_step is None:
        optimizer.step()
    else:
        fast_step()


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
    optimizer_class: type[torch.optim.Optimizer],
    module: nn.Module,
    storage: tuple[torch.Tensor, torch.Tensor] | None = None,
    **arguments: Any,
) -> torch.optim.Optimizer:
    """An `optimizer_class` instance over `module`'s parameters, flattened (see module doc).

    The result is an instance of `optimizer_class` (a subclass of it), with one
    parameter, the flat buffer, and the `FlatParameters` as ``.flat_parameters``.
    A parameter that gets no gradient in a step is updated as with a zero
    gradient (momentum still moves it), where torch skips a parameter whose
    gradient is None. `storage` places the buffers (see `FlatParameters`).
    """
    if optimizer_class not in ELEMENTWISE_OPTIMIZERS:
        raise ValueError(
            f"{optimizer_class.__name__} is not an element-wise optimizer; flat parameters "
            f"need one of {sorted(cls.__name__ for cls in ELEMENTWISE_OPTIMIZERS)}"
        )
    flat = FlatParameters(module, storage)
    optimizer = _flat_class(optimizer_class)([flat.data], **arguments)
    optimizer.flat_parameters = flat
    return optimizer
