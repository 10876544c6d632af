"""The reference notebook's PPO-clip cells, as a script (compatibility fixture).

Source: the BBRL PPO-clip notebook (``shared/seeds/000_1acd1ce968a9e72c.txt``,
Copyright (c) Sorbonne University, MIT license). Its cells are kept as they are so
that this file proves a notebook written against bbrl_utils runs on bbrl_ppo
with only its imports changed. Two changes, both marked:

- the imports (the notebook's setup cell installed bbrl_utils with easypip);
- the cell the notebook leaves unwritten (the clipped policy loss) is filled in.

`make_params(seed, max_epochs)` and `main()` wrap the notebook's last cells so
a test can pick the seed and the budget.
"""

# -- changed: the imports ------------------------------------------------------------
import copy

import torch
import torch.nn as nn
from omegaconf import OmegaConf

from bbrl_ppo import (
    Agent,
    EpisodicAlgo,
    KWAgentWrapper,
    TemporalAgent,
    build_ortho_mlp,
    copy_parameters,
    gae,
    iter_partial_episodes,
    setup_optimizer,
    setup_tensorboard,
)

# -- unchanged notebook cells --------------------------------------------------------


class VAgent(Agent):
    def __init__(self, state_dim, hidden_layers, name="critic"):
        super().__init__(name)
        self.is_q_function = False
        self.model = build_ortho_mlp([state_dim] + list(hidden_layers) + [1], activation=nn.ReLU())

    def forward(self, t, **kwargs):
        observation = self.get(("env/env_obs", t))
        critic = self.model(observation).squeeze(-1)
        self.set((f"{self.prefix}v_values", t), critic)


class DiscretePolicy(Agent):
    def __init__(self, state_dim, hidden_size, n_actions, name="policy"):
        super().__init__(name=name)
        self.model = build_ortho_mlp(
            [state_dim] + list(hidden_size) + [n_actions], activation=nn.ReLU()
        )

    def dist(self, obs):
        scores = self.model(obs)
        probs = torch.softmax(scores, dim=-1)
        return torch.distributions.Categorical(probs)

    def forward(
        self,
        t,
        *,
        stochastic=True,
        predict_proba=False,
        compute_entropy=False,
        **kwargs,
    ):
        """
        Compute the action given either a time step (looking into the workspace)
        or an observation (in kwargs)
        """
        observation = self.get(("env/env_obs", t))
        scores = self.model(observation)
        probs = torch.softmax(scores, dim=-1)

        if predict_proba:
            action = self.get(("action", t))
            log_probs = probs[torch.arange(probs.size()[0]), action].log()
            self.set((f"{self.prefix}logprob_predict", t), log_probs)
        else:
            if stochastic:
                action = torch.distributions.Categorical(probs).sample()
            else:
                action = scores.argmax(1)
            self.set(("action", t), action)

        if compute_entropy:
            entropy = torch.distributions.Categorical(probs).entropy()
            self.set((f"{self.prefix}entropy", t), entropy)


class PPOClip(EpisodicAlgo):
    def __init__(self, cfg):
        super().__init__(cfg, autoreset=True)
        obs_size, act_size = self.train_env.get_obs_and_actions_sizes()

        self.train_policy = globals()[cfg.algorithm.policy_type](
            obs_size,
            cfg.algorithm.architecture.actor_hidden_size,
            act_size,
        ).with_prefix("current_policy/")

        self.eval_policy = KWAgentWrapper(
            self.train_policy,
            stochastic=False,
            predict_proba=False,
            compute_entropy=False,
        )

        self.critic_agent = VAgent(
            obs_size, cfg.algorithm.architecture.critic_hidden_size
        ).with_prefix("critic/")
        self.old_critic_agent = copy.deepcopy(self.critic_agent).with_prefix("old_critic/")

        self.old_policy = copy.deepcopy(self.train_policy)
        self.old_policy.with_prefix("old_policy/")

        self.policy_optimizer = setup_optimizer(cfg.optimizer, self.train_policy)
        self.critic_optimizer = setup_optimizer(cfg.optimizer, self.critic_agent)


def run(ppo_clip: PPOClip):
    cfg = ppo_clip.cfg

    t_policy = TemporalAgent(ppo_clip.train_policy)  # noqa: F841 (unused in the notebook too)
    t_old_policy = TemporalAgent(ppo_clip.old_policy)
    t_critic = TemporalAgent(ppo_clip.critic_agent)
    t_old_critic = TemporalAgent(ppo_clip.old_critic_agent)

    for train_workspace in iter_partial_episodes(ppo_clip, cfg.algorithm.n_steps):
        with torch.no_grad():
            t_old_policy(
                train_workspace,
                t=0,
                n_steps=cfg.algorithm.n_steps,
                predict_proba=True,
                compute_entropy=False,
            )

        t_critic(train_workspace, t=0, n_steps=cfg.algorithm.n_steps)
        with torch.no_grad():
            t_old_critic(train_workspace, t=0, n_steps=cfg.algorithm.n_steps)

        ws_terminated, ws_reward, ws_v_value, ws_old_v_value = train_workspace[
            "env/terminated",
            "env/reward",
            "critic/v_values",
            "old_critic/v_values",
        ]

        if cfg.algorithm.clip_range_vf > 0:
            ws_v_value = ws_old_v_value + torch.clamp(
                ws_v_value - ws_old_v_value,
                -cfg.algorithm.clip_range_vf,
                cfg.algorithm.clip_range_vf,
            )

        with torch.no_grad():
            advantage = gae(
                ws_reward[1:],
                ws_v_value[1:],
                ~ws_terminated[1:],
                ws_v_value[:-1],
                cfg.algorithm.discount_factor,
                cfg.algorithm.gae,
            )

        ppo_clip.critic_optimizer.zero_grad()
        target = ws_reward[1:] + cfg.algorithm.discount_factor * ws_old_v_value[1:].detach() * (
            1 - ws_terminated[1:].int()
        )
        critic_loss = (
            torch.nn.functional.mse_loss(ws_v_value[:-1], target) * cfg.algorithm.critic_coef
        )
        critic_loss.backward()
        torch.nn.utils.clip_grad_norm_(
            ppo_clip.critic_agent.parameters(), cfg.algorithm.max_grad_norm
        )
        ppo_clip.critic_optimizer.step()

        if cfg.algorithm.normalize_advantage and advantage.shape[1] > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        train_workspace.set_full(
            "advantage", torch.cat((advantage, torch.zeros(1, advantage.shape[1])))
        )
        transition_workspace = train_workspace.get_transitions()

        for opt_epoch in range(cfg.algorithm.opt_epochs):  # noqa: B007
            if cfg.algorithm.batch_size > 0:
                sample_workspace = transition_workspace.select_batch_n(cfg.algorithm.batch_size)
            else:
                sample_workspace = transition_workspace

            # -- changed: the cell the notebook leaves for the reader -------------------
            ppo_clip.train_policy(sample_workspace, t=0, predict_proba=True, compute_entropy=True)
            action_logp, old_action_logp, policy_advantage, entropy = sample_workspace[
                "current_policy/logprob_predict",
                "old_policy/logprob_predict",
                "advantage",
                "current_policy/entropy",
            ]
            ratio = (action_logp[0] - old_action_logp[0].detach()).exp()
            clipped_ratio = torch.clamp(
                ratio, 1 - cfg.algorithm.clip_range, 1 + cfg.algorithm.clip_range
            )
            policy_loss = torch.min(
                ratio * policy_advantage[0], clipped_ratio * policy_advantage[0]
            ).mean()
            # -- end of the filled-in cell ----------------------------------------------

            loss_policy = -cfg.algorithm.policy_coef * policy_loss

            assert len(entropy) == 1, f"{entropy.shape}"
            entropy_loss = entropy[0].mean()
            loss_entropy = -cfg.algorithm.entropy_coef * entropy_loss

            ppo_clip.logger.log_losses(critic_loss, entropy_loss, policy_loss, ppo_clip.nb_steps)
            ppo_clip.logger.add_log("advantage", policy_advantage[0].mean(), ppo_clip.nb_steps)

            loss = loss_policy + loss_entropy

            ppo_clip.policy_optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(
                ppo_clip.train_policy.parameters(), cfg.algorithm.max_grad_norm
            )
            ppo_clip.policy_optimizer.step()

        copy_parameters(ppo_clip.train_policy, ppo_clip.old_policy)
        copy_parameters(ppo_clip.critic_agent, ppo_clip.old_critic_agent)

        ppo_clip.evaluate()


def make_params(seed: int = 12, max_epochs: int = 5_000) -> dict:
    return {
        "base_dir": "${gym_env.env_name}/ppo-clip-S${algorithm.seed}_${current_time:}",
        "save_best": False,
        "logger": {
            "classname": "bbrl.utils.logger.TFLogger",
            "cache_size": 10000,
            "every_n_seconds": 10,
            "verbose": False,
        },
        "algorithm": {
            "seed": seed,
            "max_grad_norm": 0.5,
            "n_envs": 8,
            "n_steps": 32,
            "eval_interval": 1000,
            "nb_evals": 10,
            "gae": 0.8,
            "discount_factor": 0.98,
            "normalize_advantage": False,
            "max_epochs": max_epochs,
            "opt_epochs": 10,
            "batch_size": 256,
            "clip_range": 0.2,
            "clip_range_vf": 0,
            "entropy_coef": 2e-7,
            "policy_coef": 1,
            "critic_coef": 1.0,
            "policy_type": "DiscretePolicy",
            "architecture": {
                "actor_hidden_size": [64, 64],
                "critic_hidden_size": [64, 64],
            },
        },
        "gym_env": {
            "env_name": "CartPole-v1",
        },
        "optimizer": {
            "classname": "torch.optim.AdamW",
            "lr": 1e-3,
            "eps": 1e-5,
        },
    }


def main(seed: int = 12, max_epochs: int = 5_000) -> PPOClip:
    setup_tensorboard("./outputs")
    ppo_clip = PPOClip(OmegaConf.create(make_params(seed, max_epochs)))
    run(ppo_clip)
    return ppo_clip


if __name__ == "__main__":
    import sys

    algo = main(*(int(arg) for arg in sys.argv[1:]))
    print(f"best eval reward {algo.best_reward:.1f} after {algo.nb_steps} env steps")
    algo.visualize_best()
