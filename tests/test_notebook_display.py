"""What a notebook shows: the tensorboard panel that follows the runs, a loaded agent."""

import time

import pytest
import torch
from bbrl.agents import KWAgentWrapper
from bbrl.workspace import Workspace
from omegaconf import OmegaConf

from bbrl_ppo import load_agent, save_agent
from bbrl_ppo.agents.policies import GaussianPolicy
from bbrl_ppo.algorithms.ppo import PPOClip
from bbrl_ppo.reporting import notebook
from bbrl_ppo.reporting.notebook import RedrawPolicy, TensorboardPanel, event_files

HEADER = 88  # bytes of a new event file: its file_version record only


def grown(sizes, **more):
    return {**sizes, **{run: sizes.get(run, HEADER) + extra for run, extra in more.items()}}


class TestRedrawPolicy:
    def test_nothing_written_nothing_redrawn(self):
        policy = RedrawPolicy({"old": 500}, drawn_at=0.0)
        assert not any(policy.observe({"old": 500}, now) for now in range(1, 200))

    def test_a_new_run_is_shown_once_the_server_has_read_it(self):
        policy = RedrawPolicy({"old": 500}, drawn_at=0.0)
        sizes = {"old": 500, "new": HEADER}
        assert not policy.observe(sizes, 10.0)
        assert not policy.observe(sizes, 10.0 + policy.backend_s - 0.5)
        assert policy.observe(sizes, 10.0 + policy.backend_s)
        policy.redrawn(12.0)
        assert policy.drawn == sizes

    def test_a_run_drawn_with_its_header_only_is_redrawn_at_its_first_data(self):
        policy = RedrawPolicy({"run": HEADER}, drawn_at=0.0)
        assert not policy.observe({"run": HEADER}, 1.0)
        assert not policy.observe({"run": 400}, 2.0)  # follow_s (30 s) is far
        assert policy.observe({"run": 500}, 2.0 + policy.backend_s)

    def test_growing_runs_are_redrawn_at_once_then_every_follow_s_then_once_they_stop(self):
        policy = RedrawPolicy({"run": 1000}, drawn_at=0.0, follow_s=30.0, settle_s=3.0)
        redraws = []

        def observe(second, size):
            if policy.observe({"run": size}, float(second)):
                policy.redrawn(float(second))
                redraws.append(second)

        for second in range(1, 61):  # grows every second for a minute
            observe(second, 1000 + 10 * second)
        # Its first growth at once, then follow_s later: each after the server's delay.
        assert redraws == [3, 35]
        for second in range(61, 80):  # then stops
            observe(second, 1600)
        assert redraws == [3, 35, 65]  # settle_s after its last growth, plus the delay
        assert policy.drawn == {"run": 1600}

    def test_what_changed_while_a_redraw_waited_is_not_taken_as_drawn(self):
        policy = RedrawPolicy({}, drawn_at=0.0)
        assert not policy.observe({"run": HEADER}, 1.0)
        assert not policy.observe({"run": 300}, 2.0)  # arrives during the server's delay
        assert policy.observe({"run": 300}, 3.0)
        policy.redrawn(3.0)
        assert policy.drawn == {"run": HEADER}
        assert not policy.observe({"run": 300}, 4.0)
        assert policy.observe({"run": 300}, 5.0 + policy.backend_s)  # at once: its first data


def test_event_files_are_summed_per_run_folder(tmp_path):
    (tmp_path / "Env" / "run-a").mkdir(parents=True)
    (tmp_path / "Env" / "run-a" / "events.out.tfevents.1.host").write_bytes(b"x" * 100)
    (tmp_path / "Env" / "run-a" / "events.out.tfevents.2.host").write_bytes(b"x" * 20)
    (tmp_path / "Env" / "run-a" / "evals.csv").write_text("nb_steps\n")
    (tmp_path / "events.out.tfevents.3.host").write_bytes(b"x" * 7)
    assert event_files(tmp_path) == {"Env/run-a": 120, ".": 7}


def test_the_panel_html_frames_tensorboard_on_its_port(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_PROXY_URL", raising=False)
    panel = TensorboardPanel(tmp_path, port=6123)
    html = panel.html()
    assert '<iframe id="tensorboard-' in html and "url.port = 6123" in html
    assert "0 runs" in html
    monkeypatch.setenv("TENSORBOARD_PROXY_URL", "/proxy/%PORT%/")
    html = panel.html()
    assert '"/proxy/6123/"' in html and "if (0)" in html


class RecordingHandle:
    """Stands for IPython's DisplayHandle: keeps what the panel redrew."""

    def __init__(self):
        self.updates = []

    def update(self, shown):
        self.updates.append(shown.data)


def wait_until(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_panel_redraws_itself_when_a_run_starts_writing(tmp_path):
    panel = TensorboardPanel(tmp_path, port=6006, poll_s=0.05)
    panel.policy.backend_s = 0.1
    handle = RecordingHandle()
    panel.follow(handle)
    try:
        run = tmp_path / "Env" / "run"
        run.mkdir(parents=True)
        (run / "events.out.tfevents.1.host").write_bytes(b"x" * HEADER)
        wait_until(lambda: handle.updates)
        assert "1 run " in handle.updates[-1]
    finally:
        panel.stop()


def test_setup_tensorboard_outside_a_notebook_prints_the_command(capsys):
    notebook.setup_tensorboard("outputs")
    assert "tensorboard --logdir outputs" in capsys.readouterr().out


def test_training_logs_reach_the_disk_while_training(tmp_path):
    """Tensorboard's writer alone would keep them in memory for two minutes."""
    algo = PPOClip(
        OmegaConf.create(
            {
                "base_dir": str(tmp_path / "run"),
                "progress_bar": False,
                "gym_env": {"env_name": "CartPole-v1"},
                "algorithm": {
                    "seed": 1,
                    "n_envs": 2,
                    "transitions_per_env": 8,
                    "batch_size": 8,
                    "max_steps": 1000,
                    "eval_interval": 10_000,
                },
            }
        )
    )
    created = sum(event_files(tmp_path).values())
    for index, _ in enumerate(algo.iter_partial_episodes()):
        algo.logger.add_log("test/value", float(index), algo.nb_steps)
        if index == 2:
            break
    # The first rollout's value was flushed when the loop took it back, before the end.
    assert sum(event_files(tmp_path).values()) > created


class TestLoadedAgentDisplay:
    @pytest.fixture
    def policy(self):
        return GaussianPolicy(3, [8], 1)

    @pytest.fixture
    def saved(self, tmp_path, policy):
        return save_agent(tmp_path / "best_agent.pt", KWAgentWrapper(policy, stochastic=False))

    def test_shows_the_policy_of_its_checkpoint_and_how_it_is_called(self, saved):
        shown = repr(load_agent(saved))
        assert shown.startswith("GaussianPolicy(")
        assert "called with stochastic=False" in shown

    def test_acts_as_the_saved_wrapper(self, saved, policy):
        loaded = load_agent(saved)
        assert isinstance(loaded, KWAgentWrapper) and type(loaded.wrapped) is GaussianPolicy
        observations = torch.randn(4, 3)
        workspace = Workspace()
        workspace.set("env/env_obs", 0, observations)
        loaded(workspace, t=0)
        with torch.no_grad():
            expected = policy.dist(observations).mean
        torch.testing.assert_close(workspace.get("action", 0), expected)


@pytest.mark.slow
def test_kernel_interrupt_stops_with_a_checkpoint_and_the_python_call_to_resume(tmp_path):
    """Kernel > Interrupt sends SIGINT to a kernel that runs ``algo.run()``."""
    from jupyter_client.manager import start_new_kernel

    code = f"""
import os
os.chdir({str(tmp_path)!r})
from omegaconf import OmegaConf
from bbrl_ppo.algorithms.ppo import PPOClip
algorithm = {{"seed": 1, "n_envs": 2, "transitions_per_env": 32, "max_steps": 10_000_000}}
env = {{"env_name": "CartPole-v1"}}
cfg = {{"base_dir": "interrupted", "gym_env": env, "algorithm": algorithm}}
algo = PPOClip(OmegaConf.create(cfg))
print("training", flush=True)
algo.run()
"""
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        request = client.execute(code)
        stderr, interrupted = [], False
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            message = client.get_iopub_msg(timeout=180)
            if message["parent_header"].get("msg_id") != request:
                continue
            content = message["content"]
            if message["msg_type"] == "stream" and "training" in content["text"]:
                time.sleep(3)  # well into algo.run()
                manager.interrupt_kernel()
                interrupted = True
            elif message["msg_type"] == "stream" and content["name"] == "stderr":
                stderr.append(content["text"])
            elif message["msg_type"] == "error":
                pytest.fail(f"{content['ename']}: {content['evalue']}")
            elif message["msg_type"] == "status" and content["execution_state"] == "idle":
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert interrupted
    said = "".join(stderr)
    assert "algo = PPOClip.resume('outputs/interrupted'); algo.run()" in said, said
    assert "bbrl-ppo train" not in said
    assert (tmp_path / "outputs" / "interrupted" / "checkpoints" / "last.pt").is_file()
