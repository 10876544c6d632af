"""What each process of tests/test_distributed.py runs: ``python -m tests.distributed_workers``.

Started by the test once per rank, with the environment torchrun would give it
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...), it runs the scenarios it is given one
after the other (a process costs seconds of imports on a busy machine) and writes
what the test checks to ``OUT_DIR/rank-<r>.pt``, by scenario.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from bbrl_ppo.algorithms.ppo import ALGORITHMS, PPOClip
from bbrl_ppo.algorithms.rollout import Rollout
from bbrl_ppo.errors import NumericalError

MINIBATCH = 64


def synthetic_minibatch(algo: PPOClip) -> Rollout:
    """A CartPole minibatch made the same way in every process (fixed generator).

    Old log-probs are the initial policy's, shifted, so that ratios differ from 1
    (clipping and KL are active); advantages have a mean far from 0 and a std far
    from 1, so that normalizing them with a part's statistics would show.
    """
    generator = torch.Generator().manual_seed(1234)
    observations = torch.randn(MINIBATCH, 4, generator=generator)
    actions = torch.randint(0, 2, (MINIBATCH,), generator=generator)
    with torch.no_grad():
        log_probs = algo.train_policy.log_prob(observations, actions)
    shift = 0.3 * torch.randn(MINIBATCH, generator=generator)
    return Rollout(
        observations=observations,
        actions=actions,
        old_log_probs=log_probs + shift,
        old_values=torch.randn(MINIBATCH, generator=generator),
        advantages=3.0 + 2.0 * torch.randn(MINIBATCH, generator=generator),
        returns=torch.randn(MINIBATCH, generator=generator),
    )


def gradient_config() -> dict:
    return {
        "base_dir": "gradients",
        "save_best": False,
        "progress_bar": False,
        "gym_env": {"env_name": "CartPole-v1"},
        "algorithm": {
            "seed": 5,
            "n_envs": 2,
            "max_rollouts": 1,
            "eval_interval": 10**9,
            "nb_evals": 1,
            "batch_size": 2,
            # No clipping of the gradient norm: what is compared is the raw gradient.
            "max_grad_norm": 1e9,
            "clip_range_vf": 0.2,
        },
    }


def minibatch_gradient(algo: PPOClip, batch: Rollout) -> dict:
    """One `train_minibatch` on `batch`: the gradients it stepped with and its diagnostics."""
    metrics = algo.train_minibatch(batch)
    return {
        "metrics": metrics,
        "policy": algo.policy_optimizer.flat_parameters.grad.clone(),
        "critic": algo.critic_optimizer.flat_parameters.grad.clone(),
    }


def gradients(rank: int, world_size: int, arguments: dict) -> dict:
    """This rank's part of each split of the minibatch, through `train_minibatch`."""
    results = {}
    for split in arguments["splits"]:
        algo = PPOClip(gradient_config())  # a fresh one per split: same initial parameters
        batch = synthetic_minibatch(algo)
        start = sum(split[:rank])
        part = batch.select(torch.arange(start, start + split[rank]))
        results[tuple(split)] = minibatch_gradient(algo, part)
        algo.close()
    return results


class SignalsOnOneRank:
    """Mixin: rank ``extra.signal_rank`` sends itself SIGTERM after update ``extra.signal_at``."""

    def after_update(self, workspace, rollout, metrics):
        super().after_update(workspace, rollout, metrics)
        extra = self.cfg.get("extra", {})
        if self.distributed.rank == extra.get("signal_rank") and self.epoch == extra.get(
            "signal_at"
        ):
            os.kill(os.getpid(), signal.SIGTERM)


class NaNOnOneRank:
    """Mixin: the rank ``extra.nan_rank`` gets a NaN policy loss from update ``extra.nan_at``."""

    def policy_loss(self, batch, distribution, log_probs, advantages):
        terms = super().policy_loss(batch, distribution, log_probs, advantages)
        extra = self.cfg.get("extra", {})
        if self.distributed.rank == extra.get("nan_rank") and self.epoch >= extra.get("nan_at"):
            terms.loss = terms.loss * float("nan")
        return terms


def algorithm_class(cfg: dict) -> type[PPOClip]:
    """The configured variant; with the mixins above only when ``extra`` asks for them
    (a checkpoint names its class, which `resume` must match)."""
    variant = ALGORITHMS[cfg["algorithm"].get("variant", "ppo_clip")]
    if not cfg.get("extra"):
        return variant
    return type(f"Test{variant.__name__}", (SignalsOnOneRank, NaNOnOneRank, variant), {})


def train(rank: int, world_size: int, arguments: dict) -> dict:
    """Train `arguments["config"]`; return every learnt state, counters and how it ended."""
    cfg = arguments["config"]
    algo = algorithm_class(cfg)(cfg)
    error = None
    try:
        algo.run()
    except NumericalError as raised:
        error = str(raised)
    finally:
        algo.close()
    modules, optimizers = algo.learnt_members()
    return {
        "modules": {name: module.state_dict() for name, module in modules.items()},
        "optimizers": {name: optimizer.state_dict() for name, optimizer in optimizers.items()},
        "nb_steps": algo.nb_steps,
        "nb_rollouts": algo.nb_rollouts,
        "interrupted": algo.interrupted,
        "last_eval_reward": algo.last_eval_reward,
        "base_dir": str(algo.base_dir),
        "error": error,
    }


def train_in_own_group(rank: int, world_size: int, arguments: dict) -> dict:
    """`train`, in a process group made by the caller, as a notebook user would."""
    address = f"tcp://{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(name)  # only the group tells the algorithm where it stands
    dist.init_process_group("gloo", init_method=address, rank=rank, world_size=world_size)
    try:
        return train(rank, world_size, arguments)
    finally:
        dist.destroy_process_group()


def first_observations(rank: int, world_size: int, arguments: dict) -> torch.Tensor:
    """The observations this rank's envs start from, (envs of this rank, obs)."""
    algo = PPOClip(arguments["config"])
    workspace = next(algo.iter_partial_episodes())
    algo.close()
    return workspace["env/env_obs"][0]


SCENARIOS = {
    "first_observations": first_observations,
    "gradients": gradients,
    "train": train,
    "train_in_own_group": train_in_own_group,
}


def main() -> None:
    """``OUT_DIR '{"name": ["scenario", {arguments}], ...}'``."""
    out_dir, runs = Path(sys.argv[1]), json.loads(sys.argv[2])
    torch.set_num_threads(1)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    results = {
        name: SCENARIOS[scenario](rank, world_size, arguments)
        for name, (scenario, arguments) in runs.items()
    }
    torch.save(results, out_dir / f"rank-{rank}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
