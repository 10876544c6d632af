"""Network builders, optimizer set-up and parameter copies."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from bbrl_ppo import build_mlp, build_ortho_mlp, copy_parameters, ortho_init, setup_optimizer


def test_build_mlp_layers_and_activations():
    mlp = build_mlp([3, 5, 7, 2], nn.Tanh())
    kinds = [type(layer).__name__ for layer in mlp]
    assert kinds == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert mlp(torch.zeros(4, 3)).shape == (4, 2)


def test_build_mlp_output_activation():
    mlp = build_mlp([3, 2], nn.ReLU(), output_activation=nn.Sigmoid())
    assert isinstance(mlp[-1], nn.Sigmoid)


def test_ortho_init_gives_orthogonal_rows_of_the_requested_gain():
    layer = ortho_init(nn.Linear(16, 8), std=2.0, bias_const=0.3)
    gram = layer.weight @ layer.weight.T
    torch.testing.assert_close(gram, 4.0 * torch.eye(8), atol=1e-5, rtol=0)
    assert torch.all(layer.bias == 0.3)


def test_build_ortho_mlp_uses_output_std_for_the_last_layer():
    mlp = build_ortho_mlp([6, 6, 3], nn.ReLU(), output_std=0.01)
    hidden, last = mlp[0], mlp[-1]
    torch.testing.assert_close(hidden.weight @ hidden.weight.T, 2 * torch.eye(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(last.weight @ last.weight.T, 1e-4 * torch.eye(3), atol=1e-7, rtol=0)
    assert torch.all(last.bias == 0)


def test_too_short_mlp_is_refused():
    with pytest.raises(ValueError, match="at least an input and an output"):
        build_mlp([3], nn.ReLU())


def test_setup_optimizer_follows_the_classname_convention():
    first, second = nn.Linear(2, 2), nn.Linear(2, 1)
    cfg = OmegaConf.create({"classname": "torch.optim.AdamW", "lr": 3e-4, "eps": 1e-5})
    optimizer = setup_optimizer(cfg, first, second)
    assert isinstance(optimizer, torch.optim.AdamW)
    group = optimizer.param_groups[0]
    assert group["lr"] == 3e-4 and group["eps"] == 1e-5
    assert len(group["params"]) == 4


def test_copy_parameters_copies_in_place():
    source, target = nn.Linear(3, 2), nn.Linear(3, 2)
    weight_before = target.weight
    copy_parameters(source, target)
    assert target.weight is weight_before
    assert torch.equal(target.weight, source.weight) and torch.equal(target.bias, source.bias)


def test_copy_parameters_refuses_mismatched_modules():
    with pytest.raises(ValueError, match="source has 2"):
        copy_parameters(nn.Linear(3, 2), nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)))
