"""bbrl-ppo tune: the search space in the config, trials as subprocesses, a resumable study."""

import importlib.util
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import optuna
import pytest
from omegaconf import OmegaConf

from bbrl_ppo.cli import main
from bbrl_ppo.cli.training import load_config
from bbrl_ppo.config.schema import ConfigError, TuneConfig
from bbrl_ppo.experiments import tuning

COMPLETE, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL

#: The shipped CartPole config at a budget of two rollouts of 256 steps, one evaluation each.
TINY = [
    "algorithm.max_steps=512",
    "algorithm.eval_interval=256",
    "algorithm.nb_evals=1",
    "algorithm.checkpoint_interval=null",
    "save_best=false",
    "tune.seeds=1",
]

BASE = """\
gym_env: {env_name: CartPole-v1}
algorithm: {n_envs: 2, transitions_per_env: 32, max_steps: 256, eval_interval: 128,
            nb_evals: 1, batch_size: 64, opt_epochs: 1, checkpoint_interval: null}
save_best: false
"""


@pytest.fixture
def cartpole(request):
    return request.config.rootpath / "configs" / "cartpole.yaml"


def write_config(tmp_path, tune: str, name: str = "search.yaml"):
    path = tmp_path / name
    path.write_text(BASE + tune)
    return path


def load_study(name, storage):
    return optuna.load_study(study_name=name, storage=storage)


# -- the search space, checked with the config --------------------------------------------


def test_search_space_is_validated_and_typed(tmp_path):
    path = write_config(
        tmp_path,
        """\
tune:
  metric: best
  seeds: 3
  parameters:
    optimizer.lr: {distribution: log_float, low: 1.0e-4, high: 1.0e-2}
    algorithm.gae_lambda: {distribution: float, low: 0.8, high: 0.99, step: 0.01}
    algorithm.opt_epochs: {distribution: int, low: 1, high: 9, step: 2}
    algorithm.architecture.activation: {distribution: categorical, choices: [tanh, relu]}
    algorithm.target_kl: {distribution: categorical, choices: [null, 0.01]}
    optimizer.weight_decay: {distribution: float, low: 0.0, high: 0.1}
""",
    )
    tune = OmegaConf.to_object(load_config(path).tune)
    assert isinstance(tune, TuneConfig) and (tune.metric, tune.seeds) == ("best", 3)
    assert tune.parameters["algorithm.opt_epochs"].step == 2
    assert tune.parameters["algorithm.target_kl"].choices == [None, 0.01]


@pytest.mark.parametrize(
    "space, message",
    [
        (
            "algorithm.clip_rnage: {distribution: float, low: 0.1, high: 0.3}",
            "Unknown configuration key 'algorithm.clip_rnage' in tune.parameters; "
            "did you mean 'algorithm.clip_range'?",
        ),
        (
            "optimizer.betass: {distribution: float, low: 0.8, high: 0.9}",
            "did you mean 'optimizer.betas'?",
        ),
        (
            "algorithm.clip_range: {distribution: float, low: 0.3, high: 0.1}",
            "'algorithm.clip_range' (tune.parameters): low (0.3) must be < high (0.1)",
        ),
        (
            "algorithm.clip_range: {distribution: float, low: 0.2, high: 0.2}",
            "low (0.2) must be < high (0.2)",
        ),
        (
            "optimizer.lr: {distribution: log_float, low: 0.0, high: 0.01}",
            "'optimizer.lr' (tune.parameters): log_float needs low > 0, got 0",
        ),
        (
            "algorithm.clip_range: {distribution: categorical, choices: []}",
            "categorical needs a non-empty list of choices",
        ),
        (
            "algorithm.clip_range: {distribution: float, lo: 0.1, high: 0.3}",
            "unknown field 'lo'; did you mean 'low'?",
        ),
        (
            "algorithm.clip_range: {distribution: uniform, low: 0.1, high: 0.3}",
            "distribution 'uniform'; allowed: one of float, log_float, int, categorical",
        ),
        (
            "algorithm.opt_epochs: {distribution: float, low: 1, high: 9}",
            "1.0 does not fit the key's type (int)",
        ),
        (
            "algorithm.clip_range: {distribution: float, low: 0.0, high: 0.3}",
            "0.0 is not allowed here; allowed: a number > 0",
        ),
        (
            "algorithm.seed: {distribution: int, low: 1, high: 5}",
            "bbrl-ppo tune sets this key itself",
        ),
        (
            "algorithm.architecture.actor_hidden_size: {distribution: categorical, choices: [8]}",
            "a section or a list cannot be searched",
        ),
    ],
)
def test_a_bad_search_space_fails_with_one_line(tmp_path, space, message):
    path = write_config(tmp_path, f"tune:\n  parameters:\n    {space}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_tune_section_keys_are_checked_like_any_other(cartpole):
    with pytest.raises(ConfigError, match="did you mean 'tune.metric'"):
        load_config(cartpole, ["tune.metrc=best"])


def test_training_ignores_the_tune_section(cartpole, capsys):
    """The shipped example has a search space; training it is not affected."""
    assert load_config(cartpole).tune.parameters
    code = main(["train", str(cartpole), "algorithm.max_steps=256", "progress_bar=false"])
    assert code == 0
    assert "Done: " in capsys.readouterr().out


def test_tune_without_optuna_says_how_to_install_it(monkeypatch, capsys):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "optuna" else find_spec(name),
    )
    assert main(["tune", "any.yaml", "--trials", "1"]) == 2
    assert "pip install 'bbrl_ppo[tune]'" in capsys.readouterr().err


def test_tune_without_a_search_space_is_a_user_error(tmp_path, capsys):
    path = write_config(tmp_path, "")
    assert main(["tune", str(path), "--trials", "1"]) == 2
    assert "has no search space" in capsys.readouterr().err


# -- the study, end to end ----------------------------------------------------------------


def test_tune_runs_trials_writes_the_best_config_and_resumes(cartpole, tmp_path, capsys):
    code = main(["tune", str(cartpole), "--trials", "2", "--jobs", "2", *TINY])
    first = capsys.readouterr().out
    assert code == 0, first
    assert "2 trials x 1 seed(s), at most 2 training process(es)" in first
    # Again: the study in outputs/tune/cartpole/study.db goes on with one more trial.
    code = main(["tune", str(cartpole), "--trials", "1", *TINY])
    second = capsys.readouterr().out
    assert code == 0, second
    assert "(2 earlier trials)" in second

    directory = tmp_path / "outputs" / "tune" / "cartpole"
    study = load_study("cartpole", f"sqlite:///{directory / 'study.db'}")
    trials = study.trials
    errors = [trial.user_attrs.get("error") for trial in trials]
    assert [trial.state for trial in trials] == [COMPLETE] * 3, errors
    assert len({tuple(sorted(trial.params.items())) for trial in trials}) == 3
    for trial in trials:
        run_dir = directory / f"trial-{trial.number}" / "seed-1"
        trained = OmegaConf.load(run_dir / "config.yaml")
        assert {key: OmegaConf.select(trained, key) for key in trial.params} == trial.params
        assert trained.algorithm.seed == 1
        # Each evaluation reported at the multiple of eval_interval it passed.
        evaluations = tuning.read_evaluations(run_dir / "evals.csv")
        assert evaluations
        assert sorted(trial.intermediate_values) == [step // 256 * 256 for step, _ in evaluations]
        final = evaluations[-1][1]
        assert trial.value == final == trial.user_attrs["seed_scores"][0]

    best = study.best_trial
    best_config = directory / "best_config.yaml"
    assert f"Best configuration: {best_config}" in second
    assert f"Best trial: {best.number}," in second
    cfg = load_config(best_config)  # what `bbrl-ppo train best_config.yaml` loads
    assert {key: OmegaConf.select(cfg, key) for key in best.params} == best.params
    assert cfg.algorithm.max_steps == 512  # the overrides the trials ran with
    assert "tune" not in OmegaConf.load(best_config)
    table = second.split("\n\n")[1].splitlines()
    assert table[0].split()[:3] == ["trial", "state", "score"]
    assert [row.split()[:2] for row in table[1:]] == [[str(n), "COMPLETE"] for n in range(3)]


def test_failed_trials_are_recorded_and_the_study_goes_on(tmp_path, capsys):
    path = write_config(
        tmp_path,
        """\
tune:
  parameters:
    algorithm.batch_size: {distribution: categorical, choices: [32, 64, 1024]}
    algorithm.policy_type: {distribution: categorical, choices: [DiscretePolicy, GaussianPolicy]}
""",
    )
    storage = f"sqlite:///{tmp_path / 'faults.db'}"
    study = optuna.create_study(storage=storage, study_name="faults", direction="maximize")
    # Trial 0: a batch larger than the 64-step rollout, which the schema refuses.
    study.enqueue_trial({"algorithm.batch_size": 1024, "algorithm.policy_type": "DiscretePolicy"})
    # Trial 1: valid for the schema, but training refuses a Gaussian policy on CartPole.
    study.enqueue_trial({"algorithm.batch_size": 64, "algorithm.policy_type": "GaussianPolicy"})
    study.enqueue_trial({"algorithm.batch_size": 32, "algorithm.policy_type": "DiscretePolicy"})
    # One job: with two, Optuna's threads may both reach for the same enqueued trial, and
    # the loser samples a new one, leaving a queued trial for later (seen under load).
    args = ["tune", str(path), "--trials", "3", "--jobs", "1", "--storage", storage]
    code = main([*args, "--study-name", "faults"])
    out = capsys.readouterr().out
    assert code == 0, out

    invalid, crashed, good = load_study("faults", storage).trials
    assert [invalid.state, crashed.state, good.state] == [FAIL, FAIL, COMPLETE]
    assert "larger than a rollout" in invalid.user_attrs["error"]
    assert not (tmp_path / "outputs" / "tune" / "faults" / "trial-0").exists()  # nothing ran
    assert crashed.user_attrs["error"].startswith("seed 1 exited with code 2: bbrl-ppo: error:")
    assert "GaussianPolicy" in crashed.user_attrs["stderr_tail"]
    assert good.value is not None
    assert "trial 1: FAIL: seed 1 exited with code 2" in out
    assert "Best trial: 2," in out


@pytest.mark.slow
def test_ctrl_c_stops_the_running_trial_and_keeps_the_study(tmp_path, cartpole):
    """SIGINT to ``bbrl-ppo tune``: its run is stopped, the trial is marked, storage kept."""
    command = [sys.executable, "-m", "bbrl_ppo", "tune", str(cartpole), "--trials", "5"]
    overrides = ["algorithm.max_steps=1000000", "algorithm.eval_interval=256", "tune.seeds=1"]
    process = subprocess.Popen([*command, *overrides], stdout=subprocess.PIPE, text=True)
    evals = tmp_path / "outputs" / "tune" / "cartpole" / "trial-0" / "seed-1" / "evals.csv"
    deadline = time.monotonic() + 120
    while not tuning.read_evaluations(evals) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Interrupted: run the same command again" in out
    storage = f"sqlite:///{tmp_path / 'outputs' / 'tune' / 'cartpole' / 'study.db'}"
    (trial,) = load_study("cartpole", storage).trials
    assert trial.state == FAIL and trial.user_attrs["error"] == "interrupted"
    # The run was stopped the way SIGTERM stops training: with a checkpoint to resume.
    assert (evals.parent / "checkpoints" / "last.pt").exists()


# -- a trial's runs: curves, pruning, stopping ------------------------------------------------


def test_evaluations_are_read_while_the_run_writes_them(tmp_path):
    path = tmp_path / "evals.csv"
    assert tuning.read_evaluations(path) == []
    path.write_text(
        "nb_steps,wall_s,reward_mean,reward_std,reward_min,reward_max\r\n"
        "130,0.1,12.5,0,12,13\r\n"
        "260,0.2,20"  # still being written
    )
    assert tuning.read_evaluations(path) == [(130, 12.5)]


def test_mean_curve_covers_the_steps_every_seed_reached():
    # Seeds evaluate a few steps apart, after each multiple of 100 env steps.
    seed_1 = [(103, 10.0), (205, 20.0), (301, 30.0)]
    seed_2 = [(101, 30.0), (202, 40.0)]
    assert tuning.mean_curve([seed_1, seed_2], [False, False], 100) == [(100, 20.0), (200, 30.0)]
    # A seed that ended (stop_at_reward) keeps its last evaluation.
    assert tuning.mean_curve([seed_1, seed_2], [False, True], 100)[-1] == (300, 35.0)
    assert tuning.mean_curve([seed_1, []], [False, False], 100) == []


def fake_run(tmp_path, rows: str) -> tuning._SeedRun:
    """A 'training' process that writes evaluations, then runs until it is stopped."""
    run_dir = tmp_path / "trial-0" / "seed-1"
    script = (
        "import os, sys, time\n"
        f"os.makedirs({str(run_dir)!r}, exist_ok=True)\n"
        f"open({str(run_dir / 'evals.csv')!r}, 'w').write({rows!r})\n"
        "time.sleep(120)\n"
    )
    return tuning._SeedRun(1, run_dir, [sys.executable, "-c", script])


def trial_settings(stop=None):
    return SimpleNamespace(
        slots=threading.BoundedSemaphore(1),
        stop=stop or threading.Event(),
        poll_s=0.05,
        tune=TuneConfig(),
    )


def test_a_trial_behind_the_median_is_pruned_and_its_runs_are_stopped(tmp_path):
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    study.add_trial(
        optuna.trial.create_trial(value=200.0, intermediate_values={128: 100.0, 256: 200.0})
    )
    trial = study.ask()
    header = "nb_steps,wall_s,reward_mean,reward_std,reward_min,reward_max\n"
    run = fake_run(tmp_path, header + "130,0.1,9.0,0,9,9\n")
    settings = trial_settings()
    with pytest.raises(optuna.TrialPruned, match="at 128 env steps"):
        tuning._TrialRun(trial, [run], 128, settings).run()
    assert run.process.returncode == -signal.SIGTERM
    assert settings.slots.acquire(blocking=False)  # its process slot was given back
    assert study.trials[-1].intermediate_values == {128: 9.0}


def test_a_stop_request_stops_the_runs_of_a_trial(tmp_path):
    trial = optuna.create_study().ask()
    run = fake_run(tmp_path, "nb_steps,wall_s,reward_mean,reward_std,reward_min,reward_max\n")
    stop = threading.Event()
    settings = trial_settings(stop)
    threading.Timer(0.5, stop.set).start()
    with pytest.raises(tuning._Interrupted):
        tuning._TrialRun(trial, [run], 128, settings).run()
    assert run.process.returncode == -signal.SIGTERM
    assert settings.slots.acquire(blocking=False)


def test_overrides_read_back_as_the_sampled_values(tmp_path):
    values = {"a": 1e-05, "b": 0.1 + 0.2, "c": 3, "d": True, "e": None, "f": "64", "g": 'x "y"'}
    cfg = OmegaConf.create()
    cfg.merge_with_dotlist([tuning.override(key, value) for key, value in values.items()])
    assert OmegaConf.to_container(cfg) == values
