"""Where one vector step of a CartPole run goes: gymnasium, our env agent, the policy, bbrl.

Usage: python benchmarks/step_breakdown.py [--repeats 7] [--config configs/cartpole.yaml]

Builds `PPOClip` from the config and times its own agents, as a run uses them:

- evaluation (CartPole only): ``nb_evals`` full episodes side by side through
  `play_episodes` and the algorithm's evaluation agent (the deterministic policy). The
  policy's weights are set so that it balances the pole (same network, same operations:
  only the values differ), so that every episode lasts its 500 steps, as a trained
  policy's do;
- collection: the training agent (stochastic policy, auto-reset envs) over rollouts of
  ``transitions_per_env`` steps, as `iter_partial_episodes` runs it, with the untrained
  policy (episodes end often, as early in training).

Each part is timed by wrapping that one object's method: the vector env's ``step``
(gymnasium: the per-env Python loop, the wrappers and CartPole's physics), the env
agent's ``forward`` less that step (our bookkeeping: actions read, episode counters,
tensors written), the policy's ``forward`` (network, distribution, the action written),
and the rest of the step (bbrl's `TemporalAgent` and `Agents` loops, each agent's
``__call__``, the stop test of evaluations). Microseconds per vector step, medians over
alternated rounds; pinned to the last core with one torch thread. The wrappers add a
little time of their own to each part they time, counted in that part.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bbrl.workspace import Workspace
from bench_common import pin_to_last_core  # benchmarks/ is on sys.path

from bbrl_ppo.algorithms.evaluation import play_episodes
from bbrl_ppo.algorithms.ppo import PPOClip
from bbrl_ppo.cli.training import load_config

CARTPOLE = Path(__file__).parent.parent / "configs" / "cartpole.yaml"
PARTS = ("vector env step (gymnasium)", "env agent, own work", "policy forward", "the rest (bbrl)")


class PartTimer:
    """Adds up the wall time spent inside the wrapped methods, by part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, owner: Any, method: str, part: str) -> None:
        inner = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[part] = self.seconds.get(part, 0.0) + time.perf_counter() - start

        # An instance attribute: only this object is timed, its class is untouched.
        object.__setattr__(owner, method, timed)


def balancing_weights(policy: Any) -> None:
    """Make a CartPole policy MLP push the cart under the falling pole.

    Hidden unit 0 of the first layer follows ``angle + 0.5 * angular velocity``, the second
    layer passes it on, and the logits are its sign: the greedy action balances the pole
    for the whole 500 steps; every other weight is 0 (the same operations as any policy).
    """
    layers = [module for module in policy.model if isinstance(module, torch.nn.Linear)]
    if len(layers) != 3:
        raise SystemExit("the CartPole evaluation needs a policy of two hidden layers")
    with torch.no_grad():
        for parameter in policy.model.parameters():
            parameter.zero_()
        layers[0].weight[0] = torch.tensor([0.0, 0.0, 10.0, 5.0])
        layers[1].weight[0, 0] = 5.0
        layers[2].weight[0, 0], layers[2].weight[1, 0] = -1.0, 1.0


def instrument(env_agent: Any, policy: Any) -> PartTimer:
    timer = PartTimer()
    timer.wrap(env_agent.envs, "step", PARTS[0])
    timer.wrap(env_agent, "forward", "env agent forward")
    timer.wrap(policy, "forward", PARTS[2])
    return timer


def evaluation_measure(algo: PPOClip) -> Callable[[], dict[str, float]]:
    policy = algo.current_eval_policy.wrapped  # inside bbrl's KWAgentWrapper
    balancing_weights(policy)
    timer = instrument(algo.eval_env, policy)
    agent = algo.eval_agent

    def measure() -> dict[str, float]:
        timer.seconds.clear()
        start = time.perf_counter()
        returns = play_episodes(agent)
        total = time.perf_counter() - start
        if not bool((returns == 500).all()):
            raise RuntimeError(f"the balancing weights must play 500 steps, got {returns}")
        return per_step(timer, total, steps=501)

    return measure


def collection_measure(algo: PPOClip, rollouts: int) -> Callable[[], dict[str, float]]:
    timer = instrument(algo.train_env, algo.train_policy)
    agent = algo.train_agent
    steps = algo.default_workspace_steps()
    workspace = Workspace()
    with torch.set_grad_enabled(algo.collect_with_grad):
        agent(workspace, t=0, n_steps=steps)  # the first reset, untimed

    def measure() -> dict[str, float]:
        timer.seconds.clear()
        start = time.perf_counter()
        with torch.set_grad_enabled(algo.collect_with_grad):
            for _ in range(rollouts):
                workspace.copy_n_last_steps(1)  # as iter_partial_episodes
                agent(workspace, t=1, n_steps=steps - 1)
        total = time.perf_counter() - start
        return per_step(timer, total, steps=rollouts * (steps - 1))

    return measure


def per_step(timer: PartTimer, total: float, steps: int) -> dict[str, float]:
    """Microseconds per vector step of each part; the env agent's own work is its forward
    less the vector env's step, and the rest is what no part covers."""
    seconds = timer.seconds
    parts = {
        PARTS[0]: seconds[PARTS[0]],
        PARTS[1]: seconds["env agent forward"] - seconds[PARTS[0]],
        PARTS[2]: seconds[PARTS[2]],
    }
    parts[PARTS[3]] = total - seconds["env agent forward"] - seconds[PARTS[2]]
    parts["whole step"] = total
    return {name: 1e6 * value / steps for name, value in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="alternated rounds")
    parser.add_argument("--rollouts", type=int, default=50, help="rollouts per collection")
    parser.add_argument("--config", type=Path, default=CARTPOLE)
    args = parser.parse_args()
    core = pin_to_last_core()
    overrides = ["save_best=false", "progress_bar=false", "base_dir=/tmp/bbrl_ppo_step_breakdown"]
    algo = PPOClip(load_config(args.config, overrides))
    cfg = algo.config.algorithm
    measures = {}
    if algo.config.gym_env.env_name.startswith("CartPole"):
        measures[f"evaluation ({cfg.nb_evals} envs)"] = evaluation_measure(algo)
    measures[f"collection ({cfg.n_envs} envs)"] = collection_measure(algo, args.rollouts)
    for measure in measures.values():
        measure()  # warm-up
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in measures}
    for _ in range(args.repeats):
        for name, measure in measures.items():
            rounds[name].append(measure())
    algo.close()

    print(
        f"{algo.config.gym_env.env_name} ({args.config.name}), core {core}, 1 torch thread, "
        f"{args.repeats} alternated rounds: median us per vector step (share of the step)"
    )
    header = f"{'part':<28} | " + " | ".join(f"{name:>24}" for name in measures)
    print(header)
    print("-" * len(header))
    for part in (*PARTS, "whole step"):
        cells = []
        for name in measures:
            value = statistics.median(row[part] for row in rounds[name])
            whole = statistics.median(row["whole step"] for row in rounds[name])
            cells.append(f"{value:>15.1f} ({100 * value / whole:>3.0f}%)")
        print(f"{part:<28} | " + " | ".join(f"{cell:>24}" for cell in cells))


if __name__ == "__main__":
    main()
