"""Finding a user tool's module without running any of its code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actoros.config.modules import missing_module

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``shoptools/`` (a package) with ``orders.py``; importing either writes a marker."""
    folder = tmp_path / "shoptools"
    folder.mkdir()
    marker = tmp_path / "imported"
    code = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    (folder / "__init__.py").write_text(code)
    (folder / "orders.py").write_text(code + "def lookup(n: int) -> str:\n    return ''\n")
    (tmp_path / "single.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    for name in ("shoptools", "shoptools.orders", "single"):
        sys.modules.pop(name, None)


def test_a_module_of_a_package_is_found_without_running_either(package: Path) -> None:
    assert missing_module("shoptools.orders") is None
    assert missing_module("shoptools") is None
    assert not package.exists()


def test_a_missing_module_is_named(package: Path) -> None:
    assert missing_module("shoptools.refunds") == "no module named 'shoptools.refunds'"
    assert missing_module("no_such_package_xyz.orders") == "no module named 'no_such_package_xyz'"
    assert not package.exists()


def test_a_module_is_not_a_package(package: Path) -> None:
    assert missing_module("single.sub") == (
        "no module named 'single.sub' ('single' is a module, not a package)"
    )
    assert not package.exists()


def test_modules_already_imported_are_found() -> None:
    assert missing_module("json.decoder") is None
    assert missing_module("json.nope") == "no module named 'json.nope'"
