"""What changes between a notebook and a terminal: progress bars, tensorboard, videos."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where inline display works)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def setup_tensorboard(path: str | Path) -> None:
    """Show tensorboard for the logs under `path`.

    In a notebook, tensorboard is displayed inline; elsewhere the command to run
    is printed (this never blocks waiting for input).
    """
    path = Path(path)
    if in_notebook():
        from IPython import get_ipython

        shell = get_ipython()
        find_tensorboard_binary()
        shell.run_line_magic("load_ext", "tensorboard")
        shell.run_line_magic("tensorboard", f'--logdir "{path}"')
    else:
        print(f"To watch training, run in a terminal:  tensorboard --logdir {path}")


def find_tensorboard_binary() -> None:
    """Point ``TENSORBOARD_BINARY`` at the ``tensorboard`` installed beside this Python.

    The ``%tensorboard`` magic runs ``tensorboard`` from PATH, which lacks the
    virtual environment's ``bin/`` when Jupyter was started without activating it
    (``.venv/bin/jupyter lab``); the magic then only prints an error.
    """
    if os.environ.get("TENSORBOARD_BINARY") or shutil.which("tensorboard"):
        return
    beside_python = Path(sys.executable).parent / "tensorboard"
    if beside_python.is_file():
        os.environ["TENSORBOARD_BINARY"] = str(beside_python)


def show_video(path: str | Path) -> None:
    """Display an mp4 inline when in a notebook; elsewhere do nothing."""
    if not in_notebook():
        return
    from IPython.display import Video, display

    display(Video(str(path), embed=True, html_attributes="controls loop autoplay"))
