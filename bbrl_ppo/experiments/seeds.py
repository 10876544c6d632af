"""One config, many seeds: one training process per seed, a few at a time.

Why processes rather than threads or one loop: a seed that crashes (a NaN, an env
error, an OOM kill) must not take the others with it, each process gets its own
core and torch thread, and each writes an ordinary run directory that ``bbrl-ppo
play``, ``plot`` and ``report`` read like any other.

Layout of an experiment directory::

    outputs/<name>/
        experiment.json      what was asked (config, overrides, seeds) and each seed's state
        config.yaml          the config file as it was when the experiment started
        seed-1/              an ordinary run directory (evals.csv, best_agent.pt, ...)
            train.log        what the seed's process printed
        seed-2/ ...

The parent watches each run's ``progress.json`` (see `ProgressFile`) to draw one
line per seed. Ctrl-C asks every running seed to stop at its next rollout boundary
with a checkpoint (one SIGINT each, the same request as a Ctrl-C on a single run);
``resume_experiment`` continues the seeds that did not finish.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bbrl_ppo.config.resolution import run_directory
from bbrl_ppo.errors import InvalidInputError, MissingFileError
from bbrl_ppo.persistence.run_files import CONFIG_FILE, read_progress
from bbrl_ppo.persistence.training_checkpoint import checkpoint_file

EXPERIMENT_FILE = "experiment.json"
LOG_FILE = "train.log"
#: Overrides the experiment sets itself for each seed.
_PER_SEED_KEYS = ("algorithm.seed", "base_dir")
#: How often the parent looks at its children (seconds).
_POLL_S = 0.5

PENDING, RUNNING, DONE, FAILED, STOPPED = "pending", "running", "done", "failed", "stopped"


@dataclass
class SeedRun:
    """One seed of an experiment: its process while it runs, its outcome after."""

    seed: int
    run_dir: Path
    status: str = PENDING
    returncode: int | None = None
    #: The last lines of train.log when the seed failed.
    error: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)
    core: int | None = field(default=None, repr=False)

    def progress(self) -> dict[str, Any]:
        return read_progress(self.run_dir) or {}

    def summary(self) -> dict[str, Any]:
        progress = self.progress()
        steps, elapsed = progress.get("nb_steps"), progress.get("elapsed_s")
        return {
            "seed": self.seed,
            "status": self.status,
            "steps": steps,
            "wall_s": elapsed,
            "steps_per_s": steps / elapsed if steps and elapsed else None,
            "last_eval": progress.get("last_eval"),
            "best_eval": progress.get("best_eval"),
        }


@dataclass
class Experiment:
    """The seeds of one config, in one directory."""

    directory: Path
    config: Path
    overrides: list[str]
    seeds: list[SeedRun]
    created: str = ""

    @property
    def interrupted(self) -> bool:
        return any(run.status in (STOPPED, PENDING) for run in self.seeds)

    @property
    def failed(self) -> list[SeedRun]:
        return [run for run in self.seeds if run.status == FAILED]

    def save(self) -> None:
        """experiment.json, rewritten atomically: a crash of the parent loses no state."""
        state = {
            "config": str(self.config),
            "overrides": self.overrides,
            "created": self.created,
            "seeds": {
                str(run.seed): {
                    "status": run.status,
                    "returncode": run.returncode,
                    "error": run.error,
                }
                for run in self.seeds
            },
        }
        path = self.directory / EXPERIMENT_FILE
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(state, indent=1))
        partial.replace(path)

    @classmethod
    def load(cls, directory: str | Path) -> Experiment:
        """The experiment saved in `directory`, its paths made absolute.

        A seed that starts afresh gets its run directory as ``base_dir``, and a relative
        ``base_dir`` is read under ``outputs/``: ``--resume outputs/NAME`` would
        otherwise send the seeds that never started to ``outputs/outputs/NAME``.
        """
        directory = Path(directory).resolve()
        path = directory / EXPERIMENT_FILE
        if not path.is_file():
            raise MissingFileError(f"{directory} is not an experiment directory (no {path.name})")
        state = json.loads(path.read_text())
        seeds = [
            SeedRun(
                int(seed),
                directory / f"seed-{seed}",
                status=saved["status"],
                returncode=saved["returncode"],
                error=saved.get("error"),
            )
            for seed, saved in state["seeds"].items()
        ]
        return cls(directory, directory / CONFIG_FILE, state["overrides"], seeds, state["created"])


def is_experiment(directory: str | Path) -> bool:
    return (Path(directory) / EXPERIMENT_FILE).is_file()


def default_jobs() -> int:
    """One process per core this process may use."""
    return len(_usable_cores())


def run_seeds(
    config: str | Path,
    seeds: Sequence[int],
    *,
    overrides: Sequence[str] = (),
    jobs: int | None = None,
    name: str | None = None,
    show_progress: bool = True,
) -> Experiment:
    """Train `config` once per seed, `jobs` processes at a time; return when all ended.

    Every seed gets the same config and overrides but ``algorithm.seed`` and its own
    run directory ``<experiment>/seed-<seed>``. The config is checked first, so a typo
    fails once rather than once per seed.
    """
    from bbrl_ppo.cli.training import load_config

    seeds = list(seeds)
    if not seeds:
        raise InvalidInputError("--seeds needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise InvalidInputError(f"--seeds lists a seed twice: {seeds}")
    for item in overrides:
        if item.split("=", 1)[0].strip() in _PER_SEED_KEYS:
            raise InvalidInputError(
                f"With --seeds, each seed sets {' and '.join(_PER_SEED_KEYS)} itself: "
                f"remove {item!r} (use --name to name the experiment)"
            )
    config = Path(config)
    load_config(config, overrides)  # fails here, once, on a bad key or value
    name = name or f"{config.stem}-{datetime.now():%Y%m%d-%H%M%S}"
    directory = run_directory(name).resolve()
    if is_experiment(directory):
        raise InvalidInputError(
            f"{directory} already holds an experiment: continue it with "
            f"'bbrl-ppo train --resume {directory}', or choose another --name"
        )
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config, directory / CONFIG_FILE)
    experiment = Experiment(
        directory,
        directory / CONFIG_FILE,
        list(overrides),
        [SeedRun(seed, directory / f"seed-{seed}") for seed in seeds],
        created=datetime.now().isoformat(timespec="seconds"),
    )
    experiment.save()
    _Scheduler(experiment, jobs, show_progress).run()
    return experiment


def resume_experiment(
    directory: str | Path,
    *,
    jobs: int | None = None,
    show_progress: bool = True,
    allow_code_change: bool = False,
) -> Experiment:
    """Run every seed of the experiment in `directory` that did not finish.

    A seed with a checkpoint continues from it (exactly, as ``--resume`` does for one
    run); a seed that never wrote one starts again from scratch.
    """
    experiment = Experiment.load(directory)
    for run in experiment.seeds:
        if run.status != DONE:
            run.status, run.returncode, run.error = PENDING, None, None
    experiment.save()
    _Scheduler(experiment, jobs, show_progress, allow_code_change=allow_code_change).run()
    return experiment


def _usable_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _seed_command(
    experiment: Experiment, run: SeedRun, allow_code_change: bool = False
) -> list[str]:
    train = [sys.executable, "-m", "bbrl_ppo", "train", "--threads", "1"]
    if checkpoint_file(run.run_dir).is_file():
        resume = [*train, "--resume", str(run.run_dir)]
        return [*resume, "--allow-code-change"] if allow_code_change else resume
    if run.run_dir.exists():  # started but never checkpointed: nothing to continue from
        shutil.rmtree(run.run_dir)
    return [
        *train,
        str(experiment.config),
        *experiment.overrides,
        f"algorithm.seed={run.seed}",
        f"base_dir={run.run_dir}",
        "progress_bar=false",
    ]


class _Scheduler:
    """Starts pending seeds while fewer than `jobs` run; draws their progress."""

    def __init__(
        self,
        experiment: Experiment,
        jobs: int | None,
        show_progress: bool,
        allow_code_change: bool = False,
    ):
        if jobs is not None and jobs < 1:
            raise InvalidInputError(f"--jobs must be >= 1, got {jobs}")
        self.experiment = experiment
        self.jobs = jobs or default_jobs()
        cores = _usable_cores()
        #: One core per running seed when there are enough (timings stay comparable).
        self.free_cores: list[int] | None = cores if self.jobs <= len(cores) else None
        self.display = _ProgressDisplay(experiment.seeds, enabled=show_progress)
        self.stopping = False
        self.allow_code_change = allow_code_change

    def run(self) -> None:
        previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._request_stop)
        try:
            while True:
                self._reap()
                if not self.stopping:
                    self._start_pending()
                if not self._running():
                    break
                self.display.refresh()
                time.sleep(_POLL_S)
        finally:
            signal.signal(signal.SIGINT, previous)
            for run in self._running():  # only when the loop itself failed
                run.process.kill()
            self.display.close()
            self.experiment.save()

    def _request_stop(self, signum: int, frame: Any) -> None:
        """First Ctrl-C: every seed stops at its next rollout with a checkpoint;
        a second one: they stop at once (each run's own second-signal rule)."""
        self.stopping = True
        print(
            "\nStopping every running seed after its current rollout (with a checkpoint); "
            "Ctrl-C again to stop them at once",
            file=sys.stderr,
        )
        for run in self._running():
            run.process.send_signal(signal.SIGINT)

    def _running(self) -> list[SeedRun]:
        return [run for run in self.experiment.seeds if run.status == RUNNING]

    def _start_pending(self) -> None:
        for run in self.experiment.seeds:
            if len(self._running()) >= self.jobs:
                return
            if run.status == PENDING:
                self._start(run)

    def _start(self, run: SeedRun) -> None:
        command = _seed_command(self.experiment, run, self.allow_code_change)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with (run.run_dir / LOG_FILE).open("a") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            # A session of its own: a Ctrl-C in the terminal reaches only this parent,
            # which passes it on once (a second SIGINT would stop the seed at once).
            run.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        if self.free_cores:
            run.core = self.free_cores.pop(0)
            try:
                os.sched_setaffinity(run.process.pid, {run.core})
            except OSError:  # the process may already have ended
                pass
        run.status = RUNNING
        self.experiment.save()

    def _reap(self) -> None:
        for run in self._running():
            code = run.process.poll()
            if code is None:
                continue
            run.returncode = code
            if code == 0:
                run.status = DONE
            elif code == 130 or (self.stopping and code in (-signal.SIGINT, 1)):
                run.status = STOPPED
            else:
                run.status = FAILED
                run.error = _log_tail(run.run_dir / LOG_FILE)
            if run.core is not None and self.free_cores is not None:
                self.free_cores.append(run.core)
                run.core = None
            run.process = None
            self.experiment.save()
            self.display.finished(run)


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text[-lines:])


class _ProgressDisplay:
    """One line per seed: env steps, steps/s, last and best evaluation.

    On a terminal, one tqdm bar per seed; elsewhere (a log file, CI), a plain line
    per seed every `plain_interval` seconds and when a seed ends.
    """

    def __init__(self, runs: list[SeedRun], enabled: bool, plain_interval: float = 30.0):
        self.runs = runs
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.plain_interval = plain_interval
        self._last_plain = time.monotonic()
        self.bars: dict[int, Any] = {}
        if self.live:
            from tqdm import tqdm

            for position, run in enumerate(runs):
                self.bars[run.seed] = tqdm(
                    total=None,
                    desc=f"seed {run.seed}",
                    unit="step",
                    unit_scale=True,
                    position=position,
                    dynamic_ncols=True,
                    leave=True,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                    "[{elapsed}<{remaining}{postfix}]",
                )

    def refresh(self) -> None:
        if not self.enabled:
            return
        if self.live:
            for run in self.runs:
                self._draw(run)
        elif time.monotonic() - self._last_plain >= self.plain_interval:
            self._last_plain = time.monotonic()
            for run in self.runs:
                if run.status == RUNNING:
                    print(_plain_line(run), file=sys.stderr, flush=True)

    def finished(self, run: SeedRun) -> None:
        if not self.enabled:
            return
        if self.live:
            self._draw(run)
        else:
            print(_plain_line(run), file=sys.stderr, flush=True)

    def _draw(self, run: SeedRun) -> None:
        bar = self.bars[run.seed]
        progress = run.progress()
        if progress.get("total_steps") and bar.total != progress["total_steps"]:
            bar.total = progress["total_steps"]
        steps = progress.get("nb_steps", 0)
        if steps != bar.n:
            bar.n = steps
        bar.set_postfix_str(_fields(run, progress), refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _fields(run: SeedRun, progress: dict[str, Any]) -> str:
    parts = [run.status]
    steps, elapsed = progress.get("nb_steps"), progress.get("elapsed_s")
    if steps and elapsed:
        parts.append(f"{steps / elapsed:,.0f} step/s")
    for key in ("last_eval", "best_eval"):
        if progress.get(key) is not None:
            parts.append(f"{key}={progress[key]:.1f}")
    return ", ".join(parts)


def _plain_line(run: SeedRun) -> str:
    progress = run.progress()
    steps = progress.get("nb_steps", 0)
    total = progress.get("total_steps")
    of_total = f"/{total:,}" if total else ""
    return f"seed {run.seed}: {steps:,}{of_total} steps, {_fields(run, progress)}"


def summary_rows(experiment: Experiment) -> list[dict[str, Any]]:
    return [run.summary() for run in experiment.seeds]


def format_summary(experiment: Experiment) -> str:
    """The end-of-experiment table, one row per seed."""
    header = ["seed", "status", "env steps", "wall s", "steps/s", "last eval", "best eval"]
    rows = []
    for row in summary_rows(experiment):
        rows.append(
            [
                str(row["seed"]),
                row["status"],
                _number(row["steps"], "{:,}"),
                _number(row["wall_s"], "{:,.1f}"),
                _number(row["steps_per_s"], "{:,.0f}"),
                _number(row["last_eval"], "{:.1f}"),
                _number(row["best_eval"], "{:.1f}"),
            ]
        )
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(header, widths, strict=True))]
    lines += [
        "  ".join(cell.rjust(width) for cell, width in zip(r, widths, strict=True)) for r in rows
    ]
    return "\n".join(lines)


def _number(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)
