"""PPO-clip and PPO with an adaptive KL penalty, in the agent/workspace style.

One rollout, read top to bottom in `run()`:

1. ``collect``: `iter_partial_episodes` fills a workspace of ``n_steps + 1`` steps
   per env (the first is the previous rollout's last), without gradients.
2. `prepare_rollout`: old log-probs and values over the whole workspace, optional
   reward scaling, GAE with separate termination/episode-end masks
   (`bbrl_ppo.algorithms.advantages`), then the real transitions flattened into a `Rollout`.
3. `update`: ``opt_epochs`` passes; each shuffles all transitions and visits each
   exactly once, in minibatches of ``batch_size``.
4. `after_update`: refresh the old agents, update observation statistics, log.
5. `evaluate`, and stop early at ``stop_at_reward``.

Defaults that differ between peers are chosen on purpose:

- value loss: plain MSE weighed by ``critic_coef`` (SB3), optionally clipped
  around the old values by ``clip_range_vf`` (off by default, as in SB3);
- ``target_kl``: checked on every minibatch *before* its gradient step, against
  ``1.5 * target_kl`` (SB3 and Spinning Up), ending the whole update;
- GAE is computed once per rollout, with the critic of the rollout (CleanRL/SB3);
- policy and critic have their own optimizers (the notebooks' layout), and the
  gradient norm of each is clipped to ``max_grad_norm``.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import torch
from bbrl.agents import KWAgentWrapper
from bbrl.workspace import Workspace
from torch.distributions import kl_divergence

from bbrl_ppo.agents.critics import VAgent
from bbrl_ppo.agents.networks import copy_parameters
from bbrl_ppo.agents.normalizers import RewardScaler
from bbrl_ppo.agents.policies import DiscretePolicy, GaussianPolicy
from bbrl_ppo.algorithms.advantages import generalized_advantages, transition_mask
from bbrl_ppo.algorithms.base import EpisodicAlgo
from bbrl_ppo.algorithms.losses import (
    SurrogateTerms,
    adapt_kl_coef,
    clipped_surrogate,
    explained_variance,
    kl_penalized_surrogate,
    normalize_advantages,
    value_loss,
)
from bbrl_ppo.config.schema import PPOConfig, validate_config
from bbrl_ppo.errors import check_finite_parameters, check_finite_tensor, check_finite_value
from bbrl_ppo.optim.setup import gradient_clipper, setup_optimizer

POLICY_TYPES = {"DiscretePolicy": DiscretePolicy, "GaussianPolicy": GaussianPolicy}


@dataclass
class Rollout:
    """The real transitions of one rollout, flattened: every tensor is (N, ...)."""

    observations: torch.Tensor
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    def __len__(self) -> int:
        return self.observations.shape[0]

    def select(self, indices: torch.Tensor) -> Rollout:
        return Rollout(*(getattr(self, field.name)[indices] for field in fields(self)))

    def slice(self, start: int, stop: int) -> Rollout:
        """Rows ``start:stop`` of every tensor, as views."""
        return Rollout(*(getattr(self, field.name)[start:stop] for field in fields(self)))


@dataclass(frozen=True)
class UpdateSettings:
    """The configuration values the minibatch loop reads, as plain Python values.

    Read once per update: an omegaconf attribute access costs tens of
    microseconds, a dozen of them per minibatch added up to a tenth of its time.
    """

    opt_epochs: int
    batch_size: int
    normalize_advantage: bool
    policy_coef: float
    entropy_coef: float
    critic_coef: float
    max_grad_norm: float
    clip_range_vf: float | None
    target_kl: float | None

    @classmethod
    def from_config(cls, algorithm) -> UpdateSettings:
        def optional(key: str) -> float | None:
            value = algorithm.get(key)
            return None if value is None else float(value)

        return cls(
            opt_epochs=int(algorithm.opt_epochs),
            batch_size=int(algorithm.batch_size),
            normalize_advantage=bool(algorithm.get("normalize_advantage", True)),
            policy_coef=float(algorithm.policy_coef),
            entropy_coef=float(algorithm.entropy_coef),
            critic_coef=float(algorithm.critic_coef),
            max_grad_norm=float(algorithm.max_grad_norm),
            clip_range_vf=optional("clip_range_vf"),
            target_kl=optional("target_kl"),
        )


def minibatch_indices(
    size: int, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[torch.Tensor]:
    """One shuffled pass over ``range(size)``: every index exactly once, in slices.

    The last slice is shorter when `batch_size` does not divide `size`.
    """
    permutation = torch.randperm(size, generator=generator)
    for start in range(0, size, batch_size):
        yield permutation[start : start + batch_size]


class PPOClip(EpisodicAlgo):
    """PPO with the clipped surrogate objective (Schulman et al. 2017, eq. 7).

    Attributes (the reference notebook's names): ``train_policy``,
    ``eval_policy`` (deterministic wrapper), ``critic_agent``, ``old_policy``,
    ``old_critic_agent``, ``policy_optimizer``, ``critic_optimizer``. Override
    `prepare_rollout`, `update`, `train_minibatch` or `policy_loss` to change one
    stage.
    """

    #: The typed configuration; a subclass may extend it with its own fields.
    config_schema: type = PPOConfig

    def __init__(self, cfg: Any, env_wrappers=()):
        cfg = validate_config(cfg, self.config_schema)
        super().__init__(cfg, autoreset=True, env_wrappers=env_wrappers)
        self.collect_with_grad = False
        algorithm = self.cfg.algorithm
        obs_size, action_size = self.train_env.get_obs_and_actions_sizes()
        architecture = algorithm.architecture
        activation = architecture.get("activation", "tanh")
        normalize = bool(algorithm.get("normalize_observations", False))
        observation_clip = float(algorithm.get("observation_clip", 10.0))

        policy_class = self._policy_class()
        policy_kwargs: dict[str, Any] = {}
        if policy_class is GaussianPolicy:
            policy_kwargs = {
                "state_dependent_std": bool(algorithm.get("state_dependent_std", False)),
                "init_log_std": float(algorithm.get("init_log_std", 0.0)),
            }
        self.train_policy = policy_class(
            obs_size,
            list(architecture.actor_hidden_size),
            action_size,
            activation=activation,
            normalize_observations=normalize,
            observation_clip=observation_clip,
            **policy_kwargs,
        ).with_prefix("current_policy/")
        self.eval_policy = KWAgentWrapper(
            self.train_policy, stochastic=False, predict_proba=False, compute_entropy=False
        )
        self.critic_agent = VAgent(
            obs_size,
            list(architecture.critic_hidden_size),
            activation=activation,
            normalize_observations=normalize,
            observation_clip=observation_clip,
        ).with_prefix("critic/")
        self.old_policy = copy.deepcopy(self.train_policy).with_prefix("old_policy/")
        self.old_critic_agent = copy.deepcopy(self.critic_agent).with_prefix("old_critic/")
        for frozen in (self.old_policy, self.old_critic_agent):
            frozen.requires_grad_(False)

        flat = bool(algorithm.get("flat_parameters", True))
        self.policy_optimizer = setup_optimizer(
            self.cfg.optimizer, self.train_policy, prefer_fused=True, flat=flat
        )
        self.critic_optimizer = setup_optimizer(
            self.cfg.optimizer, self.critic_agent, prefer_fused=True, flat=flat
        )
        self._gradient_clippers = (
            gradient_clipper(self.policy_optimizer, self.train_policy),
            gradient_clipper(self.critic_optimizer, self.critic_agent),
        )
        self.base_learning_rate = float(self.cfg.optimizer.lr)
        self.reward_scaler = (
            RewardScaler(algorithm.n_envs, float(algorithm.discount_factor))
            if algorithm.get("normalize_rewards", False)
            else None
        )
        self.episode_returns: deque[float] = deque(maxlen=100)
        self.episode_lengths: deque[int] = deque(maxlen=100)
        self.kl_coef = float(algorithm.get("kl_coef", 1.0))
        self.steps_before_rollout = 0
        #: Whether ``target_kl`` ended the last update early.
        self.stopped_early = False
        self._generator = torch.Generator().manual_seed(int(algorithm.seed))
        self._minibatch_position = (0, 0)

    def extra_training_state(self) -> dict[str, Any]:
        return {
            "steps_before_rollout": self.steps_before_rollout,
            "kl_coef": self.kl_coef,
            "minibatch_generator": self._generator.get_state(),
            "episode_returns": list(self.episode_returns),
            "episode_lengths": list(self.episode_lengths),
        }

    def load_extra_training_state(self, state: dict[str, Any]) -> None:
        self.steps_before_rollout = int(state["steps_before_rollout"])
        self.kl_coef = float(state["kl_coef"])
        self._generator.set_state(state["minibatch_generator"])
        self.episode_returns.extend(state["episode_returns"])
        self.episode_lengths.extend(state["episode_lengths"])

    def checkpoint_extras(self) -> dict[str, Any]:
        """The reward scaler's statistics travel with the best agent (to resume training)."""
        if self.reward_scaler is None:
            return {}
        state = {key: value.clone() for key, value in self.reward_scaler.state_dict().items()}
        return {"reward_scaler": state}

    def _policy_class(self) -> type:
        discrete = self.train_env.is_discrete_action()
        wanted = self.cfg.algorithm.get("policy_type")
        if wanted is None:
            return DiscretePolicy if discrete else GaussianPolicy
        if wanted not in POLICY_TYPES:
            raise ValueError(
                f"algorithm.policy_type={wanted!r} is unknown; use one of {sorted(POLICY_TYPES)}"
            )
        fits = (wanted == "DiscretePolicy") == discrete
        if not fits:
            space = self.train_env.action_space
            right = "DiscretePolicy" if discrete else "GaussianPolicy"
            raise ValueError(
                f"algorithm.policy_type={wanted!r} does not fit the action space {space} of "
                f"{self.cfg.gym_env.env_name}: use {right!r}"
            )
        return POLICY_TYPES[wanted]

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        """Train until the budget is spent or ``stop_at_reward`` is reached."""
        algorithm = self.cfg.algorithm
        stop_at = algorithm.get("stop_at_reward")
        for workspace in self.iter_partial_episodes(algorithm.n_steps + 1):
            rollout = self.prepare_rollout(workspace)
            metrics = self.update(rollout)
            self.after_update(workspace, rollout, metrics)
            self.evaluate()
            if stop_at is not None and self.last_eval_reward >= stop_at:
                print(
                    f"Evaluation mean {self.last_eval_reward:.2f} >= stop_at_reward {stop_at} "
                    f"after {self.nb_steps} env steps: stopping; best agent in {self.base_dir}"
                )
                break
        if self._checkpoint_epoch != self.epoch:
            self.save_checkpoint()
        self.logger.flush()

    # -- 2. advantages -----------------------------------------------------------------------
    @torch.no_grad()
    def prepare_rollout(self, workspace: Workspace) -> Rollout:
        """Old log-probs, values, advantages and returns; written to the workspace too."""
        observations, actions = workspace["env/env_obs"], workspace["action"]
        reward, terminated, done = workspace["env/reward", "env/terminated", "env/done"]
        where = f"in the rollout of update {self.epoch + 1} ({self.nb_steps} env steps)"
        check_finite_tensor("env reward", reward, where)
        old_log_probs = self.old_policy.log_prob(observations, actions)
        values = self.old_critic_agent.value(observations)
        check_finite_tensor("critic value", values, where)
        if self.reward_scaler is not None:
            reward = reward.clone()
            reward[1:] = self.reward_scaler.scale(reward[1:], starts=done[:-1])
        advantages, returns = generalized_advantages(
            reward,
            values,
            terminated,
            done,
            self.cfg.algorithm.discount_factor,
            self.cfg.algorithm.gae,
        )
        workspace.set_full("old_policy/logprob_predict", old_log_probs)
        workspace.set_full("old_critic/v_values", values)
        padding = torch.zeros_like(advantages[:1])
        workspace.set_full("advantage", torch.cat((advantages, padding)))

        valid = transition_mask(done)
        return Rollout(
            observations=observations[:-1][valid],
            actions=actions[:-1][valid],
            old_log_probs=old_log_probs[:-1][valid],
            old_values=values[:-1][valid],
            advantages=advantages[valid],
            returns=returns[valid],
        )

    # -- 3. the update -----------------------------------------------------------------------
    def update(self, rollout: Rollout) -> dict[str, float]:
        """``opt_epochs`` shuffled passes over the rollout; returns mean diagnostics.

        Each pass permutes the rollout once and takes its minibatches as contiguous
        slices (views, no copies); a rollout that fits in one minibatch is not permuted.
        """
        self._anneal()
        self.settings = UpdateSettings.from_config(self.cfg.algorithm)
        batch_size = self.settings.batch_size
        totals: dict[str, float] = {}
        count = 0
        self.stopped_early = False
        # One minibatch holding the whole rollout: its order changes nothing, skip the shuffle.
        whole_batch = batch_size >= len(rollout)
        for opt_epoch in range(self.settings.opt_epochs):
            shuffled = (
                rollout
                if whole_batch
                else rollout.select(torch.randperm(len(rollout), generator=self._generator))
            )
            for minibatch, start in enumerate(range(0, len(rollout), batch_size)):
                self._minibatch_position = (opt_epoch, minibatch)
                metrics = self.train_minibatch(shuffled.slice(start, start + batch_size))
                if metrics is None:
                    self.stopped_early = True
                    break
                for key, value in metrics.items():
                    totals[key] = totals.get(key, 0.0) + value
                count += 1
            if self.stopped_early:
                break
        where = f"after update {self.epoch + 1} ({self.nb_steps} env steps)"
        check_finite_parameters(self.train_policy, "policy", where)
        check_finite_parameters(self.critic_agent, "critic", where)
        means = {key: value / max(count, 1) for key, value in totals.items()}
        means["minibatches"] = float(count)
        return means

    def train_minibatch(self, batch: Rollout) -> dict[str, float] | None:
        """One gradient step on policy and critic; None when ``target_kl`` stops the update.

        Losses and gradient norms are checked before each step: a non-finite one
        stops training with a `NumericalError` before it reaches the parameters.
        Policy and critic share no parameter, so one backward pass through the sum
        of their losses gives each its own gradient.
        """
        settings = self.settings
        distribution = self.train_policy.dist(batch.observations)
        log_probs = distribution.log_prob(batch.actions)
        advantages = batch.advantages
        if settings.normalize_advantage:
            advantages = normalize_advantages(advantages)
        terms = self.policy_loss(batch, distribution, log_probs, advantages)
        # With no entropy bonus the entropy is only a diagnostic: computed outside the
        # graph, it adds nothing to the backward pass.
        with torch.set_grad_enabled(settings.entropy_coef != 0.0):
            entropy = distribution.entropy().mean()
        values = self.critic_agent.value(batch.observations)
        critic_loss = value_loss(values, batch.old_values, batch.returns, settings.clip_range_vf)
        # One synchronization for every diagnostic (and the target_kl test).
        policy_value, value_value, entropy_value, kl_value, clip_value = torch.stack(
            (terms.loss, critic_loss, entropy, terms.approx_kl, terms.clip_fraction)
        ).tolist()
        if settings.target_kl is not None and kl_value > 1.5 * settings.target_kl:
            return None
        metrics = {
            "policy_loss": policy_value,
            "value_loss": value_value,
            "entropy": entropy_value,
            "approx_kl": kl_value,
            "clip_fraction": clip_value,
        }
        self._require_finite(
            policy_loss=policy_value, value_loss=value_value, entropy=entropy_value
        )

        self.policy_optimizer.zero_grad(set_to_none=True)
        self.critic_optimizer.zero_grad(set_to_none=True)
        self.objective(terms.loss, entropy, critic_loss).backward()
        max_norm = settings.max_grad_norm
        norms = torch.stack([clip(max_norm) for clip in self._gradient_clippers]).tolist()
        self._require_finite(policy_gradient_norm=norms[0], critic_gradient_norm=norms[1])
        self.policy_optimizer.step()
        self.critic_optimizer.step()
        return metrics

    def objective(
        self, policy_loss: torch.Tensor, entropy: torch.Tensor, critic_loss: torch.Tensor
    ) -> torch.Tensor:
        """``policy_coef * policy_loss - entropy_coef * entropy + critic_coef * critic_loss``.

        A weight of 1 is not multiplied and a weight of 0 not added: each operation
        of the loss is also one node of the backward pass, paid at every minibatch.
        """
        settings = self.settings
        total = policy_loss
        if settings.policy_coef != 1.0:
            total = settings.policy_coef * total
        if settings.entropy_coef != 0.0:
            total = total - settings.entropy_coef * entropy
        if settings.critic_coef != 1.0:
            critic_loss = settings.critic_coef * critic_loss
        return total + critic_loss

    def _require_finite(self, **values: float) -> None:
        """Raise `NumericalError` on the first non-finite value; the message is built only then."""
        for name, value in values.items():
            if not math.isfinite(value):
                check_finite_value(name.replace("_", " "), value, self._where())

    def _where(self) -> str:
        """Where the update is, for error messages."""
        opt_epoch, minibatch = self._minibatch_position
        return (
            f"in update {self.epoch + 1} (optimization epoch {opt_epoch + 1}, minibatch "
            f"{minibatch + 1}), after {self.nb_steps} env steps"
        )

    def policy_loss(self, batch: Rollout, distribution, log_probs, advantages) -> SurrogateTerms:
        """PPO-clip's surrogate, with the (possibly annealed) clip range."""
        return clipped_surrogate(log_probs, batch.old_log_probs, advantages, self.clip_range)

    def _progress(self) -> float:
        """Fraction of the budget spent before this rollout, in [0, 1].

        Drives the linear annealing; the first update uses the full values (as
        CleanRL, which anneals before collecting).
        """
        algorithm = self.cfg.algorithm
        fractions = []
        if algorithm.get("max_steps"):
            fractions.append(self.steps_before_rollout / algorithm.max_steps)
        if algorithm.get("max_epochs"):
            fractions.append(self.epoch / algorithm.max_epochs)
        return min(1.0, max(fractions)) if fractions else 0.0

    def _anneal(self) -> None:
        """Linear decay to 0 of the learning rate and clip range, when enabled."""
        algorithm = self.cfg.algorithm
        remaining = 1.0 - self._progress()
        scale = remaining if algorithm.get("anneal_lr", False) else 1.0
        self.learning_rate = self.base_learning_rate * scale
        for optimizer in (self.policy_optimizer, self.critic_optimizer):
            for group in optimizer.param_groups:
                group["lr"] = self.learning_rate
        clip_scale = remaining if algorithm.get("anneal_clip_range", False) else 1.0
        # Annealed to a small floor rather than 0: a zero clip range freezes the policy.
        self.clip_range = max(float(algorithm.clip_range) * clip_scale, 1e-3)

    # -- 4. after the update ---------------------------------------------------------------
    def after_update(
        self, workspace: Workspace, rollout: Rollout, metrics: dict[str, float]
    ) -> None:
        """Refresh the old agents and observation statistics; log the update."""
        self.steps_before_rollout = self.nb_steps
        self.update_observation_statistics(workspace)
        copy_parameters(self.train_policy, self.old_policy)
        copy_parameters(self.critic_agent, self.old_critic_agent)
        self._record_episodes(workspace)
        metrics["explained_variance"] = explained_variance(rollout.old_values, rollout.returns)
        metrics["learning_rate"] = self.learning_rate
        metrics["clip_range"] = self.clip_range
        metrics["steps_per_second"] = self._steps_per_second()
        self.log_update(metrics)

    def update_observation_statistics(self, workspace: Workspace) -> None:
        """Merge this rollout's new observations into the normalizers' statistics.

        Done after the update, so one rollout is collected and learnt with the same
        statistics; policy and critic normalizers see the same data.
        """
        new_observations = workspace["env/env_obs"][1:]
        flat = new_observations.reshape(-1, *new_observations.shape[2:])
        for agent in (self.train_policy, self.critic_agent):
            normalizer = getattr(agent, "obs_normalizer", None)
            if hasattr(normalizer, "update"):
                normalizer.update(flat)

    def _record_episodes(self, workspace: Workspace) -> None:
        done = workspace["env/done"][1:]
        if done.any():
            self.episode_returns.extend(workspace["env/cumulated_reward"][1:][done].tolist())
            self.episode_lengths.extend(workspace["env/timestep"][1:][done].tolist())

    def _steps_per_second(self) -> float:
        elapsed = time.perf_counter() - self.start_time
        return self.nb_steps / elapsed if elapsed > 0 else math.nan

    def log_update(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            if not math.isnan(value):
                self.logger.add_log(f"train/{name}", value, self.nb_steps)
        if self.episode_returns:
            episode_return = sum(self.episode_returns) / len(self.episode_returns)
            episode_length = sum(self.episode_lengths) / len(self.episode_lengths)
            self.logger.add_log("rollout/episode_return", episode_return, self.nb_steps)
            self.logger.add_log("rollout/episode_length", episode_length, self.nb_steps)

    def progress_fields(self) -> dict[str, str]:
        fields_ = super().progress_fields()
        if self.episode_returns:
            fields_["ep_return"] = f"{sum(self.episode_returns) / len(self.episode_returns):.1f}"
            fields_["ep_len"] = f"{sum(self.episode_lengths) / len(self.episode_lengths):.0f}"
        return fields_


class PPOPenalty(PPOClip):
    """PPO with an adaptive KL penalty (Schulman et al. 2017, section 4, eq. 8).

    The surrogate ``r A`` is penalized by ``kl_coef * KL(old || new)`` (analytic
    KL of the two action distributions). After each update, ``kl_coef`` is halved
    if the mean KL fell below ``kl_target / 1.5`` and doubled above ``1.5 *
    kl_target``. Configuration: ``algorithm.kl_target`` (d_targ, default 0.01)
    and ``algorithm.kl_coef`` (initial beta, default 1).
    """

    def update(self, rollout: Rollout) -> dict[str, float]:
        self._kl_sum, self._kl_count = 0.0, 0
        metrics = super().update(rollout)
        mean_kl = self._kl_sum / max(self._kl_count, 1)
        metrics["kl_coef"] = self.kl_coef
        metrics["mean_kl"] = mean_kl
        kl_target = float(self.cfg.algorithm.get("kl_target", 0.01))
        self.kl_coef = adapt_kl_coef(self.kl_coef, mean_kl, kl_target)
        return metrics

    def policy_loss(self, batch: Rollout, distribution, log_probs, advantages) -> SurrogateTerms:
        with torch.no_grad():
            old_distribution = self.old_policy.dist(batch.observations)
        kl = kl_divergence(old_distribution, distribution)
        self._kl_sum += kl.detach().mean().item()
        self._kl_count += 1
        return kl_penalized_surrogate(log_probs, batch.old_log_probs, advantages, kl, self.kl_coef)


ALGORITHMS = {"ppo_clip": PPOClip, "ppo_kl": PPOPenalty}
