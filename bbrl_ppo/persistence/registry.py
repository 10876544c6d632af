"""The classes a configuration or a checkpoint may name, and nothing else.

Configs and checkpoints are data, often downloaded: a ``classname: os.system`` in
a YAML file or a class path in a ``best_agent.pt`` must not import and call
whatever it names. Names are resolved here against a closed set:

- optimizers: the classes of ``torch.optim`` (``Adam``, ``torch.optim.AdamW``...);
- loggers: bbrl's ``TFLogger`` (the default);
- agents rebuilt from checkpoints: the agent classes that record their constructor
  arguments (`bbrl_ppo.checkpoint.RecordsInitArgs`), which register themselves when
  their ``class`` statement runs, i.e. code the user chose to run;
- any class a user registers in code with `register_class`.

Nothing is imported to resolve a name: a module a YAML file names is never loaded.
"""

from __future__ import annotations

from typing import TypeVar

import torch

from bbrl_ppo.errors import InvalidInputError

_T = TypeVar("_T", bound=type)

_REGISTERED: dict[str, type] = {}

#: Loggers known by name; imported lazily by `resolve_logger` (they are ours or bbrl's).
BUILTIN_LOGGERS = {
    "bbrl.utils.logger.TFLogger": ("bbrl.utils.logger", "TFLogger"),
}


#: Modules that moved when the package was split into sub-packages: checkpoints
#: written before name their classes by the old module path.
MOVED_MODULES = {
    "bbrl_ppo.policies": "bbrl_ppo.agents.policies",
    "bbrl_ppo.critics": "bbrl_ppo.agents.critics",
    "bbrl_ppo.ppo": "bbrl_ppo.algorithms.ppo",
}


class UnknownClassError(InvalidInputError):
    """A name in a config or checkpoint that is not an allowed class."""


def class_path(cls: type) -> str:
    """The dotted name a config or checkpoint uses for `cls`."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register_class(cls: _T) -> _T:
    """Allow configs and checkpoints to name `cls` (by dotted path or bare name).

    Usable as a decorator::

        @register_class
        class MyOptimizer(torch.optim.Optimizer): ...
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_class expects a class, got {cls!r}")
    _REGISTERED[class_path(cls)] = cls
    return cls


def registered(name: str, base: type) -> type | None:
    """The registered subclass of `base` called `name` (dotted path or bare name)."""
    module, _, qualname = name.rpartition(".")
    if module in MOVED_MODULES:
        name = f"{MOVED_MODULES[module]}.{qualname}"
    cls = _REGISTERED.get(name)
    if cls is None:
        matches = [c for c in _REGISTERED.values() if c.__qualname__ == name]
        cls = matches[0] if len(matches) == 1 else None
    return cls if cls is not None and issubclass(cls, base) else None


def resolve_optimizer(name: str) -> type[torch.optim.Optimizer]:
    """A torch optimizer class, or a registered one, named in a config."""
    short = name.removeprefix("torch.optim.")
    candidate = getattr(torch.optim, short, None) if "." not in short else None
    if isinstance(candidate, type) and issubclass(candidate, torch.optim.Optimizer):
        return candidate
    cls = registered(name, torch.optim.Optimizer)
    if cls is not None:
        return cls
    known = sorted(
        n
        for n in dir(torch.optim)
        if isinstance(getattr(torch.optim, n), type)
        and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
        and n != "Optimizer"
    )
    raise UnknownClassError(
        f"optimizer.classname {name!r} is not an allowed optimizer: use one of torch.optim's "
        f"({', '.join('torch.optim.' + n for n in known[:6])}, ...) or register your class in "
        "code with bbrl_ppo.register_class(MyOptimizer)"
    )


def unexpected_arguments(cls: type, arguments: dict) -> list[str]:
    """The keys of `arguments` that ``cls.__init__`` does not accept."""
    import inspect

    parameters = inspect.signature(cls.__init__).parameters.values()
    if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters):
        return []
    names = {parameter.name for parameter in parameters}
    return [key for key in arguments if key not in names]


def accepted_arguments(cls: type) -> list[str]:
    """The keyword arguments ``cls.__init__`` names, besides ``self`` and ``params``."""
    import inspect

    parameters = inspect.signature(cls.__init__).parameters
    return [name for name in parameters if name not in ("self", "params")]


def resolve_logger(name: str) -> type:
    """bbrl's tensorboard logger, or a registered class."""
    if name in BUILTIN_LOGGERS:
        import importlib

        module_name, attribute = BUILTIN_LOGGERS[name]
        return getattr(importlib.import_module(module_name), attribute)
    cls = registered(name, object)
    if cls is not None:
        return cls
    raise UnknownClassError(
        f"logger.classname {name!r} is not an allowed logger: use one of "
        f"{', '.join(BUILTIN_LOGGERS)}, or register your class in code with "
        "bbrl_ppo.register_class(MyLogger)"
    )


def resolve_agent(name: str) -> type:
    """An agent class a checkpoint names: registered (or self-registered) only.

    Checkpoints write ``module:qualname``; the dotted form is accepted too.
    """
    from bbrl.agents import Agent

    cls = registered(name.replace(":", "."), Agent)
    if cls is None:
        raise UnknownClassError(
            f"The checkpoint names the agent class {name!r}, which is not registered: only "
            "classes defined or registered in this Python session can be rebuilt. Import the "
            "module that defines it (or call bbrl_ppo.register_class on it), or pass an "
            "instance to fill: load_agent(path, agent=MyPolicy(...))"
        )
    return cls
