"""bbrl_ppo: PPO for BBRL users.

Everything a bbrl notebook imports is available from here: bbrl's own classes
(re-exported, not rewritten) and the helpers bbrl_utils provided.
"""

from bbrl.agents import Agent, Agents, KWAgentWrapper, TemporalAgent
from bbrl.utils.functional import gae
from bbrl.workspace import Workspace

from bbrl_ppo.agents.critics import VAgent
from bbrl_ppo.agents.env import VectorGymAgent, make_env
from bbrl_ppo.agents.networks import build_mlp, build_ortho_mlp, copy_parameters, ortho_init
from bbrl_ppo.agents.policies import (
    DiscretePolicy,
    GaussianPolicy,
    MultiBinaryPolicy,
    MultiDiscretePolicy,
)
from bbrl_ppo.algorithms.advantages import generalized_advantages, transition_mask
from bbrl_ppo.algorithms.base import RLBase
from bbrl_ppo.algorithms.episodic import EpisodicAlgo, iter_episodes, iter_partial_episodes
from bbrl_ppo.algorithms.losses import clipped_surrogate, normalize_advantages
from bbrl_ppo.algorithms.ppo import PPOClip, PPOPenalty
from bbrl_ppo.algorithms.rollout import minibatch_indices
from bbrl_ppo.cli.training import load_config
from bbrl_ppo.config.resolution import register_resolvers
from bbrl_ppo.config.schema import ConfigError, PPOConfig, validate_config
from bbrl_ppo.distributed.context import DistributedContext, join_process_group
from bbrl_ppo.distributed.gradients import GradientAverager
from bbrl_ppo.errors import EnvStepError, NumericalError, UnsupportedSpaceError, UserError
from bbrl_ppo.experiments.seeds import resume_experiment, run_seeds
from bbrl_ppo.optim.setup import setup_optimizer
from bbrl_ppo.persistence.agent_checkpoint import load_agent, read_checkpoint, save_agent
from bbrl_ppo.persistence.registry import register_class
from bbrl_ppo.reporting.logger import Logger
from bbrl_ppo.reporting.notebook import setup_tensorboard

register_resolvers()

#: Names whose modules import matplotlib/scipy (~1.5 s): loaded on first use, so that
#: ``import bbrl_ppo`` and ``bbrl-ppo --help`` stay fast.
_LAZY = {
    "plot_runs": "bbrl_ppo.experiments.plotting",
    "report_runs": "bbrl_ppo.experiments.report",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bbrl_ppo' has no attribute {name!r}")


def _installed_version() -> str:
    """The version written once, in pyproject.toml, as the installed package's metadata has it."""
    import importlib.metadata

    try:
        return importlib.metadata.version("bbrl_ppo")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _installed_version()

__all__ = [
    "plot_runs",
    "report_runs",
    "run_seeds",
    "resume_experiment",
    "Agent",
    "Agents",
    "ConfigError",
    "EnvStepError",
    "NumericalError",
    "DiscretePolicy",
    "DistributedContext",
    "EpisodicAlgo",
    "GaussianPolicy",
    "GradientAverager",
    "KWAgentWrapper",
    "Logger",
    "MultiBinaryPolicy",
    "MultiDiscretePolicy",
    "PPOClip",
    "PPOConfig",
    "PPOPenalty",
    "RLBase",
    "TemporalAgent",
    "UnsupportedSpaceError",
    "UserError",
    "VAgent",
    "VectorGymAgent",
    "Workspace",
    "build_mlp",
    "build_ortho_mlp",
    "clipped_surrogate",
    "copy_parameters",
    "gae",
    "generalized_advantages",
    "iter_episodes",
    "iter_partial_episodes",
    "join_process_group",
    "load_agent",
    "load_config",
    "make_env",
    "minibatch_indices",
    "normalize_advantages",
    "ortho_init",
    "read_checkpoint",
    "register_class",
    "save_agent",
    "setup_optimizer",
    "setup_tensorboard",
    "transition_mask",
    "validate_config",
]
