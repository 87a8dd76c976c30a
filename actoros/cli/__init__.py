"""The ``actoros`` command line (also ``python -m actoros``).

Each subcommand is one ``add_<name>(subcommands)`` function that adds its parser and sets
``handler`` to a function ``(args) -> int`` (the exit status); an ``async def`` handler runs on
uvloop through ``actoros.run``. ``COMMANDS`` (``entry.py``) lists them in ``--help`` order:
``bench`` (``bench.py``), ``model``, ``top`` and ``validate`` (``commands.py``), ``run``
(``run.py``); what they share (errors, option types, loading a config) is ``_common.py``.
Handlers import heavy parts (benchmarks, inference) when they run, so ``actoros --help`` stays
fast and a part that is missing breaks only the command that needs it.

Errors: what the user can fix (``UsageError``, a missing file, an invalid config or YAML file,
a bad option) prints one line ``actoros: error: ...`` and exits 2; anything else prints one
line and exits 1. ``--debug`` adds the traceback. Ctrl-C exits 130 without a traceback.
Results go to stdout, logs to stderr.
"""

from __future__ import annotations

# Registers the after-fork hook that arms a parent-death signal in the engine's processes. Here,
# at the top: a process that multiprocessing spawns re-imports the main module (this CLI), and
# only an import during that runs the hook in the child (see the module's docstring).
import actoros.inference.processes  # noqa: F401

from ._common import UsageError
from .entry import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]
