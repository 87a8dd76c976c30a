"""ActorRef: tell, ask (timeouts on the manual clock, late replies), stop, stability."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import (
    Actor,
    ActorRef,
    ActorStopped,
    ActorSystem,
    AskTimeout,
    Context,
    DeadLetter,
    LifecycleEvent,
    ManualClock,
    Terminated,
)
from actoros.testing import ProbeRecorder, capture_events, settle, spawn_probe, test_system

pytestmark = pytest.mark.timeout(10)


class Boom(Exception):
    pass


class Gated(Actor):
    """Blocks on "block" until the test opens the gate; echoes everything else.

    ``entered`` is set when the blocking message is in hand, so the test knows that what it
    sends next waits in the mailbox.
    """

    def __init__(self, entered: asyncio.Event, gate: asyncio.Event, starts: list[int]) -> None:
        self.entered = entered
        self.gate = gate
        starts.append(1)

    async def receive(self, message: Any, ctx: Context) -> Any:
        if message == "block":
            self.entered.set()
            await self.gate.wait()
            return "unblocked"
        if message == "crash":
            raise Boom("asked to crash")
        return message


class GatedHandle:
    """A spawned ``Gated`` actor with its events: unpacks as ``ref, gate, starts``."""

    def __init__(
        self, ref: ActorRef, entered: asyncio.Event, gate: asyncio.Event, starts: list[int]
    ) -> None:
        self.ref, self.entered, self.gate, self.starts = ref, entered, gate, starts

    def __iter__(self) -> Any:
        return iter((self.ref, self.gate, self.starts))


async def spawn_gated(system: ActorSystem, **kwargs: Any) -> GatedHandle:
    entered, gate, starts = asyncio.Event(), asyncio.Event(), list[int]()
    ref = await system.spawn(Gated, entered, gate, starts, **kwargs)
    return GatedHandle(ref, entered, gate, starts)


async def block(gated: GatedHandle) -> asyncio.Task[Any]:
    """Send "block" as an ask and return once the actor holds it."""
    task = asyncio.ensure_future(gated.ref.ask("block", timeout=None))
    await gated.entered.wait()
    return task


async def test_tell_delivers_and_ask_returns_the_reply(system: ActorSystem) -> None:
    ref, probe = await spawn_probe(system, reply=lambda m: ("got", m))
    ref.tell("one")
    assert await ref.ask("two") == ("got", "two")
    assert probe.messages == ["one", "two"]


async def test_ask_reraises_the_exception_of_receive(system: ActorSystem) -> None:
    ref, _, _ = await spawn_gated(system)
    with pytest.raises(Boom, match="asked to crash"):
        await ref.ask("crash")


async def test_ask_times_out_only_when_the_manual_clock_reaches_the_timeout(
    system: ActorSystem, clock: ManualClock
) -> None:
    gated = await spawn_gated(system)
    ref, gate = gated.ref, gated.gate
    blocker = await block(gated)
    ask = asyncio.ensure_future(ref.ask("waiting", timeout=2.0))
    await settle()
    clock.advance(1.999)
    await settle()
    assert not ask.done()
    clock.advance(0.001)
    with pytest.raises(AskTimeout):
        await ask
    gate.set()
    assert await blocker == "unblocked"


async def test_default_ask_timeout_follows_the_manual_clock(
    system: ActorSystem, clock: ManualClock
) -> None:
    gated = await spawn_gated(system)
    ref, gate = gated.ref, gated.gate
    blocker = await block(gated)
    ask = asyncio.ensure_future(ref.ask("waiting"))  # default timeout: 5 s
    await settle()
    clock.advance(4.9)
    await settle()
    assert not ask.done()
    clock.advance(0.1)
    with pytest.raises(AskTimeout):
        await ask
    gate.set()
    await blocker


async def test_a_reply_after_the_timeout_is_dropped_as_a_late_reply_dead_letter(
    system: ActorSystem, clock: ManualClock
) -> None:
    gated = await spawn_gated(system)
    ref, gate = gated.ref, gated.gate
    with capture_events(system, DeadLetter) as dead:
        ask = asyncio.ensure_future(ref.ask("block", timeout=1.0))
        await gated.entered.wait()
        clock.advance(1.0)
        with pytest.raises(AskTimeout):
            await ask
        gate.set()
        letter = await dead.wait_for(DeadLetter)
    assert letter.message == "unblocked"  # the reply that had nowhere to go
    assert letter.recipient is ref
    assert letter.reason.startswith("late reply")
    # the actor goes on serving
    assert await ref.ask("next") == "next"


async def test_ask_timeout_on_the_loop_clock_is_never_early() -> None:
    async with test_system(real_time=True) as system:
        gated = await spawn_gated(system)
        blocker = await block(gated)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(AskTimeout):
            await gated.ref.ask("waiting", timeout=0.05)
        assert loop.time() - start >= 0.05 - 0.002  # uvloop's clock has 1 ms resolution
        gated.gate.set()
        await blocker


async def test_ask_with_timeout_none_waits_for_the_reply_however_long(
    system: ActorSystem, clock: ManualClock
) -> None:
    gated = await spawn_gated(system)
    ref, gate = gated.ref, gated.gate
    ask = asyncio.ensure_future(ref.ask("block", timeout=None))
    await gated.entered.wait()
    clock.advance(10_000.0)
    await settle()
    assert not ask.done()
    gate.set()
    assert await ask == "unblocked"


async def test_ask_to_a_stopped_actor_raises_actor_stopped_at_once(
    system: ActorSystem,
) -> None:
    ref, _, _ = await spawn_gated(system, name="gone")
    await ref.stop()
    with capture_events(system, DeadLetter) as dead:
        with pytest.raises(ActorStopped):
            # no clock advance needed: it fails without waiting for any timeout
            await asyncio.wait_for(ref.ask("anyone?"), 1.0)
    assert [d.message for d in dead] == ["anyone?"]


async def test_tell_to_a_stopped_actor_becomes_a_dead_letter(system: ActorSystem) -> None:
    ref, _, _ = await spawn_gated(system, name="gone")
    await ref.stop()
    with capture_events(system, DeadLetter) as dead:
        ref.tell("hello")
    assert dead == [DeadLetter("hello", ref, "recipient stopped")]


async def test_stop_waits_until_the_actor_is_gone(system: ActorSystem) -> None:
    stopped: list[str] = []

    class Stoppable(Actor):
        async def on_stop(self) -> None:
            await asyncio.sleep(0)
            stopped.append(self.ctx.self.path)

    ref = await system.spawn(Stoppable, name="s")
    assert ref.is_alive
    await ref.stop()
    assert stopped == ["/s"]
    assert not ref.is_alive
    assert system.lookup("/s") is None


async def test_stop_from_outside_is_final_even_for_a_permanent_actor(
    system: ActorSystem,
) -> None:
    ref, _, starts = await spawn_gated(system, restart="permanent")
    with capture_events(system, LifecycleEvent) as events:
        await ref.stop()
        await settle()
    assert starts == [1]
    assert [e.kind for e in events] == ["stopped"]


async def test_messages_queued_behind_a_stop_become_dead_letters_and_asks_fail(
    system: ActorSystem,
) -> None:
    gated = await spawn_gated(system)
    ref, gate = gated.ref, gated.gate
    blocker = await block(gated)
    queued_ask = asyncio.ensure_future(ref.ask("queued ask", timeout=None))
    ref.tell("queued tell")
    await settle()
    with capture_events(system, DeadLetter) as dead:
        stopping = asyncio.ensure_future(ref.stop())
        await settle()
        assert not stopping.done()  # it waits for the message in hand
        gate.set()
        await stopping
    assert await blocker == "unblocked"
    with pytest.raises(ActorStopped):
        await queued_ask
    assert sorted(d.message for d in dead) == ["queued ask", "queued tell"]


async def test_stop_from_inside_the_handler_does_not_deadlock(system: ActorSystem) -> None:
    class SelfStopper(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            await ctx.self.stop()  # must return at once: the actor is busy right here
            return "stopping"

    watcher_ref, watcher = await spawn_watcher(system)
    ref = await system.spawn(SelfStopper, name="self-stopper", restart="transient")
    watcher_ref.tell(("watch", ref))
    assert await asyncio.wait_for(ref.ask("stop yourself"), 2.0) == "stopping"
    terminated = await watcher.expect(Terminated)
    # a transient actor's self-stop is a normal exit: removed, not restarted
    assert terminated == Terminated(ref, "normal")
    assert not ref.is_alive


async def test_self_stop_of_a_permanent_actor_is_a_normal_exit_and_it_restarts(
    system: ActorSystem,
) -> None:
    starts: list[str] = []

    class SelfStopper(Actor):
        async def on_start(self) -> None:
            starts.append("start")

        async def receive(self, message: Any, ctx: Context) -> Any:
            await ctx.self.stop()
            return "stopping"

    with capture_events(system, LifecycleEvent) as events:
        ref = await system.spawn(SelfStopper, name="perm")
        assert await asyncio.wait_for(ref.ask("stop yourself"), 2.0) == "stopping"
        await events.wait_for(LifecycleEvent("/perm", "restarted", None))
    assert starts == ["start", "start"]
    assert ref.is_alive


async def test_asking_yourself_from_receive_is_refused_instead_of_deadlocking(
    system: ActorSystem,
) -> None:
    class Narcissus(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            if message == "ask self":
                try:
                    await ctx.self.ask("inner")
                except RuntimeError as exc:
                    return f"refused: {exc}"
            return message

    ref = await system.spawn(Narcissus)
    reply = await asyncio.wait_for(ref.ask("ask self"), 2.0)
    assert reply.startswith("refused")


async def test_a_ref_is_stable_and_found_by_path_and_by_name(system: ActorSystem) -> None:
    ref: ActorRef = (await spawn_gated(system, name="stable")).ref
    assert ref.name == "stable" and ref.path == "/stable"
    assert system.lookup("/stable") is ref
    assert system.lookup("stable") is ref
    assert system.lookup("/missing") is None
    assert system.lookup("missing") is None
    with pytest.raises(Boom):
        await ref.ask("crash")  # restarted: same ref
    assert system.lookup("/stable") is ref
    assert await ref.ask("still here") == "still here"


# -- helpers -------------------------------------------------------------------------------


class Watcher(Actor):
    """Watches the refs it is told to watch; records everything else it receives."""

    def __init__(self, recorder: ProbeRecorder) -> None:
        self.recorder = recorder

    def receive(self, message: Any, ctx: Context) -> Any:
        if isinstance(message, tuple) and message[0] == "watch":
            ctx.watch(message[1])
            return None
        if isinstance(message, tuple) and message[0] == "unwatch":
            ctx.unwatch(message[1])
            return None
        self.recorder.record(message, ctx.sender)
        return None


async def spawn_watcher(system: ActorSystem) -> tuple[Any, ProbeRecorder]:
    recorder = ProbeRecorder()
    ref = await system.spawn(Watcher, recorder, name="watcher")
    return ref, recorder
