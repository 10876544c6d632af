"""The training bar ends in a state that says what happened, as a notebook draws it.

The bars are tqdm.notebook's widgets (what JupyterLab shows): closed short of its
total, such a bar turns red ("danger"), and past its total tqdm drops the total.
"""

import json

import pytest
from omegaconf import OmegaConf
from tqdm.notebook import tqdm as notebook_tqdm

from bbrl_ppo.algorithms import episodic
from bbrl_ppo.algorithms.ppo import PPOClip


def config(**algorithm):
    return OmegaConf.create(
        {
            "base_dir": "bars/run_${current_time:}",
            "progress_bar": True,
            "gym_env": {"env_name": "CartPole-v1"},
            "algorithm": {
                "seed": 1,
                "n_envs": 4,
                "transitions_per_env": 16,
                "batch_size": 32,
                "opt_epochs": 1,
                "max_steps": 10_000,
                "eval_interval": 10_000,
                "nb_evals": 2,
                **algorithm,
            },
        }
    )


@pytest.fixture
def bars(monkeypatch):
    """The notebook bars the training loop creates, in order."""
    created = []

    def notebook_bar(**kwargs):
        bar = notebook_tqdm(**kwargs)
        created.append(bar)
        return bar

    monkeypatch.setattr(episodic, "tqdm", notebook_bar)
    return created


def widget(bar):
    """tqdm.notebook's IntProgress: what the student sees filled, and in which colour."""
    return bar.container.children[1]


def assert_ended_full(bar, algo):
    assert bar.n == algo.nb_steps
    assert bar.total == bar.n
    assert widget(bar).max == bar.n and widget(bar).value == bar.n
    assert widget(bar).bar_style == "success"
    meter = bar.format_meter(**bar.format_dict)
    assert meter.startswith("100%") and "/?" not in meter, meter


def test_a_run_stopped_at_reward_ends_with_its_last_rollout_and_evaluation(bars):
    algo = PPOClip(config(stop_at_reward=0, eval_interval=32))
    algo.run()
    (bar,) = bars
    assert algo.nb_steps < 10_000  # stopped long before the budget
    assert_ended_full(bar, algo)
    assert bar.postfix.startswith(f"last_eval={algo.last_eval_reward:.1f}")
    progress = json.loads((algo.base_dir / "progress.json").read_text())
    assert progress["state"] == "finished"
    assert (progress["nb_steps"], progress["total_steps"]) == (bar.n, bar.total)
    assert progress["last_eval"] == pytest.approx(algo.last_eval_reward)


def test_an_overshooting_last_rollout_keeps_a_total(bars):
    algo = PPOClip(config(max_steps=100))  # rollouts of up to 64 steps: the second passes 100
    algo.run()
    (bar,) = bars
    assert algo.nb_steps > 100
    assert_ended_full(bar, algo)


def test_one_rollout_taken_by_hand_ends_its_bar(bars):
    algo = PPOClip(config())
    workspace = next(algo.iter_partial_episodes())
    (bar,) = bars
    assert workspace.time_size() == 17
    assert 0 < algo.nb_steps <= 64
    assert_ended_full(bar, algo)
    assert bar.postfix is None or "nan" not in bar.postfix  # no evaluation yet: none shown


class StoppedBySignal(PPOClip):
    """Receives SIGINT (as Kernel > Interrupt sends it) during its first update."""

    def after_update(self, workspace, rollout, metrics):
        super().after_update(workspace, rollout, metrics)
        self._stop.requested = "SIGINT"


def test_a_run_stopped_by_a_signal_ends_red_short_of_its_total(bars, capsys):
    algo = StoppedBySignal(config())
    algo.run()
    (bar,) = bars
    assert algo.interrupted
    assert bar.n == algo.nb_steps < bar.total == 10_000
    assert widget(bar).bar_style == "danger"
    assert f"resume with: bbrl-ppo train --resume {algo.base_dir}" in capsys.readouterr().err


def test_in_a_notebook_the_stop_message_gives_the_python_call(bars, capsys, monkeypatch):
    monkeypatch.setattr(episodic, "in_notebook", lambda: True)
    algo = StoppedBySignal(config())
    algo.run()
    message = capsys.readouterr().err
    assert f"algo = StoppedBySignal.resume({str(algo.base_dir)!r}); algo.run()" in message
    assert "bbrl-ppo train" not in message
