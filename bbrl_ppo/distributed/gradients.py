"""Each minibatch's gradients averaged over the ranks, with its diagnostics, in one all_reduce."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from bbrl_ppo.distributed.collectives import collective
from bbrl_ppo.distributed.context import DistributedContext


class GradientAverager:
    """Replaces every rank's gradients by the gradient of the whole minibatch.

    Each rank's gradient is that of its mean loss over its part of the minibatch.
    Weighted by the part's size, their sum over the ranks divided by the minibatch's
    size is the gradient of the mean loss over the whole minibatch: the gradient a
    single process would compute, whatever the parts' sizes (they differ when the
    ranks' rollouts do). Gradient clipping then sees the same global gradient on
    every rank, and the optimizers make the same step: parameters stay identical.

    The minibatch's diagnostics (losses, approximate KL...) travel in the same
    all_reduce and come back as their mean over the minibatch: the ``target_kl``
    decision and the finiteness checks use the same global values on every rank, so
    a NaN on one rank stops every rank at once instead of leaving them waiting.

    Each agent's gradients are read from its optimizer's flat buffer when it has one
    (`bbrl_ppo.optim.flat_parameters`), else gathered from its parameters.
    """

    def __init__(
        self, context: DistributedContext, *owners: tuple[torch.optim.Optimizer, nn.Module]
    ):
        self.context = context
        self.owners = owners

    def __call__(self, diagnostics: torch.Tensor, count: int) -> torch.Tensor:
        """Average the gradients in place; return the minibatch-mean `diagnostics`.

        `count` is this rank's number of transitions in the minibatch.
        """
        if not self.context.is_distributed:
            return diagnostics
        gradients = [_gradient_vector(optimizer, module) for optimizer, module in self.owners]
        weight = float(count)
        packed = torch.cat(
            [
                *(gradient * weight for gradient in gradients),
                diagnostics.detach().reshape(-1).to(gradients[0].dtype) * weight,
                torch.tensor([weight], dtype=gradients[0].dtype, device=gradients[0].device),
            ]
        ).to(self.context.communication_device)
        with collective(self.context, "the all_reduce of a minibatch's gradients"):
            dist.all_reduce(packed)
        averaged = (packed / packed[-1]).to(gradients[0].device)
        offset = 0
        for (optimizer, module), gradient in zip(self.owners, gradients, strict=True):
            _set_gradient_vector(optimizer, module, averaged[offset : offset + gradient.numel()])
            offset += gradient.numel()
        return averaged[offset:-1].to(diagnostics.dtype)


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [parameter for parameter in module.parameters() if parameter.requires_grad]


def _gradient_vector(optimizer: torch.optim.Optimizer, module: nn.Module) -> torch.Tensor:
    flat = getattr(optimizer, "flat_parameters", None)
    if flat is not None:
        flat.sync_gradients()
        return flat.grad
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for p in _trainable(module)
        ]
    )


def _set_gradient_vector(
    optimizer: torch.optim.Optimizer, module: nn.Module, values: torch.Tensor
) -> None:
    flat = getattr(optimizer, "flat_parameters", None)
    if flat is not None:
        flat.grad.copy_(values)
        return
    offset = 0
    for parameter in _trainable(module):
        piece = values[offset : offset + parameter.numel()].view_as(parameter)
        if parameter.grad is None:
            parameter.grad = piece.clone()
        else:
            parameter.grad.copy_(piece)
        offset += parameter.numel()
