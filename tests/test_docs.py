"""The documentation: the site builds with warnings as errors, every public name has a
docstring, and the README's example runs against the current API."""

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docstring_check_names_each_undocumented_method_property_and_function(
    tmp_path, monkeypatch
):
    griffe = pytest.importorskip("griffe")
    check = _script("docs_check_docstrings")
    package_dir = tmp_path / "fakepkg"
    package_dir.mkdir()
    (package_dir / "__init__.py").write_text(
        textwrap.dedent(
            '''
            class _Base:
                def shared(self):
                    pass


            class Thing(_Base):
                """Documented."""

                def documented(self):
                    """Yes."""

                def bare(self):
                    pass

                @property
                def size(self):
                    return 1

                def _private(self):
                    pass


            def function():
                pass
            '''
        )
    )
    monkeypatch.setattr(check, "PACKAGE", "fakepkg")
    loader = griffe.GriffeLoader(search_paths=[str(tmp_path)])
    package = loader.load("fakepkg")
    loader.resolve_aliases(external=False, implicit=False)
    assert sorted(check.undocumented(package, "fakepkg.Thing", {"fakepkg.Thing"})) == [
        "fakepkg.Thing.bare",
        "fakepkg.Thing.size",
        "fakepkg._Base.shared",  # inherited from a class that is not public: checked here
    ]
    assert list(check.undocumented(package, "fakepkg.function", set())) == ["fakepkg.function"]


def test_every_public_name_has_a_docstring_and_an_api_page():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "docs_check_docstrings.py")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is not installed: pip install -c constraints.txt -e '.[docs]'")
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    result = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    for page in (
        "index.html",
        "concepts/workspace/index.html",
        "reference/api/algorithms/index.html",
        "reference/config/index.html",
        "reference/cli/index.html",
        "notebooks/01_ppo_clip/index.html",
        "results/index.html",
    ):
        assert (site / page).is_file(), page
    api = (site / "reference/api/algorithms/index.html").read_text()
    assert 'id="bbrl_ppo.PPOClip.prepare_rollout"' in api  # rendered from the docstrings
    config = (site / "reference/config/index.html").read_text()
    assert "algorithm.transitions_per_env" in config  # generated from the schema
    assert "<!-- generated:" not in config


def test_the_readme_starts_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    assert first_block is not None
    assert text[: first_block.start()].strip() == "# bbrl_ppo"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]


def test_the_readme_links_to_files_that_exist():
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    relative = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/") for link in relative)
    missing = [link for link in relative if not (ROOT / link).exists()]
    assert not missing


@pytest.mark.slow
def test_the_readme_example_runs():
    (example,) = _python_blocks(README.read_text())
    # The same code on a budget of one evaluation: the test checks the API, not learning.
    budget = '"algorithm.max_steps=30000"'
    assert budget in example, "the README's example changed: update this test"
    short = example.replace(budget, '"algorithm.max_steps=2048", "progress_bar=false"')
    namespace: dict = {}
    exec(compile(short, str(README), "exec"), namespace)
    algo = namespace["algo"]
    assert algo.nb_steps >= 2048
    assert (algo.base_dir / "evals.csv").is_file()
    assert (algo.base_dir / "best_agent.mp4").is_file()
