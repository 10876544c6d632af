"""The configs shipped with the package, addressable by name (``bbrl-ppo train cartpole``).

They are the repository's top-level ``configs/*.yaml``, installed as the package data
``bbrl_ppo/configs/`` (pyproject.toml maps the one folder to the other): an installed
wheel trains without the repository, and the repository keeps a single copy of each file.
"""

from __future__ import annotations

import difflib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

from bbrl_ppo.errors import MissingFileError

CONFIG_SUFFIX = ".yaml"
#: The comment line of a config's header that says what the config reaches.
REACHES_PREFIX = "# Reaches:"
#: Where the configs are in a source checkout (``pip install -e .``, or the repository on
#: ``sys.path``): setuptools' editable install does not expose a folder mapped from outside
#: the package as ``bbrl_ppo/configs`` (it has no ``__init__.py``, so no finder maps it).
_CHECKOUT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


class UnknownConfigError(MissingFileError):
    """A CONFIG that is neither a file nor the name of a packaged config."""


@dataclass(frozen=True)
class PackagedConfig:
    """One line of ``bbrl-ppo configs``: what a packaged config trains, and to what level."""

    name: str
    path: Path
    env_name: str
    variant: str
    reaches: str


def configs_dir() -> Path:
    """The folder of the packaged configs: inside the installed package, else the checkout's."""
    installed = importlib.resources.files("bbrl_ppo").joinpath("configs")
    if installed.is_dir():
        return Path(str(installed))  # a wheel installs files on disk, never in a zip
    return _CHECKOUT_CONFIGS


def config_names() -> list[str]:
    """The names of the packaged configs, sorted: their file names without ``.yaml``."""
    return sorted(path.stem for path in configs_dir().glob(f"*{CONFIG_SUFFIX}"))


def is_config_name(config: str | Path) -> bool:
    """Whether `config` is written as a name (``cartpole``) rather than a path.

    A name has no folder and no suffix: ``configs/cartpole.yaml`` and ``cartpole.yaml``
    stay paths, and a missing path fails as a missing file, as it always did.
    """
    path = Path(config)
    return len(path.parts) == 1 and not path.suffix and str(config) not in (".", "..")


def packaged_config(name: str) -> Path:
    """The file of the packaged config `name`; a one-line error with close names if none."""
    names = config_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"one of {', '.join(names)}"
        raise UnknownConfigError(
            f"No config file or packaged config named {name!r}: {hint} "
            "(bbrl-ppo configs lists them)"
        )
    return configs_dir() / f"{name}{CONFIG_SUFFIX}"


def resolve_config(config: str | Path) -> Path:
    """The YAML file `config` designates: an existing file or a path as given, else a name.

    An existing file wins over a packaged config of the same name, so that a user's
    ``./cartpole`` is never shadowed.
    """
    path = Path(config)
    if path.is_file() or not is_config_name(config):
        return path
    return packaged_config(str(config))


def missing_file_hint(path: Path) -> str:
    """For a config path that does not exist: the packaged config it may have meant."""
    if path.suffix == CONFIG_SUFFIX and path.stem in config_names():
        return f" (for the packaged one, write its name: {path.stem})"
    return ""


def describe(name: str) -> PackagedConfig:
    """What ``bbrl-ppo configs`` says of `name`: env and variant as training reads them."""
    from bbrl_ppo.cli.training import load_config  # the schema fills the defaults

    path = packaged_config(name)
    cfg = load_config(path)
    return PackagedConfig(
        name=name,
        path=path,
        env_name=cfg.gym_env.env_name,
        variant=cfg.algorithm.variant,
        reaches=_reaches(path),
    )


def _reaches(path: Path) -> str:
    """The ``# Reaches: ...`` line of the file's header comment, without its prefix."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if line.startswith(REACHES_PREFIX):
            return line[len(REACHES_PREFIX) :].strip()
    return "not measured"
