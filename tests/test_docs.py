"""The design documents match the tree: docs/architecture.md's "Where to look" and the
README's layout name every part of the package, and every module they name exists."""

from __future__ import annotations

import re
from pathlib import Path

import actoros

PACKAGE = Path(actoros.__file__).parent
REPO = PACKAGE.parent


def block_after(text: str, heading: str) -> str:
    """The first fenced block after ``heading``."""
    rest = text[text.index(heading) :]
    return rest.split("```")[1]


def parts() -> set[str]:
    """The subpackages of ``actoros`` (``core/``) and its top-level modules (``testing.py``)."""
    found = {p.name + "/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    found |= {p.name for p in PACKAGE.glob("*.py") if not p.name.startswith("_")}
    return found


def test_the_architecture_names_every_subpackage_and_only_modules_that_exist() -> None:
    tree = block_after((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"), "## Where")
    folder = None
    named = set()
    for line in tree.splitlines()[2:]:  # after the opening line and `actoros/`
        words = line.split()
        if not words:
            continue
        if words[0].endswith("/") and line.startswith("  ") and not line.startswith("    "):
            folder = PACKAGE / words[0]
            named.add(words[0])
            words = words[1:]
        for word in words:
            if word == "...":
                continue
            assert folder is not None
            assert (folder / word).exists(), f"docs/architecture.md names {folder.name}/{word}"
    subpackages = {p for p in parts() if p.endswith("/")}
    assert subpackages - named == set(), "subpackages docs/architecture.md does not name"


def test_the_readme_layout_names_every_part_of_the_package() -> None:
    layout = block_after((REPO / "README.md").read_text(encoding="utf-8"), "## Layout")
    named = set(re.findall(r"([a-z_]+/|[a-z_]+\.py)", layout))
    missing = {p for p in parts() if p not in named and p not in ("__main__.py",)}
    assert missing == set()
    assert all((PACKAGE / p).exists() for p in named if p.endswith(".py"))
