"""Whether a user tool's module can be imported, found without running any of its code.

``importlib.util.find_spec("a.b")`` imports ``a`` to learn where ``a.b`` lives, which runs
``a/__init__.py``. Here each step asks the import system's finders (``sys.meta_path``) with
the locations the parent's spec names, as ``import`` itself does, and stops there: nothing is
executed, and a module is reported missing only when the finders the real import would ask
have all said no.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec


def missing_module(name: str) -> str | None:
    """Why module ``name`` cannot be imported ("no module named 'x'"), or ``None`` when it
    can be found (or the finders cannot tell without running code)."""
    locations: list[str] | None = None
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        full = ".".join(parts[:depth])
        loaded = sys.modules.get(full)
        if loaded is not None:
            path = getattr(loaded, "__path__", None)
            locations = None if path is None else list(path)
        else:
            try:
                spec = _find(full, locations)
            except Exception:  # a finder that fails on its own: leave it to the import
                return None
            if spec is None:
                return f"no module named {full!r}"
            search = spec.submodule_search_locations
            locations = None if search is None else list(search)
        if locations is None and depth < len(parts):
            return f"no module named {name!r} ({full!r} is a module, not a package)"
    return None


def _find(name: str, locations: list[str] | None) -> ModuleSpec | None:
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is not None:
            spec = find_spec(name, locations, None)
            if spec is not None:
                return spec
    return None
