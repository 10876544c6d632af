"""The bbrl internals `bbrl_ppo.agents.workspace_io` relies on, checked loudly.

`StepWriter` appends to a `SlicedTemporalTensor`'s list of tensors instead of
calling `Workspace.set`, and `read_step` indexes that list. If a bbrl release
changes those internals, these tests fail with the name of what changed, before
any run writes a wrong workspace. pyproject.toml bounds bbrl to the versions
these tests passed on.
"""

import torch
from bbrl.workspace import SlicedTemporalTensor, Workspace

from bbrl_ppo.agents.workspace_io import StepWriter, read_step


def test_a_sliced_variable_keeps_its_steps_in_a_list_with_size_dtype_and_device():
    workspace = Workspace()
    workspace.set("x", 0, torch.zeros(3))
    variable = workspace.variables["x"]
    assert type(variable) is SlicedTemporalTensor, "Workspace.variables holds sliced tensors"
    assert isinstance(variable.tensors, list), "SlicedTemporalTensor.tensors is a list"
    assert variable.size == torch.Size([3]) and variable.dtype == torch.float32
    assert variable.device == torch.device("cpu")


def test_the_fast_writer_gives_the_workspace_bbrls_own_set_gives():
    names = ("env/env_obs", "env/reward", "env/done")
    fast, reference = Workspace(), Workspace()
    writer = StepWriter(names)
    generator = torch.Generator().manual_seed(0)
    for t in range(6):
        values = (
            torch.randn(4, 2, generator=generator),
            torch.randn(4, generator=generator),
            torch.rand(4, generator=generator) < 0.3,
        )
        writer.write(fast, t, values)
        for name, value in zip(names, values, strict=True):
            reference.set(name, t, value)
    writer.write(fast, 2, (torch.ones(4, 2), torch.ones(4), torch.ones(4, dtype=torch.bool)))
    reference.set("env/env_obs", 2, torch.ones(4, 2))
    reference.set("env/reward", 2, torch.ones(4))
    reference.set("env/done", 2, torch.ones(4, dtype=torch.bool))
    for name in names:
        assert fast.time_size() == reference.time_size() == 6
        assert torch.equal(fast.get_full(name), reference.get_full(name)), name
        for t in range(6):
            assert torch.equal(read_step(fast, name, t), reference.get(name, t)), (name, t)


def test_pyproject_floors_cover_what_the_code_uses(request):
    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    from packaging.requirements import Requirement
    from packaging.version import Version

    # What the code needs, and why: a floor below it installs a release the code breaks on.
    needs = {
        "torch": ("2.4", "fused CPU Adam, the default optimizer step"),
        "gymnasium": ("1.1", "gymnasium.vector.AutoresetMode"),
        "bbrl": ("1.0.1", "the env/timestep layout tests/test_env_agent.py checks"),
    }
    pyproject = tomllib.loads((request.config.rootpath / "pyproject.toml").read_text())
    requirements = {
        Requirement(line).name: Requirement(line) for line in pyproject["project"]["dependencies"]
    }
    for name, (needed, why) in needs.items():
        specifier = requirements[name].specifier
        floors = [Version(spec.version) for spec in specifier if spec.operator in (">=", "==")]
        assert floors and min(floors) >= Version(needed), f"{name} >= {needed} ({why})"
    # workspace_io.py writes into bbrl's internals: a release they were not tested on is out.
    assert not requirements["bbrl"].specifier.contains("1.1.0"), "bbrl needs an upper bound"
