"""The architecture, guarded: every layer imports only what it may (docs/architecture.md,
"Layers").

``ALLOWED`` is the whole matrix: for each top-level part of the package, the other parts it may
import. A part missing from it fails the test (a new layer must say where it sits), and
``test_a_planted_violation_is_caught`` plants a forbidden import in every layer, so the checker
cannot pass by seeing nothing. Only the engine modules of ``inference/`` talk to vLLM, and only
the config loader and the CLI read YAML. Imports are read with ``ast`` (relative ones resolved,
lazy ones included), so nothing is run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import actoros

PACKAGE = Path(actoros.__file__).parent
BELOW_APP = ("core", "config", "kernel", "inference", "agents", "gateway")
ALLOWED: dict[str, frozenset[str]] = {
    name: frozenset(parts)
    for name, parts in {
        # the runtime knows nothing of LLMs, config, services or agents
        "core": ("logging",),
        "logging": (),
        # typed config: the schema of every part above core (config.Backoff is core's)
        "config": ("core",),
        "kernel": ("core", "config"),
        # inference knows nothing of agents (nor of the gateway or the app above it)
        "inference": ("core", "config", "kernel"),
        "agents": ("core", "config", "kernel", "inference"),
        # the gateway reaches the running system through its Host protocol, not the app
        "gateway": ("core", "config", "kernel", "inference", "agents"),
        # nodes on Ray: refs, links, node processes; knows the core only (the app builds
        # what a node runs)
        "cluster": ("core",),
        "app": (*BELOW_APP, "cluster", "logging"),
        # helpers for users' tests and for stopping a run's processes
        "testing": ("core", "logging"),
        "stopping": ("core", "inference"),
        # tools on top: nothing imports them but the CLI (and bench's children)
        "bench": (*BELOW_APP, "app", "cluster", "logging", "testing"),
        "cli": (*BELOW_APP, "app", "bench", "cluster", "logging", "stopping"),
        "__init__": ("core", "logging"),
        "__main__": ("cli",),
    }.items()
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


def part_of(path: Path) -> str:
    """The top-level part of the package a module belongs to (``core``, ``cli``, ...)."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def layer_violations(part: str, imports: Iterable[tuple[int, str]], where: str) -> list[str]:
    """The imports of ``actoros.*`` from a module of ``part`` that ``ALLOWED`` forbids."""
    allowed = ALLOWED[part] | {part}
    return [
        f"{where}:{line} imports {module}"
        for line, module in imports
        if within(module, "actoros") and module != "actoros" and target(module) not in allowed
    ]


def target(module: str) -> str:
    """The part ``module`` (``actoros.X...``) is in; a name of the package root (``from
    actoros import ActorSystem``) is the public API, which re-exports the core."""
    name = module.split(".")[1]
    return name if name in ALLOWED else "core"


def violations(paths: list[Path], forbidden: list[str]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in paths
        for line, module in imported_modules(path)
        if any(within(module, prefix) for prefix in forbidden)
    ]


PARTS = sorted({part_of(p) for p in modules(PACKAGE)})


def test_every_part_of_the_package_has_its_row_in_the_matrix() -> None:
    assert [part for part in PARTS if part not in ALLOWED] == []
    assert "core" in PARTS, "actoros/core has no modules"  # the layer must not vanish unnoticed


@pytest.mark.parametrize("part", PARTS)
def test_a_part_imports_only_what_the_matrix_allows(part: str) -> None:
    found = [
        problem
        for path in modules(PACKAGE)
        if part_of(path) == part
        for problem in layer_violations(
            part, imported_modules(path), str(path.relative_to(PACKAGE.parent))
        )
    ]
    assert found == []


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_a_planted_violation_is_caught(part: str) -> None:
    # for every layer, an import of each part it may not import, planted in its source
    forbidden = sorted(set(ALLOWED) - ALLOWED[part] - {part, "__init__", "__main__"})
    assert forbidden or part == "cli", f"{part} may import everything"
    source = "\n".join(
        f"from actoros.{other} import x" if i % 2 else f"def f():\n    import actoros.{other}"
        for i, other in enumerate(forbidden)
    )
    package = "actoros" if part in ("__init__", "__main__") else f"actoros.{part}"
    found = layer_violations(part, imports_in(source, package), "planted")
    assert {target(problem.rpartition(" ")[2]) for problem in found} == set(forbidden)


def test_only_the_engine_modules_import_vllm() -> None:
    engines = {
        PACKAGE / "inference" / n for n in ("vllm_engine.py", "vllm_direct.py", "vllm_cli.py")
    }
    outside = [p for p in modules(PACKAGE) if p not in engines]
    assert violations(outside, ["vllm"]) == []


def test_only_the_cluster_imports_ray() -> None:
    outside = [p for p in modules(PACKAGE) if part_of(p) != "cluster"]
    assert violations(outside, ["ray"]) == []


def test_the_cluster_loads_without_ray_where_it_can() -> None:
    # what the app and the config need of it imports no ray: only the node processes do
    for name in ("wire.py", "remote.py", "node.py", "spec.py", "__init__.py"):
        assert violations([PACKAGE / "cluster" / name], ["ray"]) == [], name


def test_only_the_config_loader_and_the_cli_read_yaml() -> None:
    # everything below the CLI takes typed config objects (msgspec Structs), not YAML
    readers = [p for p in modules(PACKAGE) if part_of(p) in ("config", "cli")]
    others = [p for p in modules(PACKAGE) if p not in readers]
    assert readers and violations(others, ["yaml"]) == []


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
