"""What the ranks of a run exchange: sums, minima, flags, broadcasts from rank 0, gathers.

Each function takes the `DistributedContext` and, with one process, returns its
input untouched without communicating: the single-process run computes the same bits
as before there were several. Every rank must call the same collectives in the same
order; a collective that fails (a rank died, or did not answer within the group's
timeout) raises `CollectiveError` rather than leaving the others waiting.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from bbrl.workspace import Workspace
from torch import nn

from bbrl_ppo.distributed.context import DistributedContext
from bbrl_ppo.errors import CollectiveError


@contextmanager
def collective(context: DistributedContext, what: str) -> Iterator[None]:
    """Turn the backend's error for a lost peer into a `CollectiveError` naming `what`.

    Wraps the `torch.distributed` call alone: gloo reports a closed connection or a
    timeout as a plain RuntimeError (nccl as its subclass DistBackendError).
    """
    try:
        yield
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise CollectiveError(
            f"process {context.rank} of {context.world_size} lost the others during {what} "
            f"({first_line}): another process died or stopped answering. The last checkpoint "
            "is whole: resume with the same number of processes"
        ) from error


def _all_reduce(
    context: DistributedContext, values: torch.Tensor, op: dist.ReduceOp, what: str
) -> torch.Tensor:
    buffer = values.detach().to(context.communication_device, copy=True)
    with collective(context, what):
        dist.all_reduce(buffer, op=op)
    return buffer.to(values.device)


def sum_over_ranks(context: DistributedContext, values: torch.Tensor, what: str) -> torch.Tensor:
    """The element-wise sum of `values` over the ranks (a new tensor; the input is kept)."""
    if not context.is_distributed:
        return values
    return _all_reduce(context, values, dist.ReduceOp.SUM, what)


def total_over_ranks(context: DistributedContext, count: int, what: str) -> int:
    """The sum of an integer count over the ranks."""
    if not context.is_distributed:
        return count
    summed = _all_reduce(context, torch.tensor([count], dtype=torch.int64), dist.ReduceOp.SUM, what)
    return int(summed.item())


def min_over_ranks(context: DistributedContext, value: int, what: str) -> int:
    if not context.is_distributed:
        return value
    smallest = _all_reduce(
        context, torch.tensor([value], dtype=torch.int64), dist.ReduceOp.MIN, what
    )
    return int(smallest.item())


def any_rank(context: DistributedContext, flag: bool, what: str) -> bool:
    """Whether `flag` is true on at least one rank: the same answer on every rank."""
    if not context.is_distributed:
        return flag
    raised = _all_reduce(
        context, torch.tensor([int(flag)], dtype=torch.int64), dist.ReduceOp.MAX, what
    )
    return bool(raised.item())


def broadcast_numbers(
    context: DistributedContext, values: Sequence[float], what: str
) -> list[float]:
    """Rank 0's `values` on every rank (float64, so integers below 2**53 stay exact)."""
    if not context.is_distributed:
        return list(values)
    buffer = torch.tensor(list(values), dtype=torch.float64, device=context.communication_device)
    with collective(context, what):
        dist.broadcast(buffer, src=0)
    return buffer.tolist()


def broadcast_object(context: DistributedContext, value: Any, what: str) -> Any:
    """Rank 0's `value` (anything picklable) on every rank."""
    if not context.is_distributed:
        return value
    holder = [value]
    with collective(context, what):
        dist.broadcast_object_list(holder, src=0, device=context.communication_device)
    return holder[0]


@torch.no_grad()
def broadcast_modules(context: DistributedContext, modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers into every rank's modules, in place."""
    if not context.is_distributed:
        return
    for module in modules:
        for tensor in module.state_dict().values():
            buffer = tensor.to(context.communication_device)
            with collective(context, "the broadcast of the initial parameters"):
                dist.broadcast(buffer, src=0)
            if buffer is not tensor:
                tensor.copy_(buffer)


def gather_to_main(context: DistributedContext, value: Any, what: str) -> list[Any] | None:
    """Every rank's `value` (picklable), in rank order, on rank 0; None on the others."""
    if not context.is_distributed:
        return [value]
    gathered = [None] * context.world_size if context.is_main else None
    with collective(context, what):
        dist.gather_object(value, gathered, dst=0)
    return gathered


def all_envs(
    context: DistributedContext, *tensors: torch.Tensor, what: str
) -> tuple[torch.Tensor, ...]:
    """Each (T, envs of this rank, ...) tensor as (T, envs of every rank, ...), in one gather.

    Rank r steps the global envs ``r * k .. r * k + k - 1``: the result holds them in
    the order of a single-process run's envs. Values travel as float64, exact for
    the env's floats, flags and step counts.
    """
    if not context.is_distributed:
        return tensors
    steps, envs = tensors[0].shape[:2]
    columns = [tensor.reshape(steps, envs, -1) for tensor in tensors]
    packed = torch.cat([column.to(torch.float64) for column in columns], dim=2)
    packed = packed.to(context.communication_device).contiguous()
    parts = [torch.empty_like(packed) for _ in range(context.world_size)]
    with collective(context, what):
        dist.all_gather(parts, packed)
    gathered = torch.cat(parts, dim=1).to(tensors[0].device)
    widths = [column.shape[2] for column in columns]
    return tuple(
        piece.reshape(steps, envs * context.world_size, *tensor.shape[2:]).to(tensor.dtype)
        for piece, tensor in zip(gathered.split(widths, dim=2), tensors, strict=True)
    )


def own_envs(context: DistributedContext, tensor: torch.Tensor) -> torch.Tensor:
    """This rank's envs of a (T, envs of every rank, ...) tensor: the inverse of `all_envs`."""
    if not context.is_distributed:
        return tensor
    share = tensor.shape[1] // context.world_size
    return tensor[:, context.rank * share : (context.rank + 1) * share]


def all_envs_workspace(
    context: DistributedContext, workspace: Workspace, names: Sequence[str], what: str
) -> Workspace:
    """A workspace of `workspace`'s variables `names` over every rank's envs (`all_envs`).

    With one process, `workspace` itself.
    """
    if not context.is_distributed:
        return workspace
    gathered = all_envs(context, *(workspace.get_full(name) for name in names), what=what)
    every_env = Workspace()
    for name, value in zip(names, gathered, strict=True):
        every_env.set_full(name, value)
    return every_env
