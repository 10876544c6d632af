"""Files and configs are data: loading them never runs code they name."""

import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

import bbrl_ppo
from bbrl_ppo import DiscretePolicy, load_agent, read_checkpoint, save_agent
from bbrl_ppo.cli.replay import replay
from bbrl_ppo.cli.training import load_config
from bbrl_ppo.config.schema import ConfigError
from bbrl_ppo.optim.setup import setup_optimizer
from bbrl_ppo.persistence.agent_checkpoint import UnsafeCheckpointError
from bbrl_ppo.persistence.registry import UnknownClassError, register_class
from bbrl_ppo.persistence.training_checkpoint import load_training_checkpoint

CARTPOLE = Path(__file__).parent.parent / "configs" / "cartpole.yaml"


class RunsACommand:
    """Unpickling this runs `touch MARKER`: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "code-was-run"


def test_the_malicious_pickle_does_run_code_when_loaded_unsafely(tmp_path, marker):
    # The control: the file is really harmful, so the refusals below mean something.
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": RunsACommand(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "load",
    [read_checkpoint, load_agent, replay, load_training_checkpoint],
    ids=lambda f: f.__name__,
)
def test_a_malicious_pickle_is_refused_without_running_it(tmp_path, marker, load):
    path = tmp_path / "best_agent.pt"
    torch.save({"format": 1, "state_dict": {}, "payload": RunsACommand(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="could run code.*posix.system"):
        load(path)
    assert not marker.exists()


def test_a_checkpoint_cannot_name_an_arbitrary_class_to_call(tmp_path, marker):
    # Plain data only, but naming os.system as the "agent class" with a command argument.
    policy = DiscretePolicy(4, [8], 2)
    path = save_agent(tmp_path / "best_agent.pt", policy)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["class"] = "os:system"
    checkpoint["init_args"] = {"command": f"touch {marker}"}
    torch.save(checkpoint, path)
    with pytest.raises(UnknownClassError, match="'os:system', which is not registered"):
        load_agent(path)
    assert not marker.exists()


def test_a_checkpoint_written_before_the_sub_packages_still_loads(tmp_path):
    # best_agent.pt files of earlier versions name bbrl_ppo.policies:DiscretePolicy.
    policy = DiscretePolicy(4, [8], 2)
    path = save_agent(tmp_path / "best_agent.pt", policy)
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["class"] == "bbrl_ppo.agents.policies:DiscretePolicy"
    checkpoint["class"] = "bbrl_ppo.policies:DiscretePolicy"
    torch.save(checkpoint, path)
    loaded = load_agent(path)
    assert type(loaded) is DiscretePolicy
    assert torch.equal(loaded.state_dict()["model.0.weight"], policy.state_dict()["model.0.weight"])


def test_user_agent_classes_register_themselves_and_reload(tmp_path):
    class WidePolicy(DiscretePolicy):
        def __init__(self, obs_size: int, n_actions: int):
            super().__init__(obs_size, [32], n_actions)

    path = save_agent(tmp_path / "agent.pt", WidePolicy(4, 2))
    assert type(load_agent(path)) is WidePolicy


def test_replay_refuses_to_import_a_module_named_by_a_checkpoint(tmp_path):
    policy = DiscretePolicy(1, [8], 2)
    path = save_agent(tmp_path / "best_agent.pt", policy, env_name="some_unimported_module:Env-v0")
    with pytest.raises(UnsafeCheckpointError, match="import the module 'some_unimported_module'"):
        replay(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optimizer.classname=os.system", "'os.system' is not an allowed optimizer"),
        ("optimizer.classname=subprocess.Popen", "not an allowed optimizer"),
        ("logger.classname=os.system", "'os.system' is not an allowed logger"),
    ],
)
def test_a_config_cannot_name_a_class_outside_the_allowed_ones(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CARTPOLE, [override])


def test_torch_optimizers_are_accepted_by_short_and_dotted_name():
    policy = DiscretePolicy(4, [8], 2)
    for name in ("SGD", "torch.optim.SGD"):
        optimizer = setup_optimizer(OmegaConf.create({"classname": name, "lr": 0.1}), policy)
        assert type(optimizer) is torch.optim.SGD


def test_a_registered_optimizer_can_be_named():
    @register_class
    class HalvedSGD(torch.optim.SGD):
        pass

    name = f"optimizer.classname={HalvedSGD.__qualname__}"
    with pytest.raises(ConfigError, match="HalvedSGD takes no 'eps'; set it to null"):
        load_config(CARTPOLE, [name])
    cfg = load_config(CARTPOLE, [name, "optimizer.eps=null"])
    optimizer = setup_optimizer(cfg.optimizer, DiscretePolicy(4, [8], 2))
    assert type(optimizer) is HalvedSGD
    assert bbrl_ppo.register_class is register_class
