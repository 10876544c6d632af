"""Policy and critic evaluated as one stacked network during PPO's minibatch step.

Why: on the small MLPs of PPO, a minibatch step costs its number of torch operations
more than its arithmetic (BENCHMARKS.md, "Speed, round two"). The policy and the critic
usually have hidden layers of the same shapes (64x64 tanh for both): stacked, each
hidden layer of the pair is one batched matrix product (``baddbmm``) and one activation
over a (2, B, H) tensor instead of two of each, forward and backward alike.

How the agents stay as they are: each agent's parameters already live in one flat
buffer for its optimizer (`bbrl_ppo.optim.flat_parameters`). Here the two buffers are
the two rows of one (2, L) tensor, each agent's parameters in their usual order, so
that the policy's k-th hidden weight and the critic's are at the same offset of their
rows: the pair is a (2, out, in) view of the (2, L) tensor. The stacked views are leaf
tensors whose gradients are the matching views of the (2, L) gradient tensor, into
which backward accumulates in place: the agents' own ``.grad`` views see their
gradients, and their optimizers, gradient clipping, ``state_dict``s and checkpoints
are untouched. The output layers differ in width (actions against one value): each
runs on its own half of the last hidden activation, with the agent's own parameters.

Only the library's own MLP agents qualify (`BatchedActorCritic.for_agents` checks the
classes, the layer shapes and the activations); anything else falls back to one pass
per agent, the same arithmetic up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bbrl_ppo.agents.critics import VAgent
from bbrl_ppo.agents.policies import POLICY_TYPES, GaussianPolicy, StochasticPolicy

#: Relaxes autograd's "gradient layout contract" (torch >= 2.9): the stacked views and
#: their gradients are strided alike over the (2, L) buffers, which the contract does
#: not expect (it warns, once), although backward accumulates into them in place.
_relaxed_gradient_layout = getattr(torch.autograd, "enforce_grad_layout_policy", None)


@dataclass
class _MLPParts:
    """An agent's network as the stacked pass needs it."""

    hidden: list[nn.Linear]
    activations: list[nn.Module]
    output: nn.Linear


def _mlp_parts(model: nn.Module) -> _MLPParts | None:
    """``Linear, act, ..., Linear`` with no output activation, else None."""
    if not isinstance(model, nn.Sequential):
        return None
    layers = list(model)
    if len(layers) < 3 or len(layers) % 2 == 0:
        return None
    linears, activations = layers[0::2], layers[1::2]
    if not all(type(layer) is nn.Linear and layer.bias is not None for layer in linears):
        return None
    if any(isinstance(layer, nn.Linear) for layer in activations):
        return None
    return _MLPParts(linears[:-1], activations, linears[-1])


def _same_activation(first: nn.Module, second: nn.Module) -> bool:
    return type(first) is type(second) and first.extra_repr() == second.extra_repr()


def _qualifies(policy: nn.Module, critic: nn.Module) -> tuple[_MLPParts, _MLPParts] | None:
    """Both agents' network parts when their hidden layers can be stacked."""
    if type(policy) not in POLICY_TYPES.values() or type(critic) is not VAgent:
        return None  # a subclass may compute its output differently
    if isinstance(policy, GaussianPolicy) and policy.state_dependent_std:
        return None  # its log-std head reads the features too
    parts = _mlp_parts(policy.model), _mlp_parts(critic.model)
    if parts[0] is None or parts[1] is None:
        return None
    policy_parts, critic_parts = parts
    if len(policy_parts.hidden) != len(critic_parts.hidden):
        return None
    for first, second in zip(policy_parts.hidden, critic_parts.hidden, strict=True):
        if first.weight.shape != second.weight.shape:
            return None
    if not all(
        _same_activation(first, second)
        for first, second in zip(policy_parts.activations, critic_parts.activations, strict=True)
    ):
        return None
    if any(
        _hidden_offset(agent, agent_parts) is None
        for agent, agent_parts in ((policy, policy_parts), (critic, critic_parts))
    ):
        return None
    kinds = {
        (p.dtype, p.device)
        for agent in (policy, critic)
        for p in agent.parameters()
        if p.requires_grad
    }
    if len(kinds) != 1 or not next(iter(kinds))[0].is_floating_point:
        return None
    return policy_parts, critic_parts


def _hidden_offset(agent: nn.Module, parts: _MLPParts) -> int | None:
    """Where the hidden layers start in the agent's flat buffer, or None if they are
    not one run of its parameters in layer order (the flat buffer follows that order)."""
    trainable = [p for p in agent.parameters() if p.requires_grad]
    hidden = [p for layer in parts.hidden for p in (layer.weight, layer.bias)]
    start = next((i for i, p in enumerate(trainable) if p is hidden[0]), None)
    if (
        start is None
        or any(
            first is not second
            for first, second in zip(trainable[start : start + len(hidden)], hidden, strict=False)
        )
        or len(trainable) < start + len(hidden)
    ):
        return None
    return sum(p.numel() for p in trainable[:start])


def _trainable_size(agent: nn.Module) -> int:
    return sum(p.numel() for p in agent.parameters() if p.requires_grad)


class BatchedActorCritic:
    """The stacked pass over a policy and a critic whose hidden layers match.

    Built in two steps around the optimizers: `for_agents` allocates the (2, L)
    storage, whose rows (`storage`) the two flat optimizers adopt; `bind` then
    checks that the parameters moved there and makes the stacked views. Calling it
    returns the policy's network output and the critic's values for a batch of
    observations, as ``policy.model(policy.features(obs))`` and
    ``critic.value(obs)`` would, up to float rounding.
    """

    def __init__(self, policy: StochasticPolicy, critic: VAgent, parts: tuple[_MLPParts, ...]):
        self.policy, self.critic = policy, critic
        self._parts = parts
        sizes = (_trainable_size(policy), _trainable_size(critic))
        # Each row's flat buffer starts where its hidden layers land on the same column.
        offsets = [_hidden_offset(policy, parts[0]), _hidden_offset(critic, parts[1])]
        self._hidden_column = max(offsets)
        self._starts = [self._hidden_column - offset for offset in offsets]
        self._sizes = sizes
        like = policy.model[0].weight
        width = max(start + size for start, size in zip(self._starts, sizes, strict=True))
        self.data = torch.zeros(2, width, dtype=like.dtype, device=like.device)
        self.grad = torch.zeros_like(self.data)
        self._layers: list[tuple[torch.Tensor, torch.Tensor, nn.Module]] = []

    @classmethod
    def for_agents(cls, policy: nn.Module, critic: nn.Module) -> BatchedActorCritic | None:
        """The batched pass for these agents, or None when they do not qualify."""
        parts = _qualifies(policy, critic)
        if parts is None or _relaxed_gradient_layout is None:
            return None
        return cls(policy, critic, parts)

    def storage(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(data, grad)`` flat buffers of agent `index` (0 policy, 1 critic)."""
        start, size = self._starts[index], self._sizes[index]
        return self.data[index, start : start + size], self.grad[index, start : start + size]

    def bind(self) -> bool:
        """Make the stacked views; False if the parameters are not in the storage.

        They are not when the optimizer could not flatten them (an optimizer that is
        not element-wise ignores the storage): the caller then evaluates each agent
        on its own.
        """
        rows = self.data.data_ptr(), self.data[1].data_ptr()
        element = self.data.element_size()
        offset = self._hidden_column
        layers = []
        for policy_layer, critic_layer, activation in zip(
            self._parts[0].hidden, self._parts[1].hidden, self._parts[0].activations, strict=False
        ):
            stacked = []
            for policy_tensor, critic_tensor in (
                (policy_layer.weight, critic_layer.weight),
                (policy_layer.bias, critic_layer.bias),
            ):
                expected = rows[0] + offset * element, rows[1] + offset * element
                if (policy_tensor.data_ptr(), critic_tensor.data_ptr()) != expected:
                    return False
                size = policy_tensor.numel()
                stacked.append(self._stacked_leaf(offset, size, policy_tensor.shape))
                offset += size
            layers.append((*stacked, activation))
        self._layers = layers
        return True

    def _stacked_leaf(self, offset: int, size: int, shape: torch.Size) -> torch.Tensor:
        """A (2, *shape) leaf over both rows, its gradient the same view of ``grad``."""
        leaf = self.data[:, offset : offset + size].view(2, *shape).detach().requires_grad_()
        leaf.grad = self.grad[:, offset : offset + size].view(2, *shape)
        return leaf

    def serves(self, policy: nn.Module, critic: nn.Module) -> bool:
        """Whether these are still the agents it was built for (a user may swap them)."""
        return bool(self._layers) and policy is self.policy and critic is self.critic

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, its gradients accumulated into the strided stacked views."""
        with _relaxed_gradient_layout(False):
            loss.backward()

    def __call__(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(policy network output, critic values)`` for observations (B, *obs shape)."""
        policy_features = self.policy.features(observations)
        critic_features = self.critic.features(observations)
        if critic_features is policy_features:  # no normalization: the very same input
            hidden = policy_features.expand(2, *policy_features.shape)
        else:
            hidden = torch.stack((policy_features, critic_features))
        for weight, bias, activation in self._layers:
            hidden = activation(torch.baddbmm(bias.unsqueeze(1), hidden, weight.transpose(1, 2)))
        # unbind, not hidden[0] and hidden[1]: the backward of two selects would zero and
        # fill a (2, B, H) gradient each; unbind's stacks the two halves once.
        policy_hidden, critic_hidden = hidden.unbind(0)
        policy_output = self._parts[0].output(policy_hidden)
        values = self._parts[1].output(critic_hidden).squeeze(-1)
        return policy_output, values
