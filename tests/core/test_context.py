"""``Context``: what an actor sees of the runtime — itself, its sender, its parent and
children, spawning, watching, deferred replies and its own normal exit."""

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
    ChildSpec,
    Context,
    DeadLetter,
    DeferredReply,
    LifecycleEvent,
    ManualClock,
)
from actoros.testing import capture_events, spawn_probe

pytestmark = pytest.mark.timeout(10)


class Echo(Actor):
    def receive(self, message: Any, ctx: Context) -> Any:
        return message


class Deferring(Actor):
    """Holds the reply to "hold" until "answer" or "refuse" comes; "status" reports on it.

    ``holding`` is set once "hold" is in hand, so the test knows what it sends next comes after.
    """

    def __init__(self, holding: asyncio.Event) -> None:
        self.holding = holding
        self.held: DeferredReply | None = None
        self.ended: list[str] = []

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case "hold":
                self.held = ctx.defer_reply()
                self.held.on_done(lambda: self.ended.append("done"))
                self.holding.set()
                return "ignored: the reply is deferred"
            case ("answer", value):
                assert self.held is not None
                self.held.resolve(value)
            case "refuse":
                assert self.held is not None
                self.held.fail(ValueError("refused"))
            case "status":
                assert self.held is not None
                return (self.held.expected, self.held.done, list(self.ended))
        return None


async def test_ctx_is_set_before_on_start(system: ActorSystem) -> None:
    seen: list[Any] = []

    class UsesCtx(Actor):
        async def on_start(self) -> None:
            parent = self.ctx.parent
            seen.append((self.ctx.self.path, self.ctx.system, parent and parent.path))

    ref = await system.spawn(UsesCtx, name="uses-ctx")
    # a top-level actor's parent is the root supervisor (OTP: the top supervisor), path "/"
    assert seen == [("/uses-ctx", system, "/")]
    assert ref.path == "/uses-ctx"


async def test_ctx_sender_is_the_sender_of_a_tell_and_none_for_an_ask(
    system: ActorSystem,
) -> None:
    class Replier(Actor):
        def receive(self, message: Any, ctx: Context) -> Any:
            if ctx.sender is not None:
                ctx.sender.tell(("reply", message), sender=ctx.self)
            return ctx.sender

    probe_ref, probe = await spawn_probe(system, "probe")
    ref = await system.spawn(Replier, name="replier")
    ref.tell("hi", sender=probe_ref)
    assert await probe.expect(("reply", "hi")) == ("reply", "hi")
    assert probe.last_sender is ref
    assert await ref.ask("q") is None


async def test_parent_and_children_are_visible_in_the_context(system: ActorSystem) -> None:
    class Parent(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            if message == "spawn":
                for name in ("x", "y", "z"):
                    await ctx.spawn(Echo, name=name)
                return [child.path for child in ctx.children]
            return None

    parent = await system.spawn(Parent, name="parent")
    assert await parent.ask("spawn") == ["/parent/x", "/parent/y", "/parent/z"]
    child = system.lookup("/parent/y")
    assert child is not None and child.path == "/parent/y"
    assert system.lookup("y") is child


async def hold(ref: ActorRef, holding: asyncio.Event, **kwargs: Any) -> asyncio.Future[Any]:
    """Ask "hold" and return the pending ask once the actor holds its reply."""
    pending = asyncio.ensure_future(ref.ask("hold", **kwargs))
    await holding.wait()
    return pending


async def test_the_context_is_one_object_satisfying_the_protocol(system: ActorSystem) -> None:
    seen: list[Any] = []

    class Looks(Actor):
        def receive(self, message: Any, ctx: Context) -> Any:
            seen.append((ctx is self.ctx, isinstance(ctx, Context), ctx.path, ctx.self))
            return None

    ref = await system.spawn(Looks, name="looks")
    await ref.ask("look")
    assert seen == [(True, True, "/looks", ref)]


async def test_an_ask_from_inside_an_actor_names_that_actor_as_the_sender(
    system: ActorSystem,
) -> None:
    class WhoAsks(Actor):
        def receive(self, message: Any, ctx: Context) -> Any:
            return ctx.sender

    class Asker(Actor):
        async def receive(self, message: ActorRef, ctx: Context) -> Any:
            return await message.ask("who?")

    target = await system.spawn(WhoAsks)
    asker = await system.spawn(Asker, name="asker")
    assert await asker.ask(target) is asker
    assert await target.ask("who?") is None  # from outside any actor


async def test_spawn_child_starts_a_child_from_its_spec(system: ActorSystem) -> None:
    class Greeter(Actor):
        def __init__(self, greeting: str, *, to: str) -> None:
            self.text = f"{greeting}, {to}"

        def receive(self, message: Any, ctx: Context) -> Any:
            return self.text

    class Parent(Actor):
        async def receive(self, message: ChildSpec, ctx: Context) -> Any:
            return await ctx.spawn_child(message)

    parent = await system.spawn(Parent, name="parent")
    spec = ChildSpec("greeter", Greeter, args=("hello",), kwargs={"to": "ann"})
    child = await parent.ask(spec)
    assert child.path == "/parent/greeter"
    assert await child.ask("?") == "hello, ann"


async def test_a_deferred_reply_answers_the_ask_when_resolved(system: ActorSystem) -> None:
    holding = asyncio.Event()
    ref = await system.spawn(Deferring, holding)
    pending = await hold(ref, holding)
    assert await ref.ask("status") == (True, False, [])
    ref.tell(("answer", 42))
    assert await pending == 42  # not receive's return value
    assert await ref.ask("status") == (True, True, ["done"])


async def test_a_failed_deferred_reply_raises_in_the_asker(system: ActorSystem) -> None:
    holding = asyncio.Event()
    ref = await system.spawn(Deferring, holding)
    pending = await hold(ref, holding)
    ref.tell("refuse")
    with pytest.raises(ValueError, match="refused"):
        await pending
    assert await ref.ask("status") == (True, True, ["done"])  # the actor did not fail


async def test_a_deferred_reply_to_a_tell_is_inert(system: ActorSystem) -> None:
    ref = await system.spawn(Deferring, asyncio.Event())
    ref.tell("hold")
    with capture_events(system, DeadLetter) as dead:
        ref.tell(("answer", 1))
        assert await ref.ask("status") == (False, True, ["done"])
    assert dead == []


async def test_a_deferred_reply_after_the_ask_timed_out_is_a_late_reply(
    system: ActorSystem, clock: ManualClock
) -> None:
    holding = asyncio.Event()
    ref = await system.spawn(Deferring, holding, name="deferring")
    pending = await hold(ref, holding, timeout=1.0)
    clock.advance(1.0)
    with pytest.raises(AskTimeout):
        await pending
    assert await ref.ask("status") == (True, True, ["done"])  # on_done ran at the timeout
    with capture_events(system, DeadLetter) as dead:
        ref.tell(("answer", "too late"))
        await ref.ask("status")
    assert [(d.message, d.recipient) for d in dead] == [("too late", ref)]
    assert dead[0].reason.startswith("late reply to str")


async def test_defer_reply_outside_receive_or_twice_is_refused(system: ActorSystem) -> None:
    errors: list[str] = []

    class Misuses(Actor):
        async def on_start(self) -> None:
            try:
                self.ctx.defer_reply()
            except RuntimeError as exc:
                errors.append(str(exc))

        def receive(self, message: Any, ctx: Context) -> Any:
            reply = ctx.defer_reply()
            try:
                ctx.defer_reply()
            except RuntimeError as exc:
                errors.append(str(exc))
            reply.resolve("once")
            return None

    ref = await system.spawn(Misuses)
    assert await ref.ask("x") == "once"
    assert len(errors) == 2
    assert all("only valid inside receive, once per message" in e for e in errors)


async def test_watching_yourself_is_refused(system: ActorSystem) -> None:
    class Narcissus(Actor):
        def receive(self, message: Any, ctx: Context) -> Any:
            ctx.watch(ctx.self)

    ref = await system.spawn(Narcissus, name="narcissus")
    with pytest.raises(ValueError, match="/narcissus cannot watch itself"):
        await ref.ask("watch")


async def test_ctx_stop_exits_normally_after_the_reply(system: ActorSystem) -> None:
    class Quits(Actor):
        def receive(self, message: Any, ctx: Context) -> Any:
            ctx.stop()
            return "bye"

    ref = await system.spawn(Quits, name="quits", restart="transient")
    with capture_events(system, LifecycleEvent) as events:
        assert await ref.ask("quit") == "bye"
        await events.wait_for(LifecycleEvent("/quits", "stopped", "normal"))
    assert [e.kind for e in events] == ["stopped"]  # no failure, and (transient) no restart
    assert not ref.is_alive and system.lookup("quits") is None


class Forwarder(Actor):
    """Passes every message on to ``target`` (``"swap"`` as ``"swapped"``); records the ends."""

    def __init__(self, target: ActorRef) -> None:
        self.target = target
        self.ended: list[str] = []

    def receive(self, message: Any, ctx: Context) -> Any:
        if message == "ends":
            return list(self.ended)
        reply = ctx.forward(self.target, "swapped" if message == "swap" else message)
        reply.on_done(lambda: self.ended.append(repr(message)))
        return "ignored: the reply is the target's"


class WhoAsks(Actor):
    def receive(self, message: Any, ctx: Context) -> Any:
        return (message, ctx.sender.path if ctx.sender is not None else None)


async def test_forward_keeps_the_sender_and_the_asker(system: ActorSystem) -> None:
    target = await system.spawn(WhoAsks, name="target")
    router = await system.spawn(Forwarder, target, name="router")

    class Asker(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            return await router.ask(message)

    asker = await system.spawn(Asker, name="asker")
    assert await asker.ask("hello") == ("hello", "/asker")  # the target saw the asker
    assert await router.ask("swap") == ("swapped", None)  # from outside any actor: no sender
    assert await router.ask("ends") == ["'hello'", "'swap'"]  # its end reached the router


async def test_a_forwarded_tell_keeps_its_sender(system: ActorSystem) -> None:
    ref, probe = await spawn_probe(system)
    sender = await system.spawn(Echo, name="sender")
    router = await system.spawn(Forwarder, ref, name="router")
    router.tell("note", sender=sender)
    assert await probe.expect("note") == "note"
    assert probe.last_sender == sender


async def test_forward_to_a_stopped_actor_fails_the_ask(system: ActorSystem) -> None:
    target = await system.spawn(Echo, name="gone")
    await target.stop()
    router = await system.spawn(Forwarder, target, name="router")
    with pytest.raises(ActorStopped):
        await router.ask("anyone?")


async def test_forward_outside_receive_or_twice_is_refused(system: ActorSystem) -> None:
    errors: list[str] = []
    target = await system.spawn(Echo, name="echo")

    class Twice(Actor):
        async def on_start(self) -> None:
            try:
                self.ctx.forward(target)
            except RuntimeError as exc:
                errors.append(str(exc))

        def receive(self, message: Any, ctx: Context) -> Any:
            ctx.forward(target)
            for take in (lambda: ctx.forward(target), ctx.defer_reply):
                try:
                    take()
                except RuntimeError as exc:
                    errors.append(str(exc))
            return None

    ref = await system.spawn(Twice)
    assert await ref.ask("x") == "x"
    assert len(errors) == 3
