"""PPO's agents, built from the typed configuration: policy, evaluation policy, critic."""

from __future__ import annotations

from bbrl.agents import KWAgentWrapper

from bbrl_ppo.agents.critics import VAgent
from bbrl_ppo.agents.env import VectorGymAgent
from bbrl_ppo.agents.policies import POLICY_TYPES, GaussianPolicy, StochasticPolicy
from bbrl_ppo.config.schema import AlgorithmConfig, ConfigError


def policy_class(algorithm: AlgorithmConfig, env: VectorGymAgent) -> type[StochasticPolicy]:
    """``algorithm.policy_type``, or the policy that fits the env's action space."""
    fitting = "DiscretePolicy" if env.is_discrete_action() else "GaussianPolicy"
    wanted = algorithm.policy_type or fitting
    if wanted != fitting:
        raise ConfigError(
            f"algorithm.policy_type={wanted!r} does not fit the action space "
            f"{env.action_space}: use {fitting!r}"
        )
    return POLICY_TYPES[wanted]


def make_policy(algorithm: AlgorithmConfig, env: VectorGymAgent) -> StochasticPolicy:
    """The training policy, writing under ``current_policy/``."""
    obs_size, action_size = env.get_obs_and_actions_sizes()
    cls = policy_class(algorithm, env)
    gaussian_options = (
        {
            "state_dependent_std": algorithm.state_dependent_std,
            "init_log_std": algorithm.init_log_std,
        }
        if cls is GaussianPolicy
        else {}
    )
    return cls(
        obs_size,
        list(algorithm.architecture.actor_hidden_size),
        action_size,
        activation=algorithm.architecture.activation,
        normalize_observations=algorithm.normalize_observations,
        observation_clip=algorithm.observation_clip,
        **gaussian_options,
    ).with_prefix("current_policy/")


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
    ).with_prefix("critic/")
