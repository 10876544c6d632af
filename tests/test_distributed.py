"""One run on several processes: the same algorithm, identical ranks, exact resume, no hang.

The processes are real (gloo on the CPU, over 127.0.0.1): started by the test with
torchrun's environment (`tests/distributed_workers.py`), or by torchrun itself for
the command line.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from bbrl_ppo.agents.normalizers import RunningMeanStd, batch_moments
from bbrl_ppo.algorithms import stop_signals
from bbrl_ppo.algorithms.ppo import PPOClip, PPOPenalty
from bbrl_ppo.algorithms.rollout import minibatch_indices
from bbrl_ppo.config.schema import ConfigError, validate_config
from bbrl_ppo.distributed.context import DistributedContext
from bbrl_ppo.distributed.devices import resolve_device
from bbrl_ppo.persistence.training_checkpoint import CheckpointMismatchError, checkpoint_file
from tests.distributed_workers import gradient_config, minibatch_gradient, synthetic_minibatch

REPOSITORY = Path(__file__).resolve().parent.parent
#: Seconds a group of processes may take before the test calls it a hang.
PATIENCE = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(**variables: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPOSITORY), **variables}


def run_ranks(runs, directory, world_size=2):
    """Run the scenarios ``{name: (scenario, arguments)}`` on `world_size` processes started
    as torchrun would start them, in `directory`; their results, by rank, then by name."""
    port = str(free_port())
    processes = []
    for rank in range(world_size):
        log = open(directory / f"rank-{rank}.log", "w")  # a file: a full pipe would block a rank
        variables = {"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)}
        command = [sys.executable, "-m", "tests.distributed_workers", str(directory)]
        processes.append(
            subprocess.Popen(
                [*command, json.dumps(runs)],
                cwd=directory,
                env=environment(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, **variables),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        log.close()
    try:
        deadline = time.monotonic() + PATIENCE
        for rank, process in enumerate(processes):
            code = process.wait(timeout=max(deadline - time.monotonic(), 1))
            assert code == 0, (directory / f"rank-{rank}.log").read_text()[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return [torch.load(directory / f"rank-{r}.pt", weights_only=False) for r in range(world_size)]


def small_config(base_dir, env="CartPole-v1", extra=None, **algorithm):
    return {
        "base_dir": base_dir,
        "progress_bar": False,
        "gym_env": {"env_name": env},
        "algorithm": {
            "seed": 3,
            "n_envs": 4,
            "transitions_per_env": 16,
            "batch_size": 16,
            "opt_epochs": 3,
            "max_rollouts": 4,
            "eval_interval": 100,
            "nb_evals": 2,
            **algorithm,
        },
        "extra": extra or {},
    }


def assert_equal_states(first, second, what):
    """Nested dicts, lists, tensors and arrays equal, bit for bit."""
    if isinstance(first, dict):
        assert first.keys() == second.keys(), what
        for name in first:
            assert_equal_states(first[name], second[name], f"{what}.{name}")
    elif isinstance(first, list | tuple):
        assert len(first) == len(second), what
        for index, (one, other) in enumerate(zip(first, second, strict=True)):
            assert_equal_states(one, other, f"{what}[{index}]")
    elif isinstance(first, torch.Tensor):
        assert torch.equal(first, second), what
    elif isinstance(first, np.ndarray):
        assert np.array_equal(first, second), what
    else:
        assert first == second, what


# -- the same algorithm on every rank ------------------------------------------------------
GRADIENT_SPLITS = [[32, 32], [40, 24]]
TWO_RANK_RUNS = {
    "first_observations": ("first_observations", {"config": small_config("first")}),
    "gradients": ("gradients", {"splits": GRADIENT_SPLITS}),
    # PPO-KL on Pendulum with both normalizers and target_kl: every global statistic.
    "same": (
        "train",
        {
            "config": small_config(
                "same",
                env="Pendulum-v1",
                variant="ppo_kl",
                normalize_observations=True,
                normalize_rewards=True,
                target_kl=0.02,
            )
        },
    ),
    "signal": (
        "train",
        {
            "config": small_config(
                "signal", max_rollouts=8, extra={"signal_rank": 1, "signal_at": 3}
            )
        },
    ),
    "nan": (
        "train",
        {"config": small_config("nan", max_rollouts=6, extra={"nan_rank": 1, "nan_at": 2})},
    ),
}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """`TWO_RANK_RUNS` on two processes, one after the other: (directory, results by rank)."""
    directory = tmp_path_factory.mktemp("two-ranks")
    return directory, run_ranks(TWO_RANK_RUNS, directory)


def test_after_some_updates_every_rank_holds_the_same_parameters_bit_for_bit(two_ranks):
    directory, ranks = two_ranks
    first, second = (rank["same"] for rank in ranks)
    assert first["nb_rollouts"] == second["nb_rollouts"] == 4
    assert first["nb_steps"] == second["nb_steps"] == 4 * 4 * 16, "every rank's steps count"
    assert_equal_states(first["modules"], second["modules"], "modules")
    assert_equal_states(first["optimizers"], second["optimizers"], "optimizers")
    assert first["last_eval_reward"] == second["last_eval_reward"]
    normalizer = first["modules"]["train_policy"]["obs_normalizer.stats.count"]
    assert normalizer == 4 * 4 * 16, "the observation statistics hold every rank's steps"

    assert second["base_dir"] == first["base_dir"]
    run = directory / first["base_dir"]
    assert len(list(run.glob("events.out.tfevents.*"))) == 1, "rank 0 alone logs"
    state = torch.load(checkpoint_file(run), weights_only=True)
    assert state["world_size"] == 2 and len(state["other_ranks"]) == 1
    own_obs = state["training_state"]["last_step"]["variables"]["env/env_obs"]
    other = state["other_ranks"][0]["training_state"]
    assert not torch.equal(own_obs, other["last_step"]["variables"]["env/env_obs"])
    with pytest.raises(CheckpointMismatchError, match=r"on 2 process\(es\), and this run has 1"):
        PPOPenalty.resume(run)


def test_two_ranks_step_the_envs_one_process_would_step(two_ranks):
    _, ranks = two_ranks
    algo = PPOClip(small_config("first"))
    one_process = next(algo.iter_partial_episodes())["env/env_obs"][0]
    algo.close()
    every_rank = torch.cat([rank["first_observations"] for rank in ranks])
    assert torch.equal(every_rank, one_process), "env i of rank r is env 2 r + i, same seed"


def test_two_ranks_on_two_parts_of_a_minibatch_make_the_single_process_gradient(two_ranks):
    """Advantage normalization included: the parts' own statistics would be wrong."""
    _, ranks = two_ranks
    algo = PPOClip(gradient_config())
    whole = synthetic_minibatch(algo)
    reference = minibatch_gradient(algo, whole)
    algo.close()
    for split in GRADIENT_SPLITS:
        for rank in ranks:
            result = rank["gradients"][tuple(split)]
            for agent in ("policy", "critic"):
                torch.testing.assert_close(result[agent], reference[agent], rtol=1e-4, atol=1e-6)
            assert result["metrics"] == pytest.approx(reference["metrics"], rel=1e-4, abs=1e-6)
    # The comparison can fail: rank 0's part alone gives another gradient.
    alone = PPOClip(gradient_config())
    part = minibatch_gradient(alone, synthetic_minibatch(alone).select(torch.arange(40)))
    alone.close()
    assert not torch.allclose(part["policy"], reference["policy"], rtol=1e-2, atol=1e-4)


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_boundary(two_ranks):
    directory, ranks = two_ranks
    first, second = (rank["signal"] for rank in ranks)
    assert first["interrupted"] and second["interrupted"]
    assert first["nb_rollouts"] == second["nb_rollouts"] == 4, "the rollout under way finished"
    state = torch.load(checkpoint_file(directory / first["base_dir"]), weights_only=True)
    assert state["training_state"]["nb_rollouts"] == 4
    assert "Stopped by a signal to another process" in (directory / "rank-0.log").read_text()
    assert "Stopped by SIGTERM" in (directory / "rank-1.log").read_text()


def test_a_non_finite_loss_on_one_rank_stops_every_rank(two_ranks):
    _, ranks = two_ranks
    for rank in ranks:
        error = rank["nan"]["error"]
        assert error is not None and "Non-finite policy loss" in error
        assert rank["nan"]["nb_rollouts"] == 2, "stopped in the update of the third rollout"


@pytest.mark.slow
def test_two_ranks_in_a_users_process_group_learn_cartpole_within_the_budget(tmp_path):
    """configs/cartpole.yaml reaches 500 within 50k env steps on one process."""
    cfg = OmegaConf.to_container(OmegaConf.load(REPOSITORY / "configs" / "cartpole.yaml"))
    cfg.update(base_dir="learn", progress_bar=False, save_best=False)
    cfg["algorithm"]["stop_at_reward"] = 500
    cfg.pop("tune")
    ranks = run_ranks({"learn": ("train_in_own_group", {"config": cfg})}, tmp_path)
    first, second = (rank["learn"] for rank in ranks)
    assert first["last_eval_reward"] == second["last_eval_reward"] >= 500
    assert first["nb_steps"] <= 50_000 + 8 * 32


# -- the command line under torchrun ---------------------------------------------------------
CLI_CONFIG = """
progress_bar: false
gym_env: {env_name: CartPole-v1}
algorithm: {seed: 3, n_envs: 4, transitions_per_env: 32, max_steps: 1200, eval_interval: 200,
  nb_evals: 3, checkpoint_interval: 300, opt_epochs: 4, batch_size: 64, anneal_lr: true,
  anneal_clip_range: true}
optimizer: {lr: 0.001}
"""


def torchrun(*arguments):
    return [sys.executable, "-m", "torch.distributed.run", *arguments]


def train_on_two_ranks(*arguments):
    return torchrun("--standalone", "--nproc-per-node=2", "-m", "bbrl_ppo", "train", *arguments)


def eval_rows(run_dir):
    """evals.csv without its wall-clock column."""
    with open(Path(run_dir) / "evals.csv") as file:
        return [[row[0], *row[2:]] for row in csv.reader(file)]


def checkpoint_steps(run_dir):
    try:
        return torch.load(checkpoint_file(run_dir), weights_only=True)["training_state"]["nb_steps"]
    except (FileNotFoundError, RuntimeError, EOFError):
        return 0


def child_with_rank(parent_pid, rank):
    """The pid of torchrun's worker of `rank` (read from /proc: Linux)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            variables = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if parent == parent_pid and f"RANK={rank}".encode() in variables:
            return int(entry.name)
    return None


@pytest.mark.slow
def test_a_rank_killed_with_sigkill_stops_the_run_and_a_resume_matches_the_whole_run(tmp_path):
    (tmp_path / "cfg.yaml").write_text(CLI_CONFIG)
    # The run to reproduce and the one to kill, side by side (each waits for imports).
    whole = subprocess.Popen(
        train_on_two_ranks("cfg.yaml", "base_dir=whole"),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "whole.log", "w"),
    )
    launcher = subprocess.Popen(
        train_on_two_ranks("cfg.yaml", "base_dir=killed"),
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "killed.log", "w"),
    )
    killed = tmp_path / "outputs" / "killed"
    deadline = time.monotonic() + PATIENCE
    while checkpoint_steps(killed) < 600 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker = child_with_rank(launcher.pid, 1)
    assert worker is not None, "rank 1's process"
    os.kill(worker, signal.SIGKILL)
    # Rank 0 must not wait for it: it stops with an error, torchrun with it.
    assert launcher.wait(timeout=90) != 0
    log = (tmp_path / "killed.log").read_text()
    assert "lost the others" in log, log[-3000:]
    assert checkpoint_steps(killed) >= 600, "the last checkpoint is whole"
    assert whole.wait(timeout=PATIENCE) == 0, (tmp_path / "whole.log").read_text()[-3000:]

    resumed = subprocess.run(
        train_on_two_ranks("--resume", "outputs/killed"),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=PATIENCE,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout
    assert len(eval_rows(killed)) >= 6
    assert eval_rows(killed) == eval_rows(tmp_path / "outputs" / "whole")
    final = torch.load(checkpoint_file(killed), weights_only=True)
    expected = torch.load(checkpoint_file(tmp_path / "outputs" / "whole"), weights_only=True)
    assert_equal_states(
        final["training_state"]["modules"], expected["training_state"]["modules"], ""
    )
    rank_1, expected_rank_1 = final["other_ranks"][0], expected["other_ranks"][0]
    assert_equal_states(rank_1["training_state"], expected_rank_1["training_state"], "rank 1")
    # numpy's and python's generators are not seeded (nothing draws from them): torch's is.
    assert torch.equal(rank_1["rng"]["torch"], expected_rank_1["rng"]["torch"])


@pytest.mark.slow
def test_two_nodes_with_a_c10d_rendezvous_train_one_run(tmp_path):
    (tmp_path / "cfg.yaml").write_text(CLI_CONFIG.replace("1200", "500"))
    port = free_port()
    node = torchrun(
        "--nnodes=2",
        "--nproc-per-node=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}",
        "--rdzv-id=two-nodes",
        "-m",
        "bbrl_ppo",
        "train",
        "cfg.yaml",
        "base_dir=nodes",
    )
    nodes = [
        subprocess.Popen(node, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [launched.communicate(timeout=PATIENCE)[0].decode() for launched in nodes]
    for launched, output in zip(nodes, outputs, strict=True):
        assert launched.returncode == 0, output[-3000:]
    assert [path.name for path in (tmp_path / "outputs").iterdir()] == ["nodes"]
    run = tmp_path / "outputs" / "nodes"
    assert len(eval_rows(run)) >= 3
    assert torch.load(checkpoint_file(run), weights_only=True)["world_size"] == 2
    assert sum("Run directory" in output for output in outputs) == 1, "rank 0 alone prints"


# -- pieces ----------------------------------------------------------------------------------
def test_a_count_that_does_not_divide_among_the_processes_is_one_line_naming_both():
    context = DistributedContext(rank=1, world_size=4)
    assert context.local_share(8, "algorithm.n_envs") == 2
    with pytest.raises(ConfigError, match=r"algorithm.batch_size=6 cannot be shared by 4 proc"):
        context.local_share(6, "algorithm.batch_size")


def test_fewer_minibatches_than_a_pass_could_make_put_the_rest_in_the_last():
    generator = torch.Generator().manual_seed(0)
    slices = list(minibatch_indices(70, 16, generator, count=2))
    assert [len(indices) for indices in slices] == [16, 54]
    assert sorted(torch.cat(slices).tolist()) == list(range(70))
    with pytest.raises(ValueError, match="count must be in"):
        list(minibatch_indices(70, 16, count=5))


def test_merging_each_rank_s_moments_gives_the_statistics_of_the_whole():
    batch = torch.randn(100, 3, generator=torch.Generator().manual_seed(0)) * 5 + 2
    whole, merged, single = RunningMeanStd(3), RunningMeanStd(3), RunningMeanStd(3)
    whole.update(batch[:30])
    whole.update(batch[30:])
    for part in (batch[:30], batch[30:70], batch[70:]):
        merged.merge(batch_moments(part))
    torch.testing.assert_close(merged.mean, whole.mean)
    torch.testing.assert_close(merged.var, whole.var)
    assert merged.count == whole.count == 100
    single.merge(batch_moments(batch[:30]))
    reference = RunningMeanStd(3)
    reference.update(batch[:30])
    assert torch.equal(single.var, reference.var), "one process merges as it updates"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machines without a GPU")
def test_device_auto_is_the_cpu_without_a_gpu_and_cuda_is_refused():
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"algorithm.device='cuda' needs GPU 0.*sees 0"):
        resolve_device("cuda")
    algo = PPOClip(small_config("auto", device="auto"))
    assert algo.device == torch.device("cpu")
    assert next(algo.train_policy.parameters()).device == torch.device("cpu")
    algo.close()


def test_an_unknown_device_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'algorithm.device': 'gpu'; allowed: cpu, auto, cuda"):
        validate_config(small_config("x", device="gpu"))


def test_a_sigterm_delivered_twice_at_once_is_one_request(monkeypatch):
    """A scheduler signals every process of a job, and torchrun forwards it to them too."""
    clock = iter([100.0, 100.5, 103.0])
    monkeypatch.setattr(stop_signals.time, "monotonic", lambda: next(clock))
    stop = stop_signals.StopRequest()
    with stop.listening():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # half a second later: the same request
        assert stop.requested == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # three seconds later: stop at once
