"""PPO's agents, built from the typed configuration: policy, evaluation policy, critic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
from bbrl.agents import KWAgentWrapper

from bbrl_ppo.agents.critics import VAgent
from bbrl_ppo.agents.env import VectorGymAgent
from bbrl_ppo.agents.observations import observation_encoding
from bbrl_ppo.agents.policies import POLICY_TYPES, GaussianPolicy, StochasticPolicy
from bbrl_ppo.config.schema import AlgorithmConfig, ConfigError

#: The policy that acts in each kind of action space (`bbrl_ppo.agents.spaces.ACTION_SPACES`).
FITTING_POLICY: dict[type[gym.Space], str] = {
    gym.spaces.Discrete: "DiscretePolicy",
    gym.spaces.Box: "GaussianPolicy",
    gym.spaces.MultiDiscrete: "MultiDiscretePolicy",
    gym.spaces.MultiBinary: "MultiBinaryPolicy",
}


def fitting_policy_type(action_space: gym.Space) -> str:
    """The name, in `POLICY_TYPES`, of the policy for `action_space`."""
    for space_class, name in FITTING_POLICY.items():
        if isinstance(action_space, space_class):
            return name
    raise ConfigError(f"No policy acts in the action space {action_space}")


def policy_class(algorithm: AlgorithmConfig, env: VectorGymAgent) -> type[StochasticPolicy]:
    """``algorithm.policy_type``, or the policy that fits the env's action space.

    A policy_type for another kind of space is refused: a Gaussian policy on a
    MultiDiscrete env would send actions the env does not have.
    """
    fitting = fitting_policy_type(env.action_space)
    wanted = algorithm.policy_type or fitting
    if wanted != fitting:
        raise ConfigError(
            f"algorithm.policy_type={wanted!r} does not fit the action space "
            f"{env.action_space} of {env.env_name}: use {fitting!r} (or leave it unset)"
        )
    return POLICY_TYPES[wanted]


def make_policy(algorithm: AlgorithmConfig, env: VectorGymAgent) -> StochasticPolicy:
    """The training policy, writing under ``current_policy/``."""
    cls = policy_class(algorithm, env)
    gaussian_options = (
        {
            "state_dependent_std": algorithm.state_dependent_std,
            "init_log_std": algorithm.init_log_std,
        }
        if cls is GaussianPolicy
        else {}
    )
    return policy_for_env(
        env,
        algorithm.architecture.actor_hidden_size,
        cls,
        activation=algorithm.architecture.activation,
        normalize_observations=algorithm.normalize_observations,
        observation_clip=algorithm.observation_clip,
        **gaussian_options,
    ).with_prefix("current_policy/")


def policy_for_env(
    env: VectorGymAgent,
    hidden_size: Sequence[int],
    cls: type[StochasticPolicy] | None = None,
    **options: Any,
) -> StochasticPolicy:
    """A policy sized for `env`: its observation encoding, the sizes of its spaces.

    `cls` defaults to the policy that fits the action space; `options` go to its
    constructor (``activation``, ``normalize_observations``...).
    """
    cls = cls or POLICY_TYPES[fitting_policy_type(env.action_space)]
    obs_size, action_size = env.get_obs_and_actions_sizes()
    return cls(
        obs_size,
        list(hidden_size),
        action_size,
        observation_encoding=observation_encoding(env.observation_space),
        **options,
    )


def make_eval_policy(policy: StochasticPolicy) -> KWAgentWrapper:
    """The deterministic policy evaluations play: the most likely action, nothing else."""
    return KWAgentWrapper(policy, stochastic=False, predict_proba=False, compute_entropy=False)


def make_critic(algorithm: AlgorithmConfig, env: VectorGymAgent) -> VAgent:
    """The V-critic, writing under ``critic/``."""
    obs_size, _ = env.get_obs_and_actions_sizes()
    return VAgent(
        obs_size,
        list(algorithm.architecture.critic_hidden_size),
        activation=algorithm.architecture.activation,
        normalize_observations=algorithm.normalize_observations,
        observation_clip=algorithm.observation_clip,
        observation_encoding=observation_encoding(env.observation_space),
    ).with_prefix("critic/")
