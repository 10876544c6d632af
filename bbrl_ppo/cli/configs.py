"""``bbrl-ppo configs``: the packaged configs, listed or printed to copy and edit."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bbrl_ppo.config.packaged import config_names, describe, packaged_config

EPILOG = """\
Train one by name (bbrl-ppo train cartpole), or copy one to edit it:
  bbrl-ppo configs show cartpole > my_cartpole.yaml
  bbrl-ppo train my_cartpole.yaml
"""
_HEADER = ("NAME", "ENV", "VARIANT", "REACHES")


def register(commands: Any) -> None:
    """Add ``configs`` (and ``configs show NAME``) to the sub-commands of ``bbrl-ppo``."""
    configs = commands.add_parser(
        "configs",
        help="list the packaged configs (train one by name: bbrl-ppo train cartpole)",
        description="The configs shipped with bbrl_ppo: one line each.",
        usage="%(prog)s [-h] [show NAME]",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = configs.add_subparsers(dest="configs_action", metavar="ACTION")
    show = actions.add_parser("show", help="print one packaged config as it is, to copy and edit")
    show.add_argument("name", metavar="NAME", help="a packaged config, e.g. cartpole")
    configs.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.configs_action == "show":
        sys.stdout.write(packaged_config(args.name).read_text())
    else:
        print(format_table([_HEADER, *_rows()]))
    return 0


def _rows() -> list[tuple[str, ...]]:
    rows = []
    for name in config_names():
        config = describe(name)
        rows.append((config.name, config.env_name, config.variant, config.reaches))
    return rows


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    )
