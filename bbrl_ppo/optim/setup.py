"""The optimizer a config names, over one or more agents, and its gradient clipping."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import clip_grad_norm_

from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.optim.flat_parameters import can_flatten, flat_optimizer
from bbrl_ppo.persistence.registry import resolve_optimizer, unexpected_arguments


def setup_optimizer(
    cfg_optimizer,
    *agents: nn.Module,
    prefer_fused: bool = False,
    flat: bool = False,
    flat_storage: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer named by ``cfg_optimizer.classname`` over the agents' parameters.

    The other keys of `cfg_optimizer` (``lr``, ``eps``...) are the optimizer's
    keyword arguments, the bbrl ``classname`` convention; null ones are left out.
    The class must be one of ``torch.optim``'s or registered
    (`bbrl_ppo.register_class`): a config never imports what it names.

    With `prefer_fused`, an optimizer that has a fused implementation (Adam,
    AdamW, SGD) uses it unless the config says otherwise: one kernel per
    parameter group instead of a dozen small operations per parameter, which on
    small PPO networks is most of the optimizer's time.

    With `flat` and a single agent, the agent's parameters and gradients are
    moved into contiguous buffers (`bbrl_ppo.optim.flat_parameters`) when the optimizer
    updates each element on its own (Adam, SGD...): one optimizer step and one
    gradient clipping over one tensor. Other optimizers ignore `flat`.
    `flat_storage`, a ``(data, grad)`` pair, places those buffers in memory the caller
    owns (`bbrl_ppo.agents.batched_actor_critic`).
    """
    arguments = dict(cfg_optimizer)
    optimizer_class = resolve_optimizer(str(arguments.pop("classname")))
    # Unset options (null in the config) keep the optimizer's own defaults.
    arguments = {key: value for key, value in arguments.items() if value is not None}
    if prefer_fused and "fused" not in arguments and "foreach" not in arguments:
        if not unexpected_arguments(optimizer_class, {"fused": True}):
            arguments["fused"] = True
    unexpected = unexpected_arguments(optimizer_class, arguments)
    if unexpected:
        raise InvalidInputError(
            f"{optimizer_class.__name__} takes no {', '.join(map(repr, unexpected))}: set "
            f"{', '.join(f'optimizer.{key}: null' for key in unexpected)} in the config"
        )
    try:
        if flat and len(agents) == 1 and can_flatten(optimizer_class, agents[0]):
            return flat_optimizer(optimizer_class, agents[0], flat_storage, **arguments)
        parameters = [p for agent in agents for p in agent.parameters()]
        return optimizer_class(parameters, **arguments)
    except (TypeError, ValueError) as error:  # torch's own check of a value, e.g. betas
        shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
        raise InvalidInputError(
            f"{optimizer_class.__name__}({shown}) refused its arguments: {error}"
        ) from None


def gradient_clipper(
    optimizer: torch.optim.Optimizer, agent: torch.nn.Module
) -> Callable[[float], torch.Tensor]:
    """``clip(max_norm) -> norm`` for the agent's gradients: on its flat buffer when it has one."""
    flat = getattr(optimizer, "flat_parameters", None)
    if flat is not None:
        return flat.clip_grad_norm_
    parameters = list(agent.parameters())
    return lambda max_norm: clip_grad_norm_(parameters, max_norm, foreach=True)
