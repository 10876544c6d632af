"""The notebooks under notebooks/: stored clean, and running top to bottom in fast mode."""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import nbformat
import pytest
from nbclient import NotebookClient

from bbrl_ppo.reporting.notebook import find_tensorboard_binary

REPO = Path(__file__).parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
IDS = [path.name for path in NOTEBOOKS]


def test_the_three_notebooks_are_there():
    assert IDS == ["01_ppo_clip.ipynb", "02_continuous_control.ipynb", "03_custom_agent.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or execution counts; "
        "clear them before committing (DEVELOPERS.md, 'Notebooks')"
    )


def test_tensorboard_binary_is_found_beside_python_when_not_on_path(monkeypatch, tmp_path):
    monkeypatch.delenv("TENSORBOARD_BINARY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    find_tensorboard_binary()
    expected = Path(sys.executable).parent / "tensorboard"
    assert expected.is_file()
    assert os.environ["TENSORBOARD_BINARY"] == str(expected)


def test_tensorboard_binary_on_path_is_left_to_the_magic(monkeypatch, tmp_path):
    monkeypatch.delenv("TENSORBOARD_BINARY", raising=False)
    fake = tmp_path / "tensorboard"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    find_tensorboard_binary()
    assert "TENSORBOARD_BINARY" not in os.environ


def _stop_tensorboards(folder: Path) -> None:
    """Stop the tensorboard servers started from `folder`, should they outlive the kernel."""
    from tensorboard import manager

    for info in manager.get_all():
        arguments = json.loads(base64.b64decode(info.cache_key))
        if Path(arguments["working_directory"]).is_relative_to(folder):
            try:
                os.kill(info.pid, signal.SIGTERM)
            except ProcessLookupError:  # already stopped with the kernel
                pass


def _outputs(notebook, output_type: str) -> list:
    return [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == output_type
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch):
    # A copy runs in a scratch folder beside a copy of configs/, so its outputs land there.
    workdir = tmp_path / "notebooks"
    workdir.mkdir()
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    monkeypatch.setenv("BBRL_PPO_FAST", "1")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute()  # raises on the first cell that fails
    finally:
        _stop_tensorboards(tmp_path)

    errors = _outputs(notebook, "error")
    assert not errors, [f"{error['ename']}: {error['evalue']}" for error in errors]
    displayed = [output.get("data", {}) for output in _outputs(notebook, "display_data")]
    html = "".join(data.get("text/html", "") for data in displayed)
    assert "<iframe" in html, "tensorboard was not shown inline"
    assert "<video" in html, "the best agent's video was not shown inline"
    videos = list((workdir / "outputs").rglob("best_agent.mp4"))
    assert videos
    for video in videos:
        with imageio.get_reader(video) as reader:
            assert reader.count_frames() >= 10, video


@pytest.mark.slow
def test_notebooks_in_jupyterlab_as_a_student_sees_them():
    """scripts/notebooks_check.py, fast mode: Run All in headless Chromium, then look.

    It installs what it lacks (selenium; Debian's chromium and chromium-driver) and
    leaves screenshots in outputs/notebooks-check/fast/ (DEVELOPERS.md, 'Notebooks').
    """
    environment = {key: value for key, value in os.environ.items() if key != "BBRL_PPO_FAST"}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "notebooks_check.py")],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
