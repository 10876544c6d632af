"""``bbrl-ppo plot`` and ``bbrl-ppo report``: learning curves and a summary table of runs.

matplotlib, scipy and pandas are imported inside the handlers: ``bbrl-ppo --help`` and
the other commands never pay for them.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_PLOT = "learning_curves.png"
_PATHS_HELP = "run directories, experiment directories, or folders holding runs at any depth"
_LABEL_HELP = "one name per path, in order: the curve or row of every run under that path"


def register(commands: Any) -> None:
    """Add ``plot`` and ``report`` to the sub-commands of ``bbrl-ppo``."""
    plot = commands.add_parser(
        "plot", help="learning curves of runs: mean over seeds with a 95%% bootstrap band"
    )
    plot.add_argument("paths", nargs="+", metavar="RUN_OR_EXPERIMENT_DIR", help=_PATHS_HELP)
    plot.add_argument(
        "-o",
        "--output",
        default=DEFAULT_PLOT,
        metavar="FILE",
        help=f"a .png or .svg file to write (default: {DEFAULT_PLOT})",
    )
    plot.add_argument(
        "--x",
        choices=("steps", "time"),
        default="steps",
        help="x axis: env steps, or wall-clock seconds since each run started (default: steps)",
    )
    plot.add_argument("--label", nargs="+", metavar="NAME", help=_LABEL_HELP)
    plot.add_argument(
        "--target", type=float, metavar="T", help="draw a horizontal line at this return"
    )
    plot.set_defaults(handler=_plot)

    report = commands.add_parser(
        "report",
        help="table per group of runs: steps to a target, final and best returns, speed",
    )
    report.add_argument("paths", nargs="+", metavar="RUN_OR_EXPERIMENT_DIR", help=_PATHS_HELP)
    report.add_argument(
        "--target",
        type=float,
        metavar="T",
        help="count the env steps and wall time to the first evaluation mean >= T",
    )
    report.add_argument("--label", nargs="+", metavar="NAME", help=_LABEL_HELP)
    report.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    report.set_defaults(handler=_report)


def _plot(args: argparse.Namespace) -> int:
    from bbrl_ppo.experiments.plotting import plot_runs

    _with_notes(
        lambda: plot_runs(
            args.paths, x=args.x, labels=args.label, target=args.target, output=args.output
        )
    )
    print(f"Learning curves written to {Path(args.output).resolve()}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from bbrl_ppo.experiments.report import format_markdown, format_text, report_runs

    table = _with_notes(lambda: report_runs(args.paths, target=args.target, labels=args.label))
    print(format_text(table))
    if args.markdown is not None:
        path = Path(args.markdown)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(format_markdown(table))
        print(f"Markdown table written to {path.resolve()}")
    return 0


def _with_notes(work: Callable[[], Any]) -> Any:
    """Run `work`, printing its `RunWarning`s as one-line notes rather than Python warnings."""
    from bbrl_ppo.experiments.runs import RunWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunWarning)
        result = work()
    for warning in caught:
        if issubclass(warning.category, RunWarning):
            print(f"bbrl-ppo: note: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return result
