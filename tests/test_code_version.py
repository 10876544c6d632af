"""The code fingerprint that guards exact resume."""

from __future__ import annotations

from pathlib import Path

from bbrl_ppo.persistence import code_version
from bbrl_ppo.persistence.code_version import source_fingerprint


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_change_in_a_sub_package_changes_the_fingerprint(tmp_path):
    package = _package(tmp_path, {"__init__.py": "", "agents/policy.py": "SCALE = 1.0\n"})
    before = source_fingerprint(package)
    (package / "agents/policy.py").write_text("SCALE = 2.0\n")
    assert source_fingerprint(package) != before


def test_comments_and_docstrings_do_not_change_the_fingerprint(tmp_path):
    code = "def f(x):\n    return 2 * x\n"
    documented = (
        '"""A module."""\n# a comment\ndef f(x):\n    """Why f doubles."""\n'
        "    return 2 * x  # doubled\n"
    )
    plain = source_fingerprint(_package(tmp_path / "a", {"m.py": code}))
    assert source_fingerprint(_package(tmp_path / "b", {"m.py": documented})) == plain


def test_a_moved_file_changes_the_fingerprint(tmp_path):
    same_code = "X = 1\n"
    first = source_fingerprint(_package(tmp_path / "a", {"algorithms/x.py": same_code}))
    assert source_fingerprint(_package(tmp_path / "b", {"agents/x.py": same_code})) != first


def test_the_package_fingerprint_covers_its_sub_packages():
    package = Path(__import__("bbrl_ppo").__file__).parent
    assert any(path.parent != package for path in package.rglob("*.py"))
    assert len(source_fingerprint()) == 16


def test_a_process_fingerprints_its_code_once(monkeypatch):
    # Every checkpoint asks; parsing the package each time cost about a second a checkpoint.
    calls = []
    monkeypatch.setattr(
        code_version, "source_fingerprint", lambda: calls.append(1) or "0123456789abcdef"
    )
    code_version._running_code_versions.cache_clear()
    try:
        first = code_version.code_versions()
        first["torch"] = "edited by a caller"
        second = code_version.code_versions()
    finally:
        code_version._running_code_versions.cache_clear()
    assert calls == [1]
    assert second["bbrl_ppo source"] == "0123456789abcdef"
    assert second["torch"] != "edited by a caller"  # callers get copies
