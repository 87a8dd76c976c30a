"""``EngineThread``: an engine's processes die with the process that started them, a cancelled
start kills them, and nothing waits for a start nobody wants.

The engine here is a stand-in with real processes: its build starts multiprocessing children
the way vLLM does (forked, or spawned as vLLM on CPU does) and may block like vLLM's build.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from actoros.inference.processes import EngineThread

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.timeout(60)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"
)

# A process with an EngineThread whose build starts a child, which starts a grandchild; each
# prints its pid and signal mask once it runs its target, then all wait.
OWNER = """
import asyncio, multiprocessing, os, signal, sys, time
from actoros.inference.processes import EngineThread

def report(name):
    mask = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, ())
    os.write(1, f"{name} {os.getpid()} {mask}\\n".encode())  # one write: others write too

def grandchild():
    report("grandchild")
    time.sleep(600)

def child(method):
    report("child")
    multiprocessing.get_context(method).Process(target=grandchild).start()
    time.sleep(600)

def build(method):
    proc = multiprocessing.get_context(method).Process(target=child, args=(method,))
    proc.start()
    return proc

async def main(method):
    await EngineThread().start(lambda: build(method), lambda proc: proc.kill())
    os.write(1, f"owner {os.getpid()} False\\n".encode())
    await asyncio.sleep(600)

if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
"""


def dead(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def wait_dead(pids: list[int], within: float = 10.0) -> list[int]:
    """The pids still alive after ``within`` seconds (polled: a process's end is not an
    event this process can wait on)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(dead(pid) for pid in pids):
            return []
        time.sleep(0.05)
    return [pid for pid in pids if not dead(pid)]


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_owner(
    tmp_path: Path, method: str
) -> tuple[subprocess.Popen[str], dict[str, tuple[int, bool]]]:
    """The OWNER process, once its three processes run: {name: (pid, SIGINT blocked)}."""
    script = tmp_path / "owner.py"
    script.write_text(OWNER, encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, str(script), method], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    seen: dict[str, tuple[int, bool]] = {}
    try:
        while len(seen) < 3:
            line = proc.stdout.readline()
            assert line, f"the owner process ended early: {seen}"
            name, pid, blocked = line.split()
            seen[name] = (int(pid), blocked == "True")
    except BaseException:
        proc.kill()
        kill_all([pid for pid, _ in seen.values()])
        raise
    return proc, seen


@linux_only
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_processes_an_engine_thread_started_die_when_its_process_is_sigkilled(
    tmp_path: Path, method: str
) -> None:
    proc, seen = start_owner(tmp_path, method)
    engine = [seen["child"][0], seen["grandchild"][0]]
    try:
        proc.kill()  # no Python code runs: only the kernel can end the children
        proc.wait(timeout=10)
        assert wait_dead(engine) == []
    finally:
        proc.kill()
        kill_all(engine)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_the_processes_an_engine_thread_started_ignore_the_terminals_ctrl_c(
    tmp_path: Path, method: str
) -> None:
    proc, seen = start_owner(tmp_path, method)
    try:
        assert seen["child"][1] and seen["grandchild"][1]  # SIGINT blocked in both
        assert not seen["owner"][1]  # the owner's own Ctrl-C handling is untouched
    finally:
        proc.kill()
        kill_all([seen["child"][0], seen["grandchild"][0]])


class Blocking:
    """A build that starts a real process, then blocks until released (as vLLM's build blocks
    until its processes are ready)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.process: multiprocessing.process.BaseProcess | None = None
        self.shut_down: list[object] = []
        self.shutdown_thread = ""
        self.shut = threading.Event()

    def build(self) -> str:
        self.process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(600,))
        self.process.start()
        self.started.set()
        self.release.wait(30)
        return "engine"

    def shutdown(self, built: str) -> None:
        self.shut_down.append(built)
        self.shutdown_thread = threading.current_thread().name
        self.shut.set()

    def cleanup(self) -> None:
        self.release.set()
        if self.process is not None and self.process.is_alive():
            self.process.kill()


@pytest.fixture
def blocking() -> Iterator[Blocking]:
    build = Blocking()
    yield build
    build.cleanup()


async def test_cancelling_a_start_kills_its_processes_and_shuts_down_what_it_still_builds(
    blocking: Blocking,
) -> None:
    thread: EngineThread[str] = EngineThread("test-engine")
    start = asyncio.ensure_future(thread.start(blocking.build, blocking.shutdown))
    assert await asyncio.to_thread(blocking.started.wait, 10)
    assert blocking.process is not None
    assert thread.pids() == [blocking.process.pid]

    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    await asyncio.to_thread(blocking.process.join, 10)
    assert blocking.process.exitcode == -signal.SIGKILL

    blocking.release.set()  # the build returns after all: the thread shuts it down itself
    assert await asyncio.to_thread(blocking.shut.wait, 10)
    assert blocking.shut_down == ["engine"]
    assert blocking.shutdown_thread == "test-engine"


def test_the_loop_closes_without_waiting_for_a_start_in_progress(blocking: Blocking) -> None:
    async def main() -> None:
        thread: EngineThread[str] = EngineThread()
        start = asyncio.ensure_future(thread.start(blocking.build, blocking.shutdown))
        await asyncio.to_thread(blocking.started.wait, 10)
        start.cancel()

    asyncio.run(main())  # with the build in the loop's executor, this would never return
    assert not blocking.release.is_set()  # the build is still blocked
    blocking.release.set()
    assert blocking.shut.wait(10)  # no loop any more: the thread shut it down on its own
    assert blocking.shut_down == ["engine"]


async def test_stop_shuts_the_engine_down_in_its_thread_and_waits_for_it(
    blocking: Blocking,
) -> None:
    blocking.release.set()
    thread: EngineThread[str] = EngineThread("test-engine")
    assert await thread.start(blocking.build, blocking.shutdown) == "engine"
    assert blocking.shut_down == []
    await thread.stop()
    assert blocking.shut_down == ["engine"]
    assert blocking.shutdown_thread == "test-engine"
    await thread.stop()  # twice is fine
    assert blocking.shut_down == ["engine"]


async def test_stop_unfreezes_the_heap_the_engine_start_froze(blocking: Blocking) -> None:
    # VLLMEngine.start freezes the startup heap (freeze_startup_heap, as vllm serve does);
    # after a shutdown the engine's objects must be collectable again
    blocking.release.set()
    thread: EngineThread[str] = EngineThread("test-engine")
    await thread.start(blocking.build, blocking.shutdown)
    gc.freeze()
    try:
        assert gc.get_freeze_count() > 0
        await thread.stop()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


async def test_a_failing_build_raises_its_error_from_start() -> None:
    def build() -> str:
        raise RuntimeError("no model here")

    thread: EngineThread[str] = EngineThread()
    with pytest.raises(RuntimeError, match="no model here"):
        await thread.start(build, lambda _: None)
    await thread.stop()
