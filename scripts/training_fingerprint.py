"""Train one config with evaluation off and print a SHA-256 of the final parameters.

Why: a change that claims to keep training bit-identical (a refactor, a faster
kernel that should compute the same thing) can be checked by running this before
and after it, on the same machine with one torch thread:

    taskset -c $(($(nproc)-1)) .venv/bin/python scripts/training_fingerprint.py \
        configs/cartpole.yaml algorithm.seed=1

Every tensor of the policy's and the critic's ``state_dict`` (weights and
normalizer statistics) goes into the digest, in key order, byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile

import torch
from omegaconf import OmegaConf

from bbrl_ppo import PPOClip, PPOPenalty

#: An evaluation interval no run reaches: evaluations draw from the torch RNG, off here.
NO_EVALUATION = 10**12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a YAML config, e.g. configs/cartpole.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = OmegaConf.load(args.config)
    cfg.merge_with_dotlist(list(args.overrides))
    with tempfile.TemporaryDirectory() as run_dir:
        cfg.merge_with_dotlist(
            [
                f"base_dir={run_dir}",
                f"algorithm.eval_interval={NO_EVALUATION}",
                "save_best=false",
                "progress_bar=false",
            ]
        )
        variant = cfg.algorithm.get("variant", "ppo_clip")
        algo = (PPOPenalty if variant == "ppo_kl" else PPOClip)(cfg)
        try:
            algo.run()
        finally:
            algo.close()
    digest = hashlib.sha256()
    for prefix, agent in (("policy", algo.train_policy), ("critic", algo.critic_agent)):
        for name, tensor in sorted(agent.state_dict().items()):
            digest.update(f"{prefix}.{name}".encode())
            digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    print(f"{algo.nb_steps} env steps, final parameters sha256 {digest.hexdigest()}")


if __name__ == "__main__":
    main()
