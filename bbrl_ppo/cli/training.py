"""Training from a YAML file: what ``bbrl-ppo train`` does."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from bbrl_ppo.algorithms.ppo import ALGORITHMS, PPOClip
from bbrl_ppo.config.packaged import missing_file_hint, resolve_config
from bbrl_ppo.config.schema import ConfigError, validate_config
from bbrl_ppo.errors import InvalidInputError, MissingFileError


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """The validated configuration of a YAML file with ``key=value`` overrides.

    `path` may also name a packaged config (``"cartpole"``: ``bbrl-ppo configs`` lists them).
    """
    path = resolve_config(path)
    if not path.is_file():
        raise MissingFileError(f"No config file {path}{missing_file_hint(path)}")
    cfg = OmegaConf.load(path)
    malformed = [item for item in overrides if "=" not in item]
    if malformed:
        raise ConfigError(f"Overrides must look like key=value, got {malformed[0]!r}")
    try:
        cfg.merge_with_dotlist(list(overrides))
    except Exception as error:  # omegaconf's parse errors carry several lines
        raise ConfigError(f"Cannot apply overrides: {str(error).splitlines()[0]}") from None
    return validate_config(cfg)


def train_from_file(path: str | Path, overrides: Sequence[str] = ()) -> PPOClip:
    """Build the configured PPO variant, train it, print where the results are.

    Under torchrun (``torchrun --nproc-per-node N -m bbrl_ppo train CONFIG``) every
    process runs this; rank 0 alone prints (and writes the run directory).
    """
    cfg = load_config(path, overrides)
    algo = ALGORITHMS[cfg.algorithm.variant](cfg)
    with _printed_by_rank_0(algo):
        print(f"Run directory: {algo.base_dir}")
        return _train(algo)


def resume_run(
    run_dir: str | Path, overrides: Sequence[str] = (), *, allow_code_change: bool = False
) -> PPOClip:
    """Continue the run in `run_dir` from its last checkpoint, to the end of its budget."""
    config_path = Path(run_dir) / "config.yaml"
    if not config_path.is_file():
        raise MissingFileError(f"{run_dir} is not a run directory (no config.yaml)")
    variant = OmegaConf.load(config_path).algorithm.get("variant", "ppo_clip")
    algo = ALGORITHMS[variant].resume(
        run_dir, overrides=overrides, allow_code_change=allow_code_change
    )
    with _printed_by_rank_0(algo):
        print(
            f"Resuming {algo.base_dir} at {algo.nb_steps} env steps (update {algo.nb_rollouts + 1})"
        )
        return _train(algo)


@contextmanager
def _printed_by_rank_0(algo: PPOClip) -> Iterator[None]:
    """Silence the standard output of the other ranks of a distributed run.

    Each would print what rank 0 prints (the same global numbers); errors and
    warnings, on standard error, still show from every rank.
    """
    if algo.distributed.is_main:
        yield
        return
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull):
        yield


def _train(algo: PPOClip) -> PPOClip:
    try:
        algo.run()
    except KeyboardInterrupt:
        algo.interrupted = True
        print(
            "\nInterrupted: what was logged and saved so far stays in the run directory; "
            f"continue from the last checkpoint with: bbrl-ppo train --resume {algo.base_dir}"
        )
    finally:
        algo.close()
    written = sorted(path.name for path in algo.base_dir.iterdir() if path.is_file())
    print(
        f"{'Stopped' if algo.interrupted else 'Done'}: {algo.nb_steps} env steps, "
        f"best evaluation mean {algo.best_reward:.2f}.\n"
        f"Results in {algo.base_dir}: {', '.join(written)}\n"
        f"  tensorboard --logdir {algo.base_dir}"
    )
    if algo.best_policy is not None and (algo.base_dir / "best_agent.pt").exists():
        print(f"  bbrl-ppo play {algo.base_dir} --video {algo.base_dir}/replay.mp4")
    return algo


def train_seeds(args: argparse.Namespace) -> int:
    """``train CONFIG --seeds ...`` or ``train --resume EXPERIMENT_DIR``: the exit code."""
    from bbrl_ppo.experiments.seeds import format_summary, resume_experiment, run_seeds

    if args.resume is not None:
        extra = [item for item in (args.config, *args.overrides) if item]
        if extra or args.seeds or args.name:
            raise InvalidInputError(
                "--resume EXPERIMENT_DIR continues the experiment as it was started: "
                f"no CONFIG, overrides, --seeds or --name (got {' '.join(map(str, extra))})"
            )
        experiment = resume_experiment(
            args.resume, jobs=args.jobs, allow_code_change=args.allow_code_change
        )
    elif args.config is None:
        raise InvalidInputError("train --seeds needs a CONFIG file")
    else:
        experiment = run_seeds(
            args.config, args.seeds, overrides=args.overrides, jobs=args.jobs, name=args.name
        )
    print(f"\nExperiment {experiment.directory}\n{format_summary(experiment)}")
    for run in experiment.failed:
        print(f"\nseed {run.seed} failed (exit {run.returncode}); end of {run.run_dir}/train.log:")
        print("  " + run.error.replace("\n", "\n  "))
    if experiment.interrupted:
        print(f"Unfinished seeds continue with: bbrl-ppo train --resume {experiment.directory}")
        return 130
    print(
        f"Curves: bbrl-ppo plot {experiment.directory}\n"
        f"Table:  bbrl-ppo report {experiment.directory}"
    )
    return 1 if experiment.failed else 0
