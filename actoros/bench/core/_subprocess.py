"""Run one measurement in a fresh Python process, bounded by a timeout.

A fresh process gives spawn/RSS measurements a clean heap, and keeps a peer library that
hangs or crashes from taking the benchmark down with it. The child writes its result as
JSON to a file whose path it gets as ``--result``; stdout and stderr are only kept for
error messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from .._common import child_env


class ChildFailed(Exception):
    """The child process failed, timed out, or wrote no result."""


def run_module(
    module: str,
    args: list[str],
    timeout: float,
    result_type: type[Any],
    python: str | None = None,
) -> Any:
    """Run ``python -m module *args --result FILE`` and decode FILE as ``result_type``.

    ``python``: the interpreter to use (default: this one).
    """
    with tempfile.TemporaryDirectory(prefix="actoros-bench-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [python or sys.executable, "-m", module, *args, "--result", str(result)]
        proc = subprocess.Popen(
            cmd,
            cwd=tmp,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a timeout kills all it started
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ChildFailed(f"timed out after {timeout:g} s") from None
        if proc.returncode != 0 or not result.exists():
            tail = (err or out).decode(errors="replace").strip().splitlines()[-3:]
            raise ChildFailed(f"exit code {proc.returncode}: {' | '.join(tail) or 'no output'}")
        return msgspec.json.decode(result.read_bytes(), type=result_type)


def write_result(path: str, value: Any) -> None:
    Path(path).write_bytes(msgspec.json.encode(value))
