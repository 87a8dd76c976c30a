"""Helpers for testing code built on actoros, as ``structlog.testing`` is for structlog.

A test builds a system whose time stands still (``test_system``), puts a ``Probe`` where a real
actor would send its messages, and awaits what the probe received::

    from actoros.testing import capture_events, spawn_probe, test_system

    async def test_greeter_answers_the_sender():
        async with test_system() as system:
            ref, probe = await spawn_probe(system)
            greeter = await system.spawn(Greeter)
            greeter.tell("hi", sender=ref)
            assert await probe.expect(str) == "hello"

Nothing here sleeps to "give things time". Time inside the system is a ``ManualClock`` that the
test moves with ``system.clock.advance(seconds)`` (ask timeouts, restart windows, backoff and
shutdown timeouts all follow it). Waiting for an effect means awaiting an event: a message
recorded by a probe, an event published on ``system.events``. The ``timeout=`` of those waits is
wall-clock time and only a safety net against a hang: a test that passes never reaches it.

Why a ``ProbeRecorder``: the actor instance lives inside the system (and a restart replaces it),
so the test cannot hold it. The recorder is created by the test and handed to the actor's
factory; every incarnation of the probe writes into the same recorder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from actoros import Actor, ActorRef, ActorSystem, Clock, Context, ManualClock

__all__ = [
    "EventCapture",
    "ManualClock",
    "Probe",
    "ProbeRecorder",
    "capture_events",
    "settle",
    "spawn_probe",
    "test_system",
]

#: What ``expect``/``wait_for`` accept: ``None`` (anything), a type or tuple of types
#: (``isinstance``), a predicate ``item -> bool``, or a value (compared with ``==``).
Matcher = Any

_NOTHING = object()


def _matches(matcher: Matcher, item: Any) -> bool:
    if matcher is None:
        return True
    if isinstance(matcher, type) or (
        isinstance(matcher, tuple) and matcher and all(isinstance(t, type) for t in matcher)
    ):
        return isinstance(item, matcher)
    if callable(matcher):
        return bool(matcher(item))
    return bool(item == matcher)


def _describe(matcher: Matcher) -> str:
    if matcher is None:
        return "any message"
    if isinstance(matcher, type):
        return f"an instance of {matcher.__name__}"
    if isinstance(matcher, tuple):
        return "an instance of " + " | ".join(getattr(t, "__name__", repr(t)) for t in matcher)
    if callable(matcher):
        return f"an item matching {getattr(matcher, '__name__', repr(matcher))}"
    return repr(matcher)


class _Signal:
    """Wakes every coroutine waiting for "something new happened".

    Futures are created by the waiter on its own running loop, so the object itself can be
    built outside any loop (e.g. in a synchronous fixture).
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, check: Callable[[], Any], timeout: float | None) -> Any:
        """Return ``check()`` once it is not ``_NOTHING``; re-check after each ``notify``.

        Raises ``TimeoutError`` after ``timeout`` wall-clock seconds (``None``: never).
        """
        result = check()
        if result is not _NOTHING:
            return result
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                waiter = loop.create_future()
                self._waiters.append(waiter)
                try:
                    await waiter
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                result = check()
                if result is not _NOTHING:
                    return result

    async def wait_until(self, check: Callable[[], Any], timeout: float | None, what: str) -> Any:
        """``wait``, failing the test with an ``AssertionError`` that names ``what``."""
        try:
            return await self.wait(check, timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


async def settle(max_turns: int = 200) -> bool:
    """Give the event loop turns until every other task has finished (or ``max_turns``).

    An idle actoros actor owns no task, so in a system with nothing left to do only the
    caller's task remains: ``settle()`` then returns ``True``. It returns ``False`` after
    ``max_turns`` turns if something is still running (an actor blocked in ``receive`` or
    ``on_stop``, a task of the test's own). Timers are not tasks: a backoff restart or an ask
    timeout waiting for ``clock.advance`` does not keep it from returning ``True``. Use it to
    check that nothing *more* happens (see ``ProbeRecorder.expect_no_message``); to wait for
    something that should happen, await it (``expect``, ``EventCapture.wait_for``, an ask).
    """
    current = asyncio.current_task()
    for _ in range(max_turns):
        if all(task is current or task.done() for task in asyncio.all_tasks()):
            return True
        await asyncio.sleep(0)
    return all(task is current or task.done() for task in asyncio.all_tasks())


class ProbeRecorder:
    """What a ``Probe`` actor received, readable and awaitable from the test.

    ``messages`` and ``senders`` are every message (and its ``sender=``) in arrival order, across
    all incarnations of the probe. ``starts`` / ``stops`` count ``on_start`` / ``on_stop`` calls
    (so a test sees restarts). ``ref`` is the probe's ref when made by ``spawn_probe``.

    ``expect`` and ``wait_for`` read the messages in order, like a queue: each returned message
    is consumed, and the next call looks at the ones after it. ``messages`` keeps them all.
    """

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.senders: list[ActorRef | None] = []
        self.starts = 0
        self.stops = 0
        self.ref: ActorRef | None = None
        self._cursor = 0
        self._signal = _Signal()

    def __repr__(self) -> str:
        return (
            f"<ProbeRecorder {len(self.messages)} received, {self.unread} unread, "
            f"starts={self.starts} stops={self.stops}>"
        )

    # -- written by the Probe actor ---------------------------------------------------------

    def record(self, message: Any, sender: ActorRef | None = None) -> None:
        self.messages.append(message)
        self.senders.append(sender)
        self._signal.notify()

    def record_start(self) -> None:
        self.starts += 1
        self._signal.notify()

    def record_stop(self) -> None:
        self.stops += 1
        self._signal.notify()

    # -- read by the test -------------------------------------------------------------------

    @property
    def unread(self) -> int:
        """Messages received and not yet consumed by ``expect`` / ``wait_for``."""
        return len(self.messages) - self._cursor

    @property
    def last_sender(self) -> ActorRef | None:
        """The ``sender=`` of the message most recently consumed by ``expect``/``wait_for``."""
        return self.senders[self._cursor - 1] if self._cursor else None

    async def expect(self, matcher: Matcher = None, *, timeout: float | None = 3.0) -> Any:
        """Wait for the next unread message; fail unless it matches ``matcher``; return it.

        ``matcher``: ``None`` (any), a type or tuple of types, a predicate, or a value (``==``).
        Raises ``AssertionError`` if the next message does not match, or if none arrives within
        ``timeout`` wall-clock seconds (a safety net, not a delay).
        """

        def next_message() -> Any:
            if self._cursor >= len(self.messages):
                return _NOTHING
            message = self.messages[self._cursor]
            self._cursor += 1
            if not _matches(matcher, message):
                raise AssertionError(f"probe expected {_describe(matcher)}, received {message!r}")
            return message

        return await self._signal.wait_until(next_message, timeout, _describe(matcher))

    async def wait_for(self, matcher: Matcher, *, timeout: float | None = 3.0) -> Any:
        """Consume unread messages until one matches ``matcher``; return that one.

        Messages that do not match are skipped (Akka's ``fishForMessage``). Raises
        ``AssertionError`` if none matches within ``timeout`` wall-clock seconds.
        """

        def first_match() -> Any:
            while self._cursor < len(self.messages):
                message = self.messages[self._cursor]
                self._cursor += 1
                if _matches(matcher, message):
                    return message
            return _NOTHING

        return await self._signal.wait_until(first_match, timeout, _describe(matcher))

    async def expect_no_message(self, *, within: float = 0.0, max_turns: int = 200) -> None:
        """Fail if an unread message is, or arrives, in the probe.

        First lets the system run until it is idle (``settle(max_turns)``), so that messages
        already on their way arrive; then, if ``within > 0``, also waits that many wall-clock
        seconds for a message (event-driven: it returns as soon as one fails the check).
        """
        await settle(max_turns)
        if self.unread:
            raise AssertionError(
                f"probe expected no message, received {self.messages[self._cursor]!r}"
            )
        if within > 0:
            count = len(self.messages)
            try:
                await self._signal.wait(
                    lambda: None if len(self.messages) > count else _NOTHING, within
                )
            except TimeoutError:
                return
            raise AssertionError(
                f"probe expected no message, received {self.messages[self._cursor]!r}"
            )

    async def wait_started(self, count: int = 1, *, timeout: float | None = 3.0) -> None:
        """Wait until the probe has been started ``count`` times in all (restarts included)."""
        await self._signal.wait_until(
            lambda: None if self.starts >= count else _NOTHING,
            timeout,
            f"{count} start(s) (seen {self.starts})",
        )

    def clear(self) -> None:
        """Mark every message received so far as read."""
        self._cursor = len(self.messages)


class Probe(Actor):
    """An actor that records every message it receives into a ``ProbeRecorder``.

    Spawn it with ``spawn_probe``, or wherever a factory goes (e.g.
    ``ChildSpec("probe", Probe, args=(recorder,))``): the recorder outlives restarts. Its reply to
    an ``ask`` is ``reply(message)`` when ``reply`` is given, else ``None``.
    """

    def __init__(self, recorder: ProbeRecorder, reply: Callable[[Any], Any] | None = None) -> None:
        self.recorder = recorder
        self.reply = reply

    async def on_start(self) -> None:
        self.recorder.record_start()

    async def on_stop(self) -> None:
        self.recorder.record_stop()

    def receive(self, message: Any, ctx: Context) -> Any:
        self.recorder.record(message, ctx.sender)
        return self.reply(message) if self.reply is not None else None


async def spawn_probe(
    parent: ActorSystem | Context,
    name: str | None = None,
    *,
    reply: Callable[[Any], Any] | None = None,
    recorder: ProbeRecorder | None = None,
    **spawn_kwargs: Any,
) -> tuple[ActorRef, ProbeRecorder]:
    """Spawn a ``Probe`` under ``parent`` (a system, or an actor's context); return its ref and
    its recorder.

    ``spawn_kwargs`` go to ``spawn`` (``mailbox=``, ``restart=``...)::

        ref, probe = await spawn_probe(system, "audit")
        await system.spawn(Auditor, audit=ref)
        event = await probe.expect(AuditEvent)
    """
    recorder = recorder if recorder is not None else ProbeRecorder()
    ref = await parent.spawn(Probe, recorder, reply, name=name, **spawn_kwargs)
    recorder.ref = ref
    return ref, recorder


class EventCapture(list[Any]):
    """The events published on a system's event stream since the capture began.

    A plain list (compare it, index it) that keeps growing until ``close`` (or the end of its
    ``with`` block); ``wait_for`` awaits an event that has not happened yet.
    """

    def __init__(self, system: ActorSystem, types: tuple[type, ...]) -> None:
        super().__init__()
        self._signal = _Signal()
        self._unsubscribe: Callable[[], None] | None = system.events.subscribe(
            self._on_event, *types
        )

    def _on_event(self, event: Any) -> None:
        self.append(event)
        self._signal.notify()

    def __enter__(self) -> EventCapture:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop capturing (what was captured stays)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def of(self, matcher: Matcher) -> list[Any]:
        """The captured events that match ``matcher`` (a type, a predicate, a value)."""
        return [event for event in self if _matches(matcher, event)]

    async def wait_for(
        self, matcher: Matcher = None, *, count: int = 1, timeout: float | None = 3.0
    ) -> Any:
        """Wait until ``count`` captured events match ``matcher``; return the ``count``-th.

        Events captured before the call count too. Raises ``AssertionError`` after ``timeout``
        wall-clock seconds.
        """

        def nth() -> Any:
            found = 0
            for event in self:
                if _matches(matcher, event):
                    found += 1
                    if found == count:
                        return event
            return _NOTHING

        return await self._signal.wait_until(
            nth, timeout, f"{count} event(s) matching {_describe(matcher)}"
        )


def capture_events(system: ActorSystem, *types: type) -> EventCapture:
    """Collect the events of ``types`` (every event when none) published on ``system.events``.

    ::

        with capture_events(system, DeadLetter) as dead:
            ref.tell("late")
            letter = await dead.wait_for(lambda d: d.message == "late")
        assert dead == [letter]
    """
    return EventCapture(system, types)


@contextlib.asynccontextmanager
async def test_system(
    name: str = "test",
    *,
    clock: Clock | None = None,
    real_time: bool = False,
    shutdown_timeout: float = 5.0,
    **kwargs: Any,
) -> AsyncIterator[ActorSystem]:
    """A started ``ActorSystem`` whose clock is a ``ManualClock`` (``system.clock``).

    ``real_time=True`` keeps the event loop's clock instead. Other keyword arguments go to
    ``ActorSystem`` (``max_restarts``, ``within``, ``throughput``, ``seed``). On exit the
    system is shut down; ``shutdown_timeout`` is the wall-clock limit for that (an actor that
    hangs in ``on_stop`` is only cancelled by its manual-clock ``shutdown`` timeout when the
    test advances the clock, so release what you blocked before the block ends).

    As a pytest fixture::

        @pytest_asyncio.fixture
        async def system():
            async with test_system() as system:
                yield system
    """
    if clock is None and not real_time:
        clock = ManualClock()
    system = ActorSystem(name, clock=clock, **kwargs)
    await system.start()
    try:
        yield system
    finally:
        await system.shutdown(timeout=shutdown_timeout)


test_system.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
