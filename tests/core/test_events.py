"""The system event stream: dead letters and lifecycle events, subscription by type."""

from __future__ import annotations

from typing import Any

import pytest

from actoros import Actor, ActorSystem, Context, DeadLetter, LifecycleEvent
from actoros.testing import capture_events, settle, spawn_probe

pytestmark = pytest.mark.timeout(10)


class Boom(Exception):
    pass


class Fragile(Actor):
    def receive(self, message: Any, ctx: Context) -> Any:
        if message == "crash":
            raise Boom("fragile")
        return message


async def test_lifecycle_events_follow_an_actors_life(system: ActorSystem) -> None:
    with capture_events(system, LifecycleEvent) as events:
        ref = await system.spawn(Fragile, name="f")
        with pytest.raises(Boom):
            await ref.ask("crash")
        await events.wait_for(lambda e: e.kind == "restarted")
        await ref.stop()
    assert [(e.path, e.kind) for e in events] == [
        ("/f", "started"),
        ("/f", "failed"),
        ("/f", "restarted"),
        ("/f", "stopped"),
    ]
    assert "Boom" in (events[1].reason or "")
    assert events[3].reason == "stopped"


async def test_dead_letters_are_published(system: ActorSystem) -> None:
    ref = await system.spawn(Fragile, name="f")
    await ref.stop()
    with capture_events(system, DeadLetter) as dead:
        ref.tell("lost")
    assert dead == [DeadLetter("lost", ref, "recipient stopped")]


async def test_subscription_by_type_filters_events(system: ActorSystem) -> None:
    lifecycle: list[Any] = []
    letters: list[Any] = []
    everything: list[Any] = []
    system.events.subscribe(lifecycle.append, LifecycleEvent)
    system.events.subscribe(letters.append, DeadLetter)
    system.events.subscribe(everything.append)
    ref = await system.spawn(Fragile, name="f")
    await ref.stop()
    ref.tell("lost")
    assert [type(e) for e in lifecycle] == [LifecycleEvent, LifecycleEvent]
    assert [type(e) for e in letters] == [DeadLetter]
    assert everything == [*lifecycle, *letters]


async def test_subscribing_to_several_types_at_once(system: ActorSystem) -> None:
    both: list[Any] = []
    system.events.subscribe(both.append, LifecycleEvent, DeadLetter)
    ref = await system.spawn(Fragile, name="f")
    await ref.stop()
    ref.tell("lost")
    assert [type(e) for e in both] == [LifecycleEvent, LifecycleEvent, DeadLetter]


async def test_unsubscribe_stops_delivery(system: ActorSystem) -> None:
    seen: list[Any] = []
    unsubscribe = system.events.subscribe(seen.append, LifecycleEvent)
    await system.spawn(Fragile, name="one")
    unsubscribe()
    await system.spawn(Fragile, name="two")
    assert [e.path for e in seen] == ["/one"]
    unsubscribe()  # a second call is harmless


async def test_an_actor_ref_can_subscribe(system: ActorSystem) -> None:
    probe_ref, probe = await spawn_probe(system, "listener")
    system.events.subscribe(probe_ref, DeadLetter)
    ref = await system.spawn(Fragile, name="f")
    await ref.stop()
    ref.tell("lost")
    letter = await probe.expect(DeadLetter)
    assert letter.message == "lost" and letter.recipient is ref


async def test_a_failing_subscriber_does_not_break_the_publisher_or_the_others(
    system: ActorSystem,
) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("subscriber bug")

    seen: list[Any] = []
    system.events.subscribe(broken)
    system.events.subscribe(seen.append, LifecycleEvent)
    ref = await system.spawn(Fragile, name="f")
    assert await ref.ask("still works") == "still works"
    assert [e.kind for e in seen] == ["started"]


async def test_capture_events_stops_capturing_when_its_block_ends(system: ActorSystem) -> None:
    with capture_events(system, LifecycleEvent) as events:
        await system.spawn(Fragile, name="inside")
    await system.spawn(Fragile, name="outside")
    await settle()
    assert [e.path for e in events] == ["/inside"]


def test_a_weak_subscription_delivers_while_its_object_lives_and_ends_with_it() -> None:
    import gc

    from actoros.core.events import EventStream

    class Listener:
        def __init__(self) -> None:
            self.seen: list[Any] = []

        def on_event(self, event: Any) -> None:
            self.seen.append(event)

    events = EventStream()
    listener = Listener()
    events.subscribe_weakly(listener.on_event, str)
    events.publish("one")
    assert listener.seen == ["one"]
    del listener
    gc.collect()
    assert events.wants(str)  # still listed until its next event finds it gone
    events.publish("two")
    assert not events.wants(str)
    kept = Listener()
    unsubscribe = events.subscribe_weakly(kept.on_event, str)
    unsubscribe()
    events.publish("three")
    assert kept.seen == []
