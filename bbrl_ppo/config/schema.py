"""The typed configuration of PPO runs, checked before anything starts.

YAML -> `validate_config` -> typed dataclass instances (an algorithm's ``config``)
-> constructors. The dataclasses below are the only place a default or a type is
written. An unknown key, a wrong type or an out-of-range value fails with one
`ConfigError` line that names the key and what is allowed (with a close match for
typos); a key of an earlier version names the one that replaced it.

Extending the configuration on purpose (in a notebook, say):

- put free-form keys under ``extra:`` (never checked), e.g. ``extra.my_coef: 0.3``;
- or subclass `PPOConfig` / `AlgorithmConfig` with your own typed fields and pass
  ``validate_config(cfg, schema=MyConfig)`` (or set ``MyAlgo.config_schema``).
"""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from omegaconf import MISSING as REQUIRED
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from bbrl_ppo.agents.env import VECTORIZATIONS
from bbrl_ppo.agents.networks import ACTIVATIONS
from bbrl_ppo.agents.policies import POLICY_TYPES
from bbrl_ppo.config.resolution import register_resolvers
from bbrl_ppo.distributed.devices import DEVICE_CHOICES, DEVICE_PATTERN
from bbrl_ppo.errors import InvalidInputError
from bbrl_ppo.persistence.registry import (
    UnknownClassError,
    accepted_arguments,
    resolve_logger,
    resolve_optimizer,
    unexpected_arguments,
)


class ConfigError(InvalidInputError):
    """A configuration problem, described in one line."""


def _check(predicate: Callable[[Any], bool], allowed: str) -> dict[str, Any]:
    return {"check": predicate, "allowed": allowed}


def positive() -> dict[str, Any]:
    return _check(lambda v: v > 0, "a number > 0")


def at_least(minimum: int) -> dict[str, Any]:
    return _check(lambda v: v >= minimum, f"an integer >= {minimum}")


def one_of(*choices: str) -> dict[str, Any]:
    return _check(lambda v: v in choices, f"one of {', '.join(choices)}")


def _optional(spec: dict[str, Any]) -> dict[str, Any]:
    return _check(lambda v: v is None or spec["check"](v), f"null or {spec['allowed']}")


@dataclass
class GymEnvConfig:
    #: A gymnasium id, or "my_module:MyEnv-v0" for a user's env.
    env_name: str = REQUIRED
    #: Keyword arguments of gymnasium.make.
    env_args: dict[str, Any] = field(default_factory=dict)
    #: "sync" (one process), "async" (one subprocess per env) or "vector" (the env's own
    #: numpy implementation, for ids registered with a vector entry point: CartPole).
    vectorization: str = field(default="sync", metadata=one_of(*VECTORIZATIONS))


@dataclass
class EpisodicAlgorithmConfig:
    """What `EpisodicAlgo` reads. Required here (bbrl_utils notebooks give them all);
    `AlgorithmConfig` gives PPO's defaults."""

    seed: int = REQUIRED
    #: Envs stepped side by side, over all processes of a distributed run (each steps
    #: n_envs / processes of them).
    n_envs: int = field(default=REQUIRED, metadata=at_least(1))
    #: Budget in env steps and/or rollouts; at least one must be set.
    max_steps: int | None = field(default=None, metadata=_optional(at_least(1)))
    max_rollouts: int | None = field(default=None, metadata=_optional(at_least(1)))
    #: Write checkpoints/last.pt every checkpoint_interval env steps (null: only at the
    #: end and on SIGINT/SIGTERM); `bbrl-ppo train --resume RUN_DIR` continues from it.
    checkpoint_interval: int | None = field(default=20_000, metadata=_optional(at_least(1)))
    #: Evaluate every eval_interval env steps, over nb_evals episodes.
    eval_interval: int = field(default=REQUIRED, metadata=at_least(1))
    nb_evals: int = field(default=REQUIRED, metadata=at_least(1))
    #: Where the agents and the update run: cpu, cuda (each process of a distributed run
    #: takes its machine's GPU of its local rank), cuda:N, or auto (cuda when one is
    #: visible). The envs step on the CPU either way. May change when resuming.
    device: str = field(
        default="cpu",
        metadata=_check(
            lambda v: isinstance(v, str) and bool(DEVICE_PATTERN.fullmatch(v)), DEVICE_CHOICES
        ),
    )


_WIDTHS = _check(
    lambda v: all(width >= 1 for width in v), "a list of hidden-layer widths, each >= 1"
)


@dataclass
class ArchitectureConfig:
    actor_hidden_size: list[int] = field(default_factory=lambda: [64, 64], metadata=_WIDTHS)
    critic_hidden_size: list[int] = field(default_factory=lambda: [64, 64], metadata=_WIDTHS)
    activation: str = field(default="tanh", metadata=one_of(*ACTIVATIONS))


@dataclass
class KLPenaltyConfig:
    """ppo_kl's adaptive penalty (Schulman et al. 2017, section 4)."""

    #: d_targ: the KL the coefficient is adapted towards (E[KL(old || new)] over the
    #: rollout, measured after each update).
    target: float = field(default=0.01, metadata=positive())
    #: beta before the first update.
    initial_coef: float = field(default=1.0, metadata=positive())


@dataclass
class AlgorithmConfig(EpisodicAlgorithmConfig):
    #: ppo_clip (clipped surrogate) or ppo_kl (adaptive KL penalty).
    variant: str = "ppo_clip"
    seed: int = 1
    n_envs: int = field(default=8, metadata=at_least(1))
    #: New transitions per env per rollout; the workspace holds one step more (the
    #: previous rollout's last, from which the first new transition starts).
    transitions_per_env: int = field(default=32, metadata=at_least(1))
    eval_interval: int = field(default=2048, metadata=at_least(1))
    nb_evals: int = field(default=10, metadata=at_least(1))
    #: Stop once an evaluation mean reaches this (the best agent is saved).
    stop_at_reward: float | None = None
    discount_factor: float = field(
        default=0.99, metadata=_check(lambda v: 0 < v <= 1, "a number in (0, 1]")
    )
    gae_lambda: float = field(
        default=0.95, metadata=_check(lambda v: 0 <= v <= 1, "a number in [0, 1]")
    )
    #: Passes over each rollout (each visits every transition once).
    opt_epochs: int = field(default=10, metadata=at_least(1))
    #: Minibatch size (at most n_envs * transitions_per_env); the remainder of a pass joins
    #: its last minibatch. Over all processes of a distributed run (each takes
    #: batch_size / processes of each minibatch).
    batch_size: int = field(default=64, metadata=at_least(1))
    clip_range: float = field(default=0.2, metadata=positive())
    #: Clip the critic's move around its old values (null: no clipping).
    clip_range_vf: float | None = field(default=None, metadata=_optional(positive()))
    anneal_lr: bool = False
    anneal_clip_range: bool = False
    normalize_advantage: bool = True
    entropy_coef: float = field(default=0.0, metadata=_check(lambda v: v >= 0, "a number >= 0"))
    policy_coef: float = field(default=1.0, metadata=positive())
    critic_coef: float = field(default=0.5, metadata=positive())
    max_grad_norm: float = field(default=0.5, metadata=positive())
    #: Early stop: end the update when a minibatch's approx. KL exceeds 1.5 * target_kl.
    target_kl: float | None = field(default=None, metadata=_optional(positive()))
    kl_penalty: KLPenaltyConfig = field(default_factory=KLPenaltyConfig)
    #: DiscretePolicy or GaussianPolicy (null: chosen from the action space).
    policy_type: str | None = field(default=None, metadata=_optional(one_of(*POLICY_TYPES)))
    #: Each agent's parameters and gradients in one buffer: one gradient clipping and
    #: one optimizer step over one tensor (element-wise optimizers only; same updates).
    flat_parameters: bool = True
    #: With flat parameters, policy and critic MLPs whose hidden layers have the same
    #: shapes and activation run as one stacked network in the update (fewer, larger
    #: operations; the same values up to float rounding). False: one pass per agent.
    batched_actor_critic: bool = True
    normalize_observations: bool = False
    normalize_rewards: bool = False
    observation_clip: float = field(default=10.0, metadata=positive())
    state_dependent_std: bool = False
    init_log_std: float = 0.0
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)


def default_optimizer() -> dict[str, Any]:
    """Adam, the learning rate, and Adam's epsilon at 1e-5 (the PPO implementations' value;
    torch's is 1e-8).

    Every other key of the section is a keyword argument of the optimizer
    (``betas``, ``momentum``, ``fused``...); null keeps the optimizer's own
    default, and an argument the optimizer does not take is refused. Unless
    ``fused`` or ``foreach`` is set, an optimizer with a fused implementation
    (Adam, AdamW, SGD) uses it.
    """
    return {"classname": "torch.optim.Adam", "lr": 3e-4, "eps": 1e-5}


def default_logger() -> dict[str, Any]:
    """bbrl's tensorboard writer and its keyword arguments, as `Logger` gets them."""
    return {
        "classname": "bbrl.utils.logger.TFLogger",
        "cache_size": 10000,
        "every_n_seconds": 10,
        "verbose": False,
    }


@dataclass
class RunConfig:
    """What `RLBase` and `EpisodicAlgo` read: the run directory, logging, envs, budget."""

    base_dir: str = REQUIRED
    save_best: bool = True
    progress_bar: bool = True
    collect_stats: bool = False
    #: The writer (classname) and its keyword arguments.
    logger: dict[str, Any] = field(default_factory=default_logger)
    gym_env: GymEnvConfig = field(default_factory=GymEnvConfig)
    algorithm: EpisodicAlgorithmConfig = field(default_factory=EpisodicAlgorithmConfig)


#: How a searched key's values are drawn: uniform, log-uniform, integers, or a list.
DISTRIBUTIONS = ("float", "log_float", "int", "categorical")


@dataclass
class ParameterSpace:
    """The values ``bbrl-ppo tune`` may give one config key.

    ``float``, ``log_float`` (uniform in log space: learning rates) and ``int`` draw from
    [low, high], every ``step`` when set; ``categorical`` picks one of ``choices``.
    """

    distribution: str = field(default=REQUIRED, metadata=one_of(*DISTRIBUTIONS))
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: list[Any] | None = None


@dataclass
class TuneConfig:
    """``bbrl-ppo tune``'s search; training ignores it, so a tuned config still trains."""

    #: Config key (e.g. ``optimizer.lr``) -> the values to try. Empty: nothing to tune.
    parameters: dict[str, ParameterSpace] = field(default_factory=dict)
    #: A run's score: its last evaluation mean (final) or its highest (best).
    metric: str = field(default="final", metadata=one_of("final", "best"))
    direction: str = field(default="maximize", metadata=one_of("maximize", "minimize"))
    #: Runs per trial, seeds 1..seeds; a trial's score is their mean.
    seeds: int = field(default=1, metadata=at_least(1))
    #: Stop a trial whose mean curve is below the median of earlier trials' at that step.
    pruning: bool = True
    #: No pruning before this many env steps (early curves say little).
    min_steps_before_pruning: int = field(default=0, metadata=at_least(0))
    #: Trials drawn at random before TPE models the results (and before any pruning).
    startup_trials: int = field(default=5, metadata=at_least(0))
    #: Seed of the sampler: with one trial at a time, a study draws the same trials.
    sampler_seed: int = 0


@dataclass
class PPOConfig(RunConfig):
    """A PPO run's whole configuration: the run's keys, ``algorithm`` and ``optimizer``.

    Every key's type and default is written here once; a YAML config is checked against
    it (`bbrl_ppo.config.resolution`), so that a typo is an error, not a silent default.
    """

    base_dir: str = "${gym_env.env_name}/${algorithm.variant}-S${algorithm.seed}_${current_time:}"
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    #: The optimizer (classname) and its keyword arguments: see `default_optimizer`.
    optimizer: dict[str, Any] = field(default_factory=default_optimizer)
    #: Free-form keys for users' own extensions; never checked.
    extra: dict[str, Any] = field(default_factory=dict)
    #: The search space of ``bbrl-ppo tune`` (ignored by training).
    tune: TuneConfig = field(default_factory=TuneConfig)


#: Keys of earlier versions, each refused with the name that replaced it.
RENAMED_KEYS = {
    "algorithm.n_steps": "algorithm.transitions_per_env",
    "algorithm.gae": "algorithm.gae_lambda",
    "algorithm.max_epochs": "algorithm.max_rollouts",
    "algorithm.kl_target": "algorithm.kl_penalty.target",
    "algorithm.kl_coef": "algorithm.kl_penalty.initial_coef",
}
#: bbrl_utils' spellings that notebooks written for it use with `EpisodicAlgo`.
NOTEBOOK_ALIASES = {"algorithm.max_epochs": "algorithm.max_rollouts"}


def validate_config(cfg: Any, schema: type = PPOConfig) -> DictConfig:
    """Merge `cfg` into `schema`'s defaults and check every value; raise `ConfigError`.

    Every key must be one of the schema's: a typo fails with the closest match.
    """
    register_resolvers()
    cfg = cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)
    _refuse_renamed_keys(cfg)
    return _merge_and_check(cfg, schema)


def typed_config(cfg: DictConfig, schema: type, *, strict: bool) -> Any:
    """The configuration as `schema`'s dataclass instances: typed, defaults filled.

    `cfg` must be resolved already (``${current_time:}`` gives a new value at each
    resolution). Not `strict` (bbrl_utils notebooks' configs, which carry their own
    keys beside ours): only the schema's keys are read, the others are left to the
    notebook, and bbrl_utils' spellings (``max_epochs``) are understood.
    """
    if strict:
        merged = validate_config(cfg, schema)
    else:
        known = _known_part(_with_notebook_aliases(cfg), schema)
        merged = _merge_and_check(OmegaConf.create(known), schema)
    return OmegaConf.to_object(merged)


def _merge_and_check(cfg: DictConfig, schema: type) -> DictConfig:
    _check_parameter_spaces_keys(cfg, schema)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
    except ConfigKeyError as error:
        raise ConfigError(_unknown_key_message(error, schema)) from None
    except OmegaConfBaseException as error:
        raise ConfigError(_type_message(error)) from None
    _check_values(merged, schema, prefix="")
    _check_consistency(merged)
    _check_search_space(merged, schema)
    return merged


def _refuse_renamed_keys(cfg: DictConfig) -> None:
    for old, new in RENAMED_KEYS.items():
        if OmegaConf.select(cfg, old, default=_ABSENT) is not _ABSENT:
            raise ConfigError(f"'{old}' was renamed '{new}': set {new} instead")


def _with_notebook_aliases(cfg: DictConfig) -> DictConfig:
    aliased = None
    for old, new in NOTEBOOK_ALIASES.items():
        value = OmegaConf.select(cfg, old, default=_ABSENT)
        if value is _ABSENT or OmegaConf.select(cfg, new, default=_ABSENT) is not _ABSENT:
            continue
        aliased = aliased if aliased is not None else copy.deepcopy(cfg)
        OmegaConf.update(aliased, new, value, force_add=True)
    return aliased if aliased is not None else cfg


def _known_part(node: DictConfig, schema: type) -> dict[str, Any]:
    """The values of `node` under `schema`'s field names, recursively."""
    known: dict[str, Any] = {}
    for item in fields(schema):
        if item.name not in node:
            continue
        value = node[item.name]
        nested = _field_type(schema, item.name)
        if nested is not None and isinstance(value, DictConfig):
            value = _known_part(value, nested)
        known[item.name] = value
    return known


_ABSENT = object()


def _unknown_key_message(error: ConfigKeyError, schema: type) -> str:
    full_key = error.full_key or str(error.key)
    *parents, key = full_key.split(".")
    node: Any = schema
    for parent in parents:
        node = _field_type(node, parent)
    known = [f.name for f in fields(node)] if is_dataclass(node) else []
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean '{'.'.join([*parents, close[0]])}'?" if close else ""
    where = ".".join(parents) or "the top level"
    return f"Unknown configuration key '{full_key}'{hint} (keys allowed in {where}: " + (
        ", ".join(known) + ")"
    )


def _type_message(error: OmegaConfBaseException) -> str:
    first_line = str(error).splitlines()[0]
    key = getattr(error, "full_key", None)
    return (
        f"Invalid value for '{key}': {first_line}"
        if key
        else f"Invalid configuration: {first_line}"
    )


def _field_type(schema: type, name: str) -> Any:
    for item in fields(schema):
        if item.name == name:
            if item.default_factory is not MISSING:
                default = item.default_factory()
                return type(default) if is_dataclass(default) else None
            return None
    return None


def _check_values(node: DictConfig, schema: type, prefix: str) -> None:
    for item in fields(schema):
        key = f"{prefix}{item.name}"
        if OmegaConf.is_missing(node, item.name):
            raise ConfigError(f"Missing value for '{key}'")
        nested = _field_type(schema, item.name)
        if nested is not None:
            _check_values(node[item.name], nested, prefix=f"{key}.")
            continue
        spec = item.metadata
        if "check" not in spec:
            continue
        try:
            value = node[item.name]
        except OmegaConfBaseException as error:
            raise ConfigError(f"Invalid value for '{key}': {str(error).splitlines()[0]}") from None
        is_nan = isinstance(value, float) and math.isnan(value)
        if is_nan or not spec["check"](value):
            raise ConfigError(f"Invalid value for '{key}': {value!r}; allowed: {spec['allowed']}")


def _check_classnames(cfg: DictConfig) -> None:
    """Optimizer and logger must be allowed classes (see `bbrl_ppo.persistence.registry`)."""
    try:
        if cfg.logger.get("classname") is not None:
            resolve_logger(str(cfg.logger.classname))
        if "optimizer" in cfg:
            _check_optimizer(cfg.optimizer)
    except UnknownClassError as error:
        raise ConfigError(str(error)) from None


#: Optimizer arguments whose range we know: (check, what is allowed).
_OPTIMIZER_RANGES = {
    "lr": _check(lambda v: isinstance(v, int | float) and v > 0, "a number > 0"),
    "eps": _check(lambda v: isinstance(v, int | float) and v > 0, "a number > 0"),
    "weight_decay": _check(lambda v: isinstance(v, int | float) and v >= 0, "a number >= 0"),
}


def _check_optimizer(section: DictConfig) -> None:
    optimizer = resolve_optimizer(str(section.get("classname")))
    if section.get("lr") is None:
        raise ConfigError("Missing value for 'optimizer.lr'")
    arguments = {k: v for k, v in section.items() if k != "classname" and v is not None}
    for key, value in arguments.items():
        spec = _OPTIMIZER_RANGES.get(key)
        if spec is not None and not spec["check"](value):
            raise ConfigError(
                f"Invalid value for 'optimizer.{key}': {value!r}; allowed: {spec['allowed']}"
            )
    unexpected = unexpected_arguments(optimizer, arguments)
    if unexpected:
        accepted = ", ".join(accepted_arguments(optimizer))
        raise ConfigError(
            f"Invalid value for 'optimizer.{unexpected[0]}': {optimizer.__name__} takes no "
            f"{unexpected[0]!r}; set it to null or remove it ({optimizer.__name__} accepts: "
            f"{accepted})"
        )


def _check_consistency(cfg: DictConfig) -> None:
    _check_classnames(cfg)
    algorithm = cfg.algorithm
    if algorithm.max_steps is None and algorithm.max_rollouts is None:
        raise ConfigError(
            "No budget: set 'algorithm.max_steps' (env steps) and/or 'algorithm.max_rollouts'"
        )
    if "variant" in algorithm:
        from bbrl_ppo.algorithms.ppo import ALGORITHMS  # the one list of variants

        if algorithm.variant not in ALGORITHMS:
            raise ConfigError(
                f"Invalid value for 'algorithm.variant': {algorithm.variant!r}; allowed: one of "
                f"{', '.join(ALGORITHMS)}"
            )
    if "batch_size" in algorithm:
        rollout = algorithm.n_envs * algorithm.transitions_per_env
        if algorithm.batch_size > rollout:
            raise ConfigError(
                f"Invalid value for 'algorithm.batch_size': {algorithm.batch_size} is larger "
                f"than a rollout (n_envs * transitions_per_env = {rollout}); allowed: an "
                f"integer in [1, {rollout}]"
            )


# -- the search space of ``bbrl-ppo tune`` ---------------------------------------------

#: Keys ``bbrl-ppo tune`` sets for each run itself.
TUNER_KEYS = ("algorithm.seed", "base_dir", "progress_bar")

_SCALAR_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "None": lambda v: v is None,
}


def _searches(schema: type) -> bool:
    nested = _field_type(schema, "tune")
    return nested is not None and issubclass(nested, TuneConfig)


def _space_error(key: str, reason: str) -> ConfigError:
    return ConfigError(f"Invalid search space for '{key}' (tune.parameters): {reason}")


def _check_parameter_spaces_keys(cfg: DictConfig, schema: type) -> None:
    """Refuse a malformed entry of ``tune.parameters`` before the merge does.

    Why before: the entries' names hold dots (``algorithm.clip_range``), so the merge's
    unknown-key message could not tell the config key from a field of its space.
    """
    if not _searches(schema):
        return
    tune = cfg.get("tune")
    parameters = tune.get("parameters") if isinstance(tune, DictConfig) else None
    if not isinstance(parameters, DictConfig):
        return  # absent, or a wrong type the merge reports
    allowed = [item.name for item in fields(ParameterSpace)]
    for key in parameters:
        space = parameters[key]
        if not isinstance(space, DictConfig):
            raise _space_error(
                key, f"{space!r} is not a mapping like {{distribution: float, low: 0.1, high: 0.3}}"
            )
        for name in space:
            if name not in allowed:
                close = difflib.get_close_matches(str(name), allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise _space_error(
                    key, f"unknown field '{name}'{hint} (allowed: {', '.join(allowed)})"
                )


def _check_search_space(cfg: DictConfig, schema: type) -> None:
    """Each searched key must exist, and each end or choice of its space must fit it.

    The ends are checked one key at a time: a rule between keys (batch_size against
    n_envs * transitions_per_env) is left to each trial, whose other values are known.
    """
    if not _searches(schema):
        return
    for key, space in cfg.tune.parameters.items():
        _check_target(cfg, schema, key, _space_values(key, space))


def _space_values(key: str, space: DictConfig) -> list[Any]:
    """The values that bound `space` (its two ends, or every choice), once its shape is right."""
    if OmegaConf.is_missing(space, "distribution"):
        raise _space_error(key, f"missing distribution (one of {', '.join(DISTRIBUTIONS)})")
    kind = space.distribution
    if kind not in DISTRIBUTIONS:
        allowed = ", ".join(DISTRIBUTIONS)
        raise _space_error(key, f"distribution {kind!r}; allowed: one of {allowed}")
    if kind == "categorical":
        return _categorical_values(key, space)
    if space.choices is not None:
        raise _space_error(key, f"{kind} takes low and high, not choices")
    low, high, step = space.low, space.high, space.step
    if low is None or high is None:
        raise _space_error(key, f"{kind} needs low and high")
    if not low < high:
        raise _space_error(key, f"low ({low:g}) must be < high ({high:g})")
    if kind == "log_float" and low <= 0:
        raise _space_error(key, f"log_float needs low > 0, got {low:g}")
    if kind == "log_float" and step is not None:
        raise _space_error(key, "log_float takes no step")
    if step is not None and not 0 < step <= high - low:
        raise _space_error(key, f"step ({step:g}) must be in (0, high - low]")
    if kind == "int":
        if not all(float(value).is_integer() for value in (low, high, step or 1)):
            raise _space_error(key, "int needs whole numbers for low, high and step")
        return [int(low), int(high)]
    return [float(low), float(high)]


def _categorical_values(key: str, space: DictConfig) -> list[Any]:
    given = [name for name in ("low", "high", "step") if space[name] is not None]
    if given:
        raise _space_error(key, f"categorical takes choices, not {given[0]}")
    choices = list(space.choices or [])
    if not choices:
        raise _space_error(key, "categorical needs a non-empty list of choices")
    for choice in choices:
        if not (choice is None or isinstance(choice, bool | int | float | str)):
            raise _space_error(
                key, f"choice {choice!r} is not a single value (null, boolean, number or string)"
            )
    return choices


def _check_target(cfg: DictConfig, schema: type, key: str, values: list[Any]) -> None:
    if key in TUNER_KEYS or key.startswith("tune."):
        raise _space_error(key, "bbrl-ppo tune sets this key itself for each run")
    current = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_resolution_failure=False)
    if current is _ABSENT and not _is_optimizer_argument(cfg, key):
        candidates = [*_leaf_keys(OmegaConf.to_container(cfg, resolve=False))]
        candidates += [f"optimizer.{name}" for name in _optimizer_arguments(cfg)]
        close = difflib.get_close_matches(key, candidates, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"Unknown configuration key '{key}' in tune.parameters{hint}")
    if isinstance(current, DictConfig | ListConfig):
        raise _space_error(key, "a section or a list cannot be searched, only a single value")
    item = _schema_field(schema, key)
    kinds = _annotation_kinds(item.type) if item is not None else None
    spec: dict[str, Any] = item.metadata if item is not None else {}
    if item is None and key.startswith("optimizer."):
        spec = _OPTIMIZER_RANGES.get(key.partition(".")[2], {})
    for value in values:
        if kinds is not None and not any(_SCALAR_CHECKS[kind](value) for kind in kinds):
            raise _space_error(key, f"{value!r} does not fit the key's type ({item.type})")
        if "check" in spec and not _allowed(spec, value):
            raise _space_error(key, f"{value!r} is not allowed here; allowed: {spec['allowed']}")


def _allowed(spec: dict[str, Any], value: Any) -> bool:
    try:
        return bool(spec["check"](value))
    except TypeError:  # a check on numbers given a string, say
        return False


def _schema_field(schema: type, key: str) -> Any:
    """The dataclass field `key` names, or None when it lies in a free-form mapping."""
    node: Any = schema
    *parents, name = key.split(".")
    for parent in parents:
        node = _field_type(node, parent)
        if node is None:
            return None
    return next((item for item in fields(node) if item.name == name), None)


def _annotation_kinds(annotation: Any) -> list[str] | None:
    """The scalar types a field's annotation allows (``int | None``), or None if not plain."""
    text = annotation if isinstance(annotation, str) else str(getattr(annotation, "__name__", ""))
    kinds = [part.strip() for part in (text or str(annotation)).split("|")]
    return kinds if all(kind in _SCALAR_CHECKS for kind in kinds) else None


def _optimizer_arguments(cfg: DictConfig) -> list[str]:
    if "optimizer" not in cfg:
        return []
    try:
        return accepted_arguments(resolve_optimizer(str(cfg.optimizer.get("classname"))))
    except UnknownClassError:
        return []


def _is_optimizer_argument(cfg: DictConfig, key: str) -> bool:
    """An argument of the configured optimizer that the config leaves at its default."""
    section, _, name = key.partition(".")
    return section == "optimizer" and name in _optimizer_arguments(cfg)


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix[:-1]]
    keys: list[str] = []
    for name, value in node.items():
        key = f"{prefix}{name}"
        if key != "tune" and key not in TUNER_KEYS:
            keys += _leaf_keys(value, f"{key}.")
    return keys
