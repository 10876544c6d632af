"""The package as a user installs it: a wheel in a fresh venv, far from the repository.

    .venv/bin/python scripts/wheel_check.py [--keep]

1. Builds the sdist and the wheel with ``python -m build`` (the wheel from the sdist, so
   both are checked) from a copy of what the sdist takes: the build writes its
   ``*.egg-info`` beside the sources, and the checkout stays as it was.
2. Creates a venv in a temporary folder and installs the wheel into it with its
   dependencies, under ``-c constraints.txt`` (the CPU torch; see DEVELOPERS.md).
3. From another temporary folder, without PYTHONPATH, runs what a new user runs first:
   ``bbrl-ppo --version``, ``configs``, ``configs show cartpole``, ``train cartpole``
   (2,000 env steps) and ``play`` on the run it wrote.

It fails if the build or the install printed a deprecation warning, if bbrl_ppo or its
packaged configs were found anywhere but in the venv, or if any entry of the installed
interpreter's ``sys.path`` lies in the checkout. ``tests/test_packaging.py`` runs it
(marked slow, so ``make test`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
#: What the sdist is made of (pyproject.toml names the rest: README, license files).
SDIST_INPUTS = ("pyproject.toml", "README.md", "bbrl_ppo", "configs")
LICENSE_GLOBS = ("LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*")
TRAIN_STEPS = 2000
#: Printed by `python -m build` and pip for what a later release will refuse.
DEPRECATION = re.compile(r"deprecat", re.IGNORECASE)

#: Run by the installed interpreter: where bbrl_ppo and its configs came from.
WHERE_FROM = """\
import json, sys
import bbrl_ppo
from bbrl_ppo.config.packaged import config_names, configs_dir
print(json.dumps({"module": bbrl_ppo.__file__, "configs": str(configs_dir()),
                  "names": config_names(), "version": bbrl_ppo.__version__,
                  "sys_path": sys.path}))
"""


class CheckFailed(Exception):
    """What a user of the wheel would see go wrong."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bbrl_ppo-wheel-check-"))
    started = time.perf_counter()
    try:
        if scratch.resolve().is_relative_to(REPO):  # TMPDIR inside the checkout
            raise CheckFailed(f"the temporary folder {scratch} lies in the checkout")
        wheel = _timed("build the sdist and the wheel", lambda: build(scratch))
        venv = _timed("a fresh venv with the wheel", lambda: install(wheel, scratch / "venv"))
        _timed("run it from outside the checkout", lambda: use(venv, wheel, scratch / "work"))
    except CheckFailed as failure:
        print(f"wheel check FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"Kept {scratch}")
        else:
            _timed(
                "remove the temporary folder", lambda: shutil.rmtree(scratch, ignore_errors=True)
            )
    print(f"wheel check passed in {time.perf_counter() - started:.0f} s")
    return 0


def build(scratch: Path) -> Path:
    """The wheel, built from the sdist of a copy of the checkout's sources."""
    source = scratch / "source"
    source.mkdir()
    for name in SDIST_INPUTS:
        _copy(REPO / name, source / name)
    for pattern in LICENSE_GLOBS:
        for path in REPO.glob(pattern):
            _copy(path, source / path.name)
    dist = scratch / "dist"
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(source)], forbid=DEPRECATION)
    sdists, wheels = list(dist.glob("*.tar.gz")), list(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise CheckFailed(
            f"expected one sdist and one wheel in {dist}, got {sorted(dist.iterdir())}"
        )
    return wheels[0]


def install(wheel: Path, venv: Path) -> Path:
    """A venv holding the wheel and its dependencies, and nothing of the checkout."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    # This venv's pip (the project's) installs into the new one: no ensurepip, and
    # --no-compile skips byte-compiling torch's thousands of files (twice as fast).
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "--no-compile",
            "--disable-pip-version-check",
            "-c",
            str(REPO / "constraints.txt"),
            str(wheel),
        ],
        forbid=DEPRECATION,
    )
    return venv


def use(venv: Path, wheel: Path, work: Path) -> None:
    """What a new user runs first, from a folder outside the checkout."""
    work.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in _FOREIGN_ENV}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # Installed with --no-compile: the first command writes the bytecode the others read.
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def bbrl_ppo(*arguments: str) -> str:
        command = [str(venv / "bin" / "bbrl-ppo"), *arguments]
        return _timed(f"  bbrl-ppo {' '.join(arguments)}", lambda: _run(command, cwd=work, env=env))

    where = json.loads(_run([str(venv / "bin" / "python"), "-c", WHERE_FROM], cwd=work, env=env))
    _check_isolated(where, venv)
    version = wheel.name.split("-")[1]  # pyproject.toml's, as the build read it
    if where["version"] != version or bbrl_ppo("--version").strip() != f"bbrl-ppo {version}":
        raise CheckFailed(f"the installed version is not the wheel's {version}")

    names = sorted(path.stem for path in (REPO / "configs").glob("*.yaml"))
    listed = [line.split()[0] for line in bbrl_ppo("configs").splitlines()[1:]]
    if listed != names or where["names"] != names:
        raise CheckFailed(f"bbrl-ppo configs lists {listed}, configs/ holds {names}")
    if bbrl_ppo("configs", "show", "cartpole") != (REPO / "configs" / "cartpole.yaml").read_text():
        raise CheckFailed("bbrl-ppo configs show cartpole is not configs/cartpole.yaml")

    trained = bbrl_ppo(
        "train", "cartpole", f"algorithm.max_steps={TRAIN_STEPS}", "progress_bar=false"
    )
    run_dir = re.search(r"^Run directory: (.+)$", trained, re.MULTILINE)
    if run_dir is None or not (work / run_dir.group(1) / "best_agent.pt").is_file():
        raise CheckFailed(f"train cartpole wrote no best_agent.pt:\n{trained}")
    if "1 episode(s): return mean" not in bbrl_ppo("play", run_dir.group(1)):
        raise CheckFailed("play printed no return")


#: Variables that would let the installed interpreter see the checkout or another venv.
_FOREIGN_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")


def _check_isolated(where: dict, venv: Path) -> None:
    venv = venv.resolve()
    for key in ("module", "configs"):
        if not Path(where[key]).resolve().is_relative_to(venv):
            raise CheckFailed(f"bbrl_ppo's {key} came from {where[key]}, not the venv {venv}")
    in_checkout = [entry for entry in where["sys_path"] if _inside_checkout(entry)]
    if in_checkout:
        raise CheckFailed(
            f"the installed interpreter's sys.path reaches the checkout: {in_checkout}"
        )


def _inside_checkout(entry: str) -> bool:
    return bool(entry) and Path(entry).resolve().is_relative_to(REPO)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(source, target)


def _run(
    command: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    forbid: re.Pattern[str] | None = None,
) -> str:
    """The command's standard output; its whole output in the error if it fails."""
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    shown = " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command))
    if completed.returncode != 0:
        raise CheckFailed(
            f"{shown} exited with {completed.returncode}:\n{completed.stdout}{completed.stderr}"
        )
    if forbid is not None:
        flagged = [
            line
            for line in (completed.stdout + completed.stderr).splitlines()
            if forbid.search(line)
        ]
        if flagged:
            raise CheckFailed(f"{shown} printed: " + "\n".join(flagged))
    return completed.stdout


T = TypeVar("T")


def _timed(what: str, step: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = step()
    print(f"{what}: {time.perf_counter() - started:.1f} s", flush=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
