"""A bounded pool of daemon threads for user tools' blocking code, apart from the kernel's.

Why not asyncio's default executor (``asyncio.to_thread``): it is shared by everything on the
loop, so six hung tool calls on a two-core machine starved the key-value store and every other
sync call behind them; and its threads are joined when the loop closes and when the interpreter
exits, so one call that never returns hung the exit itself (issue 9, item 5).

``ToolThreads(size)`` runs ``fn(**kwargs)`` in one of at most ``size`` threads, started as
calls need them; further calls wait, first in first out. Guarantees:

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

    __slots__ = ("fn", "kwargs", "future", "loop", "started", "abandoned")

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

    def _abandon(self, _: asyncio.Future[Any]) -> None:
        self.abandoned = True


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

    def __init__(self, size: int, *, name: str = "actoros-tool") -> None:
        if size < 1:
            raise ValueError(f"ToolThreads needs at least one thread, not {size}")
        self.size = size
        self._name = name
        self._queue: queue.SimpleQueue[ThreadCall | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one count per thread waiting for a call
        self._threads: list[threading.Thread] = []
        self._busy = 0
        self._lock = threading.Lock()
        self._closed = False

    @property
    def busy(self) -> int:
        """How many threads are inside a call now (hung ones included)."""
        return self._busy

    def run(self, fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> ThreadCall:
        """Queue ``fn(**kwargs)``; cancel ``ThreadCall.future`` to give up on it."""
        if self._closed:
            raise RuntimeError("the tool threads are shut down")
        loop = asyncio.get_running_loop()
        call = ThreadCall(fn, kwargs, loop.create_future(), loop)
        call.future.add_done_callback(call._abandon)
        self._queue.put(call)
        if not self._idle.acquire(blocking=False) and len(self._threads) < self.size:
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return call

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
        for _ in self._threads:
            self._queue.put(_STOP)

    def _work(self) -> None:
        while True:
            call = self._queue.get()
            if call is _STOP:
                return
            if not call.abandoned:
                call.started = True
                with self._lock:
                    self._busy += 1
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
                try:
                    call.loop.call_soon_threadsafe(_settle, call.future, ok, value)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass
                del value
            del call  # hold nothing of a finished call while waiting for the next
            self._idle.release()
