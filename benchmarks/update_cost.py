"""Where PPO's training time goes: phases of a run, one minibatch step, one small op.

Usage: python benchmarks/update_cost.py [--steps 20000] [--repeats 2] [--compile] [--phases-only]
       [--config configs/pendulum.yaml]   # the phases of another config

Pins itself to the last core with one torch thread, then prints:

1. the phases of a `PPOClip` run on ``configs/cartpole.yaml`` (evaluation off):
   collection, `prepare_rollout`, `update`, `after_update`, timed by a subclass;
2. one `train_minibatch` on a CartPole rollout, repeated, with the optimizer's
   single-tensor, foreach and fused Adam, over separate parameters and over flat
   parameter buffers (``algorithm.flat_parameters``), and the default (flat fused Adam,
   policy and critic in one stacked pass: ``algorithm.batched_actor_critic``),
   interleaved in one process; then the same step written in plain eager torch
   (`hand_written_step`: Adam's default, separate passes), for scale;
3. the same step with the objective written as the plain weighted sum (every
   weight multiplied, a zero entropy weight added) against `weighted_objective`,
   which skips weights of 1 and 0;
4. the cost of one small torch op (``x + 1`` on a 256x64 tensor), the floor that
   every one of the ~150 ops of a minibatch step pays;
5. with ``--compile``: a hand-written PPO step for the same two 64x64 networks, eager
   and under ``torch.compile`` (loss and optimizer step), with the compile time; then the
   same step with policy and critic stacked into one batched MLP, eager and compiled,
   interleaved with our default step: what an opt-in compilation would have to beat.

To time an older version of the package, put its checkout first on the path:
``PYTHONPATH=/path/to/old/checkout python benchmarks/update_cost.py --phases-only``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from bench_common import StageTimer, pin_to_last_core  # benchmarks/ is on sys.path

from bbrl_ppo.algorithms.ppo import PPOClip
from bbrl_ppo.cli.training import load_config
from bbrl_ppo.optim.setup import gradient_clipper, setup_optimizer

CARTPOLE = Path(__file__).parent.parent / "configs" / "cartpole.yaml"
#: The stages of the table (no evaluation in these runs).
PHASES = ("prepare_rollout", "update", "after_update")


class PhaseTimedPPO(StageTimer, PPOClip):
    """PPOClip adding up the wall time of each stage of `run`."""


def cartpole_config(steps: int, extra: list[str] = (), path: Path = CARTPOLE):
    overrides = [
        *extra,
        f"algorithm.max_steps={steps}",
        "algorithm.eval_interval=100000000",
        "progress_bar=false",
        "save_best=false",
        "algorithm.checkpoint_interval=null",
    ]
    return load_config(path, overrides)


def phases(steps: int, path: Path = CARTPOLE) -> dict[str, float]:
    algo = PhaseTimedPPO(cartpole_config(steps, path=path))
    start = time.perf_counter()
    algo.run()
    total = time.perf_counter() - start
    algo.close()
    return {"collection": total - sum(algo.seconds.values()), **algo.seconds, "total": total}


ADAM_KINDS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def minibatch_setup(kind: str, flat: bool, batched: bool = False) -> tuple[PPOClip, object]:
    """A PPOClip with Adam of `kind` (flat parameter buffers or not; policy and critic in one
    stacked pass or not) and one CartPole rollout."""
    overrides = [f"algorithm.flat_parameters={flat}", f"algorithm.batched_actor_critic={batched}"]
    algo = PPOClip(cartpole_config(2000, overrides))
    workspace = next(algo.iter_partial_episodes())
    rollout = algo.prepare_rollout(workspace)
    algo._anneal()
    optimizer_config = {"classname": "Adam", "lr": 1e-3, "eps": 1e-5, **ADAM_KINDS[kind]}
    clippers = []
    for name, agent in (
        ("policy_optimizer", algo.train_policy),
        ("critic_optimizer", algo.critic_agent),
    ):
        if flat:  # already flat: rebuilding would flatten the flat parameters again
            optimizer = getattr(algo, name)
            optimizer.param_groups[0].update(fused=kind == "fused", foreach=kind == "foreach")
        else:
            optimizer = setup_optimizer(optimizer_config, agent)
        setattr(algo, name, optimizer)
        clippers.append(gradient_clipper(optimizer, agent))
    algo._gradient_clippers = tuple(clippers)
    return algo, rollout.select(torch.randperm(len(rollout)))


def minibatch_ms(variants: dict[str, tuple[PPOClip, object]], rounds: int = 10) -> dict[str, float]:
    """Median milliseconds per `train_minibatch` of each variant, interleaved in one process.

    Rounds of 40 steps alternate between the variants, so that the machine's
    drift hits them alike; the median of the rounds is reported.
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (algo, batch) in variants.items():
            for _ in range(5):
                algo.train_minibatch(batch)
            start = time.perf_counter()
            for _ in range(40):
                algo.train_minibatch(batch)
            times[name].append((time.perf_counter() - start) / 40 * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


class PlainObjectivePPO(PPOClip):
    """The objective as the plain weighted sum: the contender `weighted_objective` beats."""

    def objective(self, policy_loss, entropy, critic_loss):
        algorithm = self.config.algorithm
        return (
            algorithm.policy_coef * policy_loss
            - algorithm.entropy_coef * entropy
            + algorithm.critic_coef * critic_loss
        )


def objective_setup(algo_class: type[PPOClip]) -> tuple[PPOClip, object]:
    """A CartPole PPO of `algo_class` (flat fused Adam, the defaults) and one rollout."""
    algo = algo_class(cartpole_config(2000, []))
    rollout = algo.prepare_rollout(next(algo.iter_partial_episodes()))
    algo._anneal()
    return algo, rollout


def small_op_us(repeats: int = 5000) -> float:
    x = torch.randn(256, 64)
    for _ in range(100):
        x + 1
    start = time.perf_counter()
    for _ in range(repeats):
        x + 1
    return (time.perf_counter() - start) / repeats * 1e6


def hand_written_step(compiled: bool) -> tuple[float, float]:
    """(first-call seconds, ms per step) of a plain PPO-clip step for two 64x64 MLPs."""

    def mlp(outputs: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(
            torch.nn.Linear(4, 64), torch.nn.Tanh(),
            torch.nn.Linear(64, 64), torch.nn.Tanh(),
            torch.nn.Linear(64, outputs),
        )  # fmt: skip

    policy, critic = mlp(2), mlp(1)
    optimizer = torch.optim.Adam([*policy.parameters(), *critic.parameters()], lr=3e-4)
    obs, actions = torch.randn(256, 4), torch.randint(0, 2, (256,))
    advantages, old_log_probs, returns = torch.randn(256), torch.randn(256), torch.randn(256)

    def loss_fn():
        log_probs = torch.log_softmax(policy(obs), -1).gather(1, actions[:, None]).squeeze(1)
        ratio = torch.exp(log_probs - old_log_probs)
        clipped = ratio.clamp(0.8, 1.2) * advantages
        policy_loss = -torch.min(ratio * advantages, clipped).mean()
        return policy_loss + 0.5 * ((critic(obs).squeeze(1) - returns) ** 2).mean()

    loss = torch.compile(loss_fn) if compiled else loss_fn
    optimizer_step = torch.compile(optimizer.step) if compiled else optimizer.step

    def step():
        optimizer.zero_grad()
        loss().backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
        torch.nn.utils.clip_grad_norm_(critic.parameters(), 0.5)
        optimizer_step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(50):
        step()
    start = time.perf_counter()
    for _ in range(300):
        step()
    return first, (time.perf_counter() - start) / 300 * 1e3


def stacked_hand_written_step(compiled: bool):
    """A plain PPO-clip step with policy and critic as ONE stacked MLP, eager or compiled.

    The two 64x64 networks' hidden layers are stacked to (2, in, out) and evaluated with
    `torch.baddbmm` (three batched products instead of six), each agent's gradient norm
    clipped from its own row, then fused Adam: the best eager form of the step that the
    issue measured, and the form `torch.compile` would have to beat to be worth offering.
    Returns the step function (compiled on its first call).
    """
    torch.manual_seed(0)
    hidden = [
        (torch.randn(2, 4, 64) * 0.5).requires_grad_(),
        torch.zeros(2, 1, 64, requires_grad=True),
        (torch.randn(2, 64, 64) * 0.1).requires_grad_(),
        torch.zeros(2, 1, 64, requires_grad=True),
    ]
    policy_head = [(torch.randn(64, 2) * 0.01).requires_grad_(), torch.zeros(2, requires_grad=True)]
    critic_head = [(torch.randn(64, 1) * 0.1).requires_grad_(), torch.zeros(1, requires_grad=True)]
    parameters = [*hidden, *policy_head, *critic_head]
    optimizer = torch.optim.Adam(parameters, lr=3e-4, fused=True)
    obs, actions = torch.randn(256, 4), torch.randint(0, 2, (256,))
    advantages, old_log_probs, returns = torch.randn(256), torch.randn(256), torch.randn(256)

    def loss_fn() -> torch.Tensor:
        w1, b1, w2, b2 = hidden
        features = torch.tanh(torch.baddbmm(b1, obs.expand(2, -1, -1), w1))
        features = torch.tanh(torch.baddbmm(b2, features, w2))
        policy_features, critic_features = features.unbind(0)
        logits = torch.addmm(policy_head[1], policy_features, policy_head[0])
        log_probs = torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)
        ratio = torch.exp(log_probs - old_log_probs)
        clipped = ratio.clamp(0.8, 1.2) * advantages
        policy_loss = -torch.min(ratio * advantages, clipped).mean()
        values = torch.addmm(critic_head[1], critic_features, critic_head[0]).squeeze(1)
        return policy_loss + 0.5 * ((values - returns) ** 2).mean()

    loss = torch.compile(loss_fn) if compiled else loss_fn

    def clip_each_agent() -> None:
        # Each agent's squared norm: its row of the stacked grads plus its head.
        rows = torch.stack([p.grad.flatten(1).square().sum(1) for p in hidden]).sum(0)
        heads = [sum(p.grad.square().sum() for p in head) for head in (policy_head, critic_head)]
        norms = (rows + torch.stack(heads)).sqrt()
        scales = (0.5 / (norms + 1e-6)).clamp(max=1.0)
        for p in hidden:
            p.grad.mul_(scales.view(2, *([1] * (p.dim() - 1))))
        for scale, head in zip(scales.unbind(0), (policy_head, critic_head), strict=True):
            for p in head:
                p.grad.mul_(scale)

    def step() -> None:
        optimizer.zero_grad()
        loss().backward()
        clip_each_agent()
        optimizer.step()

    return step


def compile_table(rounds: int = 10) -> None:
    """Eager vs compiled stacked steps beside our default, interleaved rounds of 40 steps."""
    steps = {"stacked, eager": stacked_hand_written_step(False)}
    compiled = stacked_hand_written_step(True)
    start = time.perf_counter()
    compiled()
    print(f"  stacked, torch.compile: first call (compilation) {time.perf_counter() - start:.1f} s")
    steps["stacked, torch.compile"] = compiled
    algo, batch = minibatch_setup("fused", True, batched=True)
    steps["ours, default (eager)"] = lambda: algo.train_minibatch(batch)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(5):
                step()
            start = time.perf_counter()
            for _ in range(40):
                step()
            times[name].append((time.perf_counter() - start) / 40 * 1e3)
    for name, values in times.items():
        print(f"  {name:<24} {statistics.median(values):.2f} ms/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="env steps of the timed run")
    parser.add_argument("--repeats", type=int, default=2, help="runs of the phase timing")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument(
        "--phases-only", action="store_true", help="only the phases (works on older versions)"
    )
    parser.add_argument(
        "--config", type=Path, default=CARTPOLE, help="config of the phase timing only"
    )
    args = parser.parse_args()
    last = pin_to_last_core()
    print(f"core {last}, 1 torch thread, torch {torch.__version__}")

    runs = [phases(args.steps, args.config) for _ in range(args.repeats)]
    print(f"\nPPOClip on {args.config}, {args.steps} env steps, evaluation off (s):")
    for name in ("collection", *PHASES, "total"):
        values = " / ".join(f"{run[name]:.2f}" for run in runs)
        print(f"  {name:<16} {values}")

    if args.phases_only:
        return
    print("\ntrain_minibatch on one CartPole rollout (ms, median of 10 interleaved rounds):")
    variants = {
        f"Adam {kind:<8}{' flat' if flat else ''}": minibatch_setup(kind, flat)
        for flat in (False, True)
        for kind in ADAM_KINDS
    }
    # The default: flat fused Adam, policy and critic in one stacked pass.
    variants["Adam fused flat batched (default)"] = minibatch_setup("fused", True, batched=True)
    for name, milliseconds in minibatch_ms(variants).items():
        print(f"  {name:<34} {milliseconds:.2f}")
    _, eager_ms = hand_written_step(compiled=False)
    print(f"  {'plain eager torch, hand-written':<34} {eager_ms:.2f}")

    # 40 rounds: the two forms differ by less than 10 rounds' run-to-run spread.
    print("\nthe same step by objective form (ms, median of 40 interleaved rounds):")
    objectives = {
        "weighted_objective": objective_setup(PPOClip),
        "plain weighted sum": objective_setup(PlainObjectivePPO),
    }
    for name, milliseconds in minibatch_ms(objectives, rounds=40).items():
        print(f"  {name:<20} {milliseconds:.2f}")

    print(f"\nx + 1 on a 256x64 float tensor: {small_op_us():.1f} us")

    if args.compile:
        print("\nhand-written PPO step, two 64x64 MLPs, batch 256:")
        for compiled in (False, True):
            first, per_step = hand_written_step(compiled)
            label = "torch.compile" if compiled else "eager"
            print(f"  {label:<14} first call {first:.1f} s, then {per_step:.2f} ms/step")
        print("\npolicy and critic stacked, hand-written, vs ours (ms, 10 interleaved rounds):")
        compile_table()


if __name__ == "__main__":
    main()
