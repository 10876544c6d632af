"""The ``bbrl-ppo`` command line: train, resume, play, eval, smoke."""

from bbrl_ppo.cli.main import main

__all__ = ["main"]
