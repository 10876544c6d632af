"""The files of a run directory that grow during training: config.yaml and evals.csv."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

EVALS_CSV_COLUMNS = ("nb_steps", "wall_s", "reward_mean", "reward_std", "reward_min", "reward_max")
CONFIG_FILE = "config.yaml"
EVALS_FILE = "evals.csv"


def write_config(run_dir: Path, cfg: DictConfig) -> None:
    OmegaConf.save(cfg, run_dir / CONFIG_FILE)


class EvalsCsv:
    """One row per evaluation; appended and closed each time, so a crash loses no row."""

    def __init__(self, path: Path):
        self.path = path

    def rewrite(self, rows: list[list[Any]]) -> None:
        """The header and `rows`, replacing the file atomically (a new or a resumed run)."""
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(EVALS_CSV_COLUMNS)
            writer.writerows(rows)
        partial.replace(self.path)

    def append(self, row: list[Any]) -> None:
        with self.path.open("a", newline="") as file:
            csv.writer(file).writerow(row)


PROGRESS_FILE = "progress.json"


class ProgressFile:
    """Where a run says how far it is, for whoever watches it from another process.

    `bbrl-ppo train --seeds` draws one line per seed from these files; reading a
    file is enough, so the runs need no pipe back to the parent. Rewritten
    atomically at most every `min_interval` seconds (a CartPole rollout lasts
    ~0.1 s: writing each would cost more than it tells).
    """

    def __init__(self, path: Path, min_interval: float = 1.0, *, enabled: bool = True):
        self.path = path
        self.min_interval = min_interval
        #: False on the ranks of a distributed run other than 0, which write no run file.
        self.enabled = enabled
        self._last_write = -math.inf

    def update(self, fields: dict[str, Any], *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_write < self.min_interval:
            return
        self._last_write = now
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(json.dumps(fields))
        partial.replace(self.path)


def read_progress(run_dir: Path) -> dict[str, Any] | None:
    """A run's last `ProgressFile` fields; None before its first write."""
    try:
        return json.loads((run_dir / PROGRESS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
