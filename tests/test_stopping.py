"""How ``actoros run`` stops (``actoros/stopping.py``): Ctrl-C and SIGTERM at every moment, and
no process of the run left behind, run as a user would (``python -m actoros run``).

The engine here starts like vLLM's without vLLM (``SLOW_START``): its build starts a spawned
multiprocessing child, as vLLM's EngineCore is on CPU, and a plain subprocess, then never
returns, as a build that cannot be interrupted. The last test does the same with SmolLM2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent
INTERRUPTED = (130, -signal.SIGINT)  # -SIGINT: a signal that lands as the process exits

# ``python -m actoros`` (argv after the pids file) whose vLLM engine is a stand-in.
SLOW_START = """
import multiprocessing, runpy, subprocess, sys, threading, time
from pathlib import Path
from actoros.inference import vllm_engine

PIDS = Path(sys.argv.pop(1))

def start_engine(self):
    core = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(600,))
    core.start()
    helper = subprocess.Popen(["sleep", "600"])
    PIDS.with_suffix(".tmp").write_text(f"{core.pid} {helper.pid}")
    PIDS.with_suffix(".tmp").replace(PIDS)  # at once: the test reads it meanwhile
    threading.Event().wait()  # like AsyncLLM.from_engine_args: cannot be interrupted

vllm_engine.VLLMEngine._build_blocking = start_engine
vllm_engine._import_vllm = lambda: None
runpy.run_module("actoros", run_name="__main__", alter_sys=True)
"""


def dead(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def alive_after(pids: list[int], within: float = 10.0) -> list[int]:
    """The pids still alive ``within`` seconds from now (polled: the end of a process that
    is not our child is no event we can wait on)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not all(dead(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if not dead(pid)]


class Run:
    """One ``actoros run`` in a process group of its own, as a terminal runs a command; its
    stderr goes to a file the test reads while it runs."""

    def __init__(self, tmp_path: Path, argv: list[str], **env: str) -> None:
        self.err_path = tmp_path / "stderr.log"
        path = os.pathsep.join([str(tmp_path), *sys.path])  # tmp_path: the test's modules
        with self.err_path.open("w") as err:
            self.proc = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": path, **env},
            )
        self.others: list[int] = []  # processes of the run to kill after the test

    @property
    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def wait_until(self, done: Any, what: str, within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while not done():
            assert self.proc.poll() is None, f"exited before {what}: {self.err}"
            assert time.monotonic() < deadline, f"never {what}: {self.err}"
            time.sleep(0.02)

    def wait_for_log(self, event: str) -> None:
        self.wait_until(lambda: f'"event": "{event}"' in self.err, f"logged {event}")

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, within: float = 30.0) -> int:
        return self.proc.wait(timeout=within)

    def cleanup(self) -> None:
        for pid in [self.proc.pid, *self.others]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()


def engine_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"system: {{state_dir: {tmp_path / 'state'}}}\n"
        "inference: {engine: vllm, model: a-model-that-starts-slowly}\n"
        "agents:\n"
        "  - {name: faq, kind: llm, system_prompt: Answer., max_steps: 1}\n"
        "workload:\n  agent: faq\n  tasks: [{id: t1, input: hi}]\n",
        encoding="utf-8",
    )
    return path


class SlowStart(Run):
    """``actoros run`` of a config whose engine starts as SLOW_START does."""

    def __init__(self, tmp_path: Path) -> None:
        self.pids_file = tmp_path / "engine.pids"
        script = tmp_path / "slow_start.py"
        script.write_text(SLOW_START, encoding="utf-8")
        argv = [sys.executable, str(script), str(self.pids_file), "run"]
        super().__init__(tmp_path, [*argv, str(engine_config(tmp_path))])

    def wait_for_engine_start(self) -> list[int]:
        """The pids of the engine's processes: its multiprocessing child, the subprocess."""
        self.wait_until(self.pids_file.exists, "started the engine")
        self.others = [int(pid) for pid in self.pids_file.read_text().split()]
        return self.others


@pytest.fixture
def slow_run(tmp_path: Path) -> Iterator[SlowStart]:
    run = SlowStart(tmp_path)
    yield run
    run.cleanup()


def test_ctrl_c_twice_during_the_engine_start_leaves_no_process_and_no_traceback(
    slow_run: SlowStart,
) -> None:
    engine = slow_run.wait_for_engine_start()
    slow_run.ctrl_c()
    slow_run.wait_for_log("workload.interrupted")  # the first was handled: two signals, not one
    slow_run.ctrl_c()
    status = slow_run.finish()
    assert status in INTERRUPTED, slow_run.err
    assert "Traceback" not in slow_run.err
    assert alive_after(engine) == []


def test_sigterm_during_the_engine_start_stops_and_ends_the_engines_processes(
    slow_run: SlowStart,
) -> None:
    engine = slow_run.wait_for_engine_start()
    slow_run.proc.send_signal(signal.SIGTERM)  # the main process only, as `kill` sends it
    assert slow_run.finish() == 130, slow_run.err
    assert "a rerun resumes the rest" in slow_run.err
    assert "Traceback" not in slow_run.err
    assert alive_after(engine) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
def test_sigkill_during_the_engine_start_takes_the_engines_process_with_it(
    slow_run: SlowStart,
) -> None:
    core, _ = slow_run.wait_for_engine_start()
    slow_run.proc.kill()  # no code of the run runs: only the kernel can end its children
    slow_run.finish()
    assert alive_after([core]) == []
    # not covered: a plain subprocess (not multiprocessing's) of a SIGKILLed run lives on;
    # cleanup kills it


def test_child_processes_ends_those_started_since_and_kills_those_that_stay(
    tmp_path: Path,
) -> None:
    from actoros.stopping import ChildProcesses

    earlier = subprocess.Popen(["sleep", "600"])
    try:
        children = ChildProcesses()
        polite = subprocess.Popen(["sleep", "600"])
        stubborn = subprocess.Popen(
            ["sh", "-c", "trap '' TERM; touch ready; sleep 600"], cwd=tmp_path
        )
        deadline = time.monotonic() + 10
        while not (tmp_path / "ready").exists():  # its trap is set
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ended = children.end(grace=0.5)
        assert {polite.pid, stubborn.pid} <= set(ended)
        # gone, both: the one that ignores SIGTERM was killed once the grace was over
        assert alive_after([polite.pid, stubborn.pid], within=0) == []
        assert not dead(earlier.pid)  # not ours to end
    finally:
        for proc in (earlier, polite, stubborn):
            proc.kill()
            proc.wait()


HANG_TOOL = """
import asyncio, os, pathlib

async def hang() -> str:
    \"\"\"Never answers, and refuses to be cancelled.\"\"\"
    pathlib.Path(os.environ["HANG_MARK"]).write_text("called")
    while True:
        try:
            await asyncio.sleep(600)
        except asyncio.CancelledError:
            pass
"""


def test_a_second_ctrl_c_ends_the_run_even_when_a_tool_hangs(tmp_path: Path) -> None:
    (tmp_path / "hangtool.py").write_text(HANG_TOOL, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"system: {{state_dir: {tmp_path / 'state'}}}\n"
        "services: {tools: {user: {hang: 'hangtool:hang'}}}\n"
        "agents:\n"
        "  - {name: a, kind: rule, tools: [hang], rules: [{tool: hang}]}\n"
        "workload:\n  agent: a\n  tasks: [{id: t1, input: go}]\n",
        encoding="utf-8",
    )
    mark = tmp_path / "called"
    argv = [sys.executable, "-m", "actoros", "run", str(config)]
    run = Run(tmp_path, argv, HANG_MARK=str(mark))
    try:
        run.wait_until(mark.exists, "called the tool")
        run.proc.send_signal(signal.SIGINT)
        run.wait_for_log("workload.interrupted")  # the graceful stop began; the tool holds it
        run.proc.send_signal(signal.SIGINT)
        status = run.finish()
    finally:
        run.cleanup()
    assert status in INTERRUPTED, run.err
    assert "Traceback" not in run.err


# -- the real engine --------------------------------------------------------------------------


def smollm2_config(tmp_path: Path) -> Path:
    from actoros.inference.models import DEFAULT_MODEL, ModelNotFound, resolve

    try:
        resolve(DEFAULT_MODEL)
    except ModelNotFound:
        pytest.skip("SmolLM2 is not pulled (actoros model pull)")
    demo = REPO / "configs" / "demo.yaml"
    text = demo.read_text(encoding="utf-8")
    text = text.replace("state_dir: ../.actoros/demo", f"state_dir: {tmp_path / 'state'}")
    workload = demo.parent / "workloads" / "demo.jsonl"
    text = text.replace("file: workloads/demo.jsonl", f"file: {workload}")
    path = tmp_path / "demo.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.vllm
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_twice_during_smollm2s_start_leaves_no_vllm_process_and_no_traceback(
    tmp_path: Path,
) -> None:
    pytest.importorskip("vllm")
    config = smollm2_config(tmp_path)
    run = Run(tmp_path, [sys.executable, "-m", "actoros", "run", str(config)])
    main = psutil.Process(run.proc.pid)
    seen: dict[int, psutil.Process] = {}

    def name(proc: psutil.Process) -> str:
        try:
            return str(proc.name())
        except psutil.Error:  # gone meanwhile (vLLM runs short commands too)
            return ""

    def worker_started() -> bool:  # vLLM's Worker, the EngineCore's child: the start is on
        for child in main.children(recursive=True):
            seen.setdefault(child.pid, child)
        run.others = list(seen)
        return any("Worker" in name(p) for p in seen.values())

    try:
        run.wait_until(worker_started, "started vLLM's Worker", within=240)
        run.ctrl_c()
        run.wait_for_log("workload.interrupted")
        run.ctrl_c()
        status = run.finish(within=60)
        left = {pid: name(seen[pid]) for pid in alive_after(list(seen), within=15)}
    finally:
        run.cleanup()
    assert status in INTERRUPTED, run.err
    assert "Traceback" not in run.err
    assert left == {}
