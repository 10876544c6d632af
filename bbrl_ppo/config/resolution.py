"""Turning a user's configuration into a resolved omegaconf object and a run directory."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: Relative ``base_dir`` values are placed under this folder of the working directory.
OUTPUTS_DIR = Path("outputs")


def _current_time() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S.%f")


def register_resolvers() -> None:
    """Register ``${current_time:}`` (as bbrl notebooks use it in ``base_dir``)."""
    if not OmegaConf.has_resolver("current_time"):
        OmegaConf.register_new_resolver("current_time", _current_time)


def prepare_config(cfg: Mapping[str, Any] | DictConfig) -> DictConfig:
    """A resolved copy of `cfg`.

    Resolved once, here: ``${current_time:}`` would otherwise give a new value at
    every access, and the run directory would move under the user's feet.
    """
    register_resolvers()
    config = OmegaConf.create(
        OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    )
    OmegaConf.resolve(config)
    return config


def run_directory(base_dir: str | Path) -> Path:
    """Where a run writes: `base_dir` itself if absolute, else under ``outputs/``."""
    base_dir = Path(base_dir)
    return base_dir if base_dir.is_absolute() else OUTPUTS_DIR / base_dir
