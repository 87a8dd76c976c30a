"""The system ``actoros bench chaos`` puts under faults, written to a folder, and its runs.

A folder holds everything one repeat needs: ``config.yaml`` (written as JSON, which is YAML;
the fake engine, or vLLM for the engine fault), ``workload.jsonl``, ``chaos_tools.py`` (the
user tool module) and ``state/`` (the journal, threads, kv). Every run is a real ``python -m
actoros run config.yaml --out FILE`` subprocess with this very actoros on its ``PYTHONPATH``,
in its own session (process group), so a fault reaches it as it reaches a user's process.

The workload mixes what can go wrong in different places: ``echo`` tasks answered by a rule
(``{text}`` template), ``calc`` tasks through the built-in ``calculator``, ``lookup`` tasks
through a synchronous user tool, and ``llm`` tasks forwarded to an LLM agent on the engine.
Every input is distinct, and every answer is a function of its input alone (the fake engine
is deterministic for a given prompt), so a result paired with another task's input shows.
Lookups of a ``hang-`` key never return when the run's environment has
``ACTOROS_CHAOS_HANG=1`` (the hung-tool fault); without it they answer like any other key.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import msgspec

from .._common import child_env

HANG_ENV = "ACTOROS_CHAOS_HANG"
TOOL_MODULE = "chaos_tools"
TOOLS_SOURCE = f'''"""User tools of the system that ``actoros bench chaos`` runs."""

import os
import threading


def lookup(key: str) -> str:
    """Look a record up by its key."""
    if os.environ.get("{HANG_ENV}") == "1" and key.startswith("hang-"):
        threading.Event().wait()  # a tool that never returns and cannot be interrupted
    return f"record {{key}}"
'''
KINDS = ("echo", "llm", "calc", "llm", "lookup")  # the fake-engine workload's mix, in turn
Kind = Literal["echo", "llm", "calc", "lookup", "hang"]


class Spec(msgspec.Struct, frozen=True, kw_only=True):
    """The shape of one system and its workload."""

    tasks: int  # tasks of the mix (KINDS in turn)
    hung: int = 0  # extra lookups of a `hang-` key, spread over the workload
    concurrency: int = 8  # workload.concurrency and scheduler workers
    timeout: float = 10.0  # workload.timeout, s
    tool_timeout: float = 1.0  # services.tools.timeout, s
    token_delay: float = 0.02  # fake engine, s per token
    max_tokens: int = 24  # the LLM agent's answers
    engine: Literal["fake", "vllm"] = "fake"
    model: str | None = None  # vLLM: the model folder
    only_llm: bool = False  # every task an llm task (the engine fault)


class Task(msgspec.Struct, frozen=True):
    """One task of the workload as ``actoros run`` reads it (``agent``: the workload's)."""

    id: str
    input: str | dict[str, Any]
    kind: Kind = "echo"


def tasks_of(spec: Spec) -> list[Task]:
    """The workload: ``spec.tasks`` of the mix, with ``spec.hung`` hang lookups spread among
    them; ids ``t0001``, ... in order."""
    kinds: list[Kind] = [
        "llm" if spec.only_llm else KINDS[i % len(KINDS)]  # type: ignore[misc]
        for i in range(spec.tasks)
    ]
    total = spec.tasks + spec.hung
    for j in range(spec.hung):  # evenly spread: the pool fills over the run, not at once
        kinds.insert(min(len(kinds), (j * total) // max(1, spec.hung)), "hang")
    return [Task(f"t{i:04d}", _input(kind, i), kind) for i, kind in enumerate(kinds, start=1)]


def _input(kind: Kind, i: int) -> str | dict[str, Any]:
    match kind:
        case "echo":
            return f"echo request {i}"
        case "calc":
            return {"text": f"calc {i}", "expr": f"({i} + 7) * 3"}
        case "lookup":
            return {"text": f"lookup {i}", "key": f"key-{i}"}
        case "hang":
            return {"text": f"lookup {i}", "key": f"hang-{i}"}
        case _:
            return f"Question {i}: write one line about actors."


def _config(spec: Spec, folder: Path) -> dict[str, Any]:
    router = {
        "name": "router",
        "kind": "rule",
        "tools": ["calculator", "lookup"],
        "permissions": {"agents": ["writer"]},
        "rules": [
            {"contains": {"text": "echo"}, "reply": "router echoes: {text}"},
            {"contains": {"text": "calc"}, "tool": "calculator", "args": {"expression": "{expr}"}},
            {"contains": {"text": "lookup"}, "tool": "lookup", "args": {"key": "{key}"}},
            {"forward": "writer"},
        ],
    }
    writer = {
        "name": "writer",
        "kind": "llm",
        "system_prompt": "You write one short line.",
        "max_steps": 1,
        "max_tokens": spec.max_tokens,
    }
    if spec.engine == "fake":
        low = max(1, spec.max_tokens * 2 // 3)
        inference: dict[str, Any] = {
            "engine": "fake",
            "engine_args": {
                "token_delay": spec.token_delay,
                "eos_after": [low, spec.max_tokens],
                "max_num_seqs": 64,
            },
        }
    else:
        inference = {
            "engine": "vllm",
            "model": spec.model,
            "engine_args": {"max_model_len": 1024, "max_num_seqs": max(4, spec.concurrency)},
        }
    return {
        "system": {"name": "chaos", "state_dir": str(folder / "state"), "log_level": "error"},
        "inference": inference,
        "services": {
            "scheduler": {"workers": spec.concurrency},
            "tools": {"user": {"lookup": f"{TOOL_MODULE}:lookup"}, "timeout": spec.tool_timeout},
        },
        "agents": [router, writer],
        "workload": {
            "agent": "router",
            "file": str(folder / "workload.jsonl"),
            "concurrency": spec.concurrency,
            "timeout": spec.timeout,
        },
    }


def write_system(folder: Path, spec: Spec) -> Path:
    """Write the system of ``spec`` into ``folder`` (created); returns its config file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{TOOL_MODULE}.py").write_text(TOOLS_SOURCE)
    lines = (msgspec.json.encode({"id": t.id, "input": t.input}).decode() for t in tasks_of(spec))
    (folder / "workload.jsonl").write_text("\n".join(lines) + "\n")
    config = folder / "config.yaml"  # JSON is YAML: only the CLI layer handles YAML itself
    config.write_bytes(msgspec.json.format(msgspec.json.encode(_config(spec, folder))) + b"\n")
    return config


def _env(folder: Path, hang: bool) -> dict[str, str]:
    env = child_env(str(folder))  # this very actoros, and the folder's user tool module
    env.pop(HANG_ENV, None)
    if hang:
        env[HANG_ENV] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


class Run:
    """One ``actoros run`` of a folder's config, writing to ``out`` (stderr to ``out.err``).

    The process leads its own process group (``start_new_session``): ``interrupt`` signals the
    group as a terminal's Ctrl-C does, ``kill``/``terminate`` the process alone as ``kill``
    does, and ``reap`` kills whatever of the group is left.
    """

    def __init__(self, config: Path, out: Path, *, hang: bool = False) -> None:
        self.out = out
        self.err = out.with_suffix(".err")
        cmd = [
            sys.executable,
            "-m",
            "actoros",
            "--log-level",
            "error",
            "run",
            str(config),
            "--out",
            str(out),
        ]
        with self.err.open("wb") as err:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(
                cmd,
                cwd=config.parent,
                env=_env(config.parent, hang),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        self.ended: float | None = None
        self.left_behind = 0  # processes of its group still running after it exited

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        if self.proc.poll() is None:
            return True
        self._ended()
        return False

    def lines(self) -> int:
        """Complete result lines written so far."""
        try:
            return self.out.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def send(self, sig: signal.Signals, *, group: bool = False) -> bool:
        """Send ``sig``; False when the process had already exited."""
        if not self.alive():
            return False
        try:
            if group:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            return False
        return True

    def wait(self, timeout: float) -> int | None:
        """The exit status, or ``None`` when it is still running after ``timeout`` s."""
        try:
            code = self.proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None
        self._ended()
        return code

    def finish(self, timeout: float) -> int | None:
        """Wait for the exit (SIGKILL after ``timeout`` s: then ``None``), then count what of
        its process group still runs (``left_behind``: children it did not stop) and kill it."""
        code = self.wait(timeout)
        if code is None:
            self.reap()
            self.proc.wait()
            self._ended()
        else:
            self.left_behind = _group_members(self.pid)
        self.reap()
        return code

    def reap(self) -> None:
        """SIGKILL to what is left of the process group (its own children included)."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def tracebacks(self) -> int:
        try:
            return self.err.read_text(errors="replace").count("Traceback (most recent call last)")
        except FileNotFoundError:
            return 0

    def stderr_tail(self, lines: int = 2) -> str:
        try:
            text = self.err.read_text(errors="replace").strip().splitlines()
        except FileNotFoundError:
            return ""
        return " | ".join(line.strip()[:200] for line in text[-lines:])

    def _ended(self) -> None:
        if self.ended is None:
            self.ended = time.monotonic()


def _group_members(pgid: int) -> int:
    """Live (not zombie) processes in process group ``pgid``, asked twice 0.5 s apart: a child
    that exits with its parent may take a moment."""
    import psutil

    for attempt in range(2):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return 0
        members = 0
        for proc in psutil.process_iter(["status"]):
            try:
                if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                    members += 1
            except (OSError, psutil.Error):
                continue
        if members == 0 or attempt == 1:
            return members
        time.sleep(0.5)
    return 0


def read_journal(state_dir: Path) -> list[dict[str, Any]] | None:
    """The rows of the scheduler journal's ``tasks`` table, read from a copy of the database
    and its WAL (so the run that owns it is not disturbed); ``[]`` when there is no journal
    yet, ``None`` when it cannot be read. Rows are dicts of whatever columns the table has."""
    db = state_dir / "scheduler.sqlite"
    if not db.exists():
        return []
    with tempfile.TemporaryDirectory(prefix="actoros-chaos-journal-") as tmp:
        copy = Path(tmp) / "scheduler.sqlite"
        try:
            shutil.copyfile(db, copy)
            wal = db.with_name(db.name + "-wal")
            if wal.exists():  # no -shm: the copy rebuilds its index from the WAL
                shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        except OSError:
            return None
        try:
            conn = sqlite3.connect(copy)
            try:
                cursor = conn.execute("SELECT * FROM tasks")
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            finally:
                conn.close()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return []
            return None
