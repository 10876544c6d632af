"""PPO's loss terms as pure functions of tensors (Schulman et al. 2017, arXiv:1707.06347).

Each returns the term to minimize; the algorithm weights, sums and logs them.
All inputs are flat minibatches of shape (N,).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SurrogateTerms:
    """The policy loss and the diagnostics PPO users watch.

    ``clip_fraction`` is None when it was not asked for (see `clipped_surrogate`).
    """

    loss: torch.Tensor
    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor | None


def approx_kl(log_ratio: torch.Tensor, ratio: torch.Tensor | None = None) -> torch.Tensor:
    """KL(old || new) estimated from log(pi_new / pi_old) on actions drawn from pi_old.

    The ``(r - 1) - log r`` estimator (J. Schulman, "Approximating KL divergence",
    2020): unbiased like ``-log r``, but never negative and of lower variance.
    `ratio`, ``exp(log_ratio)`` when the caller already has it, saves recomputing it.
    """
    if ratio is None:
        ratio = log_ratio.exp()
    return ((ratio - 1) - log_ratio).mean()


def normalize_advantages(advantages: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit std; a minibatch of one is left as is (its std is undefined).

    `PPOClip.update` never makes such a minibatch out of a remainder (it joins the
    last full one): only a rollout of one transition gives one.
    """
    if advantages.numel() < 2:
        return advantages
    std, mean = torch.std_mean(advantages)
    return (advantages - mean) / (std + eps)


def clipped_surrogate(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
    *,
    clip_fraction: bool = True,
) -> SurrogateTerms:
    """``-E[min(r A, clip(r, 1-eps, 1+eps) A)]``, PPO-clip's objective (eq. 7), negated.

    With ``clip_fraction=False`` the fraction of clipped ratios is not computed (None):
    five tensor operations that only a log reads (`PPOClip.update` asks for it on the
    minibatches whose diagnostics it logs).
    """
    log_ratio = log_prob - old_log_prob.detach()
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip_range, 1 + clip_range) * advantages
    loss = -torch.min(unclipped, clipped).mean()
    fraction = None
    with torch.no_grad():
        if clip_fraction:
            fraction = ((ratio - 1).abs() > clip_range).float().mean()
        kl = approx_kl(log_ratio, ratio)
    return SurrogateTerms(loss=loss, approx_kl=kl, clip_fraction=fraction)


def kl_penalized_surrogate(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    kl_divergence: torch.Tensor,
    kl_coef: float,
) -> SurrogateTerms:
    """``-E[r A - beta KL(old || new)]``, the adaptive-KL-penalty objective (eq. 8), negated.

    `kl_divergence` is the per-sample KL between the old and the new policy's
    distributions (analytic, with gradients to the new policy).
    """
    log_ratio = log_prob - old_log_prob.detach()
    ratio = log_ratio.exp()
    loss = -(ratio * advantages).mean() + kl_coef * kl_divergence.mean()
    with torch.no_grad():
        kl = approx_kl(log_ratio, ratio)
    return SurrogateTerms(loss=loss, approx_kl=kl, clip_fraction=torch.zeros(()))


def adapt_kl_coef(kl_coef: float, kl: float, kl_target: float) -> float:
    """The paper's rule (section 4): halve beta below d_targ / 1.5, double it above 1.5 d_targ."""
    if kl < kl_target / 1.5:
        return kl_coef / 2
    if kl > kl_target * 1.5:
        return kl_coef * 2
    return kl_coef


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    clip_range_vf: float | None,
) -> torch.Tensor:
    """Mean squared error to the GAE returns, optionally clipped around the old values.

    With clipping, the worse of the clipped and unclipped errors is taken (as in
    OpenAI baselines and CleanRL), so the critic cannot move further than
    `clip_range_vf` from its pre-update prediction to lower the loss. The scale
    is plain MSE (SB3's choice; CleanRL uses 0.5 MSE): ``critic_coef`` weighs it.
    """
    if not clip_range_vf:
        return torch.nn.functional.mse_loss(values, returns)  # one op (and one backward node)
    unclipped = (values - returns) ** 2
    old_values = old_values.detach()
    clipped_values = old_values + (values - old_values).clamp(-clip_range_vf, clip_range_vf)
    clipped = (clipped_values - returns) ** 2
    return torch.max(unclipped, clipped).mean()


def explained_variance(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """``1 - Var(targets - predictions) / Var(targets)``: 1 is perfect, <= 0 is useless.

    NaN when the targets have no variance (nothing to explain).
    """
    target_variance = targets.var()
    if target_variance == 0 or targets.numel() < 2:
        return float("nan")
    return float(1 - (targets - predictions).var() / target_variance)


def weighted_objective(
    policy_loss: torch.Tensor,
    entropy: torch.Tensor,
    critic_loss: torch.Tensor,
    *,
    policy_coef: float,
    entropy_coef: float,
    critic_coef: float,
) -> torch.Tensor:
    """``policy_coef * L_policy - entropy_coef * H + critic_coef * L_critic``.

    Policy and critic share no parameter, so one backward pass through this sum
    gives each its own gradient. A weight of 1 multiplies nothing and a weight of 0
    adds nothing (same value): with no entropy bonus, the entropy's graph then stays
    out of the backward pass (BENCHMARKS.md, "The weighted objective").
    """
    total = policy_loss if policy_coef == 1.0 else policy_coef * policy_loss
    if entropy_coef != 0.0:
        total = total - entropy_coef * entropy
    return total + (critic_loss if critic_coef == 1.0 else critic_coef * critic_loss)
