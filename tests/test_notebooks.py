"""The notebooks under notebooks/ run from top to bottom."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    # Run a copy in a scratch folder beside a copy of configs/, so outputs stay there.
    (tmp_path / "notebooks").mkdir()
    shutil.copytree(path.parent.parent / "configs", tmp_path / "configs")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "notebooks")}},
    )  # fmt: skip
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.get("output_type") == "error"]
    assert list((tmp_path / "notebooks" / "outputs").rglob("best_agent.mp4"))
