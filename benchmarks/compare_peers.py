"""Our PPO against Stable-Baselines3's: same hyper-parameters, seeds, envs, one thread each.

Usage:
    python benchmarks/compare_peers.py [--case cartpole] [--seeds 1 2 3] [--max-steps N] \\
        [--eval-interval N] [--nb-evals 10] [--cores 1] [--out outputs/compare_peers]
    python benchmarks/compare_peers.py --case cartpole --report     # the table again
    make bench-peers CASE=pendulum    # installs the `bench` extra (stable-baselines3) first

Cases (``--case``; ``--seeds`` and ``--max-steps`` override a case's seeds and budget):
    cartpole           configs/cartpole.yaml with max_steps 100,000; seeds 1 2 3; target 500
    cartpole-defaults  each side with its own defaults: ours configs/cartpole.yaml as is
                       (50,000 steps), SB3 with rl-zoo's CartPole-v1 PPO hyper-parameters
                       (100,000 steps); seeds 1 2 3; compare "train s to target" (500)
    pendulum           configs/pendulum.yaml (200,000 steps); seed 1; target -200
    lunarlander        configs/lunarlander.yaml (1M steps); seed 1; target 200 (15+ min a side)
    halfcheetah        configs/halfcheetah.yaml (1M steps, the PPO paper's MuJoCo settings);
                       seeds 1 2; target 1442 (CleanRL's 1M-step figure); evaluations on
                       the config's grid (every 20,480 steps); about an hour a side here
                       (needs the `mujoco` extra)

``--eval-interval`` defaults to the case's: 2,048 env steps unless said above.

Every training run is a subprocess of this script (``--child ours|sb3 --spec FILE``) that
writes a JSON result: each is pinned with ``taskset`` to one core (the last one by default;
``--cores`` lists several, one run on each at a time), with ``OMP_NUM_THREADS=1``,
``MKL_NUM_THREADS=1`` and ``torch.set_num_threads(1)``. Runs go ours, SB3, ours, SB3 (seed
by seed), so that drift of the machine's speed hits both sides alike. The SB3 side mirrors
the YAML config argument by argument (printed before the runs) and never imports bbrl_ppo;
ours never imports stable_baselines3. Both step the same envs: SB3's are made with
``render_mode=None`` (its ``make_vec_env`` would give them ``"rgb_array"``, which costs
LunarLander up to 10x per step late in training: `sb3_env_kwargs`).

How evaluation is kept out of training time, on both sides alike: after the first update
past each multiple of ``eval_interval`` env steps (a fixed grid on both sides), ``nb_evals``
deterministic episodes run side by side in a vector env of ``nb_evals`` envs (SB3: of
``--sb3-eval-envs`` envs when given; 1 is the usual ``EvalCallback`` set-up) (ours:
`evaluate`, called once per update; SB3: ``evaluate_policy`` in a callback at the start of
each rollout, i.e. right after each ``train()``, and at the end of ``learn``). Each side
adds up the wall time spent inside its evaluations and subtracts it from the wall time of
``run()`` / ``learn()``. Our run also writes a training checkpoint at the end
(``checkpoints/last.pt``, which SB3 does not): it is timed and subtracted too; periodic
checkpoints, ``save_best`` and the progress bar are off. Building the algorithm (envs,
networks) is outside the timed part on both sides.

After training (outside the timed part), each side also plays its final policy,
deterministically, over ``--final-episodes`` episodes (100 by default, 0 for none) that
start from the same states on both sides and for every seed: env ``i`` of that last
evaluation is seeded ``FINAL_EVAL_SEED + i`` (both libraries reset gymnasium's envs the
same way from a seed). The grid's evaluations cannot be compared that way: each side
draws its evaluation episodes' start states in its own order (SB3's evaluation env also
auto-resets at each episode end), so the two sides' last evaluations start from
different states; on an env whose return depends much on its start state (Pendulum),
that alone moves the mean. Column ``common final``: the mean return over those episodes.

``--whole-process`` times each side as a user runs it instead, from process start to exit
(imports, env and network construction, logging and checkpoints included): ours is
``python -m bbrl_ppo train CONFIG algorithm.seed=S [algorithm.max_steps=N]`` with the config's
own evaluation protocol, best-agent saving, tensorboard log and progress bar; SB3 is
``PPO(...).learn(N)`` with the mirrored hyper-parameters and no evaluation (SB3's default).
Its table (``process s``, our final evaluation, each process's peak RSS from ``wait4``) goes
beside the training-only table of the default mode; results in ``OUT/CASE-whole-process/``.

Columns: ``train s``, wall seconds of the whole budget less evaluations; ``steps/s``, env
steps over ``train s``; ``steps to target`` and ``train s to target``, at the first
evaluation whose mean reaches the target; ``wall s incl. eval``, the whole ``run()`` /
``learn()``; ``final eval``, the last evaluation's mean; ``peak RSS``, the child's
``ru_maxrss``; ``common final``, the final policy's mean return over the common
start states above. Env steps count real transitions on both sides (ours does not count the
reset-only step after an episode end). The ratio row is the median over seeds of the
per-seed ratios ours / SB3 (below 1 is better for us, except steps/s). The differences
between the two PPOs that remain with the same hyper-parameters are listed in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from queue import Queue
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("ours", "sb3")
SIDE_NAMES = {"ours": "bbrl_ppo", "sb3": "SB3"}
#: The columns of our evals.csv (bbrl_ppo.persistence.run_files.EVALS_CSV_COLUMNS, checked
#: by the tests), written here since the SB3 side never imports bbrl_ppo.
RUN_DIR_EVALS_COLUMNS = (
    "nb_steps",
    "wall_s",
    "reward_mean",
    "reward_std",
    "reward_min",
    "reward_max",
)


#: Seed of env 0 of the final evaluation over common start states (env i: + i), far from
#: both the training envs' seeds (seed + i) and the grid evaluations' (seed + 1,000,003 + i).
FINAL_EVAL_SEED = 2_000_000_000


@dataclass(frozen=True)
class Case:
    config: str
    target: float
    seeds: tuple[int, ...]
    #: Our budget (None: the config's max_steps).
    max_steps: int | None = None
    #: "mirror": SB3 gets our config's hyper-parameters; "rl-zoo": rl-zoo's tuned ones.
    sb3: str = "mirror"
    #: SB3's total_timesteps (None: the same as ours).
    sb3_max_steps: int | None = None
    #: Env steps between evaluations on both sides (None: the config's); ``--eval-interval``
    #: overrides it.
    eval_interval: int | None = 2048


CASES = {
    "cartpole": Case("configs/cartpole.yaml", 500.0, (1, 2, 3), max_steps=100_000),
    "cartpole-defaults": Case(
        "configs/cartpole.yaml", 500.0, (1, 2, 3), sb3="rl-zoo", sb3_max_steps=100_000
    ),
    "pendulum": Case("configs/pendulum.yaml", -200.0, (1,)),
    "lunarlander": Case("configs/lunarlander.yaml", 200.0, (1,)),
    # Episodes of 1000 steps: 10 of them every 2,048 steps would cost more env steps than
    # training; the config's own grid keeps evaluation near 10% of the run.
    "halfcheetah": Case("configs/halfcheetah.yaml", 1442.0, (1, 2), eval_interval=None),
}

#: rl-baselines3-zoo's tuned PPO for CartPole-v1 (hyperparams/ppo.yml, with n_timesteps
#: 1e5; ``lin_x`` is a linear decay from x to 0). Everything else is SB3's default:
#: vf_coef 0.5, max_grad_norm 0.5, 64x64 tanh actor and critic, orthogonal init, Adam eps 1e-5.
RL_ZOO_CARTPOLE = {
    "n_envs": 8,
    "normalize": None,
    "ppo": {
        "n_steps": 32,
        "batch_size": 256,
        "n_epochs": 20,
        "gamma": 0.98,
        "gae_lambda": 0.8,
        "ent_coef": 0.0,
        "learning_rate": {"linear": 1e-3},
        "clip_range": {"linear": 0.2},
    },
    "policy_kwargs": {},
}


# -- the two sides' settings, as plain data (written to each child's spec file) ------------
def our_overrides(case: Case, args: argparse.Namespace, seed: int, run_dir: Path) -> list[str]:
    overrides = [
        f"algorithm.seed={seed}",
        f"algorithm.eval_interval={args.eval_interval}",
        f"algorithm.nb_evals={args.nb_evals}",
        "algorithm.checkpoint_interval=null",
        "algorithm.stop_at_reward=null",
        "save_best=false",
        "progress_bar=false",
        f"base_dir={run_dir.resolve()}",
    ]
    max_steps = args.max_steps or case.max_steps
    if max_steps:
        overrides.append(f"algorithm.max_steps={max_steps}")
    return overrides


def sb3_mirror(cfg: Any) -> dict[str, Any]:
    """SB3's arguments for our config: every hyper-parameter under SB3's name.

    Raises ValueError for settings SB3's PPO has no counterpart for.
    """
    from omegaconf import OmegaConf

    from bbrl_ppo.agents.networks import ACTIVATIONS

    algorithm, optimizer = cfg.algorithm, cfg.optimizer
    if algorithm.variant != "ppo_clip":
        raise ValueError(
            f"algorithm.variant={algorithm.variant!r}: SB3 has only the clipped PPO (ppo_clip)"
        )
    if algorithm.policy_coef != 1.0 or algorithm.state_dependent_std:
        raise ValueError("policy_coef != 1 and state_dependent_std have no SB3 counterpart")
    if cfg.gym_env.vectorization != "sync":
        raise ValueError("gym_env.vectorization must be 'sync' (SB3's DummyVecEnv)")
    optimizer_kwargs = {
        key: value
        for key, value in optimizer.items()
        if key not in ("classname", "lr") and value is not None
    }
    policy_kwargs: dict[str, Any] = {
        "net_arch": {
            "pi": list(algorithm.architecture.actor_hidden_size),
            "vf": list(algorithm.architecture.critic_hidden_size),
        },
        "activation_fn": ACTIVATIONS[algorithm.architecture.activation].__name__,
        "ortho_init": True,
        "optimizer_class": str(optimizer.classname).rsplit(".", 1)[-1],
        "optimizer_kwargs": optimizer_kwargs,
    }
    if is_continuous(cfg.gym_env.env_name, OmegaConf.to_container(cfg.gym_env.env_args)):
        policy_kwargs["log_std_init"] = float(algorithm.init_log_std)
    normalize = None
    if algorithm.normalize_observations or algorithm.normalize_rewards:
        normalize = {
            "norm_obs": bool(algorithm.normalize_observations),
            "norm_reward": bool(algorithm.normalize_rewards),
            "clip_obs": float(algorithm.observation_clip),
            # Our RewardScaler does not clip scaled rewards (VecNormalize's default is 10).
            "clip_reward": float("inf"),
            "gamma": float(algorithm.discount_factor),
        }
    return {
        "n_envs": int(algorithm.n_envs),
        "normalize": normalize,
        "ppo": {
            "n_steps": int(algorithm.transitions_per_env),
            "batch_size": int(algorithm.batch_size),
            "n_epochs": int(algorithm.opt_epochs),
            "gamma": float(algorithm.discount_factor),
            "gae_lambda": float(algorithm.gae_lambda),
            "learning_rate": _schedule(float(optimizer.lr), algorithm.anneal_lr),
            "clip_range": _schedule(float(algorithm.clip_range), algorithm.anneal_clip_range),
            # Ours takes the worse of the clipped and unclipped errors; SB3 the clipped one.
            "clip_range_vf": algorithm.clip_range_vf,
            "ent_coef": float(algorithm.entropy_coef),
            "vf_coef": float(algorithm.critic_coef),
            "max_grad_norm": float(algorithm.max_grad_norm),
            "target_kl": algorithm.target_kl,
            "normalize_advantage": bool(algorithm.normalize_advantage),
        },
        "policy_kwargs": policy_kwargs,
    }


def _schedule(value: float, linear: bool) -> float | dict[str, float]:
    return {"linear": value} if linear else value


def is_continuous(env_name: str, env_args: dict[str, Any]) -> bool:
    import gymnasium as gym

    env = gym.make(env_name, **env_args)
    try:
        return isinstance(env.action_space, gym.spaces.Box)
    finally:
        env.close()


def case_eval_interval(case: Case) -> int:
    """Env steps between a case's evaluations: its own, else its config's."""
    if case.eval_interval is not None:
        return case.eval_interval
    from bbrl_ppo.cli.training import load_config

    return int(load_config(ROOT / case.config).algorithm.eval_interval)


def make_specs(case_name: str, args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """One spec per run, in the order they run: ours, SB3, ours, SB3... seed by seed."""
    from omegaconf import OmegaConf

    from bbrl_ppo.agents.env import EVAL_SEED_OFFSET
    from bbrl_ppo.cli.training import load_config

    case = CASES[case_name]
    cfg = load_config(ROOT / case.config)
    env_name = str(cfg.gym_env.env_name)
    env_args = OmegaConf.to_container(cfg.gym_env.env_args)
    sb3_settings = RL_ZOO_CARTPOLE if case.sb3 == "rl-zoo" else sb3_mirror(cfg)
    sb3_steps = args.max_steps or case.sb3_max_steps or case.max_steps or cfg.algorithm.max_steps
    specs = []
    for seed in args.seeds:
        run_dir = out / f"ours-S{seed}"
        common = {"case": case_name, "seed": seed, "target": case.target}
        overrides = our_overrides(case, args, seed, run_dir)
        if args.whole_process:  # the config as a user runs it: only seed, budget, place
            max_steps = args.max_steps or case.max_steps
            overrides = [f"algorithm.seed={seed}", f"base_dir={run_dir.resolve()}"]
            overrides += [f"algorithm.max_steps={max_steps}"] if max_steps else []
        common["final_episodes"] = 0 if args.whole_process else args.final_episodes
        specs.append(
            {
                **common,
                "side": "ours",
                "config": case.config,
                "overrides": overrides,
                "run_dir": str(run_dir.resolve()),
            }
        )
        specs.append(
            {
                **common,
                "side": "sb3",
                "env_id": env_name,
                "env_kwargs": env_args,
                **sb3_settings,
                "total_timesteps": int(sb3_steps),
                "eval_interval": args.eval_interval,
                "nb_evals": args.nb_evals,
                "eval_envs": args.sb3_eval_envs or args.nb_evals,
                "eval_seed": seed + EVAL_SEED_OFFSET,
                # SB3 as a user runs it: no evaluation unless a callback asks for one.
                "evaluate": not args.whole_process,
            }
        )
    return specs


def describe_sb3(spec: dict[str, Any]) -> str:
    """The SB3 calls a spec stands for, for a reader to check against the YAML config."""

    def show(value: Any) -> str:
        if isinstance(value, dict) and set(value) == {"linear"}:
            return f"LinearSchedule({value['linear']:g} -> 0 over the budget)"
        if isinstance(value, dict):
            return "dict(" + ", ".join(f"{k}={show(v)}" for k, v in value.items()) + ")"
        return repr(value)

    env = f"make_vec_env({spec['env_id']!r}, n_envs={spec['n_envs']}, seed=SEED"
    env += f", env_kwargs={sb3_env_kwargs(spec)!r})"
    lines = [f"  env = {env}"]
    if spec["normalize"]:
        lines.append(f"  env = VecNormalize(env, {show(spec['normalize'])[5:-1]})")
    lines.append("  PPO('MlpPolicy', env,")
    lines += [f"      {key}={show(value)}," for key, value in spec["ppo"].items()]
    policy_kwargs = spec["policy_kwargs"]
    if policy_kwargs:
        lines.append("      policy_kwargs=dict(")
        for key, value in policy_kwargs.items():
            shown = f"nn.{value}" if key == "activation_fn" else show(value)
            shown = f"torch.optim.{value}" if key == "optimizer_class" else shown
            lines.append(f"          {key}={shown},")
        lines.append("      ),")
    else:
        lines.append("      policy_kwargs=SB3's defaults (64x64 tanh pi and vf, ortho init, Adam),")
    lines.append(f"      seed=SEED, device='cpu').learn({spec['total_timesteps']:_})")
    eval_env = f"make_vec_env({spec['env_id']!r}, n_envs={spec['eval_envs']}, seed=SEED+"
    eval_env += f"{spec['eval_seed'] - spec['seed']}, env_kwargs={sb3_env_kwargs(spec)!r})"
    if spec["normalize"]:
        eval_env = f"VecNormalize({eval_env}, training=False, norm_reward=False) synced"
    lines.append(
        f"  evaluation every {spec['eval_interval']:,} env steps (checked after each train()): "
        f"evaluate_policy(model, {eval_env}, n_eval_episodes={spec['nb_evals']}, "
        "deterministic=True)"
    )
    return "\n".join(lines)


# -- the children: one training run each, results to JSON --------------------------------
@dataclass
class Pause:
    began: float
    training_s: float
    wall_s: float


class TrainingClock:
    """Wall time since `start`, less the time spent in excluded parts (evaluations...)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded: dict[str, float] = {"eval": 0.0, "checkpoint": 0.0}
        #: One row per evaluation: env steps, training and wall seconds before it, returns.
        self.evals: list[dict[str, float]] = []

    def pause(self) -> Pause:
        now = time.perf_counter()
        wall_s = now - self.start
        return Pause(now, wall_s - sum(self.excluded.values()), wall_s)

    def resume(
        self, pause: Pause, part: str, steps: int = 0, returns: list[float] | None = None
    ) -> None:
        """Exclude the time since `pause`; `returns`: the episode returns of an evaluation."""
        self.excluded[part] += time.perf_counter() - pause.began
        if returns is None:
            return
        self.evals.append(
            {
                "steps": steps,
                "train_s": pause.training_s,
                "wall_s": pause.wall_s,
                "mean": statistics.fmean(returns),
                "std": statistics.pstdev(returns),
                "min": min(returns),
                "max": max(returns),
            }
        )

    def result(self, steps: int) -> dict[str, Any]:
        wall_s = time.perf_counter() - self.start
        return {
            "steps": steps,
            "wall_s": wall_s,
            "train_s": wall_s - sum(self.excluded.values()),
            "eval_s": self.excluded["eval"],
            "checkpoint_s": self.excluded["checkpoint"],
            "evals": self.evals,
        }


def train_ours(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    import torch

    torch.set_num_threads(1)
    import bbrl_ppo
    from bbrl_ppo.algorithms.ppo import ALGORITHMS
    from bbrl_ppo.cli.training import load_config

    shutil.rmtree(spec["run_dir"], ignore_errors=True)
    cfg = load_config(ROOT / spec["config"], spec["overrides"])

    class Timed(ALGORITHMS[cfg.algorithm.variant]):
        """Times `evaluate` (called after each update) and the checkpoint writes."""

        def evaluate(self, force: bool = False) -> bool:
            self.last_returns = None
            pause = clock.pause()
            improved = super().evaluate(force)
            clock.resume(pause, "eval", self.nb_steps, self.last_returns)
            return improved

        def register_evaluation(self, rewards, policy=None) -> bool:
            self.last_returns = torch.as_tensor(rewards).flatten().tolist()
            return super().register_evaluation(rewards, policy)

        def save_checkpoint(self):
            pause = clock.pause()
            try:
                return super().save_checkpoint()
            finally:
                clock.resume(pause, "checkpoint")

    algo = Timed(cfg)
    clock = TrainingClock()
    algo.run()
    result = clock.result(algo.nb_steps)
    result["final_common"] = our_common_final_returns(algo, spec.get("final_episodes", 0))
    algo.close()
    return result, {"bbrl_ppo": bbrl_ppo.__version__}


def our_common_final_returns(algo: Any, episodes: int) -> list[float]:
    """The final evaluation policy's returns over the common start states (none for 0)."""
    if episodes <= 0:
        return []
    from bbrl.agents import Agents, TemporalAgent

    from bbrl_ppo.algorithms.evaluation import play_episodes

    env = algo.make_env_agent(episodes, autoreset=False, seed=FINAL_EVAL_SEED)
    try:
        returns = play_episodes(TemporalAgent(Agents(env, algo.current_eval_policy)))
    finally:
        env.close()
    return [float(value) for value in returns]


def train_sb3(spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    import stable_baselines3
    import torch

    torch.set_num_threads(1)
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.utils import LinearSchedule
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    def schedule(value: Any) -> Any:
        return LinearSchedule(value["linear"], 0.0, 1.0) if isinstance(value, dict) else value

    def make_envs(n_envs: int, seed: int) -> Any:
        return make_vec_env(spec["env_id"], n_envs, seed=seed, env_kwargs=sb3_env_kwargs(spec))

    def make_eval_envs(n_envs: int, seed: int) -> Any:
        """Evaluation envs: with normalization, frozen statistics, synced before each use."""
        envs = make_envs(n_envs, seed)
        if not spec["normalize"]:
            return envs
        return VecNormalize(
            envs,
            training=False,
            norm_obs=spec["normalize"]["norm_obs"],
            norm_reward=False,
            clip_obs=spec["normalize"]["clip_obs"],
        )

    train_env = make_envs(spec["n_envs"], spec["seed"])
    eval_env = make_eval_envs(spec["eval_envs"], spec["eval_seed"])
    if spec["normalize"]:
        train_env = VecNormalize(train_env, **spec["normalize"])
    ppo = {key: schedule(value) for key, value in spec["ppo"].items()}
    policy_kwargs = dict(spec["policy_kwargs"])
    if "activation_fn" in policy_kwargs:
        policy_kwargs["activation_fn"] = getattr(torch.nn, policy_kwargs["activation_fn"])
    if "optimizer_class" in policy_kwargs:
        policy_kwargs["optimizer_class"] = getattr(torch.optim, policy_kwargs["optimizer_class"])
    model = PPO(
        "MlpPolicy",
        train_env,
        **ppo,
        policy_kwargs=policy_kwargs,
        seed=spec["seed"],
        device="cpu",
        verbose=0,
    )

    class TimedEvaluation(BaseCallback):
        """Evaluates after each ``train()`` when due, as our `evaluate` after each update."""

        last_eval_step = 0

        def _on_rollout_start(self) -> None:
            self._evaluate_if_due()

        def _on_training_end(self) -> None:
            self._evaluate_if_due()

        def _on_step(self) -> bool:
            return True

        def _evaluate_if_due(self) -> None:
            interval = spec["eval_interval"]  # the grid of multiples, as our EpisodicAlgo
            if self.num_timesteps // interval <= self.last_eval_step // interval:
                return
            self.last_eval_step = self.num_timesteps
            pause = clock.pause()
            if spec["normalize"]:
                sync_envs_normalization(self.training_env, eval_env)
            returns, _ = evaluate_policy(
                self.model,
                eval_env,
                n_eval_episodes=spec["nb_evals"],
                deterministic=True,
                return_episode_rewards=True,
            )
            clock.resume(pause, "eval", self.num_timesteps, [float(r) for r in returns])

    clock = TrainingClock()
    callback = TimedEvaluation() if spec.get("evaluate", True) else None
    model.learn(total_timesteps=spec["total_timesteps"], callback=callback)
    result = clock.result(model.num_timesteps)
    result["final_common"] = []
    episodes = spec.get("final_episodes", 0)
    if episodes > 0:
        # One episode per env, env i seeded FINAL_EVAL_SEED + i at its first reset.
        final_env = make_eval_envs(episodes, FINAL_EVAL_SEED)
        if spec["normalize"]:
            sync_envs_normalization(train_env, final_env)
        returns, _ = evaluate_policy(
            model,
            final_env,
            n_eval_episodes=episodes,
            deterministic=True,
            return_episode_rewards=True,
        )
        result["final_common"] = [float(value) for value in returns]
        final_env.close()
    train_env.close()
    eval_env.close()
    return result, {"stable_baselines3": stable_baselines3.__version__}


def sb3_env_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    """The env arguments of SB3's envs: ours, with no render mode unless ours set one.

    SB3's `make_vec_env` makes its envs with ``render_mode="rgb_array"`` unless told
    otherwise, and some envs do per-step work for rendering then: LunarLander adds a
    Box2D body per engine firing (its flame particles), which only `render` ever removes,
    so an episode that fires its engines for 1,000 steps piles up hundreds of them and
    each physics step costs up to 10 times more. Our envs have no render mode: both
    sides step the same env this way.
    """
    return {"render_mode": None, **spec["env_kwargs"]}


def run_child(side: str, spec_path: Path) -> None:
    """Train once as the spec says; write the result JSON and the evaluations CSV."""
    spec = json.loads(spec_path.read_text())
    result, versions = (train_ours if side == "ours" else train_sb3)(spec)
    import gymnasium
    import torch

    versions.update(torch=torch.__version__, gymnasium=gymnasium.__version__)

    result.update(
        side=side,
        seed=spec["seed"],
        spec=spec,
        versions=versions,
        torch_threads=torch.get_num_threads(),
        cores=sorted(os.sched_getaffinity(0)),
        # ru_maxrss is in KiB on Linux.
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        date=datetime.now().isoformat(timespec="seconds"),
    )
    result_path = spec_path.with_name(f"{side}-S{spec['seed']}.json")
    result_path.write_text(json.dumps(result, indent=1))
    with result_path.with_suffix(".evals.csv").open("w", newline="") as file:
        writer = csv.DictWriter(
            file, fieldnames=["steps", "train_s", "wall_s", *"mean std min max".split()]
        )
        writer.writeheader()
        writer.writerows(result["evals"])
    if side == "sb3":
        write_peer_run_dir(spec_path.with_name(f"sb3-S{spec['seed']}"), spec, result, versions)


def write_peer_run_dir(
    run_dir: Path, spec: dict[str, Any], result: dict[str, Any], versions: dict[str, str]
) -> None:
    """SB3's run as a run directory like ours, so that ``bbrl-ppo plot`` / ``report`` read it.

    ``evals.csv`` has our columns (``wall_s``: wall seconds since training started,
    evaluations included, as ours); ``config.yaml`` names the peer under ``peer:``.
    """
    from omegaconf import OmegaConf

    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    config = {
        "peer": {"name": "Stable-Baselines3", "version": versions["stable_baselines3"]},
        "gym_env": {"env_name": spec["env_id"], "env_args": spec["env_kwargs"]},
        "algorithm": {
            "variant": "ppo_clip",
            "seed": spec["seed"],
            "max_steps": spec["total_timesteps"],
            "eval_interval": spec["eval_interval"],
            "nb_evals": spec["nb_evals"],
        },
        "sb3": {key: spec[key] for key in ("n_envs", "normalize", "ppo", "policy_kwargs")},
    }
    OmegaConf.save(OmegaConf.create(config), run_dir / "config.yaml")
    with (run_dir / "evals.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(RUN_DIR_EVALS_COLUMNS)
        for row in result["evals"]:
            writer.writerow(
                [row["steps"], row["wall_s"], row["mean"], row["std"], row["min"], row["max"]]
            )


# -- the parent: orchestration and the table -----------------------------------------------
def launch(spec: dict[str, Any], out: Path, cores: Queue, whole_process: bool = False) -> None:
    """Run one child on a core taken from `cores` (given back afterwards).

    With `whole_process`, our side is the ``bbrl-ppo train`` command itself, and each
    process is timed from its start to its exit (`time_process`).
    """
    name = f"{spec['side']}-S{spec['seed']}"
    spec_path = out / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    (out / f"{name}.json").unlink(missing_ok=True)
    (out / f"{name}.process.json").unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", spec["side"]]
    command += ["--spec", str(spec_path.resolve())]
    if whole_process and spec["side"] == "ours":
        shutil.rmtree(spec["run_dir"], ignore_errors=True)
        command = [sys.executable, "-m", "bbrl_ppo", "train", spec["config"], *spec["overrides"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    core = cores.get()
    try:
        if shutil.which("taskset"):
            command = ["taskset", "-c", str(core), *command]
        print(f"  {SIDE_NAMES[spec['side']]:<8} seed {spec['seed']} on core {core}...", flush=True)
        with (out / f"{name}.log").open("w") as log:
            if not whole_process:
                subprocess.run(command, env=env, stdout=log, stderr=log, cwd=ROOT)
                return
            measured = time_process(command, env, log)
        measured.update(side=spec["side"], seed=spec["seed"], core=core, command=command)
        if spec["side"] == "ours":
            measured["final_eval"] = last_evaluation(Path(spec["run_dir"]) / "evals.csv")
        (out / f"{name}.process.json").write_text(json.dumps(measured, indent=1))
    finally:
        cores.put(core)


def time_process(command: list[str], env: dict[str, str], log: Any) -> dict[str, Any]:
    """Wall seconds from the process's start to its exit, its exit code and peak RSS."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux; wait4 gives this child's (and its children's) own.
    return {
        "process_s": seconds,
        "returncode": process.returncode,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "date": datetime.now().isoformat(timespec="seconds"),
    }


def last_evaluation(evals_csv: Path) -> float | None:
    """The mean return of a run's last evaluation, None if it made none."""
    if not evals_csv.is_file():
        return None
    with evals_csv.open() as file:
        rows = list(csv.DictReader(file))
    return float(rows[-1]["reward_mean"]) if rows else None


def print_process_table(case_name: str, out: Path, seeds: list[int]) -> None:
    """The whole-process times of both sides, seed by seed, with the ratio ours / SB3."""
    rows = {}
    for seed in seeds:
        for side in SIDES:
            path = out / f"{side}-S{seed}.process.json"
            rows[seed, side] = json.loads(path.read_text()) if path.is_file() else None
    print(
        f"{case_name}, whole process (start to exit): ours `bbrl-ppo train` with the config's "
        "own evaluations; SB3 `PPO(...).learn()` without evaluation"
    )
    header = (
        f"{'seed':>4} | {'side':<8} | {'process s':>9} | {'final eval':>10} | {'peak RSS MiB':>12}"
    )
    print(header)
    print("-" * len(header))
    for (seed, side), row in rows.items():
        if row is None or row["returncode"] != 0:
            print(f"{seed:>4} | {SIDE_NAMES[side]:<8} | failed or missing: see {side}-S{seed}.log")
            continue
        final = row.get("final_eval")
        final_text = f"{final:,.1f}" if final is not None else "n/a"
        print(
            f"{seed:>4} | {SIDE_NAMES[side]:<8} | {row['process_s']:>9.1f} | {final_text:>10} | "
            f"{row['peak_rss_mib']:>12,.0f}"
        )
    ratios = [
        rows[seed, "ours"]["process_s"] / rows[seed, "sb3"]["process_s"]
        for seed in seeds
        if all(rows[seed, side] and rows[seed, side]["returncode"] == 0 for side in SIDES)
    ]
    if ratios:
        print(
            f"ours/SB3 process s: median {statistics.median(ratios):.2f} over {len(ratios)} "
            f"seeds (per seed: {', '.join(f'{ratio:.2f}' for ratio in ratios)})"
        )


def first_reaching(result: dict[str, Any], target: float) -> dict[str, float] | None:
    return next((row for row in result["evals"] if row["mean"] >= target), None)


def summarize(result: dict[str, Any], target: float) -> dict[str, float | None]:
    reached = first_reaching(result, target)
    common = result.get("final_common")  # absent from results made before it existed
    return {
        "steps": result["steps"],
        "train_s": result["train_s"],
        "steps_per_s": result["steps"] / result["train_s"],
        "steps_to_target": reached["steps"] if reached else None,
        "train_s_to_target": reached["train_s"] if reached else None,
        "wall_s": result["wall_s"],
        "eval_s": result["eval_s"],
        "final_eval": result["evals"][-1]["mean"] if result["evals"] else None,
        "common_final": statistics.fmean(common) if common else None,
        "peak_rss_mib": result["peak_rss_mib"],
    }


COLUMNS = [
    # key, header, format, whether the ratio ours / SB3 means anything
    ("steps", "env steps", "{:,.0f}", False),
    ("train_s", "train s", "{:,.1f}", True),
    ("steps_per_s", "steps/s", "{:,.0f}", True),
    ("steps_to_target", "steps to target", "{:,.0f}", True),
    ("train_s_to_target", "train s to target", "{:,.1f}", True),
    ("wall_s", "wall s incl. eval", "{:,.1f}", True),
    ("eval_s", "eval s", "{:,.1f}", False),  # depends on the episodes' lengths
    ("final_eval", "final eval", "{:,.1f}", False),
    ("common_final", "common final", "{:,.1f}", False),  # same start states on both sides
    ("peak_rss_mib", "peak RSS MiB", "{:,.0f}", True),
]


def load_results(out: Path, seeds: list[int]) -> dict[tuple[int, str], dict[str, Any] | None]:
    """Each run's result, by (seed, side), in the order they ran; None for a failed run."""
    results = {}
    for seed in seeds:
        for side in SIDES:
            path = out / f"{side}-S{seed}.json"
            results[seed, side] = json.loads(path.read_text()) if path.is_file() else None
    return results


def print_settings(ours_spec: dict[str, Any] | None, sb3_spec: dict[str, Any] | None) -> None:
    if ours_spec is not None:
        overrides = [
            item
            for item in ours_spec["overrides"]
            if not item.startswith(("base_dir=", "algorithm.seed="))
        ]
        print(f"bbrl_ppo side: load_config({ours_spec['config']!r}) with {' '.join(overrides)}")
    if sb3_spec is not None:
        print("SB3 side (SEED: the run's seed):")
        print(describe_sb3(sb3_spec))


def _cell(value: float | None, fmt: str, title: str) -> str:
    text = fmt.format(value) if value is not None else "n/a"
    return f"{text:>{max(len(title), 9)}}"


def print_table(case_name: str, results: dict[tuple[int, str], dict[str, Any] | None]) -> None:
    case = CASES[case_name]
    rows = {key: summarize(r, case.target) if r else None for key, r in results.items()}
    done = [result for result in results.values() if result]
    if not done:
        print("No results")
        return
    versions = {key: value for result in done for key, value in result["versions"].items()}
    cores = sorted({core for result in done for core in result["cores"]})
    print(
        f"{case_name}: target eval mean >= {case.target:g}; cores {cores}, "
        f"{done[0]['torch_threads']} torch thread; "
        + ", ".join(f"{key} {value}" for key, value in sorted(versions.items()))
    )
    print(
        "train s: wall s of run() / learn() less evaluations (and our final checkpoint "
        "write); ours/SB3: median over seeds of the per-seed ratios"
    )
    header = f"{'seed':>4} | {'side':<8} | " + " | ".join(
        f"{title:>{max(len(title), 9)}}" for _, title, _, _ in COLUMNS
    )
    print(header)
    print("-" * len(header))
    for (seed, side), row in rows.items():
        if row is None:
            print(f"{seed:>4} | {SIDE_NAMES[side]:<8} | no result: see {side}-S{seed}.log")
            continue
        cells = " | ".join(_cell(row[key], fmt, title) for key, title, fmt, _ in COLUMNS)
        print(f"{seed:>4} | {SIDE_NAMES[side]:<8} | {cells}")
    seeds = sorted({seed for seed, _ in rows})
    for side in SIDES if len(seeds) > 1 else ():
        side_rows = [row for (_, s), row in rows.items() if s == side and row]
        cells = " | ".join(
            _cell(_median([row[key] for row in side_rows]), fmt, title)
            for key, title, fmt, _ in COLUMNS
        )
        print(f"{'med':>4} | {SIDE_NAMES[side]:<8} | {cells}")
    ratios = []
    for key, title, _, meaningful in COLUMNS:
        pairs = [(rows[seed, "ours"], rows[seed, "sb3"]) for seed in seeds]
        per_seed = [
            ours[key] / theirs[key]
            for ours, theirs in pairs
            if meaningful and ours and theirs and ours[key] is not None and theirs[key]
        ]
        ratios.append(
            _cell(_median(per_seed), "{:.2f}", title) if per_seed else _cell(None, "", title)
        )
    print(f"{'':>4} | {'ours/SB3':<8} | {' | '.join(ratios)}")
    for side in SIDES:
        reached = sum(
            1 for (_, s), row in rows.items() if s == side and row and row["steps_to_target"]
        )
        runs = sum(1 for (_, s), row in rows.items() if s == side and row)
        print(f"{SIDE_NAMES[side]}: {reached}/{runs} runs reached the target")


def _median(values: list[float | None]) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="cartpole")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the case's")
    parser.add_argument("--max-steps", type=int, help="budget of both sides (default: the case's)")
    parser.add_argument(
        "--eval-interval", type=int, help="env steps (default: the case's, 2048 for most)"
    )
    parser.add_argument("--nb-evals", type=int, default=10, help="episodes per evaluation")
    parser.add_argument(
        "--final-episodes",
        type=int,
        default=100,
        help="episodes of the final policy from start states common to both sides and all "
        "seeds, after training (0: none; not in --whole-process)",
    )
    parser.add_argument(
        "--sb3-eval-envs",
        type=int,
        help="envs of SB3's evaluation env (default: --nb-evals, side by side like ours; "
        "1 is SB3's usual EvalCallback set-up, one episode at a time)",
    )
    parser.add_argument(
        "--cores",
        type=int,
        nargs="+",
        help="cores to pin runs to, one run each (default: the last)",
    )
    parser.add_argument(
        "--sides",
        choices=SIDES,
        nargs="+",
        default=list(SIDES),
        help="which sides to train (default both; e.g. only sb3 beside a `bbrl-ppo train "
        "--seeds` experiment)",
    )
    parser.add_argument(
        "--whole-process",
        action="store_true",
        help="time each side as a user runs it, from process start to exit (ours: the "
        "`bbrl-ppo train` command with the config's own evaluations; SB3: learn() alone)",
    )
    parser.add_argument("--out", default="outputs/compare_peers")
    parser.add_argument(
        "--report", action="store_true", help="only print the table of the runs already made"
    )
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.final_episodes < 0:
        parser.error(f"--final-episodes must be 0 (none) or more, got {args.final_episodes}")
    if args.child:
        os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        run_child(args.child, args.spec)
        return

    args.seeds = args.seeds or list(CASES[args.case].seeds)
    args.eval_interval = args.eval_interval or case_eval_interval(CASES[args.case])
    out = Path(args.out) / (f"{args.case}-whole-process" if args.whole_process else args.case)
    if not args.report:
        out.mkdir(parents=True, exist_ok=True)
        specs = make_specs(args.case, args, out)
        print_settings(specs[0], specs[1])
        specs = [spec for spec in specs if spec["side"] in args.sides]
        cores = args.cores or [max(os.sched_getaffinity(0))]
        free_cores: Queue = Queue()
        for core in cores:
            free_cores.put(core)
        print(f"Training {len(specs)} runs, alternating sides, logs in {out}:")
        with ThreadPoolExecutor(max_workers=len(cores)) as pool:
            for future in [
                pool.submit(launch, spec, out, free_cores, args.whole_process) for spec in specs
            ]:
                future.result()
        print()
    if args.whole_process:
        print_process_table(args.case, out, args.seeds)
        return
    results = load_results(out, args.seeds)
    if args.report:
        first = {
            side: next((r["spec"] for (_, s), r in results.items() if s == side and r), None)
            for side in SIDES
        }
        print_settings(first["ours"], first["sb3"])
        print()
    print_table(args.case, results)


if __name__ == "__main__":
    main()
