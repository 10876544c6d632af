"""MkDocs hooks (mkdocs.yml ``hooks:``): sections of pages written from the code at build time.

A page asks for one with an HTML comment on a line of its own, which GitHub does not show:

- ``<!-- generated: cli -->``: ``bbrl-ppo --help`` and the help of every sub-command, from
  the command's own parser (`bbrl_ppo.cli.main.build_parser`);
- ``<!-- generated: config-keys SCHEMA -->``: a table per section of a configuration
  schema of `bbrl_ppo.config.schema` (``PPOConfig``, ``RunConfig``): each key, its type,
  default, allowed values and the ``#:`` comment above its field (or its `KEY_NOTES`
  entry; a key with neither fails the build);
- ``<!-- generated: renamed-keys -->``: the keys of earlier versions and what replaced them.

The schema and the parser stay the one place where a default, a type or an option is
written; the site shows what the code of the build says. An unknown marker fails the build.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import re
import textwrap
import typing
from collections.abc import Iterator
from typing import Any

#: What a key is, for the fields of the schema that have no ``#:`` comment above them (the
#: schema's comment wins once there is one). A key with neither fails the build: every key
#: of the reference says what it is. Keys are written with ``KEY`` under ``tune.parameters``.
KEY_NOTES = {
    "base_dir": "The run directory; a relative path goes under `outputs/`, and "
    "`${current_time:}` gives the date and time.",
    "save_best": "Write `best_agent.pt` whenever an evaluation improves on the best.",
    "progress_bar": "Show the progress bar (env steps, steps/s, last and best evaluation).",
    "collect_stats": "Keep every evaluation's episode returns; `save_stats()` writes them to "
    "`stats.npy`.",
    "algorithm.seed": "Seeds torch, the training envs (env i: `seed + i`) and the evaluation "
    "envs (`seed + 1,000,003 + i`).",
    "algorithm.max_rollouts": "The budget in rollouts (bbrl_utils' `max_epochs` is understood).",
    "algorithm.nb_evals": "Episodes per evaluation, played side by side.",
    "algorithm.discount_factor": "gamma.",
    "algorithm.gae_lambda": "GAE's lambda: 0 gives the TD(0) error, 1 the Monte-Carlo return.",
    "algorithm.clip_range": "PPO-clip's epsilon: the probability ratio is clipped to "
    "[1 - clip_range, 1 + clip_range].",
    "algorithm.anneal_lr": "Decay the learning rate linearly to 0 over the budget.",
    "algorithm.anneal_clip_range": "Decay the clip range linearly over the budget (to 0.001).",
    "algorithm.normalize_advantage": "Normalize each minibatch's advantages to mean 0, std 1.",
    "algorithm.entropy_coef": "Weight of the entropy bonus in the objective.",
    "algorithm.policy_coef": "Weight of the policy loss in the objective.",
    "algorithm.critic_coef": "Weight of the value loss in the objective.",
    "algorithm.max_grad_norm": "Each agent's gradient norm is clipped to this.",
    "algorithm.normalize_observations": "Normalize observations with running statistics, "
    "inside the agents (so `best_agent.pt` replays as trained).",
    "algorithm.normalize_rewards": "Divide rewards by the running std of the discounted "
    "returns (as Stable-Baselines3's `VecNormalize`).",
    "algorithm.observation_clip": "Normalized observations are clipped to "
    "[-observation_clip, observation_clip].",
    "algorithm.state_dependent_std": "Gaussian policy: a second head predicts the log-std, "
    "instead of a learned vector independent of the state.",
    "algorithm.init_log_std": "Gaussian policy: the log-std before training.",
    "algorithm.architecture.actor_hidden_size": "The policy's hidden layers.",
    "algorithm.architecture.critic_hidden_size": "The critic's hidden layers.",
    "algorithm.architecture.activation": "The hidden layers' activation.",
    "tune.direction": "Whether a higher score is better.",
    "tune.parameters.KEY.distribution": "float, int: uniform in [low, high]; log_float: "
    "uniform in log space (learning rates); categorical: one of choices.",
    "tune.parameters.KEY.low": "The smallest value (float, log_float, int).",
    "tune.parameters.KEY.high": "The largest value (float, log_float, int).",
    "tune.parameters.KEY.step": "Draw every step from low (float, int); null: any value.",
    "tune.parameters.KEY.choices": "The values of a categorical parameter.",
}
MARKER = re.compile(r"^<!-- generated: ([\w-]+)(?: (\w+))? -->$", re.MULTILINE)
#: The width of the help text as a terminal of 88 columns shows it.
HELP_COLUMNS = "88"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``<!-- generated: ... -->`` line of a page with what it asks for."""

    def expand(match: re.Match[str]) -> str:
        kind, argument = match.group(1), match.group(2)
        if kind == "cli":
            return cli_reference()
        if kind == "config-keys":
            return config_tables(argument or "PPOConfig")
        if kind == "renamed-keys":
            return renamed_keys_table()
        raise ValueError(f"{page.file.src_path}: unknown generated section {kind!r}")

    return MARKER.sub(expand, markdown)


# -- the command line ---------------------------------------------------------------------------
def cli_reference() -> str:
    """Each command's ``--help``, top level first, under a heading per sub-command."""
    from bbrl_ppo.cli.main import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS  # argparse wraps to the terminal's width
    try:
        sections = [_help_block(build_parser())]
        for path, parser in _sub_commands(build_parser(), "bbrl-ppo"):
            sections.append(f"### `{path}`\n\n{_help_block(parser)}")
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n\n".join(sections)


def _sub_commands(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(command path, parser)`` of every sub-command, depth first, each once."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        seen: set[int] = set()
        for name, sub_parser in action.choices.items():
            if id(sub_parser) in seen:  # an alias
                continue
            seen.add(id(sub_parser))
            yield f"{path} {name}", sub_parser
            yield from _sub_commands(sub_parser, f"{path} {name}")


def _help_block(parser: argparse.ArgumentParser) -> str:
    return f"```text\n{parser.format_help().rstrip()}\n```"


# -- the configuration schema -------------------------------------------------------------------
def config_tables(schema_name: str) -> str:
    """A table of keys per section of `schema_name` (a dataclass of the schema module)."""
    from bbrl_ppo.config import schema as schema_module

    schema = getattr(schema_module, schema_name, None)
    if schema is None or not dataclasses.is_dataclass(schema):
        raise ValueError(f"bbrl_ppo.config.schema has no configuration class {schema_name!r}")
    parts = []
    for section, rows in _sections(schema, ""):
        title = f"`{section}`" if section else "Top level"
        table = ["| key | type | default | allowed | what it is |", "|---|---|---|---|---|"]
        table += [f"| {' | '.join(_cell(value) for value in row)} |" for row in rows]
        parts.append(f"#### {title}\n\n" + "\n".join(table))
    return "\n\n".join(parts)


def _sections(schema: type, prefix: str) -> Iterator[tuple[str, list[tuple[str, ...]]]]:
    """``(section, rows)`` for `schema`'s plain keys, then each nested section in turn."""
    hints = typing.get_type_hints(schema)
    comments = _field_comments(schema)
    rows: list[tuple[str, ...]] = []
    nested: list[tuple[str, type]] = []
    for field in dataclasses.fields(schema):
        hint = hints[field.name]
        key = f"{prefix}{field.name}"
        note = comments.get(field.name) or KEY_NOTES.get(key)
        if dataclasses.is_dataclass(hint):
            nested.append((f"{key}.", hint))
            continue
        if typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            nested.append((f"{key}.KEY.", typing.get_args(hint)[1]))
            rows.append((f"`{key}`", _type_name(field), "`{}`", "", note or ""))
            continue
        if note is None:
            raise ValueError(
                f"Configuration key {key} ({schema.__name__}.{field.name}) says nowhere what it "
                "is: add a '#:' comment above its field in bbrl_ppo/config/schema.py"
            )
        allowed = field.metadata.get("allowed", "")
        rows.append((f"`{key}`", _type_name(field), _default(field), allowed, note))
    if rows:
        yield prefix.rstrip("."), rows
    for nested_prefix, nested_schema in nested:
        yield from _sections(nested_schema, nested_prefix)


def _field_comments(schema: type) -> dict[str, str]:
    """The ``#:`` comment lines right above each field, from `schema` and its bases."""
    comments: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        source = textwrap.dedent(inspect.getsource(cls))
        lines = source.splitlines()
        (class_node,) = ast.parse(source).body
        for node in class_node.body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            above = []
            index = node.lineno - 2
            while index >= 0 and lines[index].strip().startswith("#:"):
                above.insert(0, lines[index].strip()[2:].strip())
                index -= 1
            if above:  # a field redeclared without a comment keeps its base's
                comments[node.target.id] = " ".join(above)
    return comments


def _type_name(field: dataclasses.Field) -> str:
    name = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return f"`{name}`"


def _default(field: dataclasses.Field) -> str:
    from omegaconf import MISSING

    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "required"
    if value == MISSING:
        return "required"
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    """`value` as it would be written in a YAML config, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_yaml(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    return str(value)


def _cell(text: str) -> str:
    """`text` made safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def renamed_keys_table() -> str:
    """The keys of earlier versions that a config is refused for, and their new names."""
    from bbrl_ppo.config.schema import RENAMED_KEYS

    table = ["| earlier key | its name now |", "| --- | --- |"]
    table += [f"| `{old}` | `{new}` |" for old, new in RENAMED_KEYS.items()]
    return "\n".join(table)
