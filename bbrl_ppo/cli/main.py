"""The ``bbrl-ppo`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bbrl_ppo.cli.replay import REPLAY_SEED, replay
from bbrl_ppo.config.packaged import resolve_config
from bbrl_ppo.errors import (
    CollectiveError,
    EnvStepError,
    InvalidInputError,
    NumericalError,
    UserError,
)


def _add_replay_arguments(parser: argparse.ArgumentParser, default_episodes: int) -> None:
    parser.add_argument("run_dir", help="a run directory holding best_agent.pt (or the file)")
    parser.add_argument(
        "--episodes", type=int, default=default_episodes, help="episodes to play side by side"
    )
    parser.add_argument("--seed", type=int, default=REPLAY_SEED, help="seed of the first env")
    parser.add_argument(
        "--import-env-module",
        action="store_true",
        help="allow a 'my_module:MyEnv-v0' env id in the checkpoint to import my_module",
    )


def build_parser() -> argparse.ArgumentParser:
    from bbrl_ppo import __version__  # here: bbrl_ppo's __init__ imports this module

    parser = argparse.ArgumentParser(
        prog="bbrl-ppo", description="PPO for BBRL users: train, replay and evaluate agents."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train PPO from a packaged config or a YAML file, with key=value overrides"
    )
    train.add_argument(
        "config",
        nargs="?",
        help="a packaged config's name (bbrl-ppo configs lists them), e.g. cartpole, or a YAML "
        "file, e.g. my_cartpole.yaml (not with --resume)",
    )
    train.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its checkpoints/last.pt (overrides may only "
        "raise algorithm.max_steps / algorithm.max_epochs)",
    )
    train.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        metavar="SEED",
        help="train once per seed, one process each, under one experiment directory "
        "outputs/<name>/seed-<SEED>/ (with --resume EXPERIMENT_DIR: not needed)",
    )
    train.add_argument(
        "--jobs",
        type=int,
        help="with --seeds: seeds trained at a time (default: one per core)",
    )
    train.add_argument(
        "--name",
        help="with --seeds: the experiment directory under outputs/ (default: "
        "<config name>-<date-time>)",
    )
    train.add_argument(
        "--allow-code-change",
        action="store_true",
        help="with --resume: accept a checkpoint written by another version of the code",
    )
    train.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: fastest for small networks, and reproducible)",
    )
    train.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. algorithm.seed=3 algorithm.max_steps=20000",
    )

    smoke = commands.add_parser(
        "smoke",
        help="check the installation: run the framework core end to end with an untrained policy",
    )
    smoke.add_argument("--env", default="CartPole-v1", help="gymnasium env id")
    smoke.add_argument("--steps", type=int, default=2000, help="env steps to collect")

    play = commands.add_parser("play", help="replay a saved agent, print its returns")
    _add_replay_arguments(play, default_episodes=1)
    play.add_argument("--video", help="also write one episode as an mp4 here")

    evaluate = commands.add_parser("eval", help="evaluate a saved agent over N episodes")
    _add_replay_arguments(evaluate, default_episodes=10)

    # Commands that live in their own modules add their parser and set `handler`.
    from bbrl_ppo.cli import configs, plots, tuning

    configs.register(commands)
    plots.register(commands)
    tuning.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            return handler(args)
        if args.command == "train":
            import torch

            from bbrl_ppo.cli.training import resume_run, train_from_file, train_seeds
            from bbrl_ppo.experiments.seeds import is_experiment

            if args.threads < 1:
                raise InvalidInputError(f"--threads must be >= 1, got {args.threads}")
            torch.set_num_threads(args.threads)
            if args.resume is None and args.config is not None:  # a name: its packaged file
                args.config = str(resolve_config(args.config))
            if args.seeds is not None or (args.resume and is_experiment(args.resume)):
                return train_seeds(args)
            if args.jobs is not None or args.name is not None:
                raise InvalidInputError("--jobs and --name go with --seeds")
            if args.resume is not None:
                # Without CONFIG, a first key=value lands in the CONFIG slot.
                overrides = [args.config] if args.config else []
                algo = resume_run(
                    args.resume,
                    [*overrides, *args.overrides],
                    allow_code_change=args.allow_code_change,
                )
            elif args.config is None:
                raise InvalidInputError("train needs a CONFIG file, or --resume RUN_DIR")
            else:
                algo = train_from_file(args.config, args.overrides)
            if algo.interrupted:
                return 130
        elif args.command == "smoke":
            from bbrl_ppo.cli.smoke import run_smoke

            run_dir = run_smoke(args.env, args.steps)
            print(f"Results in {run_dir} (evals.csv, best_agent.pt, best_agent.mp4, tensorboard)")
        elif args.command in ("play", "eval"):
            result = replay(
                args.run_dir,
                episodes=args.episodes,
                seed=args.seed,
                video=getattr(args, "video", None),
                import_env_module=args.import_env_module,
            )
            print(
                f"{args.episodes} episode(s): return mean {result.mean:.2f}, std {result.std:.2f}"
            )
            if result.video is not None:
                print(f"Video written to {result.video}")
    except UserError as error:  # anything else is a bug: its traceback stays
        print(f"bbrl-ppo: error: {error}", file=sys.stderr)
        return 2
    except (NumericalError, EnvStepError, CollectiveError) as error:
        print(f"bbrl-ppo: training stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bbrl-ppo: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.command == "train":  # under torchrun, training joined a process group
            from bbrl_ppo.distributed.context import leave_process_group

            leave_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
