"""``bbrl-ppo tune``: a hyper-parameter search over the config's ``tune:`` section.

Optuna is an optional dependency (``pip install 'bbrl_ppo[tune]'``), imported only when
the command runs, so that ``bbrl-ppo --help`` and the other commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from bbrl_ppo.config.packaged import resolve_config
from bbrl_ppo.errors import UserError

EPILOG = """\
Each trial draws a point of the config's tune.parameters, trains it with seeds 1..K
(each a `bbrl-ppo train` subprocess) and scores it with the mean of the runs' final
(or best: tune.metric) evaluation means; the median pruner stops a trial whose mean
curve falls behind. Trials, their runs and study.db (the study, resumable) go to
outputs/tune/STUDY_NAME; running the same command again adds --trials more trials.
At the end: a table of the trials and best_config.yaml, which `bbrl-ppo train` takes.
"""


class _IntermixedParser(argparse.ArgumentParser):
    """Options anywhere among CONFIG and the key=value overrides.

    Why: argparse takes the positionals in one go, so ``CONFIG --trials 3 key=value``
    would leave ``key=value`` unrecognized; the intermixed parse takes options first.
    """

    _intermixing = False

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self._intermixing:  # parse_known_intermixed_args calls back here (Python < 3.13)
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def register(commands: Any) -> None:
    """Add ``tune`` to the sub-commands of ``bbrl-ppo``."""
    tune = commands.add_parser(
        "tune",
        help="search hyper-parameters with Optuna over the config's tune: section",
        description="Search hyper-parameters with Optuna over the config's tune: section.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if type(tune) is argparse.ArgumentParser:
        tune.__class__ = _IntermixedParser
    tune.add_argument(
        "config",
        help="a packaged config's name or a YAML file, with a tune: section, e.g. cartpole",
    )
    tune.add_argument(
        "--trials", type=int, required=True, help="trials to run now (added to a resumed study)"
    )
    tune.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="training processes at once, over all trials (default 1: one core each)",
    )
    tune.add_argument(
        "--seeds", type=int, help="runs per trial, seeds 1..SEEDS (default: tune.seeds)"
    )
    tune.add_argument(
        "--storage",
        help="an Optuna storage URL, e.g. sqlite:///study.db (default: study.db in the "
        "study directory)",
    )
    tune.add_argument(
        "--study-name", help="the study's name and directory (default: the config's file name)"
    )
    tune.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides for every run, e.g. algorithm.max_steps=20000",
    )
    tune.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the study, print its trials and the best one; 130 if interrupted, 1 if none scored."""
    if importlib.util.find_spec("optuna") is None:
        raise UserError("bbrl-ppo tune needs Optuna: pip install 'bbrl_ppo[tune]'")
    from bbrl_ppo.experiments.study_results import format_trials
    from bbrl_ppo.experiments.tuning import StudyRequest, run_study

    result = run_study(
        StudyRequest(
            config=resolve_config(args.config),
            trials=args.trials,
            overrides=tuple(args.overrides),
            jobs=args.jobs,
            seeds=args.seeds,
            storage=args.storage,
            study_name=args.study_name,
        )
    )
    print(f"\n{format_trials(result.study)}\n")
    best = result.best_trial
    if best is None:
        print("No trial completed: no best configuration (see the notes above).")
    else:
        values = " ".join(f"{key}={value!r}" for key, value in best.params.items())
        print(f"Best trial: {best.number}, score {best.value:.2f}: {values}")
        print(f"Best configuration: {result.best_config}")
        print(f"  bbrl-ppo train {result.best_config}")
    print(f"Study '{result.study.study_name}' in {result.storage} ({result.directory})")
    if result.interrupted:
        print("Interrupted: run the same command again to continue the study.")
        return 130
    return 0 if best is not None else 1
