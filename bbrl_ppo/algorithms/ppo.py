"""PPO-clip and PPO with an adaptive KL penalty, in the agent/workspace style.

One rollout, read top to bottom in `run()`:

1. collect: `iter_partial_episodes` fills a workspace of ``transitions_per_env + 1``
   steps per env (the first is the previous rollout's last), without gradients.
2. `prepare_rollout`: old log-probs and values over the whole workspace, optional
   reward scaling, GAE with separate termination/episode-end masks
   (`bbrl_ppo.algorithms.advantages`), then the real transitions flattened into a `Rollout`.
3. `update`: ``opt_epochs`` passes; each shuffles all transitions and visits each
   exactly once, in minibatches of ``batch_size`` (`train_minibatch`), the remainder
   joining the last one.
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

On several processes (`bbrl_ppo.distributed`) it is the same algorithm: each rank
collects with its share of the envs and takes its share of each minibatch;
advantages are normalized with the whole minibatch's statistics, gradients and
diagnostics averaged over the ranks before the ``target_kl`` test and the step, and
the observation and reward statistics follow every rank's envs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from bbrl.workspace import Workspace
from torch.distributions import Distribution, kl_divergence

from bbrl_ppo.agents.batched_actor_critic import BatchedActorCritic
from bbrl_ppo.agents.networks import copy_parameters
from bbrl_ppo.agents.normalizers import RewardScaler
from bbrl_ppo.algorithms.advantages import generalized_advantages, transition_mask
from bbrl_ppo.algorithms.episode_statistics import EpisodeStatistics
from bbrl_ppo.algorithms.episodic import EpisodicAlgo
from bbrl_ppo.algorithms.losses import (
    SurrogateTerms,
    adapt_kl_coef,
    clipped_surrogate,
    kl_penalized_surrogate,
    value_loss,
    weighted_objective,
)
from bbrl_ppo.algorithms.ppo_agents import make_critic, make_eval_policy, make_policy
from bbrl_ppo.algorithms.rollout import Rollout, minibatch_count, minibatch_indices
from bbrl_ppo.config.schema import PPOConfig
from bbrl_ppo.distributed.collectives import (
    all_envs,
    all_envs_workspace,
    min_over_ranks,
    own_envs,
)
from bbrl_ppo.distributed.context import rank_seed
from bbrl_ppo.distributed.gradients import GradientAverager
from bbrl_ppo.distributed.statistics import (
    explained_variance_over_ranks,
    mean_over_ranks,
    moments_of_every_rank,
    normalize_advantages_over_ranks,
)
from bbrl_ppo.errors import check_finite_parameters, check_finite_tensor, check_finite_value
from bbrl_ppo.optim.flat_parameters import step_optimizer
from bbrl_ppo.optim.setup import gradient_clipper, setup_optimizer


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
    strict_config = True
    config: PPOConfig
    #: Besides its envs, each rank of a distributed run draws its own minibatches.
    per_rank_state = (*EpisodicAlgo.per_rank_state, "minibatch_generator")

    def __init__(self, cfg: Any, env_wrappers=()):
        super().__init__(cfg, autoreset=True, env_wrappers=env_wrappers)
        self.collect_with_grad = False
        algorithm = self.config.algorithm
        #: This rank's part of each minibatch (all of it on a single process).
        self.local_batch_size = self.distributed.local_share(
            algorithm.batch_size, "algorithm.batch_size"
        )
        self.train_policy = make_policy(algorithm, self.train_env).to(self.device)
        self.eval_policy = make_eval_policy(self.train_policy)
        self.critic_agent = make_critic(algorithm, self.train_env).to(self.device)
        self.old_policy = copy.deepcopy(self.train_policy).with_prefix("old_policy/")
        self.old_critic_agent = copy.deepcopy(self.critic_agent).with_prefix("old_critic/")
        for frozen in (self.old_policy, self.old_critic_agent):
            frozen.requires_grad_(False)

        optimizer_config = dict(self.config.optimizer)
        batched = (
            BatchedActorCritic.for_agents(self.train_policy, self.critic_agent)
            if algorithm.flat_parameters and algorithm.batched_actor_critic
            else None
        )
        self.policy_optimizer, self.critic_optimizer = (
            setup_optimizer(
                optimizer_config,
                agent,
                prefer_fused=True,
                flat=algorithm.flat_parameters,
                flat_storage=batched.storage(index) if batched else None,
            )
            for index, agent in enumerate((self.train_policy, self.critic_agent))
        )
        #: Policy and critic in one stacked pass during the update, when they allow it.
        self._batched = batched if batched is not None and batched.bind() else None
        self._gradient_clippers = (
            gradient_clipper(self.policy_optimizer, self.train_policy),
            gradient_clipper(self.critic_optimizer, self.critic_agent),
        )
        self._gradient_averager = GradientAverager(
            self.distributed,
            (self.policy_optimizer, self.train_policy),
            (self.critic_optimizer, self.critic_agent),
        )
        self.base_learning_rate = self.config.optimizer["lr"]
        self.reward_scaler = (
            RewardScaler(algorithm.n_envs, algorithm.discount_factor)
            if algorithm.normalize_rewards
            else None
        )
        self.episodes = EpisodeStatistics()
        self.kl_coef = algorithm.kl_penalty.initial_coef
        self.steps_before_rollout = 0
        #: Whether ``target_kl`` ended the last update early.
        self.stopped_early = False
        seed = rank_seed(algorithm.seed, self.distributed.rank)
        self._generator = torch.Generator().manual_seed(seed)
        self._minibatch_position = (0, 0)
        #: Whether `train_minibatch` computes the diagnostics only a log reads (`update`).
        self._diagnose = True
        #: The entropy term of a step that neither needs nor logs it (its weight is 0).
        self._no_entropy = torch.zeros((), device=self.device)
        # The first update's learning rate and clip range, so that each stage
        # (`train_minibatch`, `after_update`...) also runs on its own, as in a notebook.
        self._anneal()

    def default_workspace_steps(self) -> int:
        """``transitions_per_env`` new transitions, after the previous rollout's last step."""
        return self.config.algorithm.transitions_per_env + 1

    # -- training state ----------------------------------------------------------------------
    def training_state(self) -> dict[str, Any]:
        """`EpisodicAlgo`'s, plus the KL coefficient, minibatch RNG and episode statistics."""
        return {
            **super().training_state(),
            "steps_before_rollout": self.steps_before_rollout,
            "kl_coef": self.kl_coef,
            "minibatch_generator": self._generator.get_state(),
            "episodes": self.episodes.state_dict(),
        }

    def load_training_state(self, state: dict[str, Any]) -> None:
        """Restore `training_state`'s result."""
        super().load_training_state(state)
        self.steps_before_rollout = int(state["steps_before_rollout"])
        self.kl_coef = float(state["kl_coef"])
        self._generator.set_state(state["minibatch_generator"])
        self.episodes.load_state_dict(state["episodes"])

    def checkpoint_extras(self) -> dict[str, Any]:
        """The reward scaler's statistics travel with the best agent (to resume training)."""
        if self.reward_scaler is None:
            return {}
        state = {key: value.clone() for key, value in self.reward_scaler.state_dict().items()}
        return {"reward_scaler": state}

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        """Train until the budget is spent or ``stop_at_reward`` is reached."""
        stop_at = self.config.algorithm.stop_at_reward
        reached = False
        for workspace in self.iter_partial_episodes():
            rollout = self.prepare_rollout(workspace)
            metrics = self.update(rollout)
            self.after_update(workspace, rollout, metrics)
            self.evaluate()
            reached = stop_at is not None and self.last_eval_reward >= stop_at
            if reached:
                break  # closes the rollout loop, whose progress bar ends at this evaluation
        if reached:  # said after the bar's last line, not into it
            print(
                f"Evaluation mean {self.last_eval_reward:.2f} >= stop_at_reward {stop_at} "
                f"after {self.nb_steps} env steps: stopping; best agent in {self.base_dir}"
            )
        if self._checkpoint_rollout != self.nb_rollouts:
            self.save_checkpoint()
        self.logger.flush()

    # -- 2. advantages -----------------------------------------------------------------------
    @torch.no_grad()
    def prepare_rollout(self, workspace: Workspace) -> Rollout:
        """Old log-probs, values, advantages and returns; written to the workspace too."""
        algorithm = self.config.algorithm
        observations, actions = workspace["env/env_obs"], workspace["action"]
        reward, terminated, done = workspace["env/reward", "env/terminated", "env/done"]
        where = f"in the rollout of update {self.nb_rollouts + 1} ({self.nb_steps} env steps)"
        check_finite_tensor("env reward", reward, where)
        old_log_probs = self.old_policy.log_prob(observations, actions)
        values = self.old_critic_agent.value(observations)
        check_finite_tensor("critic value", values, where)
        if self.reward_scaler is not None:
            # The scaler follows every env of the run, as one process stepping them all
            # would (statistics and running returns); each rank keeps its envs' rewards.
            reward = reward.clone()
            rewards, starts = all_envs(
                self.distributed, reward[1:], done[:-1], what="the rewards to scale"
            )
            reward[1:] = own_envs(self.distributed, self.reward_scaler.scale(rewards, starts))
        advantages, returns = generalized_advantages(
            reward, values, terminated, done, algorithm.discount_factor, algorithm.gae_lambda
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

        Each pass visits every transition once, in ``len(rollout) // batch_size``
        minibatches (`minibatch_indices`). The number of transitions changes from one
        rollout to the next (final -> first pairs are dropped), so ``batch_size``
        rarely divides it: the remainder joins the pass's last minibatch (at most
        ``2 * batch_size - 1`` transitions) rather than making a short one of its own.
        A short minibatch -- one transition, say -- would get a full gradient step from
        a very noisy estimate, with its advantages not normalized (a single value has
        no std). SB3 and CleanRL take the short step instead (SB3 warns once).

        Returned means: ``policy_loss``, ``value_loss`` and ``approx_kl`` over every
        minibatch; ``entropy`` (when its weight is 0) and ``clip_fraction``, which
        only the log reads, over the last pass's minibatches (every minibatch when
        ``target_kl`` may end the update before its last pass): their operations cost
        a few percent of each step (BENCHMARKS.md, "Speed, round two").
        """
        self._anneal()
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}
        count = 0
        self.stopped_early = False
        algorithm = self.config.algorithm
        minibatches = self._minibatches_per_pass(len(rollout))
        last_pass = algorithm.opt_epochs - 1
        for opt_epoch in range(algorithm.opt_epochs):
            self._diagnose = algorithm.target_kl is not None or opt_epoch == last_pass
            for minibatch, batch in enumerate(self._minibatches(rollout, minibatches)):
                self._minibatch_position = (opt_epoch, minibatch)
                metrics = self.train_minibatch(batch)
                if metrics is None:
                    self.stopped_early = True
                    break
                for key, value in metrics.items():
                    totals[key] = totals.get(key, 0.0) + value
                    counts[key] = counts.get(key, 0) + 1
                count += 1
            if self.stopped_early:
                break
        self._diagnose = True
        where = f"after update {self.nb_rollouts + 1} ({self.nb_steps} env steps)"
        check_finite_parameters(self.train_policy, "policy", where)
        check_finite_parameters(self.critic_agent, "critic", where)
        means = {key: value / counts[key] for key, value in totals.items()}
        means["minibatches"] = float(count)
        return means

    def _minibatches_per_pass(self, size: int) -> int:
        """This rank's `minibatch_count`, or the smallest over the ranks.

        Every rank must take as many gradient steps (each is a collective), but their
        rollouts differ in size (final -> first pairs are dropped): a rank with more
        transitions than another puts the extra ones in its last minibatch.
        """
        own = max(minibatch_count(size, self.local_batch_size), 1)
        return min_over_ranks(self.distributed, own, "the number of minibatches")

    def _minibatches(self, rollout: Rollout, count: int) -> Iterator[Rollout]:
        batch_size = self.local_batch_size
        if batch_size >= len(rollout):
            yield rollout  # one minibatch: its order changes nothing, no shuffle
            return
        for indices in minibatch_indices(len(rollout), batch_size, self._generator, count):
            yield rollout.select(indices)

    def train_minibatch(self, batch: Rollout) -> dict[str, float] | None:
        """One gradient step on policy and critic; None when ``target_kl`` stops the update.

        Losses and gradient norms are checked before each step: a non-finite one
        stops training with a `NumericalError` before it reaches the parameters.

        In a distributed run `batch` is this rank's part of the minibatch: advantages
        are normalized with the whole minibatch's mean and std, and the gradients and
        diagnostics of every rank are averaged (`GradientAverager`) before anything is
        decided on them, so every rank decides alike. Hence the backward pass comes
        before the ``target_kl`` test: a minibatch that ends the update has its
        gradient computed, and dropped.
        """
        algorithm = self.config.algorithm
        distribution, values = self._policy_and_values(batch.observations)
        log_probs = distribution.log_prob(batch.actions)
        advantages = batch.advantages
        if algorithm.normalize_advantage:
            advantages = normalize_advantages_over_ranks(self.distributed, advantages)
        terms = self.policy_loss(batch, distribution, log_probs, advantages)
        diagnose = self._diagnose
        # The entropy's operations are only worth it when the objective or a log reads it.
        needs_entropy = diagnose or algorithm.entropy_coef != 0.0
        entropy = distribution.entropy().mean() if needs_entropy else self._no_entropy
        critic_loss = value_loss(values, batch.old_values, batch.returns, algorithm.clip_range_vf)
        watched = [terms.loss, critic_loss, terms.approx_kl]
        if diagnose:
            clip_fraction = terms.clip_fraction
            watched += [entropy, clip_fraction if clip_fraction is not None else self._no_entropy]
        diagnostics = torch.stack(watched).detach()

        self.policy_optimizer.zero_grad(set_to_none=True)
        self.critic_optimizer.zero_grad(set_to_none=True)
        self._backward(self.objective(terms.loss, entropy, critic_loss))
        diagnostics = self._gradient_averager(diagnostics, len(batch))
        # One synchronization for every diagnostic (and the target_kl test).
        values_read = diagnostics.tolist()
        policy_value, value_value, kl_value = values_read[:3]
        if algorithm.target_kl is not None and kl_value > 1.5 * algorithm.target_kl:
            return None
        self._require_finite(policy_loss=policy_value, value_loss=value_value)
        max_norm = algorithm.max_grad_norm
        norms = torch.stack([clip(max_norm) for clip in self._gradient_clippers]).tolist()
        self._require_finite(policy_gradient_norm=norms[0], critic_gradient_norm=norms[1])
        step_optimizer(self.policy_optimizer)
        step_optimizer(self.critic_optimizer)
        metrics = {"policy_loss": policy_value, "value_loss": value_value, "approx_kl": kl_value}
        if diagnose:
            self._require_finite(entropy=values_read[3])
            metrics["entropy"] = values_read[3]
            if terms.clip_fraction is not None:
                metrics["clip_fraction"] = values_read[4]
        return metrics

    def _policy_and_values(self, observations: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        """The training policy's distribution and the critic's values, with gradients.

        In one stacked pass (`BatchedActorCritic`) when the agents allow it, else each
        agent on its own: the same values up to float rounding.
        """
        batched = self._batched
        if batched is not None and batched.serves(self.train_policy, self.critic_agent):
            policy_output, values = batched(observations)
            return self.train_policy.distribution(policy_output), values
        return self.train_policy.dist(observations), self.critic_agent.value(observations)

    def _backward(self, loss: torch.Tensor) -> None:
        if self._batched is not None:
            self._batched.backward(loss)
        else:
            loss.backward()

    def objective(
        self, policy_loss: torch.Tensor, entropy: torch.Tensor, critic_loss: torch.Tensor
    ) -> torch.Tensor:
        """The scalar each gradient step minimizes: the configured weighted sum."""
        algorithm = self.config.algorithm
        return weighted_objective(
            policy_loss,
            entropy,
            critic_loss,
            policy_coef=algorithm.policy_coef,
            entropy_coef=algorithm.entropy_coef,
            critic_coef=algorithm.critic_coef,
        )

    def policy_loss(self, batch: Rollout, distribution, log_probs, advantages) -> SurrogateTerms:
        """PPO-clip's surrogate, with the (possibly annealed) clip range."""
        return clipped_surrogate(
            log_probs,
            batch.old_log_probs,
            advantages,
            self.clip_range,
            clip_fraction=self._diagnose,
        )

    def _require_finite(self, **values: float) -> None:
        """Raise `NumericalError` on the first non-finite value."""
        for name, value in values.items():
            if not math.isfinite(value):
                check_finite_value(name.replace("_", " "), value, self._where())

    def _where(self) -> str:
        """Where the update is, for error messages."""
        opt_epoch, minibatch = self._minibatch_position
        return (
            f"in update {self.nb_rollouts + 1} (optimization epoch {opt_epoch + 1}, minibatch "
            f"{minibatch + 1}), after {self.nb_steps} env steps"
        )

    def _anneal(self) -> None:
        """Linear decay to 0 of the learning rate and clip range, when enabled.

        Driven by the budget spent before this rollout: the first update uses the
        full values (as CleanRL, which anneals before collecting).
        """
        algorithm = self.config.algorithm
        remaining = 1.0 - self.budget.fraction_spent(self.steps_before_rollout, self.nb_rollouts)
        scale = remaining if algorithm.anneal_lr else 1.0
        self.learning_rate = self.base_learning_rate * scale
        for optimizer in (self.policy_optimizer, self.critic_optimizer):
            for group in optimizer.param_groups:
                group["lr"] = self.learning_rate
        clip_scale = remaining if algorithm.anneal_clip_range else 1.0
        # Annealed to a small floor rather than 0: a zero clip range freezes the policy.
        self.clip_range = max(algorithm.clip_range * clip_scale, 1e-3)

    # -- 4. after the update ---------------------------------------------------------------
    def after_update(
        self, workspace: Workspace, rollout: Rollout, metrics: dict[str, float]
    ) -> None:
        """Refresh the old agents and observation statistics; log the update."""
        self.steps_before_rollout = self.nb_steps
        self.update_observation_statistics(workspace)
        copy_parameters(self.train_policy, self.old_policy)
        copy_parameters(self.critic_agent, self.old_critic_agent)
        episode_ends = ("env/done", "env/cumulated_reward", "env/timestep")
        self.episodes.record(
            all_envs_workspace(self.distributed, workspace, episode_ends, "the episode statistics")
        )
        metrics["explained_variance"] = explained_variance_over_ranks(
            self.distributed, rollout.old_values, rollout.returns
        )
        metrics["learning_rate"] = self.learning_rate
        metrics["clip_range"] = self.clip_range
        metrics["steps_per_second"] = self._steps_per_second()
        self.log_update(metrics)

    def update_observation_statistics(self, workspace: Workspace) -> None:
        """Merge this rollout's new observations into the normalizers' statistics.

        Done after the update, so one rollout is collected and learnt with the same
        statistics; policy and critic normalizers see the same data: that of every
        rank, whose moments are merged in rank order (the same statistics everywhere).
        """
        normalizers = [
            normalizer
            for agent in (self.train_policy, self.critic_agent)
            if hasattr(normalizer := getattr(agent, "obs_normalizer", None), "merge_moments")
        ]
        if not normalizers:
            return
        new_observations = workspace["env/env_obs"][1:]
        features = new_observations.reshape(
            new_observations.shape[0] * new_observations.shape[1], -1
        )
        every_rank = moments_of_every_rank(self.distributed, features)
        for normalizer in normalizers:
            for moments in every_rank:
                normalizer.merge_moments(moments)

    def _steps_per_second(self) -> float:
        elapsed = time.perf_counter() - self.start_time
        return self.nb_steps / elapsed if elapsed > 0 else math.nan

    def log_update(self, metrics: dict[str, float]) -> None:
        """Write the update's metrics (``train/*``) and episode statistics (``rollout/*``)."""
        for name, value in metrics.items():
            if not math.isnan(value):
                self.logger.add_log(f"train/{name}", value, self.nb_steps)
        if self.episodes:
            self.logger.add_log(
                "rollout/episode_return", self.episodes.mean_return(), self.nb_steps
            )
            self.logger.add_log(
                "rollout/episode_length", self.episodes.mean_length(), self.nb_steps
            )

    def progress_fields(self) -> dict[str, str]:
        """The progress bar's fields, with the training episodes' mean return and length."""
        fields = super().progress_fields()
        if self.episodes:
            fields["ep_return"] = f"{self.episodes.mean_return():.1f}"
            fields["ep_len"] = f"{self.episodes.mean_length():.0f}"
        return fields


class PPOPenalty(PPOClip):
    """PPO with an adaptive KL penalty (Schulman et al. 2017, section 4, eq. 8).

    The surrogate ``r A`` is penalized by ``kl_coef * KL(old || new)`` (analytic
    KL of the two action distributions). After each update's epochs, ``d =
    E[KL(old || new)]`` is measured once over all the rollout's transitions, for the
    policy the update reached (`policy_kl`), and ``kl_coef`` is halved if ``d <
    d_targ / 1.5`` and doubled if ``d > 1.5 * d_targ`` (`adapt_kl_coef`), as the
    paper does. When ``target_kl`` ends an update early, ``d`` is that of the
    policy after the steps taken. Configuration: ``algorithm.kl_penalty.target``
    (d_targ, default 0.01) and ``algorithm.kl_penalty.initial_coef`` (initial
    beta, default 1). Logs ``train/kl_coef`` (the beta this update used) and
    ``train/mean_kl`` (d).
    """

    def update(self, rollout: Rollout) -> dict[str, float]:
        """PPO-clip's update with the penalized objective, then ``kl_coef`` adapted to ``d``."""
        metrics = super().update(rollout)
        kl = self.policy_kl(rollout)
        metrics["kl_coef"] = self.kl_coef
        metrics["mean_kl"] = kl
        self.kl_coef = adapt_kl_coef(self.kl_coef, kl, self.config.algorithm.kl_penalty.target)
        return metrics

    @torch.no_grad()
    def policy_kl(self, rollout: Rollout) -> float:
        """``E[KL(old || new)]`` over the rollout's transitions, for the policy as it is now.

        Measured after the update rather than averaged over its minibatches: a
        minibatch's KL is taken before its own step, so such a mean starts at 0 and
        lags behind the KL the update reached.
        """
        old_distribution = self.old_policy.dist(rollout.observations)
        distribution = self.train_policy.dist(rollout.observations)
        kl = kl_divergence(old_distribution, distribution)
        return mean_over_ranks(self.distributed, kl, "the policy's KL divergence")

    def policy_loss(self, batch: Rollout, distribution, log_probs, advantages) -> SurrogateTerms:
        """The KL-penalized surrogate, with the current ``kl_coef``."""
        with torch.no_grad():
            old_distribution = self.old_policy.dist(batch.observations)
        kl = kl_divergence(old_distribution, distribution)
        return kl_penalized_surrogate(log_probs, batch.old_log_probs, advantages, kl, self.kl_coef)


#: The PPO variants a config's ``algorithm.variant`` may name.
ALGORITHMS: dict[str, type[PPOClip]] = {"ppo_clip": PPOClip, "ppo_kl": PPOPenalty}
