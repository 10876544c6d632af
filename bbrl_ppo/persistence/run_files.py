"""The files of a run directory that grow during training: config.yaml and evals.csv."""

from __future__ import annotations

import csv
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
