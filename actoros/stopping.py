"""How an ``actoros`` command stops: Ctrl-C and SIGTERM, and the child processes it leaves.

``Interrupts`` handles SIGINT and SIGTERM for the whole of ``actoros run``. It is installed with
``signal.signal`` before the event loop starts and restored once the loop is closed, so no
``KeyboardInterrupt`` ever lands in the middle of the loop's teardown or of a thread's work:

1. the first signal asks for a graceful stop: ``stop`` is set on the loop, the system shuts
   down in order and the exit status says whether work is left (130: a rerun resumes it);
2. the second stops at once: the main task is cancelled (what it awaits unwinds, the loop's
   teardown cancels what still runs), the child processes are killed on the way out, and a
   process still alive ``grace`` seconds later ends with status 130 regardless;
3. a third ends the process now, its child processes killed first.

Before the loop runs there is nothing to stop gracefully: a signal is a ``KeyboardInterrupt``
(exit 130). Once the loop is closed, a signal ends the process now; after an interrupted run
that stays so until the process has exited (the handlers are restored only after a run that
no signal interrupted).

``ChildProcesses`` are the processes started after it was made, children and theirs: ``end``
terminates those still running, waits, and kills the rest, so no exit that runs Python code
leaves one behind (an engine's processes also die with a SIGKILLed parent: see
``actoros.inference.processes``). It uses psutil (vLLM depends on it); without psutil it knows
only multiprocessing's children. multiprocessing's resource tracker is left alone: it ends by
itself once every process using it is gone, after removing the shared memory they leaked.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from types import FrameType
from typing import Any, NoReturn

import structlog

__all__ = ["ChildProcesses", "Interrupts"]

log = structlog.get_logger("actoros.stopping")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_INTERRUPTED = 130
RESOURCE_TRACKER = "multiprocessing.resource_tracker"


class ChildProcesses:
    """The descendants of this process started from now on."""

    def __init__(self) -> None:
        self._before = {self._key(p) for p in self._descendants()}

    def end(self, grace: float = 5.0) -> list[int]:
        """Terminate every one still running, kill those still there ``grace`` seconds later;
        return their pids."""
        procs = self._started()
        for proc in procs:
            _signal(proc, signal.SIGTERM)
        alive = self._wait(procs, grace)
        for proc in alive:
            _signal(proc, signal.SIGKILL)
        self._wait(alive, 1.0)
        if procs:
            log.info("run.child_processes_ended", pids=[p.pid for p in procs], killed=len(alive))
        return [p.pid for p in procs]

    def kill(self) -> None:
        """Kill every one now (no waiting: for an exit that cannot wait)."""
        for proc in self._started():
            _signal(proc, signal.SIGKILL)

    def _started(self) -> list[Any]:
        return [p for p in self._descendants() if self._key(p) not in self._before]

    @staticmethod
    def _descendants() -> list[Any]:
        try:
            import psutil
        except ImportError:
            return list(multiprocessing.active_children())
        procs = []
        for proc in psutil.Process().children(recursive=True):
            try:
                if RESOURCE_TRACKER not in " ".join(proc.cmdline()):
                    procs.append(proc)
            except psutil.Error:  # gone meanwhile, or a zombie
                pass
        return procs

    @staticmethod
    def _key(proc: Any) -> tuple[int, float]:
        create_time = getattr(proc, "create_time", None)
        try:
            return proc.pid, create_time() if create_time is not None else 0.0
        except Exception:  # gone meanwhile
            return proc.pid, 0.0

    @staticmethod
    def _wait(procs: list[Any], timeout: float) -> list[Any]:
        """Those of ``procs`` still alive after at most ``timeout`` seconds."""
        if not procs:
            return []
        if isinstance(procs[0], multiprocessing.process.BaseProcess):
            deadline = time.monotonic() + timeout
            for proc in procs:
                proc.join(max(0.0, deadline - time.monotonic()))
            return [p for p in procs if p.is_alive()]
        import psutil

        return list(psutil.wait_procs(procs, timeout=timeout)[1])


def _signal(proc: Any, sig: int) -> None:
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass


class Interrupts:
    """SIGINT and SIGTERM while a command runs on an event loop (see the module docstring).

    Use as ``with Interrupts(children) as interrupts:`` around the loop; the main task calls
    ``attach(stop)`` first thing, and ``detach()`` follows the loop's close.
    """

    def __init__(self, children: ChildProcesses, *, grace: float = 5.0) -> None:
        self.children = children
        self.grace = grace
        self.count = 0  # signals received
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._stop: asyncio.Event | None = None
        self._loop_closed = False
        self._previous: dict[int, Any] = {}

    @property
    def forced(self) -> bool:
        """Whether a second signal asked to stop at once."""
        return self.count >= 2

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():  # else signals go elsewhere
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.count:
            return  # interrupted: a signal on the way out ends the process at once, with 130
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def attach(self, stop: asyncio.Event) -> None:
        """From the main task: the first signal sets ``stop``, the second cancels this task."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._stop = stop

    def detach(self) -> None:
        """The loop is closed: a signal now ends the process at once."""
        self._loop, self._task, self._stop = None, None, None
        self._loop_closed = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread between two bytecodes, maybe inside the loop's own code:
        # it only hands work to the loop (call_soon_threadsafe), never writes to a stream.
        self.count += 1
        name = signal.Signals(signum).name
        loop = self._loop
        if loop is None:
            if not self._loop_closed:
                raise KeyboardInterrupt  # nothing started yet: nothing to stop gracefully
            self._end_now()
        if self.count >= 3:
            self._end_now()
        if self.count == 1:
            self._on_loop(loop, self._graceful, name)
        elif self.count == 2:
            timer = threading.Timer(self.grace, self._end_now)
            timer.daemon = True
            timer.start()
            if not self._on_loop(loop, self._at_once, name):
                self._end_now()

    @staticmethod
    def _on_loop(loop: asyncio.AbstractEventLoop, callback: Any, *args: Any) -> bool:
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def _graceful(self, name: str) -> None:
        log.warning("run.stopping", signal=name, hint="Ctrl-C again to stop at once")
        if self._stop is not None:
            self._stop.set()

    def _at_once(self, name: str) -> None:
        log.warning("run.stopping_now", signal=name)
        if self._stop is not None:
            self._stop.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def _end_now(self) -> NoReturn:
        """Kill the child processes and end the process with 130, whatever still runs. Nothing
        is written, not even a buffer flushed: a thread blocked on a full stdout or stderr may
        be what hangs (result lines are flushed one by one as they are written)."""
        self.children.kill()
        os._exit(EXIT_INTERRUPTED)
