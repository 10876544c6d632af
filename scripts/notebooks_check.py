"""The notebooks as a student sees them: JupyterLab in headless Chromium, Run All, then look.

    .venv/bin/python scripts/notebooks_check.py [--full] [--keep] [01 02 03]

(`make notebooks-check`, `make notebooks-check FULL=1`). nbclient (tests/test_notebooks.py)
proves that the cells run; it cannot see what JupyterLab draws of them: whether the
tensorboard panel lists the run being trained, whether a progress bar ends red, whether
the video plays. This script opens each notebook of a fresh copy of notebooks/ (no
earlier runs, as on a fresh clone) in JupyterLab, runs it with Run All in headless
Chromium, waits for the kernel to be idle and asserts:

- no cell has an error output;
- the tensorboard panel lists every run the notebook trained (watched during training
  too: a training cell that ran long enough must have shown its run while running);
- every progress bar ends full and not red, with a total (no ``N/?``);
- the best agent's video is there, has a duration and plays.

Screenshots of each notebook land in outputs/notebooks-check/{fast,full}/; a summary is
printed and the exit code is 1 if an assertion failed. Fast mode (BBRL_PPO_FAST=1, the
notebooks' short budgets) is the default; --full runs the budgets a student runs.

What it lacks is installed first: selenium (and the `notebooks` extra) from the package
index, Chromium and its driver from the system's packages (apt-get: Debian's `chromium`
and `chromium-driver`; no browser is downloaded from anywhere else). Every process
started here is stopped at the end: JupyterLab, the kernels, the tensorboard servers the
kernels started, the browser.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
#: Headless Chromium as root on a machine without network: no sandbox (root), no GPU,
#: and none of the background connections that a closed network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",  # WebGL in software: tensorboard draws its charts with it
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1400,1100",
)
#: What the check needs besides the `notebooks` extra.
PACKAGES = ("selenium>=4.11", "psutil>=5.9")
#: A training cell that runs this long must show its run in tensorboard while it runs
#: (the panel redraws a few seconds after a run's first data).
LONG_TRAINING_S = 20.0


class CheckFailed(AssertionError):
    """What a student would see wrong."""


# -- setting up -----------------------------------------------------------------------------
def ensure_browser() -> None:
    """Install Debian's chromium and chromium-driver when they are missing."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"Needs {CHROMIUM} and {CHROMEDRIVER} (Debian: chromium, chromium-driver)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("Installing chromium and chromium-driver with apt-get...", flush=True)
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=environment)
    install = ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]
    subprocess.run([*sudo, *install], check=True, env=environment)


def ensure_python_packages() -> None:
    """Install JupyterLab (the `notebooks` extra) and selenium when they are missing."""
    import importlib.util

    missing = [
        name for name in ("jupyterlab", "selenium", "psutil") if not importlib.util.find_spec(name)
    ]
    if not missing:
        return
    print(f"Installing {', '.join(missing)} from the package index...", flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    constraints = ["-c", str(REPO / "constraints.txt")]
    subprocess.run([*pip, *constraints, "-e", f"{REPO}[notebooks]", *PACKAGES], check=True)


def copy_notebooks(scratch: Path, names: list[str]) -> Path:
    """notebooks/ and configs/ as a fresh clone has them: no outputs, no earlier runs."""
    folder = scratch / "notebooks"
    folder.mkdir()
    for name in names:
        shutil.copy(REPO / "notebooks" / name, folder / name)
    shutil.copytree(REPO / "configs", scratch / "configs")
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Lab:
    """A JupyterLab server serving one folder, and every process it started."""

    process: subprocess.Popen
    url: str
    token: str
    log: Path
    #: Processes seen under the server (kernels, and the tensorboard servers they start,
    #: which outlive their kernel), stopped with it.
    descendants: dict[int, Any] = field(default_factory=dict)

    def note_descendants(self) -> None:
        import psutil

        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.descendants.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass


@contextmanager
def jupyter_lab(folder: Path, scratch: Path, fast: bool) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 with the app reachable from the page (to Run All)."""
    port, token = free_port(), secrets.token_hex(16)
    environment = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "JUPYTER_CONFIG_DIR": str(scratch / "config"),
    }
    environment.pop("BBRL_PPO_FAST", None)
    if fast:
        environment["BBRL_PPO_FAST"] = "1"
    command = [
        str(Path(sys.executable).parent / "jupyter"),
        "lab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={folder}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        f"--LabApp.user_settings_dir={scratch / 'settings'}",
        f"--LabApp.workspaces_dir={scratch / 'workspaces'}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    # The question "get notified about Jupyter news?" would cover part of the screenshots.
    settings = scratch / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = scratch / "jupyterlab.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            command, env=environment, stdout=output, stderr=subprocess.STDOUT, cwd=folder
        )
    lab = Lab(process, f"http://127.0.0.1:{port}", token, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{lab.url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; see {log}") from None
                time.sleep(0.5)
        yield lab
    finally:
        stop_lab(lab)


def stop_lab(lab: Lab) -> None:
    """Stop JupyterLab (it shuts its kernels down), then whatever it left running."""
    import psutil

    lab.note_descendants()
    if lab.process.poll() is None:
        lab.process.send_signal(signal.SIGTERM)
        try:
            lab.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lab.process.kill()
            lab.process.wait()
    left = [process for process in lab.descendants.values() if process.is_running()]
    for process in left:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(left, timeout=10)
    for process in alive:
        process.kill()


@contextmanager
def chromium(scratch: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium's manager must not look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={scratch / 'chromium'}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(scratch / "driver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


# -- looking at a notebook -------------------------------------------------------------------
#: The open notebook as JupyterLab's model has it (`window.jupyterapp`, exposed by
#: --LabApp.expose_app_in_browser).
NOTEBOOK_STATE_JS = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.sessionContext || !panel.content) { return null; }
const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
const cells = panel.content.widgets.map((cell, index) => {
  const model = cell.model;
  const outputs = model.type === 'code' ? model.outputs.toJSON() : [];
  return {
    index, type: model.type, source: model.sharedModel.getSource(),
    count: model.type === 'code' ? model.executionCount : null,
    errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
    stderr: outputs.filter(o => o.output_type === 'stream' && o.name === 'stderr')
                   .map(o => [].concat(o.text).join('')),
  };
});
return {path: panel.context.path, ready: panel.sessionContext.isReady,
        status: kernel ? kernel.status : null, cells};
"""

#: The open notebook's element (queries stay in it: other tabs keep their outputs).
PANEL_JS = "const panel = window.jupyterapp.shell.currentWidget;\n"

#: The tensorboard output's iframe, by the id `TensorboardPanel` gives it.
FRAME_JS = (
    PANEL_JS + "return [...panel.node.querySelectorAll(\"iframe[id^='tensorboard-']\")].pop();"
)

#: What the page in the frame shows, and when it was loaded (ms since the epoch).
FRAME_PAGE_JS = "return [document.body ? document.body.innerText : '', performance.timeOrigin];"

BARS_JS = (
    PANEL_JS
    + """
return [...panel.node.querySelectorAll('.jp-OutputArea .widget-hprogress')].map(progress => {
  const bar = progress.querySelector('.progress-bar');
  const row = progress.closest('.widget-hbox') || progress.parentElement;
  return {classes: bar ? bar.className : '', width: bar ? bar.style.width : '',
          text: row ? row.innerText.replace(/\\u2007/g, ' ').replace(/\\s+/g, ' ').trim() : ''};
});
"""
)

VIDEO_JS = (
    PANEL_JS
    + """
return (async () => {
  const videos = panel.node.querySelectorAll('.jp-OutputArea video');
  if (!videos.length) { return {found: 0}; }
  const video = videos[videos.length - 1];
  video.scrollIntoView({block: 'center'});
  video.muted = true;
  const started = performance.now();
  while (video.readyState < 2 && !video.error && performance.now() - started < 15000) {
    await new Promise(resolve => setTimeout(resolve, 200));
  }
  let played = null;
  try { await video.play(); played = true; } catch (error) { played = String(error); }
  await new Promise(resolve => setTimeout(resolve, 1500));
  return {found: videos.length, error: video.error ? video.error.code : null,
          readyState: video.readyState, duration: video.duration,
          currentTime: video.currentTime, played};
})();
"""
)


@dataclass
class Report:
    """What one notebook showed."""

    name: str
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)

    def check(self, condition: bool, failure: str) -> None:
        if not condition:
            self.failures.append(failure)


class NotebookPage:
    """One notebook open in JupyterLab, driven and read through the browser."""

    def __init__(self, driver: Any, name: str):
        self.driver, self.name = driver, name

    def state(self) -> dict[str, Any] | None:
        return self.driver.execute_script(NOTEBOOK_STATE_JS)

    def open(self) -> None:
        """File > Open, in the JupyterLab page already loaded; wait for an idle kernel."""
        self.driver.execute_script(
            "window.jupyterapp.commands.execute('docmanager:open',"
            " {path: arguments[0], factory: 'Notebook'}); return true;",
            self.name,
        )

        def kernel_idle() -> bool:
            state = self.state()
            return bool(state and state["path"] == self.name and state["ready"]) and (
                state["status"] == "idle"
            )

        wait_for(kernel_idle, 180, f"{self.name}: the kernel never became idle")

    def run_all(self) -> None:
        """Run > Run All Cells, as the menu does."""
        self.driver.execute_script(
            "window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;"
        )

    def frame(self) -> tuple[str, float]:
        """What the tensorboard panel's page shows and when (epoch s) it was loaded."""
        from selenium.common.exceptions import WebDriverException

        driver = self.driver
        try:
            frame = driver.execute_script(FRAME_JS)
            if frame is None:
                return "", 0.0
            driver.switch_to.frame(frame)
            text, origin_ms = driver.execute_script(FRAME_PAGE_JS)
            return text, origin_ms / 1000
        except WebDriverException:  # the panel was redrawn meanwhile
            return "", 0.0
        finally:
            driver.switch_to.default_content()

    def scroll_to_cell(self, index: int) -> None:
        """Bring a cell to the top; twice, as the cells drawn on the way change the heights."""
        for _ in range(2):
            self.driver.execute_script(
                PANEL_JS
                + "panel.content.widgets[arguments[0]].node.scrollIntoView({block: 'start'});",
                index,
            )
            time.sleep(1.5)

    def screenshot(self, report: Report, folder: Path, label: str, cell: int) -> None:
        """The window, with `cell` at its top."""
        self.scroll_to_cell(cell)
        path = folder / f"{Path(self.name).stem}-{label}.png"
        self.driver.save_screenshot(str(path))
        report.screenshots.append(path)

    def close(self) -> None:
        """Shut the kernel down and close the tab (saved first, so no dialog asks)."""
        self.driver.execute_script(
            PANEL_JS + "return (async () => { await panel.sessionContext.shutdown();"
            " await panel.context.save(); panel.close(); return true; })();"
        )


def event_sizes(outputs: Path) -> dict[str, int]:
    """Bytes of event files per run folder (relative to `outputs`, as tensorboard names it)."""
    sizes: dict[str, int] = {}
    if outputs.is_dir():
        for path in outputs.rglob("*tfevents*"):
            run = path.parent.relative_to(outputs).as_posix()
            sizes[run] = sizes.get(run, 0) + path.stat().st_size
    return sizes


def wait_for(condition: Callable[[], Any], timeout: float, failure: str, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(failure)
        time.sleep(every)


class FirstData:
    """When (epoch s) each new run's event files first held more than their header.

    Watched from a thread every 0.2 s: the main loop, which also reads the page, polls
    slower, and a late time would discount a panel loaded just after the data came.
    """

    def __init__(self, outputs: Path, before: set[str]):
        self.outputs, self.before = outputs, before
        self.at: dict[str, float] = {}
        self._first_size: dict[str, int] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopped.wait(0.2):
            try:
                sizes = event_sizes(self.outputs)
            except FileNotFoundError:  # a file went away while we looked
                continue
            for run, size in sizes.items():
                if run not in self.before and size > self._first_size.setdefault(run, size):
                    self.at.setdefault(run, time.time())

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


@dataclass
class Training:
    """The training cell as watched from outside while Run All goes on.

    The panel showed a run's data while training when its page, loaded after the run's
    first data (`FirstData`), listed the run.
    """

    first_data: FirstData
    started: float | None = None
    ended: float | None = None
    shown_after_s: float | None = None

    def watch(self, page: NotebookPage, running: bool) -> None:
        now = time.time()
        if running and self.started is None:
            self.started = now
        if self.started is None or self.ended is not None:
            return
        if not running:
            self.ended = now
            return
        data_at = dict(self.first_data.at)
        if self.shown_after_s is None and data_at:
            text, loaded_at = page.frame()
            if any(run in text and loaded_at >= at for run, at in data_at.items()):
                self.shown_after_s = time.time() - self.started


def run_all_and_watch(
    page: NotebookPage, lab: Lab, outputs: Path, cells: tuple[int, int], timeout: float
) -> tuple[Training, list[str]]:
    """Run All, then poll until every cell ran (or one failed): the training, the errors."""
    training = Training(FirstData(outputs, set(event_sizes(outputs))))
    page.run_all()
    try:
        return training, _wait_for_every_cell(page, lab, training, cells, timeout)
    finally:
        training.first_data.stop()


def _wait_for_every_cell(
    page: NotebookPage, lab: Lab, training: Training, cells: tuple[int, int], timeout: float
) -> list[str]:
    tensorboard_cell, training_cell = cells
    deadline = time.monotonic() + timeout
    while True:
        lab.note_descendants()
        state = page.state()
        errors = [error for cell in state["cells"] for error in cell["errors"]]
        if errors:
            return [f"error output: {errors}"]
        # Run All queues every cell at once: the training cell runs from the moment the
        # cell before it (the tensorboard cell) has its execution count until it has one.
        counts = [cell["count"] for cell in state["cells"]]
        training.watch(page, counts[tensorboard_cell] is not None and counts[training_cell] is None)
        code = [cell for cell in state["cells"] if cell["type"] == "code"]
        if all(cell["count"] is not None for cell in code) and state["status"] == "idle":
            return []
        if time.monotonic() > deadline:
            return [f"not finished after {timeout:.0f} s"]
        time.sleep(1.0)


def check_notebook(driver: Any, lab: Lab, folder: Path, name: str, shots: Path, timeout: float):
    report = Report(name)
    outputs = folder / "outputs"
    before = set(event_sizes(outputs))
    page = NotebookPage(driver, name)
    started = time.monotonic()
    page.open()
    code = [cell for cell in page.state()["cells"] if cell["type"] == "code"]
    tensorboard_cell = next(
        c["index"] for c in code if c["source"].lstrip().startswith("setup_tensorboard(")
    )
    training_cell = next(c["index"] for c in code if c["index"] > tensorboard_cell)
    training, failures = run_all_and_watch(
        page, lab, outputs, (tensorboard_cell, training_cell), timeout
    )
    report.failures += failures
    report.seconds = time.monotonic() - started
    stderr = [text for cell in page.state()["cells"] for text in cell["stderr"]]
    if stderr:
        report.notes.append(f"stderr output: {[text[:160] for text in stderr]}")
    trained = sorted(set(event_sizes(outputs)) - before)
    report.check(bool(trained), "no run was written under outputs/")
    check_training_shown(report, training)
    check_tensorboard(report, page, tensorboard_cell, trained)
    page.screenshot(report, shots, "1-tensorboard", tensorboard_cell)
    check_bars(report, driver)
    page.screenshot(report, shots, "2-training", training_cell)
    for cell in code:
        if "next(iter_partial_episodes" in cell["source"]:
            page.screenshot(report, shots, "0-one-rollout", cell["index"])
    check_video(report, driver)
    video_cell = next(c["index"] for c in code if "visualize_best()" in c["source"])
    page.screenshot(report, shots, "3-video", video_cell)
    page.close()
    return report


def check_training_shown(report: Report, training: Training) -> None:
    """A training cell that ran long enough showed its run's data in the panel meanwhile."""
    if training.started is None or training.ended is None:
        return
    duration = training.ended - training.started
    when = (
        f"{training.shown_after_s:.0f} s into it"
        if training.shown_after_s is not None
        else "not while it ran"
    )
    report.notes.append(f"training cell ran {duration:.0f} s; panel showed its run's data {when}")
    if duration >= LONG_TRAINING_S:
        report.check(
            training.shown_after_s is not None,
            f"the tensorboard panel did not show the run during {duration:.0f} s of training",
        )


def check_tensorboard(report: Report, page: NotebookPage, cell: int, trained: list[str]) -> None:
    """Once all is written, the panel lists every run of the notebook, with dashboards."""
    page.scroll_to_cell(cell)
    try:
        text = wait_for(
            lambda: (lambda t: t if all(run in t for run in trained) else "")(page.frame()[0]),
            90,
            f"the tensorboard panel does not list {trained}",
            every=2.0,
        )
        report.notes.append(f"tensorboard lists {trained}")
        report.check("No dashboards are active" not in text, "tensorboard shows no dashboard")
    except CheckFailed as failure:
        report.failures.append(str(failure))
    time.sleep(3.0)  # the page draws its charts after its list of runs


def check_bars(report: Report, driver: Any) -> None:
    """Each progress bar ends full, not red, with its total."""
    bars = driver.execute_script(BARS_JS)
    report.check(bool(bars), "no progress bar")
    report.notes.append(f"progress bars: {[bar['text'] for bar in bars]}")
    for bar in bars:
        report.check("danger" not in bar["classes"], f"a red progress bar: {bar['text']}")
        report.check(bar["width"] == "100%", f"a bar not full ({bar['width']}): {bar['text']}")
        report.check("/?" not in bar["text"], f"a bar without its total: {bar['text']}")


def check_video(report: Report, driver: Any) -> None:
    """The best agent's video is there, decodes and plays."""
    video = driver.execute_script(VIDEO_JS)
    report.notes.append(f"video: {video}")
    report.check(video.get("found", 0) >= 1, "no video element")
    if video.get("found"):
        report.check(video["error"] is None, f"the video does not decode (error {video['error']})")
        report.check((video["duration"] or 0) > 0, "the video has no duration")
        report.check(
            video["played"] is True and video["currentTime"] > 0, "the video does not play"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="prefixes, e.g. 01 03 (default: all)")
    parser.add_argument("--full", action="store_true", help="the full budgets, not fast mode")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--timeout", type=float, help="seconds per notebook")
    args = parser.parse_args(argv)
    names = sorted(path.name for path in (REPO / "notebooks").glob("*.ipynb"))
    if args.notebooks:
        names = [name for name in names if any(name.startswith(p) for p in args.notebooks)]
    timeout = args.timeout or (1800.0 if args.full else 600.0)
    mode = "full" if args.full else "fast"
    shots = REPO / "outputs" / "notebooks-check" / mode
    shots.mkdir(parents=True, exist_ok=True)
    for name in names:  # the others' screenshots stay
        for old in shots.glob(f"{Path(name).stem}-*.png"):
            old.unlink()

    ensure_python_packages()
    ensure_browser()
    started = time.monotonic()
    reports = []
    scratch = Path(tempfile.mkdtemp(prefix="notebooks-check-"))
    try:
        folder = copy_notebooks(scratch, names)
        with ExitStack() as stack:
            lab = stack.enter_context(jupyter_lab(folder, scratch, fast=not args.full))
            driver = stack.enter_context(chromium(scratch))
            driver.get(f"{lab.url}/lab?reset&token={lab.token}")  # no earlier layout
            wait_for(
                lambda: driver.execute_script(
                    "return !!(window.jupyterapp && window.jupyterapp.shell);"
                ),
                120,
                "JupyterLab's page did not load",
            )
            driver.execute_script("return (async () => { await window.jupyterapp.restored; })();")
            for name in names:
                print(f"{name}: Run All ({mode})...", flush=True)
                try:
                    report = check_notebook(driver, lab, folder, name, shots, timeout)
                except CheckFailed as failure:
                    report = Report(name, failures=[str(failure)])
                    driver.save_screenshot(str(shots / f"{Path(name).stem}-failed.png"))
                reports.append(report)
                print(format_report(report), flush=True)
    finally:
        if args.keep:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    failed = [report.name for report in reports if report.failures]
    print(
        f"\n{len(reports) - len(failed)} passed, {len(failed)} failed "
        f"({mode} mode, {time.monotonic() - started:.0f} s; screenshots in {shots})"
    )
    (shots / "report.json").write_text(
        json.dumps(
            [{**vars(r), "screenshots": [str(p) for p in r.screenshots]} for r in reports], indent=1
        )
    )
    return 1 if failed else 0


def format_report(report: Report) -> str:
    status = "FAILED" if report.failures else "ok"
    lines = [f"  {status} in {report.seconds:.0f} s"]
    lines += [f"  ! {failure}" for failure in report.failures]
    lines += [f"  - {note}" for note in report.notes]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
