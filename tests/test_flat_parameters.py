"""Flat parameter buffers: the same updates as torch's optimizers over separate parameters."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from bbrl_ppo.optim.flat_parameters import FlatParameters, flat_optimizer
from bbrl_ppo.optim.setup import setup_optimizer


def _network(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))


def _loss(network: nn.Module, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(step)
    inputs = torch.randn(16, 3, generator=generator)
    return (network(inputs) - torch.randn(16, 2, generator=generator)).square().mean()


def test_parameters_become_views_of_one_buffer_and_keep_their_values():
    network = _network()
    before = {name: value.clone() for name, value in network.state_dict().items()}
    flat = FlatParameters(network)
    assert flat.data.numel() == sum(p.numel() for p in network.parameters())
    for parameter in network.parameters():
        assert parameter.untyped_storage().data_ptr() == flat.data.untyped_storage().data_ptr()
        assert parameter.grad.untyped_storage().data_ptr() == flat.grad.untyped_storage().data_ptr()
    after = network.state_dict()
    assert after.keys() == before.keys()
    for name in before:
        assert torch.equal(after[name], before[name])
    clone = copy.deepcopy(network)  # an independent copy (the old policy, the best policy)
    with torch.no_grad():
        next(clone.parameters()).add_(1.0)
    assert torch.equal(network.state_dict()["0.weight"], before["0.weight"])


@pytest.mark.parametrize(
    ("optimizer_class", "arguments"),
    [
        (torch.optim.Adam, {"lr": 1e-2, "eps": 1e-5, "fused": True}),
        (torch.optim.Adam, {"lr": 1e-2, "foreach": False}),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
        (torch.optim.RMSprop, {"lr": 1e-2}),
    ],
)
def test_flat_optimizer_steps_like_the_optimizer_over_separate_parameters(
    optimizer_class, arguments
):
    reference, network = _network(), _network()
    reference_optimizer = optimizer_class(reference.parameters(), **arguments)
    optimizer = flat_optimizer(optimizer_class, network, **arguments)
    assert isinstance(optimizer, optimizer_class)
    for step in range(25):
        for model, opt in ((reference, reference_optimizer), (network, optimizer)):
            opt.zero_grad()
            _loss(model, step).backward()
            if model is reference:
                norm = nn.utils.clip_grad_norm_(model.parameters(), 0.3)
            else:
                flat_norm = opt.flat_parameters.clip_grad_norm_(0.3)
            opt.step()
        torch.testing.assert_close(flat_norm, norm)
    initial = list(_network().parameters())
    parameters = zip(network.parameters(), reference.parameters(), initial, strict=True)
    for ours, theirs, start in parameters:
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
        assert not torch.equal(ours, start)  # 25 steps moved every parameter


def test_gradients_set_to_none_by_the_module_are_brought_back_before_the_step():
    reference, network = _network(), _network()
    reference_optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2)
    optimizer = flat_optimizer(torch.optim.Adam, network, lr=1e-2)
    for step in range(3):
        reference_optimizer.zero_grad()
        network.zero_grad(set_to_none=True)  # a user's habit: the grads leave the buffer
        assert all(p.grad is None for p in network.parameters())
        for model in (reference, network):
            _loss(model, step).backward()
        reference_optimizer.step()
        optimizer.step()
    for ours, theirs in zip(network.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert all(
        p.grad.untyped_storage().data_ptr() == optimizer.flat_parameters.grad.data_ptr()
        for p in network.parameters()
    )


def test_zero_grad_zeroes_in_place_so_backward_does_not_accumulate():
    network = _network()
    optimizer = flat_optimizer(torch.optim.SGD, network, lr=0.1)
    _loss(network, 0).backward()
    first = optimizer.flat_parameters.grad.clone()
    optimizer.zero_grad()
    assert not optimizer.flat_parameters.grad.any()
    _loss(network, 0).backward()
    torch.testing.assert_close(optimizer.flat_parameters.grad, first)


def test_a_parameter_moved_out_of_the_buffer_is_refused_at_the_step():
    network = _network()
    optimizer = flat_optimizer(torch.optim.Adam, network, lr=1e-2)
    network[0].weight.data = torch.zeros(8, 3)
    _loss(network, 0).backward()
    with pytest.raises(RuntimeError, match="no longer lives in its optimizer's flat buffer"):
        optimizer.step()


def test_only_elementwise_optimizers_are_flattened():
    network = _network()
    with pytest.raises(ValueError, match="not an element-wise optimizer"):
        flat_optimizer(torch.optim.Rprop, network, lr=1e-2)
    config = {"classname": "torch.optim.Rprop", "lr": 1e-2}
    optimizer = setup_optimizer(config, network, flat=True)
    assert not hasattr(optimizer, "flat_parameters")
    assert len(optimizer.param_groups[0]["params"]) == 4
    flat = setup_optimizer({"classname": "Adam", "lr": 1e-3}, network, flat=True)
    assert len(flat.param_groups[0]["params"]) == 1 and hasattr(flat, "flat_parameters")


def test_mixed_dtypes_cannot_be_flattened():
    network = _network()
    network[2].double()
    with pytest.raises(ValueError, match="mix"):
        FlatParameters(network)
    assert not hasattr(
        setup_optimizer({"classname": "Adam"}, network, flat=True), "flat_parameters"
    )


def _flat_pair(optimizer_class, **arguments):
    """A flat optimizer and torch's own over one flat tensor: the same arithmetic."""
    network = _network()
    optimizer = flat_optimizer(optimizer_class, network, **arguments)
    reference_parameter = optimizer.flat_parameters.data.detach().clone().requires_grad_()
    reference = optimizer_class([reference_parameter], **arguments)
    return network, optimizer, reference_parameter, reference


@pytest.mark.parametrize(
    ("optimizer_class", "arguments"),
    [
        (torch.optim.Adam, {"lr": 1e-2, "eps": 1e-5, "fused": True}),
        (torch.optim.Adam, {"lr": 3e-3, "fused": True, "weight_decay": 0.1, "maximize": True}),
        (torch.optim.AdamW, {"lr": 1e-2, "fused": True, "weight_decay": 0.05}),
        # Not the fused kernel's: fast_step falls back to step.
        (torch.optim.Adam, {"lr": 1e-2, "fused": True, "amsgrad": True}),
        (torch.optim.Adam, {"lr": 1e-2, "foreach": False}),
    ],
)
def test_fast_step_is_bit_identical_to_torchs_step(optimizer_class, arguments):
    network, optimizer, reference_parameter, reference = _flat_pair(optimizer_class, **arguments)
    for step in range(12):
        if step == 6:  # annealing: the group's learning rate changes between steps
            for opt in (optimizer, reference):
                opt.param_groups[0]["lr"] *= 0.5
        optimizer.zero_grad()
        _loss(network, step).backward()
        reference_parameter.grad = optimizer.flat_parameters.grad.clone()
        optimizer.fast_step()
        reference.step()
        assert torch.equal(optimizer.flat_parameters.data, reference_parameter.detach())
    state, reference_state = optimizer.state_dict()["state"][0], reference.state_dict()["state"][0]
    for key in ("step", "exp_avg", "exp_avg_sq"):
        assert torch.equal(state[key], reference_state[key])


def test_fast_step_goes_through_step_when_something_listens():
    network, optimizer, reference_parameter, reference = _flat_pair(
        torch.optim.Adam, lr=1e-2, fused=True
    )
    calls = []
    handle = optimizer.register_step_pre_hook(lambda *args: calls.append("pre"))
    for step in range(3):
        optimizer.zero_grad()
        _loss(network, step).backward()
        reference_parameter.grad = optimizer.flat_parameters.grad.clone()
        optimizer.fast_step()
        reference.step()
    assert calls == ["pre", "pre", "pre"]  # once a step, through torch's wrapper
    # ... and the step behind the wrapper is still the same update as torch's.
    assert torch.equal(optimizer.flat_parameters.data, reference_parameter.detach())
    handle.remove()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "lr_scheduler.step() before optimizer.step()"
        optimizer.zero_grad()
        _loss(network, 3).backward()
        optimizer.fast_step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
