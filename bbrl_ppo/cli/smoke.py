"""The framework core end to end, with a policy that learns nothing.

Checks an installation in seconds: env agents, step counting, evaluation,
``evals.csv``, ``best_agent.pt`` and the video all work.
"""

from __future__ import annotations

from pathlib import Path

from bbrl.agents import KWAgentWrapper

from bbrl_ppo.algorithms.episodic import EpisodicAlgo
from bbrl_ppo.algorithms.ppo_agents import policy_for_env


class UntrainedPolicyRun(EpisodicAlgo):
    """Collects partial episodes with a freshly initialized policy."""

    def __init__(self, cfg):
        super().__init__(cfg, autoreset=True)
        self.train_policy = policy_for_env(self.train_env, [64, 64])
        self.eval_policy = KWAgentWrapper(self.train_policy, stochastic=False)


def run_smoke(env_name: str = "CartPole-v1", steps: int = 2000) -> Path:
    cfg = {
        "base_dir": f"smoke/{env_name}_${{current_time:}}",
        "gym_env": {"env_name": env_name},
        "algorithm": {
            "seed": 0,
            "n_envs": 4,
            "n_steps": 32,
            "nb_evals": 4,
            "eval_interval": max(1, steps // 4),
            "max_steps": steps,
        },
    }
    algo = UntrainedPolicyRun(cfg)
    try:
        for _ in algo.iter_partial_episodes():
            algo.evaluate()
        algo.evaluate(force=True)
        algo.visualize_best()
    finally:
        algo.close()
    return algo.base_dir
