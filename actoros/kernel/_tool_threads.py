"""A bounded pool of daemon threads for user tools' blocking code, apart from the kernel's.

Why not asyncio's default executor (``asyncio.to_thread``): it is shared by everything on the
loop, so six hung tool calls on a two-core machine starved the key-value store and every other
sync call behind them; and its threads are joined when the loop closes and when the interpreter
exits, so one call that never returns hung the exit itself (issue 9, item 5).

``ToolThreads(size)`` runs ``fn(**kwargs)`` in one of at most ``size`` threads, started as
calls need them; further calls wait, first in first out. Guarantees:

- A call abandoned while it runs (its deadline passed: the tool hangs) no longer holds one of
  the ``size`` places: a new thread takes its place, so hung calls do not starve the healthy
  calls of the same tools. At most ``max_hung`` (default ``4 * size``) such threads are
  replaced; past that, calls wait for a place again (and time out with a clear error), so a
  tool that hangs on every call cannot grow the process without bound. A hung thread that
  returns at last gives its place back and exits when it is one too many.

- A call waiting for a thread that is abandoned (its future cancelled: its deadline passed, its
  asker left) never runs. ``ThreadCall.started`` tells whether it began.
- Whatever ``fn`` raises, ``BaseException`` included (``SystemExit``, ``KeyboardInterrupt``,
  ``GeneratorExit``), is that call's outcome and nothing else: the thread lives on for the next
  call. An exception that is not an ``Exception`` reaches the future wrapped in ``Escaped``,
  because awaiting a ``SystemExit`` or ``KeyboardInterrupt`` in a task stops the event loop
  (``StopIteration`` too: a future refuses to hold it).
- ``shutdown`` never waits: queued calls are cancelled, idle threads exit, and a thread still
  inside a call is abandoned. Python cannot kill a thread, so it runs on until ``fn`` returns
  (its result is dropped); the threads are daemons, so it never holds up the interpreter's exit.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Escaped", "ThreadCall", "ToolThreads"]


class Escaped(Exception):
    """Carries what a call raised that is not an ``Exception`` (``exc``: ``SystemExit``, ...)."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        super().__init__(f"{type(exc).__name__}: {exc}")


class ThreadCall:
    """One call handed to ``ToolThreads``: ``future`` resolves with its outcome."""

    __slots__ = ("fn", "kwargs", "future", "loop", "started", "abandoned", "finished", "hung")

    def __init__(
        self,
        fn: Callable[..., Any],
        kwargs: Mapping[str, Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn = fn
        self.kwargs = kwargs
        self.future = future
        self.loop = loop
        self.started = False  # a thread took it (set by that thread)
        self.abandoned = False  # nobody waits any more (set on the loop): never start it
        self.finished = False  # its function returned (set by the thread, under the lock)
        self.hung = False  # abandoned while it ran: its thread is counted in ``_hung``


_STOP = None


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # the call was abandoned while it ran
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class ToolThreads:
    """At most ``size`` daemon threads running blocking calls (see the module docstring)."""

    def __init__(
        self, size: int, *, name: str = "actoros-tool", max_hung: int | None = None
    ) -> None:
        if size < 1:
            raise ValueError(f"ToolThreads needs at least one thread, not {size}")
        self.size = size
        self.max_hung = 4 * size if max_hung is None else max_hung
        self._hung = 0  # threads inside a call nobody waits for any more
        self._name = name
        self._queue: queue.SimpleQueue[ThreadCall | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one count per thread waiting for a call
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._serial = itertools.count()
        self._closed = False

    @property
    def busy(self) -> int:
        """How many threads are inside a call now (hung ones included)."""
        return self._busy

    @property
    def hung(self) -> int:
        """How many threads are inside a call that was abandoned while it ran."""
        return self._hung

    def _places(self) -> int:
        """Threads allowed now: ``size``, plus one for each hung thread up to ``max_hung``."""
        return self.size + min(self._hung, self.max_hung)

    def run(self, fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> ThreadCall:
        """Queue ``fn(**kwargs)``; cancel ``ThreadCall.future`` to give up on it."""
        if self._closed:
            raise RuntimeError("the tool threads are shut down")
        loop = asyncio.get_running_loop()
        call = ThreadCall(fn, kwargs, loop.create_future(), loop)
        call.future.add_done_callback(lambda _: self._abandon(call))
        self._queue.put(call)
        if not self._idle.acquire(blocking=False):
            self._grow()
        return call

    def _grow(self) -> None:
        """Start a thread for a queued call if a place is free (callers found none idle)."""
        with self._lock:
            if self._closed or len(self._threads) >= self._places():
                return
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{next(self._serial)}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _abandon(self, call: ThreadCall) -> None:
        """Nobody waits for ``call`` any more (on the loop); if it runs, its thread is hung."""
        with self._lock:
            call.abandoned = True
            if not call.started or call.finished:
                return
            call.hung = True
            self._hung += 1
        if not self._queue.empty():  # a call waits for the place the hung thread held
            self._grow()

    def shutdown(self) -> None:
        """Cancel queued calls and let the threads go; never waits (see the module docstring)."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call.abandoned = True
                call.future.cancel()
        with self._lock:
            running = len(self._threads)
        for _ in range(running):
            self._queue.put(_STOP)

    def _work(self) -> None:
        while True:
            call = self._queue.get()
            if call is _STOP:
                return
            with self._lock:  # against _abandon: a call either never starts or counts as hung
                run = not call.abandoned
                if run:
                    call.started = True
                    self._busy += 1
            if run:
                try:
                    ok, value = True, call.fn(**call.kwargs)
                except StopIteration as exc:  # a future refuses it as its exception
                    ok, value = False, Escaped(exc)
                except Exception as exc:
                    ok, value = False, exc
                except BaseException as exc:  # SystemExit, KeyboardInterrupt...: this call's
                    ok, value = False, Escaped(exc)
                with self._lock:
                    self._busy -= 1
                    call.finished = True
                    if call.hung:  # back from a hung call: one place fewer is allowed
                        self._hung -= 1
                    retire = len(self._threads) > self._places()
                    if retire:
                        self._threads.remove(threading.current_thread())
                try:
                    call.loop.call_soon_threadsafe(_settle, call.future, ok, value)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass
                del value
                if retire:  # one thread too many since its hung call came back
                    return
            del call  # hold nothing of a finished call while waiting for the next
            self._idle.release()
