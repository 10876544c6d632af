"""What changes between a notebook and a terminal: progress bars, tensorboard, videos."""

from __future__ import annotations

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
        shell.run_line_magic("load_ext", "tensorboard")
        shell.run_line_magic("tensorboard", f'--logdir "{path}"')
    else:
        print(f"To watch training, run in a terminal:  tensorboard --logdir {path}")


def show_video(path: str | Path) -> None:
    """Display an mp4 inline when in a notebook; elsewhere do nothing."""
    if not in_notebook():
        return
    from IPython.display import Video, display

    display(Video(str(path), embed=True, html_attributes="controls loop autoplay"))
