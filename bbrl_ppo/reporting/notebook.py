"""What changes between a notebook and a terminal: progress bars, tensorboard, videos."""

from __future__ import annotations

import html
import json
import math
import os
import random
import shutil
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

#: Arguments of the tensorboard server behind the panel. Its default, a rescan of the
#: log directory every 5 s, would show a redrawn panel the data of 5 s before.
TENSORBOARD_ARGUMENTS = ("--reload_interval", "1")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where inline display works)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def setup_tensorboard(path: str | Path) -> None:
    """Show tensorboard for the logs under `path`, following the runs as they are written.

    In a notebook, tensorboard is displayed inline in a `TensorboardPanel`, which
    redraws itself when a run starts and while runs are written; elsewhere the
    command to run is printed (this never blocks waiting for input).
    """
    path = Path(path)
    if not in_notebook():
        print(f"To watch training, run in a terminal:  tensorboard --logdir {path}")
        return
    from tensorboard import manager

    find_tensorboard_binary()
    started = manager.start(["--logdir", str(path), *TENSORBOARD_ARGUMENTS])
    info = getattr(started, "info", None)
    if info is None:  # StartFailed, StartExecFailed or StartTimedOut: say what it said
        print(f"tensorboard did not start: {started}", file=sys.stderr)
        return
    key = str(path.resolve())
    previous = _PANELS.pop(key, None)
    if previous is not None:  # the cell was run again: one watcher per log directory
        previous.stop()
    panel = TensorboardPanel(path, info.port)
    panel.show()
    _PANELS[key] = panel


def find_tensorboard_binary() -> None:
    """Point ``TENSORBOARD_BINARY`` at the ``tensorboard`` installed beside this Python.

    Tensorboard's launcher runs ``tensorboard`` from PATH, which lacks the virtual
    environment's ``bin/`` when Jupyter was started without activating it
    (``.venv/bin/jupyter lab``); the launch then fails.
    """
    if os.environ.get("TENSORBOARD_BINARY") or shutil.which("tensorboard"):
        return
    beside_python = Path(sys.executable).parent / "tensorboard"
    if beside_python.is_file():
        os.environ["TENSORBOARD_BINARY"] = str(beside_python)


def event_files(logdir: Path) -> dict[str, int]:
    """Bytes of tensorboard event files per run (its folder, relative to `logdir`)."""
    sizes: dict[str, int] = {}
    for folder, _, names in os.walk(logdir):
        for name in names:
            if "tfevents" not in name:
                continue
            try:
                size = os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:  # removed while we looked
                continue
            run = Path(folder).relative_to(logdir).as_posix()
            sizes[run] = sizes.get(run, 0) + size
    return sizes


@dataclass
class RedrawPolicy:
    """When a panel that shows the runs as they were (`drawn`) should load them again.

    - at once when a run appears, and when a run grows for the first time since it was
      first seen: a new run's file holds only a header until its first data, and the
      run being trained shows as soon as it has something to show;
    - every `follow_s` seconds while the runs grow (the curves follow training);
    - once they have not grown for `settle_s` seconds (a run's last points).
    Each redraw waits `backend_s` after the change that asked for it, the time
    tensorboard's server takes to read it; what changed meanwhile counts as not
    drawn. Sizes are bytes of event files per run (`event_files`); times are
    seconds from any fixed origin (`time.monotonic`).
    """

    drawn: dict[str, int]
    drawn_at: float
    follow_s: float = 30.0
    settle_s: float = 3.0
    backend_s: float = 2.0
    #: Each run's size when first seen: a new run's file holds only a header.
    first_seen: dict[str, int] = field(default_factory=dict)
    latest: dict[str, int] = field(default_factory=dict)
    changed_at: float = 0.0
    #: The sizes a redraw due at `due_at` will show.
    pending: dict[str, int] | None = None
    due_at: float = math.inf

    def __post_init__(self) -> None:
        self.first_seen = {**self.drawn, **self.first_seen}
        self.latest = dict(self.drawn)
        self.changed_at = self.drawn_at

    def observe(self, sizes: dict[str, int], now: float) -> bool:
        """Record the runs' sizes at `now`; True when the panel should be redrawn now."""
        if sizes != self.latest:
            self.latest = dict(sizes)
            self.changed_at = now
            for run, size in sizes.items():
                self.first_seen.setdefault(run, size)
        if self.pending is None and self.latest != self.drawn and self._wanted(now):
            self.pending = dict(self.latest)
            self.due_at = now + self.backend_s
        return now >= self.due_at

    def redrawn(self, now: float) -> None:
        """The panel was loaded again at `now`."""
        if self.pending is not None:
            self.drawn = self.pending
        self.drawn_at = now
        self.pending, self.due_at = None, math.inf

    def _wanted(self, now: float) -> bool:
        for run, size in self.latest.items():
            if run not in self.drawn:
                return True
            if self.drawn[run] <= self.first_seen[run] < size:
                return True  # drawn as first seen (a new run: its header only), it grew
        return now - self.drawn_at >= self.follow_s or now - self.changed_at >= self.settle_s


class TensorboardPanel:
    """Tensorboard's page in a notebook output, loaded again when the runs change.

    Why: tensorboard's page reads the list of runs once. It reloads only if its
    "Reload data" setting is on, which is off by default and kept in the browser's
    storage for tensorboard's address, out of a notebook's reach; so a run started
    after the page loaded stays invisible until the student finds the reload button.
    A thread of the kernel watches the event files under the log directory and
    redraws the output as `RedrawPolicy` says; each redraw loads the page anew (a
    short flash, back on its first tab).
    """

    def __init__(self, logdir: str | Path, port: int, height: int = 700, poll_s: float = 1.0):
        self.logdir = Path(logdir)
        self.port = port
        self.height = height
        self.poll_s = poll_s
        self.policy = RedrawPolicy(event_files(self.logdir), time.monotonic())
        self._handle: Any = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def show(self) -> None:
        """Display the panel and start following the runs."""
        from IPython.display import HTML, display

        self.follow(display(HTML(self.html()), display_id=True))

    def follow(self, handle: Any) -> None:
        """Redraw through `handle` (an IPython `DisplayHandle`) from a watching thread."""
        self._handle = handle
        self._thread = threading.Thread(target=self._follow, name="tensorboard-panel", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following the runs; the panel stays as last drawn."""
        self._stopped.set()

    def redraw(self) -> None:
        from IPython.display import HTML

        self._handle.update(HTML(self.html()))

    def _follow(self) -> None:
        while not self._stopped.wait(self.poll_s):
            try:
                now = time.monotonic()
                if self.policy.observe(event_files(self.logdir), now):
                    self.policy.redrawn(now)
                    self.redraw()
            except Exception as error:  # a watcher that dies says so once, then leaves
                warnings.warn(
                    f"The tensorboard panel stopped following {self.logdir}: {error!r}; "
                    "its reload button still works",
                    stacklevel=1,
                )
                return

    def html(self) -> str:
        """An iframe on tensorboard's port of the page's own host, and what it shows."""
        frame_id = f"tensorboard-{random.getrandbits(64):016x}"
        proxy = os.environ.get("TENSORBOARD_PROXY_URL")  # as tensorboard's magic reads it
        url, port = (proxy.replace("%PORT%", str(self.port)), 0) if proxy else ("/", self.port)
        runs = self.policy.drawn
        caption = (
            f"tensorboard on {html.escape(str(self.logdir))}: {len(runs)} run"
            f"{'' if len(runs) == 1 else 's'} at {datetime.now():%H:%M:%S}; redrawn by "
            "itself when a run starts, while runs are written and when they stop"
        )
        return f"""
<div style="font-size: 0.85em; opacity: 0.7">{caption}</div>
<iframe id="{frame_id}" width="100%" height="{self.height}" frameborder="0"></iframe>
<script>
  (function() {{
    const frame = document.getElementById({json.dumps(frame_id)});
    const url = new URL({json.dumps(url)}, window.location);
    if ({port}) {{ url.port = {port}; }}
    frame.src = url;
  }})();
</script>
"""


#: The panel following each log directory, by resolved path.
_PANELS: dict[str, TensorboardPanel] = {}


def show_video(path: str | Path) -> None:
    """Display an mp4 inline when in a notebook; elsewhere do nothing."""
    if not in_notebook():
        return
    from IPython.display import Video, display

    display(Video(str(path), embed=True, html_attributes="controls loop autoplay"))
