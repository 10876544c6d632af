"""A fingerprint of the code a training checkpoint was written by.

A resumed run continues the same computation only if the code computing it is
the same: every source file of the package, in every sub-package, and the
libraries it runs on. A comment or a docstring changes no computation, so the
fingerprint hashes each module's syntax tree with docstrings removed, not its text.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: Libraries whose version changes what a run computes.
LIBRARIES = ("torch", "gymnasium", "bbrl", "numpy")


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


def source_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """A hash of every ``.py`` file under `package_dir`, blind to comments and docstrings."""
    digest = hashlib.sha256()
    for source in sorted(package_dir.rglob("*.py")):
        tree = _without_docstrings(ast.parse(source.read_text(), filename=str(source)))
        digest.update(source.relative_to(package_dir).as_posix().encode())
        digest.update(ast.dump(tree, annotate_fields=False).encode())
    return digest.hexdigest()[:16]


@functools.cache
def _running_code_versions() -> dict[str, str]:
    # Once per process: the code a process runs is loaded once, and parsing the
    # package's ~70 modules costs about a second, which every checkpoint of a short run
    # used to pay again (5 of them in a 100k-step CartPole run).
    versions = {"bbrl_ppo source": source_fingerprint()}
    for package in LIBRARIES:
        versions[package] = importlib.metadata.version(package)
    return versions


def code_versions() -> dict[str, str]:
    """What must not change for a resumed run to continue the same computation.

    Computed on the first call and kept: the fingerprint is of the code this
    process loaded, and an edit made on disk while it runs does not change that.
    """
    return dict(_running_code_versions())
