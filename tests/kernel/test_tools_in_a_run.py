"""User tools that misbehave inside a real ``actoros run`` (a subprocess, as a user runs it):
a tool that exits or interrupts is its call's error, a tool that hangs neither starves the
kernel nor keeps the run from exiting (issue 9, items 5 and 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(90)

TOOLS = '''
    import sys
    import threading


    def quit_now(text: str) -> str:
        """Calls sys.exit."""
        sys.exit(3)


    def interrupt(text: str) -> str:
        """Raises KeyboardInterrupt."""
        raise KeyboardInterrupt


    async def quit_async(text: str) -> str:
        """Calls sys.exit in a coroutine."""
        sys.exit(4)


    def hang(text: str) -> str:
        """Never returns."""
        threading.Event().wait()
        return text
'''

CONFIG = """
system: {{state_dir: {state}}}
services:
  tools:
    timeout: 1
    user:
      quit_now: "bad_tools:quit_now"
      interrupt: "bad_tools:interrupt"
      quit_async: "bad_tools:quit_async"
      hang: "bad_tools:hang"
agents:
  - name: bot
    kind: rule
    tools: [quit_now, interrupt, quit_async, hang, calculator, kv_get]
    rules:
      - {{match: {{text: exit}}, tool: quit_now, args: {{text: "{{text}}"}}}}
      - {{match: {{text: interrupt}}, tool: interrupt, args: {{text: "{{text}}"}}}}
      - {{match: {{text: exit async}}, tool: quit_async, args: {{text: "{{text}}"}}}}
      - {{match: {{text: hang}}, tool: hang, args: {{text: "{{text}}"}}}}
      - {{match: {{text: add}}, tool: calculator, args: {{expression: "1+1"}}}}
      - {{match: {{text: read}}, tool: kv_get, args: {{key: nothing}}}}
workload:
  agent: bot
  concurrency: 16
  timeout: 30
  tasks:
{tasks}
"""


def run(tmp_path: Path, inputs: list[str]) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    """``actoros run`` of the bad-tools config with one task per input; its result lines."""
    (tmp_path / "bad_tools.py").write_text(textwrap.dedent(TOOLS), encoding="utf-8")
    tasks = "\n".join(f"    - {{id: t{i:02d}, input: {text!r}}}" for i, text in enumerate(inputs))
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(state=tmp_path / "state", tasks=tasks), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "actoros", "run", str(config), "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return done, sorted(lines, key=lambda line: line["id"])


def without_time(line: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in line.items() if key != "seconds"}


def test_exit_and_interrupt_in_a_tool_are_error_replies_and_a_rerun_resumes_cleanly(
    tmp_path: Path,
) -> None:
    inputs = ["exit", "interrupt", "exit async", "add"]
    done, lines = run(tmp_path, inputs)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [line.get("error") for line in lines] == [
        "agent 'bot': tool 'quit_now' failed: quit_now failed: SystemExit: 3",
        "agent 'bot': tool 'interrupt' failed: interrupt failed: KeyboardInterrupt",
        "agent 'bot': tool 'quit_async' failed: quit_async failed: SystemExit: 4",
        None,
    ]
    assert lines[3]["output"] == "2"
    again, lines_again = run(tmp_path, inputs)  # nothing was left running to crash the rerun
    assert again.returncode == 0, again.stderr
    assert [without_time(line) for line in lines_again] == [without_time(line) for line in lines]


def test_tools_that_hang_forever_neither_starve_the_kernel_nor_keep_the_run_from_exiting(
    tmp_path: Path,
) -> None:
    # more hung calls than the tool pool (8) and than asyncio's default pool on this machine
    inputs = ["hang"] * 12 + ["add", "read"]
    done, lines = run(tmp_path, inputs)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert len(lines) == len(inputs)
    hung = [line["error"] for line in lines[:12]]
    assert all(
        error.startswith("agent 'bot': tool 'hang' failed: tool 'hang' timed out after 1 s")
        for error in hung
    )
    # the 4 over the pool either never got a thread before their deadline or hung too, in
    # the places the timed-out calls gave up
    assert sum("waiting for a free tool thread" in error for error in hung) <= 4
    assert [line.get("output") for line in lines[12:]] == ["2", "null"]
