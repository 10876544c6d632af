"""Config validation: one clear line per mistake, before anything starts."""

import pytest
from omegaconf import OmegaConf

from bbrl_ppo.cli.training import load_config
from bbrl_ppo.config.schema import ConfigError, validate_config

CONFIGS = ["cartpole.yaml", "cartpole_kl.yaml", "lunarlander.yaml", "pendulum.yaml"]


@pytest.fixture
def configs_dir(request):
    return request.config.rootpath / "configs"


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_configs_are_valid(configs_dir, name):
    cfg = load_config(configs_dir / name)
    assert cfg.algorithm.max_steps > 0


@pytest.mark.parametrize(
    "override, message",
    [
        ("algorithm.n_env=3", "did you mean 'algorithm.n_envs'"),
        ("algorithm.n_envs=0", "'algorithm.n_envs': 0; allowed: an integer >= 1"),
        ("optimizer.lr=-0.001", "'optimizer.lr': -0.001; allowed: a number > 0"),
        ("algorithm.clip_range=0", "'algorithm.clip_range': 0.0; allowed: a number > 0"),
        ("algorithm.batch_size=100000", "larger than a rollout"),
        ("algorithm.n_envs=many", "'algorithm.n_envs'"),
        ("algorithm.variant=ppo", "one of ppo_clip, ppo_kl"),
        ("gym_env.vectorisation=async", "did you mean 'gym_env.vectorization'"),
        ("algorithm.gae_lambda=1.5", "a number in [0, 1]"),
        ("algorithm.n_steps=32", "'algorithm.n_steps' was renamed 'algorithm.transitions_per_env'"),
        ("algorithm.gae=0.9", "'algorithm.gae' was renamed 'algorithm.gae_lambda'"),
        ("algorithm.max_epochs=9", "'algorithm.max_epochs' was renamed 'algorithm.max_rollouts'"),
        (
            "algorithm.kl_target=0.02",
            "'algorithm.kl_target' was renamed 'algorithm.kl_penalty.target'",
        ),
        (
            "algorithm.kl_coef=2",
            "'algorithm.kl_coef' was renamed 'algorithm.kl_penalty.initial_coef'",
        ),
        ("algorithm.kl_penalty.targt=0.1", "did you mean 'algorithm.kl_penalty.target'"),
        ("algorithm.max_steps=null", "No budget"),
    ],
)
def test_bad_values_fail_with_one_line_naming_the_key(configs_dir, override, message):
    with pytest.raises(ConfigError) as error:
        load_config(configs_dir / "cartpole.yaml", [override])
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_env_name_is_reported():
    with pytest.raises(ConfigError, match="Missing value for 'gym_env.env_name'"):
        validate_config({"algorithm": {"max_steps": 10}})


def test_defaults_fill_what_the_user_left_out():
    cfg = validate_config({"gym_env": {"env_name": "CartPole-v1"}, "algorithm": {"max_steps": 5}})
    assert cfg.optimizer.eps == 1e-5 and cfg.algorithm.clip_range == 0.2


def test_extra_section_is_free_form():
    cfg = validate_config(
        {
            "gym_env": {"env_name": "CartPole-v1"},
            "algorithm": {"max_steps": 5},
            "extra": {"my_coef": 0.3, "nested": {"anything": [1, 2]}},
        }
    )
    assert cfg.extra.nested.anything == [1, 2]


def test_malformed_override_is_a_config_error(configs_dir):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(configs_dir / "cartpole.yaml", ["algorithm.seed"])


def test_a_subclassed_schema_accepts_new_typed_fields():
    from dataclasses import dataclass, field

    from bbrl_ppo.config.schema import AlgorithmConfig, PPOConfig

    @dataclass
    class MyAlgorithm(AlgorithmConfig):
        bonus: float = 0.5

    @dataclass
    class MyConfig(PPOConfig):
        algorithm: MyAlgorithm = field(default_factory=MyAlgorithm)

    raw = {"gym_env": {"env_name": "CartPole-v1"}, "algorithm": {"max_steps": 5, "bonus": 2}}
    assert validate_config(OmegaConf.create(raw), schema=MyConfig).algorithm.bonus == 2.0
    with pytest.raises(ConfigError):
        validate_config(OmegaConf.create(raw))


def test_every_argument_the_optimizer_takes_is_accepted_and_reaches_it(configs_dir):
    from bbrl_ppo.algorithms.ppo import PPOClip

    cfg = load_config(
        configs_dir / "cartpole.yaml",
        ["optimizer.betas=[0.8,0.95]", "optimizer.amsgrad=true", "base_dir=/tmp/betas"],
    )
    algo = PPOClip(cfg)
    group = algo.policy_optimizer.param_groups[0]
    assert tuple(group["betas"]) == (0.8, 0.95) and group["amsgrad"] is True
    algo.close()
    sgd = load_config(
        configs_dir / "cartpole.yaml",
        ["optimizer.classname=SGD", "optimizer.eps=null", "optimizer.momentum=0.9",
         "optimizer.nesterov=true"],
    )  # fmt: skip
    assert sgd.optimizer.momentum == 0.9


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optimizer.momentum=0.9"], "Adam takes no 'momentum'; set it to null or remove it"),
        (["optimizer.momentum=0.9"], "Adam accepts: lr, betas, eps, weight_decay"),
        (["optimizer.classname=SGD"], "SGD takes no 'eps'"),
        (["optimizer.lr=0"], "'optimizer.lr': 0; allowed: a number > 0"),
        (["algorithm.architecture.actor_hidden_size=[64,0]"], "each >= 1"),
        (["algorithm.architecture.critic_hidden_size=[-3]"], "each >= 1"),
    ],
)
def test_bad_optimizer_arguments_and_widths_are_one_line_errors(configs_dir, overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(configs_dir / "cartpole.yaml", overrides)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_value_the_optimizer_refuses_is_a_one_line_user_error(configs_dir):
    from bbrl_ppo import UserError
    from bbrl_ppo.algorithms.ppo import PPOClip

    cfg = load_config(configs_dir / "cartpole.yaml", ["optimizer.betas=[1.5,0.9]"])
    with pytest.raises(UserError, match=r"Adam\(.*betas=\[1.5, 0.9\].*\) refused its arguments"):
        PPOClip(cfg)
