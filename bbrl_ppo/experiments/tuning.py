"""Hyper-parameter search with Optuna: what ``bbrl-ppo tune`` does.

A *trial* is one point of the search space (declared in the config's ``tune:`` section)
trained with seeds 1..K, each a ``bbrl-ppo train`` subprocess; its score is the mean
over the seeds of each run's final (or best) evaluation mean.

Why subprocesses: a run that crashes, leaks memory or hangs takes nothing else down,
it can be killed when Optuna prunes its trial, and each run is exactly what ``bbrl-ppo
train`` would do with the same config.

Parallelism: at most ``jobs`` training processes at once, shared by all trials. The K
seeds of a trial run side by side (not one after another), so that the trial's mean
curve, which the median pruner compares with earlier trials', grows from the first
evaluation on; ``ceil(jobs / K)`` trials run at once so that no process slot waits for
a trial to end. With one trial at a time the study is reproducible (seeded TPE).

The study lives in its storage (by default ``study.db``, SQLite, in the study
directory): running the same command again resumes it and adds ``trials`` more trials.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf

from bbrl_ppo.cli.training import load_config
from bbrl_ppo.config.resolution import run_directory
from bbrl_ppo.config.schema import ConfigError, ParameterSpace, TuneConfig
from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.experiments.study_results import (
    score_text,
    trial_note,
    trial_state,
    write_best_config,
)
from bbrl_ppo.experiments.trial_curves import mean_curve, read_evaluations
from bbrl_ppo.persistence.run_files import EVALS_FILE

#: The best trial's configuration, written in the study directory.
BEST_CONFIG_FILE = "best_config.yaml"
#: The default storage, in the study directory.
STORAGE_FILE = "study.db"
#: Seconds a stopped training process gets to write its checkpoint before it is killed.
STOP_GRACE_S = 10.0
#: Lines of a failed run's stderr kept in its trial's user attributes.
STDERR_TAIL_LINES = 20


class TrialFailedError(Exception):
    """A trial that could not give a score: an invalid config or a run that failed."""


class _Interrupted(Exception):
    """The study was asked to stop (Ctrl-C) while this trial ran."""


@dataclass(frozen=True)
class StudyRequest:
    """What ``bbrl-ppo tune`` was asked for."""

    config: Path
    trials: int
    overrides: tuple[str, ...] = ()
    jobs: int = 1
    #: Seeds per trial; None: the config's ``tune.seeds``.
    seeds: int | None = None
    #: An Optuna storage URL; None: ``study.db`` in the study directory.
    storage: str | None = None
    #: None: the config file's name without its suffix.
    study_name: str | None = None
    #: Seconds between two reads of the runs' evals.csv.
    poll_s: float = 1.0


@dataclass
class StudyResult:
    """A study once this invocation's trials are over (or interrupted)."""

    study: optuna.Study
    directory: Path
    storage: str
    best_config: Path | None
    interrupted: bool

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial | None:
        complete = self.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        return self.study.best_trial if complete else None


def study_directory(study_name: str) -> Path:
    """Where a study's trials, storage and best configuration go: ``outputs/tune/<name>``."""
    return run_directory(Path("tune") / study_name).resolve()


def run_study(request: StudyRequest, log: Callable[[str], None] = print) -> StudyResult:
    """Run `request.trials` more trials of the study, then write the best configuration."""
    if request.trials < 1 or request.jobs < 1 or (request.seeds is not None and request.seeds < 1):
        raise InvalidInputError("--trials, --jobs and --seeds must be >= 1")
    config = Path(request.config).resolve()
    cfg = load_config(config, request.overrides)
    tune: TuneConfig = OmegaConf.to_object(cfg.tune)
    if not tune.parameters:
        raise ConfigError(
            f"{request.config} has no search space: declare it under tune.parameters "
            "(see configs/cartpole.yaml)"
        )
    seeds = request.seeds or tune.seeds
    name = request.study_name or config.stem
    directory = study_directory(name)
    directory.mkdir(parents=True, exist_ok=True)
    storage = request.storage or f"sqlite:///{directory / STORAGE_FILE}"
    with _quiet_optuna():
        study = _open_study(name, storage, tune, directory)
    _note_changed_setup(study, config, request.overrides, seeds, tune, log)

    stop = threading.Event()
    objective = _Objective(
        config=config,
        overrides=tuple(request.overrides),
        tune=tune,
        seeds=seeds,
        directory=directory,
        slots=threading.BoundedSemaphore(request.jobs),
        stop=stop,
        poll_s=request.poll_s,
    )
    log(
        f"Study '{name}' ({len(study.trials)} earlier trials) in {directory}: {request.trials} "
        f"trials x {seeds} seed(s), at most {request.jobs} training process(es) at once"
    )
    with _stop_on_sigint(stop, log), _quiet_optuna():
        study.optimize(
            objective,
            n_trials=request.trials,
            n_jobs=math.ceil(request.jobs / seeds),
            catch=(TrialFailedError, _Interrupted),
            callbacks=[_progress_printer(log)],
        )
    result = StudyResult(study, directory, storage, None, interrupted=stop.is_set())
    if result.best_trial is not None:
        result.best_config = write_best_config(
            config, request.overrides, result.best_trial, directory / BEST_CONFIG_FILE, tune.metric
        )
    return result


# -- the study -------------------------------------------------------------------------


def _open_study(name: str, storage: str, tune: TuneConfig, directory: Path) -> optuna.Study:
    pruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=tune.startup_trials, n_warmup_steps=tune.min_steps_before_pruning
        )
        if tune.pruning
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=tune.direction,
        pruner=pruner,
        load_if_exists=True,
    )
    if study.direction.name.lower() != tune.direction:
        raise ConfigError(
            f"Study '{name}' in {storage} was created to {study.direction.name.lower()}, not "
            f"to {tune.direction}: use another --study-name"
        )
    trials = study.get_trials(deepcopy=False)
    # Seeded by the number of earlier trials: a resumed study does not draw its first
    # random trials again.
    study.sampler = optuna.samplers.TPESampler(
        seed=tune.sampler_seed + len(trials), n_startup_trials=tune.startup_trials
    )
    _check_same_space(name, trials, tune)
    stale = [n for n in _trial_dir_numbers(directory) if n >= len(trials)]
    if stale:
        raise InvalidInputError(
            f"{directory} holds trial-{stale[0]}, which study '{name}' in {storage} does not "
            "have (another storage?): remove it or use another --study-name"
        )
    return study


def _check_same_space(
    name: str, trials: Sequence[optuna.trial.FrozenTrial], tune: TuneConfig
) -> None:
    """Refuse a space that changed a key's kind of values: Optuna could not compare them."""
    for trial in trials:
        for key, old in trial.distributions.items():
            if key not in tune.parameters:
                continue
            try:
                optuna.distributions.check_distribution_compatibility(
                    old, distribution(tune.parameters[key])
                )
            except ValueError:
                raise ConfigError(
                    f"Study '{name}' searched '{key}' in another way ({old}): keep its space "
                    "or use another --study-name"
                ) from None


def _trial_dir_numbers(directory: Path) -> list[int]:
    numbers = []
    for path in directory.glob("trial-*"):
        suffix = path.name.removeprefix("trial-")
        if path.is_dir() and suffix.isdigit():
            numbers.append(int(suffix))
    return sorted(numbers)


def _note_changed_setup(
    study: optuna.Study,
    config: Path,
    overrides: Sequence[str],
    seeds: int,
    tune: TuneConfig,
    log: Callable[[str], None],
) -> None:
    """Record what the scores mean; say so when a resumed study's differ from earlier ones."""
    setup = {"config": str(config), "overrides": list(overrides), "seeds": seeds}
    setup["metric"] = tune.metric
    earlier = {key: study.user_attrs.get(key) for key in setup}
    ran = any(trial.state.is_finished() for trial in study.get_trials(deepcopy=False))
    if ran and earlier != setup:
        changed = ", ".join(key for key in setup if earlier[key] != setup[key])
        log(f"Note: this study's earlier trials ran with another {changed}: scores may differ")
    for key, value in setup.items():
        study.set_user_attr(key, value)


def distribution(space: ParameterSpace) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of a validated `ParameterSpace`."""
    if space.distribution == "categorical":
        return optuna.distributions.CategoricalDistribution(list(space.choices or []))
    if space.distribution == "int":
        return optuna.distributions.IntDistribution(
            int(space.low), int(space.high), step=int(space.step or 1)
        )
    return optuna.distributions.FloatDistribution(
        space.low, space.high, log=space.distribution == "log_float", step=space.step
    )


def suggest(trial: optuna.Trial, key: str, space: ParameterSpace) -> Any:
    """Draw `key`'s value from `space` (the same distribution as `distribution` gives)."""
    if space.distribution == "categorical":
        return trial.suggest_categorical(key, list(space.choices or []))
    if space.distribution == "int":
        return trial.suggest_int(key, int(space.low), int(space.high), step=int(space.step or 1))
    log = space.distribution == "log_float"
    return trial.suggest_float(key, space.low, space.high, step=space.step, log=log)


def override(key: str, value: Any) -> str:
    """``key=value`` as ``bbrl-ppo train`` parses it back to `value`."""
    if isinstance(value, bool) or value is None:
        text = {True: "true", False: "false", None: "null"}[value]
    elif isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        text = repr(value)
    return f"{key}={text}"


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs each trial (and a failed one's traceback): we print one line instead."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


@contextlib.contextmanager
def _stop_on_sigint(stop: threading.Event, log: Callable[[str], None]) -> Iterator[None]:
    """A first Ctrl-C stops the running trials and starts no other; a second one aborts.

    The training processes run in their own sessions, so the terminal's Ctrl-C reaches
    the study only, which stops them itself and keeps its storage consistent.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log("\nStopping the running trials (Ctrl-C again to abort)...")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _progress_printer(log: Callable[[str], None]) -> Callable[..., None]:
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log(f"trial {trial.number}: {trial_state(trial)}{score_text(trial)}{trial_note(trial)}")

    return report


# -- one trial -------------------------------------------------------------------------


@dataclass
class _Objective:
    """Optuna's objective: draw a point, train its seeds, score them. Shared by threads."""

    config: Path
    overrides: tuple[str, ...]
    tune: TuneConfig
    seeds: int
    directory: Path
    slots: threading.BoundedSemaphore
    stop: threading.Event
    poll_s: float

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            if self.stop.is_set():
                raise _Interrupted
            params = {
                key: suggest(trial, key, space) for key, space in self.tune.parameters.items()
            }
            overrides = [*self.overrides, *(override(key, value) for key, value in params.items())]
            trial_dir = self.directory / f"trial-{trial.number}"
            trial.set_user_attr("dir", str(trial_dir))
            try:  # checked here: a point the schema refuses fails without starting a run
                cfg = load_config(self.config, overrides)
            except ConfigError as error:
                raise _failed(trial, str(error)) from None
            runs = [self._seed_run(trial_dir, seed, overrides) for seed in range(1, self.seeds + 1)]
            scores = _TrialRun(trial, runs, cfg.algorithm.eval_interval, self).run()
        except _Interrupted:
            trial.set_user_attr("error", "interrupted")
            trial.study.stop()
            raise
        trial.set_user_attr("seed_scores", scores)
        return sum(scores) / len(scores)

    def _seed_run(self, trial_dir: Path, seed: int, overrides: list[str]) -> _SeedRun:
        run_dir = trial_dir / f"seed-{seed}"
        command = [sys.executable, "-m", "bbrl_ppo", "train", "--threads", "1", str(self.config)]
        command += [*overrides, f"algorithm.seed={seed}", f"base_dir={run_dir}"]
        return _SeedRun(seed, run_dir, [*command, "progress_bar=false"])


def _failed(trial: optuna.Trial, error: str, stderr_tail: str | None = None) -> TrialFailedError:
    trial.set_user_attr("error", error)
    if stderr_tail is not None:
        trial.set_user_attr("stderr_tail", stderr_tail)
    return TrialFailedError(error)


@dataclass
class _SeedRun:
    """One ``bbrl-ppo train`` subprocess of a trial, its output in files beside its run."""

    seed: int
    run_dir: Path
    command: list[str]
    process: subprocess.Popen | None = field(default=None, repr=False)
    holds_slot: bool = False

    @property
    def stdout(self) -> Path:
        return self.run_dir.with_name(f"{self.run_dir.name}.out")

    @property
    def stderr(self) -> Path:
        return self.run_dir.with_name(f"{self.run_dir.name}.err")

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.returncode is None

    def start(self) -> None:
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            # A session of its own: the terminal's Ctrl-C goes to the study, which stops
            # its runs itself, and a stop reaches the run's env subprocesses too.
            self.process = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def stop(self) -> None:
        """SIGTERM (the run stops at its next rollout with a checkpoint), then SIGKILL."""
        if not self.running:
            return
        self._signal(kill=False)
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self._signal(kill=True)
            self.process.wait()

    def _signal(self, kill: bool) -> None:
        with contextlib.suppress(ProcessLookupError):
            if hasattr(os, "killpg"):  # the run and its env subprocesses
                os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
            elif kill:
                self.process.kill()
            else:
                self.process.terminate()

    def evaluations(self) -> list[tuple[int, float]]:
        return read_evaluations(self.run_dir / EVALS_FILE)

    def stderr_tail(self) -> str:
        try:
            lines = self.stderr.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-STDERR_TAIL_LINES:])


class _TrialRun:
    """A trial's seeds, started as process slots free up, watched until they end.

    Each poll reports the seeds' mean curve to Optuna and asks the pruner; a pruned,
    failed or interrupted trial stops all its runs.
    """

    def __init__(
        self, trial: optuna.Trial, runs: list[_SeedRun], eval_interval: int, objective: _Objective
    ):
        self.trial = trial
        self.runs = runs
        self.eval_interval = eval_interval
        self.slots = objective.slots
        self.stop = objective.stop
        self.poll_s = objective.poll_s
        self.metric = objective.tune.metric
        self.last_reported = -1

    def run(self) -> list[float]:
        try:
            while True:
                if self.stop.is_set():
                    raise _Interrupted
                self._start_waiting_runs()
                finished = self._collect_finished()
                # A trial that trained to its end is scored, not pruned at its last step.
                self._report(prune=not finished)
                if finished:
                    return [self._score(run) for run in self.runs]
                self.stop.wait(self.poll_s)
        finally:
            for run in self.runs:
                run.stop()
                self._release(run)

    def _start_waiting_runs(self) -> None:
        for run in self.runs:
            if run.process is None and self.slots.acquire(blocking=False):
                run.holds_slot = True
                run.start()

    def _collect_finished(self) -> bool:
        """Free the slots of ended runs; True once every run ended well. Raise on a failure."""
        for run in self.runs:
            code = run.returncode
            if code is None:
                continue
            self._release(run)
            if code != 0:
                tail = run.stderr_tail()
                last = tail.splitlines()[-1] if tail else "no output"
                raise _failed(self.trial, f"seed {run.seed} exited with code {code}: {last}", tail)
        return all(run.returncode == 0 for run in self.runs)

    def _release(self, run: _SeedRun) -> None:
        if run.holds_slot:
            run.holds_slot = False
            self.slots.release()

    def _report(self, prune: bool) -> None:
        """Give Optuna the mean curve's new steps; raise `TrialPruned` if it says so."""
        curves = [run.evaluations() for run in self.runs]
        ended = [run.returncode == 0 for run in self.runs]
        for step, value in mean_curve(curves, ended, self.eval_interval):
            if step <= self.last_reported:
                continue
            self.trial.report(value, step)
            self.last_reported = step
            if prune and self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned at {step} env steps (mean {value:.2f})")

    def _score(self, run: _SeedRun) -> float:
        means = [mean for _, mean in run.evaluations()]
        if not means:
            tail = run.stderr_tail()
            raise _failed(
                self.trial,
                f"seed {run.seed} ended without an evaluation (is algorithm.max_steps below "
                "algorithm.eval_interval?)",
                tail,
            )
        return max(means) if self.metric == "best" else means[-1]
