"""Pub/sub: fan-out to every subscriber, unsubscribing, dropping stopped subscribers, access."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from actoros import Actor, ActorSystem, Context, DeadLetter
from actoros.kernel.access import AccessControl, PermissionDenied, Permissions
from actoros.kernel.pubsub import (
    Publish,
    Published,
    PubSub,
    Subscribe,
    Subscribers,
    Unsubscribe,
)
from actoros.testing import capture_events, spawn_probe

pytestmark = pytest.mark.timeout(10)


class Caller(Actor):
    """Asks on behalf of a named agent, so the service sees it as ``ctx.sender``."""

    async def receive(self, message: Any, ctx: Context) -> Any:
        target, request = message
        return await target.ask(request, timeout=None)


async def test_publish_is_told_to_every_subscriber_of_the_topic(system: ActorSystem) -> None:
    pubsub = await system.spawn(PubSub, name="pubsub")
    a, probe_a = await spawn_probe(system, "a")
    b, probe_b = await spawn_probe(system, "b")
    other, probe_other = await spawn_probe(system, "other")
    await pubsub.ask(Subscribe(topic="news", ref=a))
    await pubsub.ask(Subscribe(topic="news", ref=b))
    await pubsub.ask(Subscribe(topic="sports", ref=other))
    await pubsub.ask(Subscribe(topic="news", ref=a))  # twice: still one delivery

    for n in range(3):
        published = await pubsub.ask(Publish(topic="news", message=n))
        assert published == Published(topic="news", delivered=2)
    for probe in (probe_a, probe_b):
        for n in range(3):  # in publish order
            assert await probe.expect(Publish) == Publish(topic="news", message=n)
    await probe_other.expect_no_message()
    assert await pubsub.ask(Publish(topic="nobody", message=1)) == Published(
        topic="nobody", delivered=0
    )


async def test_subscribers_see_the_publisher_as_sender(system: ActorSystem) -> None:
    pubsub = await system.spawn(PubSub, name="pubsub")
    sub, probe = await spawn_probe(system, "sub")
    publisher = await system.spawn(Caller, name="publisher")
    await pubsub.ask(Subscribe(topic="t", ref=sub))
    await publisher.ask((pubsub, Publish(topic="t", message="hi")))
    await probe.expect(Publish(topic="t", message="hi"))
    assert probe.last_sender is publisher


async def test_unsubscribe_stops_delivery(system: ActorSystem) -> None:
    pubsub = await system.spawn(PubSub, name="pubsub")
    sub, probe = await spawn_probe(system, "sub")
    await pubsub.ask(Subscribe(topic="t", ref=sub))
    await pubsub.ask(Subscribe(topic="u", ref=sub))
    assert await pubsub.ask(Unsubscribe(topic="t", ref=sub)) is True
    assert await pubsub.ask(Unsubscribe(topic="t", ref=sub)) is False
    assert (await pubsub.ask(Publish(topic="t", message=1))).delivered == 0
    assert (await pubsub.ask(Publish(topic="u", message=2))).delivered == 1
    assert await probe.expect(Publish) == Publish(topic="u", message=2)
    await probe.expect_no_message()


async def test_stopped_subscribers_are_dropped(system: ActorSystem) -> None:
    pubsub = await system.spawn(PubSub, name="pubsub")
    keep, probe_keep = await spawn_probe(system, "keep")
    gone, _ = await spawn_probe(system, "gone")
    for topic in ("t", "u"):
        await pubsub.ask(Subscribe(topic=topic, ref=keep))
        await pubsub.ask(Subscribe(topic=topic, ref=gone))

    with capture_events(system, DeadLetter) as dead:
        await gone.stop()
        # Terminated is a system message: it overtakes the asks below in pubsub's mailbox
        assert await pubsub.ask(Subscribers(topic="t")) == [keep]
        assert await pubsub.ask(Subscribers(topic="u")) == [keep]
        assert (await pubsub.ask(Publish(topic="t", message="x"))).delivered == 1
    assert await probe_keep.expect(Publish) == Publish(topic="t", message="x")
    assert not dead.of(lambda d: isinstance(d.message, Publish))


async def test_subscribing_a_dead_ref_drops_it_at_once(system: ActorSystem) -> None:
    pubsub = await system.spawn(PubSub, name="pubsub")
    dead, _ = await spawn_probe(system, "dead")
    await dead.stop()
    await pubsub.ask(Subscribe(topic="t", ref=dead))
    assert await pubsub.ask(Subscribers(topic="t")) == []


async def test_a_refused_publish_fails_the_ask_and_is_audited(system: ActorSystem) -> None:
    sub, probe = await spawn_probe(system, "sub")
    alice = await system.spawn(Caller, name="alice")
    mallory = await system.spawn(Caller, name="mallory")
    access = AccessControl(
        {"alice": Permissions(topics=frozenset({"news.*"})), "mallory": Permissions()}
    )
    pubsub = await system.spawn(
        PubSub, name="pubsub", access=access, agents={alice: "alice", mallory: "mallory"}
    )
    await pubsub.ask(Subscribe(topic="news.eu", ref=sub))

    with capture_logs() as logs, pytest.raises(PermissionDenied, match="may not publish"):
        await mallory.ask((pubsub, Publish(topic="news.eu", message="spam")))
    audit = [e for e in logs if e["event"] == "audit.denied"]
    assert [(e["agent"], e["syscall"], e["target"]) for e in audit] == [
        ("mallory", "publish", "news.eu")
    ]
    assert await alice.ask((pubsub, Publish(topic="news.eu", message="ok"))) == Published(
        topic="news.eu", delivered=1
    )
    assert await probe.expect(Publish) == Publish(topic="news.eu", message="ok")
    await probe.expect_no_message()


async def test_unknown_messages_fail_the_ask_not_the_service(system: ActorSystem) -> None:
    pubsub = await system.spawn(PubSub, name="pubsub")
    with pytest.raises(TypeError, match="cannot handle"):
        await pubsub.ask("hello")
    assert await pubsub.ask(Subscribers(topic="t")) == []
