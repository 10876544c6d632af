"""``algorithm.device``: where the agents and the update run (envs always step on the CPU)."""

from __future__ import annotations

import re

import torch

#: What ``algorithm.device`` accepts, for the schema's check and its message.
DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:\d+)?")
DEVICE_CHOICES = "cpu, auto, cuda or cuda:N"


def resolve_device(setting: str, local_rank: int = 0) -> torch.device:
    """The torch device `setting` names, for the process of `local_rank` on its machine.

    ``cuda`` gives each process of a machine its own GPU (``cuda:LOCAL_RANK``, what
    torchrun's processes expect); ``cuda:N`` pins every process to GPU N; ``auto`` is
    ``cuda`` when a GPU is visible, else ``cpu``. Asking for a GPU that is not there is
    a `ConfigError`: a run meant for a GPU should not crawl along on the CPU unnoticed.
    """
    from bbrl_ppo.config.schema import ConfigError  # the schema imports this module's pattern

    if not DEVICE_PATTERN.fullmatch(setting):
        raise ConfigError(
            f"Invalid value for 'algorithm.device': {setting!r}; allowed: {DEVICE_CHOICES}"
        )
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    index = local_rank if setting in ("cuda", "auto") else int(setting.partition(":")[2])
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= available:
        raise ConfigError(
            f"algorithm.device={setting!r} needs GPU {index}, but this process sees "
            f"{available} CUDA device(s): use algorithm.device=cpu or auto"
        )
    return torch.device("cuda", index)
