"""The algorithm's logger: a tensorboard writer chosen by ``cfg.logger.classname``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from bbrl_ppo.config.schema import default_logger
from bbrl_ppo.persistence.registry import resolve_logger


class Logger:
    """Wraps the configured writer with the notebooks' logging helpers.

    Tensors are turned into floats first: bbrl's `TFLogger` silently drops
    anything that is not a Python number from tensorboard.
    """

    def __init__(self, logger_cfg: DictConfig | dict | None, log_dir: str | Path):
        given = (
            OmegaConf.to_container(logger_cfg, resolve=True)
            if isinstance(logger_cfg, DictConfig)
            else dict(logger_cfg or {})
        )
        arguments: dict[str, Any] = {**default_logger(), **given}
        arguments["log_dir"] = str(log_dir)
        self.log_dir = Path(log_dir)
        # Only bbrl's TFLogger or a registered class: a config never imports what it names.
        logger_class = resolve_logger(str(arguments.pop("classname")))
        self.logger = logger_class(**arguments)

    def add_log(self, name: str, value: float | torch.Tensor, step: int) -> None:
        """Record scalar `value` under `name` at env step `step`."""
        if isinstance(value, torch.Tensor):
            value = value.detach().float().mean().item()
        self.logger.add_scalar(name, float(value), int(step))

    def log_losses(self, critic_loss, entropy_loss, actor_loss, step: int) -> None:
        """Record the three losses of the bbrl notebooks (``critic_loss``, ``entropy_loss``,
        ``actor_loss``) at env step `step`."""
        self.add_log("critic_loss", critic_loss, step)
        self.add_log("entropy_loss", entropy_loss, step)
        self.add_log("actor_loss", actor_loss, step)

    def log_reward_losses(self, rewards: torch.Tensor, step: int) -> None:
        """Summary statistics of one evaluation's episode returns."""
        rewards = torch.as_tensor(rewards, dtype=torch.float32)
        self.add_log("reward/mean", rewards.mean(), step)
        self.add_log("reward/std", rewards.std() if rewards.numel() > 1 else 0.0, step)
        self.add_log("reward/min", rewards.min(), step)
        self.add_log("reward/max", rewards.max(), step)
        self.add_log("reward/median", rewards.median(), step)

    def restart_at(self, step: int) -> None:
        """Tell tensorboard to drop what an interrupted run logged from `step` on.

        A resumed run logs those steps again; tensorboard discards older events at
        or after the step of a "session start" record (what SummaryWriter's
        ``purge_step`` writes), so the curves show no doubled segment.
        """
        get_file_writer = getattr(self.logger, "_get_file_writer", None)
        if get_file_writer is None:
            return
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        start = Event(step=int(step), session_log=SessionLog(status=SessionLog.START))
        get_file_writer().add_event(start)

    def flush(self) -> None:
        """Write what the writer holds to disk now (tensorboard reads only the files)."""
        flush = getattr(self.logger, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        """Close the writer, which writes what it still holds; log nothing after this."""
        self.logger.close()


class SilentLogger(Logger):
    """A logger that records nothing: that of the ranks other than 0 of a distributed run.

    Rank 0 logs the run's values, which are global (reduced over the ranks): the
    other ranks would log the same values into the same tensorboard directory.
    """

    def __init__(self) -> None:  # no writer to create
        self.log_dir = None
        self.logger = None

    def add_log(self, name: str, value: float | torch.Tensor, step: int) -> None:
        pass

    def restart_at(self, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
