"""Shipping: configs by name, one version, a wheel that works without the repository."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import setuptools
from omegaconf import OmegaConf

import bbrl_ppo
from bbrl_ppo.cli import main
from bbrl_ppo.cli.training import load_config
from bbrl_ppo.config.packaged import (
    REACHES_PREFIX,
    UnknownConfigError,
    config_names,
    configs_dir,
    resolve_config,
)
from bbrl_ppo.errors import MissingFileError

REPO = Path(__file__).parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((REPO / "pyproject.toml").read_text())


# -- configs by name ----------------------------------------------------------------------


def test_every_yaml_of_configs_is_a_packaged_config():
    assert config_names() == [path.stem for path in CONFIGS]
    for path in CONFIGS:
        assert (configs_dir() / path.name).read_text() == path.read_text()


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_a_name_resolves_to_its_packaged_file(path):
    resolved = resolve_config(path.stem)
    assert resolved.is_file() and resolved.read_text() == path.read_text()
    unresolved = {"resolve": False}  # base_dir's ${current_time:} differs at each resolution
    assert OmegaConf.to_container(load_config(path.stem), **unresolved) == OmegaConf.to_container(
        load_config(path), **unresolved
    )


def test_a_path_is_used_as_given(tmp_path):
    assert resolve_config("configs/cartpole.yaml") == Path("configs/cartpole.yaml")
    assert resolve_config(REPO / "configs" / "cartpole.yaml") == REPO / "configs" / "cartpole.yaml"
    own = tmp_path / "cartpole"  # a user's file named like a packaged config wins
    own.write_text("gym_env: {env_name: Pendulum-v1}\nalgorithm: {max_steps: 1000}\n")
    assert resolve_config("cartpole") == Path("cartpole")  # the test runs in tmp_path
    assert load_config("cartpole").gym_env.env_name == "Pendulum-v1"


def test_a_missing_path_stays_a_missing_file_with_the_name_to_write():
    with pytest.raises(MissingFileError, match=r"No config file cartpole\.yaml .*: cartpole\)"):
        load_config("cartpole.yaml")
    with pytest.raises(MissingFileError, match=r"^No config file no/such\.yaml$"):
        load_config("no/such.yaml")


def test_an_unknown_name_is_one_line_with_close_matches(capsys):
    assert main(["train", "cartpol"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "packaged config named 'cartpol': did you mean cartpole, cartpole_kl?" in err
    with pytest.raises(UnknownConfigError, match="one of cartpole, cartpole_kl, "):
        resolve_config("zzz")


def test_train_by_name_then_play(capsys):
    code = main(
        [
            "train",
            "cartpole",
            "algorithm.max_steps=600",
            "algorithm.eval_interval=300",
            "algorithm.nb_evals=2",
            "progress_bar=false",
        ]
    )
    assert code == 0
    run_dir = capsys.readouterr().out.split("Run directory: ")[1].splitlines()[0]
    assert run_dir.startswith("outputs/CartPole-v1/ppo-clip-S1_")
    assert main(["play", run_dir]) == 0


class Called(Exception):
    """Stops a command where it hands the config on."""


def test_train_with_seeds_takes_a_name(monkeypatch):
    import bbrl_ppo.experiments.seeds as seeds

    def run_seeds(config, *args, **kwargs):
        raise Called(config)

    monkeypatch.setattr(seeds, "run_seeds", run_seeds)
    with pytest.raises(Called) as called:
        main(["train", "lunarlander", "--seeds", "1", "2"])
    assert Path(called.value.args[0]) == configs_dir() / "lunarlander.yaml"


def test_tune_takes_a_name(monkeypatch):
    pytest.importorskip("optuna")
    import bbrl_ppo.experiments.tuning as tuning

    def run_study(request, *args, **kwargs):
        raise Called(request.config)

    monkeypatch.setattr(tuning, "run_study", run_study)
    with pytest.raises(Called) as called:
        main(["tune", "cartpole", "--trials", "1"])
    assert called.value.args[0] == configs_dir() / "cartpole.yaml"


# -- bbrl-ppo configs ---------------------------------------------------------------------


def test_configs_lists_each_one_on_a_line_with_env_variant_and_what_it_reaches(capsys):
    assert main(["configs"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "ENV", "VARIANT", "REACHES"]
    rows = {line.split()[0]: line.split(maxsplit=3)[1:] for line in lines}
    assert sorted(rows) == [path.stem for path in CONFIGS]
    assert rows["cartpole"][:2] == ["CartPole-v1", "ppo_clip"]
    assert rows["cartpole"][2].startswith("500 ")
    assert rows["cartpole_kl"][:2] == ["CartPole-v1", "ppo_kl"]
    assert rows["halfcheetah"][0] == "HalfCheetah-v5"


@pytest.mark.parametrize("path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_every_config_header_says_what_it_reaches(path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert any(line.startswith(REACHES_PREFIX) for line in header), (
        f"{path.name}: add a '{REACHES_PREFIX} ...' line to its header comment "
        "(bbrl-ppo configs shows it)"
    )


def test_configs_show_prints_the_file_verbatim(capsys):
    assert main(["configs", "show", "pendulum"]) == 0
    assert capsys.readouterr().out == (REPO / "configs" / "pendulum.yaml").read_text()
    assert main(["configs", "show", "pendulm"]) == 2
    assert "did you mean pendulum?" in capsys.readouterr().err


# -- one version, a complete package ------------------------------------------------------


def test_version_is_pyprojects_everywhere(capsys):
    version = pyproject()["project"]["version"]
    assert importlib.metadata.version("bbrl_ppo") == version, "reinstall: pip install -e ."
    assert bbrl_ppo.__version__ == version
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"bbrl-ppo {version}\n"


def test_pyproject_lists_every_sub_package():
    found = setuptools.find_packages(where=REPO, include=["bbrl_ppo*"])
    assert sorted(pyproject()["tool"]["setuptools"]["packages"]) == sorted(
        [*found, "bbrl_ppo.configs"]
    )


def test_license_is_an_spdx_expression_for_a_recent_setuptools():
    project = pyproject()
    assert project["project"]["license"] == "MIT"
    assert not any(c.startswith("License ::") for c in project["project"]["classifiers"])
    assert "setuptools>=77" in project["build-system"]["requires"]


@pytest.mark.slow
def test_the_wheel_installs_and_runs_without_the_repository():
    """scripts/wheel_check.py: build, a fresh venv outside the checkout, train and play."""
    pytest.importorskip("build")
    completed = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "wheel_check.py")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
