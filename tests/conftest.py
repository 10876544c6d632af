"""Shared fixtures: every test runs in its own working directory."""

import os

import pytest
import torch

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture(autouse=True)
def _isolated_run(tmp_path, monkeypatch):
    """Runs write under ./outputs: keep each test's files in its own folder."""
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)
    yield
