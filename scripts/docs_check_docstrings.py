"""Every public name has a docstring, and a page of the API reference shows it.

    .venv/bin/python scripts/docs_check_docstrings.py

`make docs` runs it before `mkdocs build --strict`: mkdocstrings renders an undocumented
name as a bare signature and says nothing, so the build alone cannot fail on one. Public
means: each name of ``bbrl_ppo.__all__``, and each method and property of those classes
whose name does not start with an underscore, that the class defines or inherits from a
class of bbrl_ppo that is not itself public (the policies' `forward`, say, whose page
shows it with ``inherited_members``); what a class inherits from torch or bbrl is theirs
to document. Docstrings are read from the source with griffe, as mkdocstrings reads them
(a dataclass's generated ``__doc__`` does not count).

Also checked: each name of ``__all__`` is rendered by a ``::: name`` block of a page
under docs/reference/api/, or, for bbrl's classes that bbrl_ppo re-exports, named on
docs/reference/api/bbrl.md.

Exit status 1, with one line per problem, when anything is missing.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import griffe

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "bbrl_ppo"
API_PAGES = REPO / "docs" / "reference" / "api"
#: The page that names bbrl's classes re-exported by bbrl_ppo (documented by bbrl).
FOREIGN_PAGE = API_PAGES / "bbrl.md"


def public_objects() -> Iterator[tuple[str, str | None]]:
    """``(name, path)`` for each name of ``__all__``; path None for another package's."""
    package = importlib.import_module(PACKAGE)
    for name in package.__all__:
        obj = getattr(package, name)
        module = getattr(obj, "__module__", "") or ""
        if module.split(".")[0] != PACKAGE:
            yield name, None
        else:
            yield name, f"{module}.{obj.__qualname__}"


def undocumented(package: griffe.Module, path: str, public: set[str]) -> Iterator[str]:
    """`path` and those of its public methods and properties that have no docstring.

    A member inherited from a class of `public` is checked there; one inherited from
    another class of the package is checked here, under the path where it is defined.
    """
    obj = package[path.removeprefix(PACKAGE + ".")]
    if not _has_docstring(obj):
        yield path
    if obj.kind is not griffe.Kind.CLASS:
        return
    members = [member for member in obj.members.values() if not member.is_alias]
    for member in obj.inherited_members.values():
        defining_class = member.target.parent.path
        if defining_class.split(".")[0] == PACKAGE and defining_class not in public:
            members.append(member.target)
    for member in members:
        if member.name.startswith("_"):
            continue
        is_method = member.kind is griffe.Kind.FUNCTION
        is_property = member.kind is griffe.Kind.ATTRIBUTE and "property" in member.labels
        if (is_method or is_property) and not _has_docstring(member):
            yield member.path


def _has_docstring(obj: griffe.Object) -> bool:
    return obj.docstring is not None and bool(obj.docstring.value.strip())


def rendered_paths() -> set[str]:
    """The identifiers of every ``::: identifier`` block of the API pages."""
    pattern = re.compile(r"^:::\s+(\S+)", re.MULTILINE)
    return {
        identifier
        for page in sorted(API_PAGES.glob("*.md"))
        for identifier in pattern.findall(page.read_text())
    }


def main() -> int:
    loader = griffe.GriffeLoader(search_paths=[str(REPO)])
    package = loader.load(PACKAGE)
    loader.resolve_aliases(external=False, implicit=False)

    rendered = rendered_paths()
    foreign_page = FOREIGN_PAGE.read_text() if FOREIGN_PAGE.exists() else ""
    problems: list[str] = []
    missing: set[str] = set()
    names = list(public_objects())
    public = {path for _, path in names if path is not None}
    checked = 0
    for name, path in names:
        if path is None:
            if f"`{name}`" not in foreign_page:
                problems.append(
                    f"{name}: re-exported from another package, not named on "
                    f"{FOREIGN_PAGE.relative_to(REPO)}"
                )
            continue
        checked += 1
        missing.update(undocumented(package, path, public))
        if f"{PACKAGE}.{name}" not in rendered and path not in rendered:
            problems.append(
                f"{PACKAGE}.{name}: on no API page (add '::: {PACKAGE}.{name}' to a page of "
                f"{API_PAGES.relative_to(REPO)}/)"
            )
    problems += [f"{path}: no docstring" for path in sorted(missing)]
    for problem in problems:
        print(problem)
    print(
        f"docstrings: {checked} public names of {PACKAGE} and their methods checked; "
        f"{len(problems)} problem(s)",
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
