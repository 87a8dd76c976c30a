"""``EngineThread``: an engine's processes never outlive the process that started them.

vLLM starts its engine in child processes (EngineCore, and the EngineCore's Worker: ~3 GB and
a core on CPU) from whichever thread calls ``AsyncLLM.from_engine_args``. They stop when the
engine is shut down; when the process that started them dies without shutting them down
(SIGKILL, a crash, an exit that never reaches vLLM's finalizers) they run on as orphans. And
the build blocks for 10-40 s and cannot be interrupted: a loop or an interpreter that waits for
the thread running it waits that long, for an engine nobody wants any more.

``EngineThread`` runs the build in a daemon thread of its own that stays alive, as the parent
of the engine's processes, until the engine is shut down:

- being a daemon, it never holds up the loop's close or the interpreter's exit;
- a start that is cancelled kills the processes it started so far (they cannot become an
  engine any more), and whatever the build still returns is shut down by the thread itself,
  with no event loop needed;
- it blocks SIGINT, and so does every process started from it (a signal mask is inherited
  through fork and exec): the terminal sends Ctrl-C to the whole foreground process group, and
  an engine must stop when its owner says so (a graceful stop first finishes what runs), not
  on its own;
- every ``multiprocessing`` child that starts with SIGINT blocked that way — forked or spawned
  from that thread, or from the main thread of such a child (vLLM's Worker) — arms a
  parent-death signal before it runs its target (Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``):
  when the thread that started it ends — its engine shut down, or the whole process gone,
  SIGKILL included — the kernel kills it.

Arming runs in the child itself: in a forked child, multiprocessing's after-fork hook, which
this module registers when imported (the child inherits it); in a spawned child (vLLM on CPU
spawns both its processes), this module's import while the child re-imports its parent's main
module, as every child of the ``actoros`` command does (``actoros.cli`` imports this module). A
spawned child of a main module that does not import it is not armed: only an exit that runs
Python code stops it (``actoros.stopping`` reaps children on every one; vLLM's finalizers too).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import gc
import multiprocessing
import multiprocessing.resource_tracker
import multiprocessing.util
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import structlog

__all__ = ["EngineThread"]

log = structlog.get_logger("actoros.inference.processes")

T = TypeVar("T")

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# the pid of the process whose threads start this one's children: a child compares it with its
# parent's pid to tell whether its parent died before the child could arm its signal
ENV_PARENT = "ACTOROS_PARENT_PID"


def _set_parent_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _arm(parent: int | None) -> None:
    """In a process started from an engine's thread (SIGINT blocked): die with that thread."""
    if signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, ()):
        return  # not started from an engine's thread
    if _set_parent_death_signal(signal.SIGKILL) and parent is not None:
        if os.getppid() != parent and not _alive(parent):
            os._exit(1)  # the parent died before the signal was armed


class _AfterFork:
    """multiprocessing's after-fork hook: it runs in each forked child before its target."""

    def __call__(self, _: object) -> None:
        os.environ[ENV_PARENT] = str(os.getpid())
        parent = multiprocessing.parent_process()
        _arm(parent.pid if parent is not None else None)


_AFTER_FORK = _AfterFork()
multiprocessing.util.register_after_fork(_AFTER_FORK, _AFTER_FORK)
_parent = os.environ.get(ENV_PARENT, "")
os.environ[ENV_PARENT] = str(os.getpid())
if sys.orig_argv[-1:] == ["--multiprocessing-fork"]:
    # a child multiprocessing spawned, importing its parent's main module: spawned children
    # run no after-fork hook (and a fresh interpreter has none registered), so arm it here
    _arm(int(_parent) if _parent.isdigit() else None)


class EngineThread(Generic[T]):
    """The thread that starts one engine, parent of its processes until it is shut down.

    ``start(build, shutdown)`` runs ``build()`` in the thread and returns what it built;
    ``stop()`` runs ``shutdown(built)`` there and lets the thread end. One start per object.
    """

    def __init__(self, name: str = "actoros-engine") -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._release = threading.Event()  # set: shut what was built down, then end
        self._ended: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._built: Any = None  # held here (not in a frame) until the shutdown
        self._building = False  # build() runs
        self._abandoned = False  # its processes were killed: nobody wants what it builds
        self._before: set[multiprocessing.process.BaseProcess] | None = None

    async def start(self, build: Callable[[], T], shutdown: Callable[[T], None]) -> T:
        """``build()`` in the thread. Cancelled: the processes it started are killed, and what
        it still returns is shut down in the thread; nobody waits for that."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was started already")
        loop = asyncio.get_running_loop()
        # resolved with None: the built value travels in self._built only, so that nothing
        # else (this future, held by the thread's arguments) keeps it alive past its shutdown
        built: asyncio.Future[None] = loop.create_future()
        self._before = set(multiprocessing.active_children())
        self._building = True
        self._thread = threading.Thread(
            target=self._run, args=(build, shutdown, loop, built), name=self.name, daemon=True
        )
        self._thread.start()
        try:
            await built
        except asyncio.CancelledError:
            self._abandon()
            raise
        value: T = self._built
        return value

    async def stop(self) -> None:
        """Shut the engine down in its thread and wait until it has ended. During a start:
        kill the processes the start began, without waiting for the build to give up. Safe to
        call twice, and before ``start``."""
        if self._thread is None:
            return
        if self._building:
            self._abandon()
            return
        self._release.set()
        # shielded: a stop cut short leaves the thread to finish the shutdown on its own
        await asyncio.shield(asyncio.wrap_future(self._ended))

    def pids(self) -> list[int]:
        """The multiprocessing children started since the build began (vLLM's EngineCore;
        the processes those start are theirs). Another thread starting processes meanwhile
        would be counted too: one engine starts at a time."""
        before = self._before
        if before is None:
            return []
        return [p.pid for p in multiprocessing.active_children() if p not in before and p.pid]

    def _abandon(self) -> None:
        """Give up on a start in progress: its processes are killed (once: a pid is ours
        only while its process lives)."""
        self._release.set()
        if not self._building or self._abandoned:
            return
        self._abandoned = True
        killed = []
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        log.info("engine.start_abandoned", thread=self.name, killed=killed)

    def _run(
        self,
        build: Callable[[], T],
        shutdown: Callable[[T], None],
        loop: asyncio.AbstractEventLoop,
        built: asyncio.Future[None],
    ) -> None:
        if os.name == "posix":
            # multiprocessing's resource tracker unblocks SIGINT in the thread that starts it:
            # start it first (it is started once, and every child shares it)
            multiprocessing.resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # for what it starts
        try:
            try:
                self._built = build()
            except BaseException as exc:
                self._building = False
                self._hand_over(loop, built, exc)
                return
            self._building = False
            if not self._hand_over(loop, built, None):
                self._release.set()  # nobody will take it
            self._release.wait()
            value, self._built = self._built, None
            try:
                shutdown(value)
            except Exception as exc:
                log.warning("engine.shutdown_failed", thread=self.name, error=repr(exc))
            finally:
                # an engine that outlives its shutdown prints noise at interpreter exit; its
                # objects may sit in the heap its start froze (freeze_startup_heap)
                del value
                gc.unfreeze()
                gc.collect()
        finally:
            if not self._ended.done():
                self._ended.set_result(None)

    def _hand_over(
        self,
        loop: asyncio.AbstractEventLoop,
        built: asyncio.Future[None],
        exc: BaseException | None,
    ) -> bool:
        """Give the outcome to the waiting start; False if nobody can take it any more."""

        def deliver() -> None:
            if built.done():  # the start was cancelled
                self._release.set()
            elif exc is not None:
                built.set_exception(exc)
            else:
                built.set_result(None)

        if self._release.is_set():
            if exc is not None:
                log.debug("engine.abandoned_start_failed", thread=self.name, error=repr(exc))
            return False
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop is closed
            return False
        return True
