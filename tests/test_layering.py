"""The architecture, guarded: layers import downwards only (see DESIGN.md, "Layers").

``cli`` and ``bench`` are tools on top that no layer may import. Only ``actoros/inference/``
talks to vLLM, and only the CLI layer reads YAML. Imports are read with ``ast`` (relative ones
resolved, lazy ones included), so nothing is run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import actoros

PACKAGE = Path(actoros.__file__).parent
TOOLS = ["cli", "bench"]
# What each part of the package must not import, from DESIGN.md: core knows nothing of LLMs,
# agents or the kernel built on it; inference knows nothing of agents; no layer imports a tool.
FORBIDDEN = {
    "core": ["kernel", "inference", "agents", *TOOLS],
    "kernel": TOOLS,
    "inference": ["agents", *TOOLS],
    "agents": TOOLS,
    "gateway": TOOLS,
}


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) for every import in the module at ``path``."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: str) -> Iterator[tuple[int, str]]:
    """Imports in ``source`` (code of a module in ``package``), relative ones resolved.

    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a submodule). Imports
    inside functions count too: a lazy import is still a dependency.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(paths: list[Path], forbidden: list[str]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in paths
        for line, module in imported_modules(path)
        if any(within(module, prefix) for prefix in forbidden)
    ]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer: str) -> None:
    forbidden = [f"actoros.{name}" for name in FORBIDDEN[layer]]
    assert violations(modules(PACKAGE / layer), forbidden) == []


def test_core_exists_and_is_checked() -> None:
    # the layer test passes trivially for a missing folder; core must not vanish unnoticed
    assert modules(PACKAGE / "core"), "actoros/core has no modules"


def test_only_inference_imports_vllm() -> None:
    outside = [p for p in modules(PACKAGE) if not p.is_relative_to(PACKAGE / "inference")]
    assert violations(outside, ["vllm"]) == []


def test_only_the_cli_layer_reads_yaml() -> None:
    # everything below the CLI takes typed config objects (msgspec Structs), not YAML
    cli_layer = {PACKAGE / "cli.py", PACKAGE / "config.py"}
    others = [
        p
        for p in modules(PACKAGE)
        if p not in cli_layer and not p.is_relative_to(PACKAGE / "config")
    ]
    assert violations(others, ["yaml"]) == []


def test_checker_resolves_relative_and_lazy_imports() -> None:
    source = (
        "from ..inference import engine\n"
        "from .. import agents\n"
        "from .mailbox import Mailbox\n"
        "def later():\n"
        "    import actoros.cli\n"
    )
    found = {module for _, module in imports_in(source, "actoros.core")}
    assert {"actoros.inference", "actoros.agents", "actoros.core.mailbox", "actoros.cli"} <= found
