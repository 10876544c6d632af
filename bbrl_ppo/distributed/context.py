"""Which process of a run this is, on which device, and the group the processes talk through.

A run on N processes is N copies of the same program (torchrun starts them, or a
notebook user does with `torch.distributed.init_process_group`). Each learns where
it stands from `join_process_group`:

- a process group already exists (the user made it): it is used as it is;
- torchrun's environment says ``WORLD_SIZE > 1``: the group is made from it
  (``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...), gloo when the agents are on the
  CPU, nccl when they are on GPUs, with a bounded collective timeout;
- otherwise this is the only process, and every collective is skipped: the
  single-process run is the same code, computing the same bits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

from bbrl_ppo.distributed.devices import resolve_device

#: How long a collective waits for the other processes before failing. A rank that
#: died is noticed sooner (its connections close, or torchrun stops the others);
#: this bounds the wait for one that hangs. Generous, because the other ranks wait
#: in a collective while rank 0 evaluates and writes checkpoints.
COLLECTIVE_TIMEOUT = timedelta(minutes=5)

_CPU = torch.device("cpu")


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in its run: ``rank`` of ``world_size``, and its devices."""

    rank: int = 0
    world_size: int = 1
    #: The rank among the processes of this machine (which GPU ``cuda`` means).
    local_rank: int = 0
    #: Where the agents and the update live.
    device: torch.device = field(default=_CPU)
    #: Where tensors go to be communicated: the GPU under nccl, else the CPU.
    communication_device: torch.device = field(default=_CPU)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that evaluates, logs and writes the run directory."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """Whether the run has more than one process."""
        return self.world_size > 1

    def local_share(self, total: int, key: str) -> int:
        """This rank's part of a global count (envs, minibatch size), refused unless exact.

        One config means one algorithm whatever the number of processes: a count that
        does not divide would make the run another algorithm.
        """
        from bbrl_ppo.config.schema import ConfigError

        if total % self.world_size:
            raise ConfigError(
                f"{key}={total} cannot be shared by {self.world_size} processes: make it a "
                f"multiple of {self.world_size} (each process takes {key} / {self.world_size})"
            )
        return total // self.world_size


#: Between the seeds of two ranks' own random streams.
RANK_SEED_STRIDE = 7_919


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s own random streams (action sampling, minibatch order).

    Rank 0 keeps `seed`: a single-process run draws what it drew before.
    """
    return seed + RANK_SEED_STRIDE * rank


def join_process_group(
    device_setting: str = "cpu", timeout: timedelta = COLLECTIVE_TIMEOUT
) -> DistributedContext:
    """This process's context: joins torchrun's process group the first time it is asked.

    `device_setting` is ``algorithm.device``; under several processes ``cuda`` means
    each process's own GPU. A group the user initialized keeps its backend and timeout.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        device = resolve_device(device_setting, local_rank)
        backend = dist.get_backend()
    else:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device_setting, local_rank)
        if world_size == 1:
            return DistributedContext(device=device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=timeout)
        rank = dist.get_rank()
    communication_device = device if backend == "nccl" else _CPU
    return DistributedContext(rank, world_size, local_rank, device, communication_device)


def leave_process_group() -> None:
    """Destroy the default process group, if there is one (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
