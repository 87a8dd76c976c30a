"""Pub/sub topics: one-to-many messages between agents, through the ``PubSub`` actor.

An actor subscribes a ref to a topic; a ``Publish(topic, message)`` is then told to every
subscriber of that topic, as the ``Publish`` itself (so a subscriber of several topics knows
which one spoke) with ``sender=`` the publisher. The service watches its subscribers and
forgets one as soon as it stops for good, so a topic never fills up with dead refs (a publish
that races a stop goes to dead letters, like any message to a stopped actor).

Delivery follows the core's guarantee: per publisher, subscribers see messages in publish
order. With an ``AccessControl``, a publisher must be allowed the topic: a refused ``Publish``
is audited, and its ask fails with ``PermissionDenied`` (the service itself never fails).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import structlog

from actoros.core import Actor, ActorRef, Context, Terminated

from ._protocol import refuse
from .access import AccessControl, PermissionDenied, Publish, caller_name

__all__ = [
    "PubSub",
    "PubSubRequest",
    "Publish",
    "Published",
    "Subscribe",
    "Subscribers",
    "Unsubscribe",
]

log = structlog.get_logger("actoros.kernel.pubsub")


class Subscribe(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Deliver the ``Publish`` messages of ``topic`` to ``ref``. Reply: ``None``."""

    topic: str
    ref: ActorRef


class Unsubscribe(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Stop delivering ``topic`` to ``ref``. Reply: whether it was subscribed."""

    topic: str
    ref: ActorRef


class Subscribers(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    """Reply: the refs subscribed to ``topic``, in subscription order."""

    topic: str


PubSubRequest = Publish | Subscribe | Unsubscribe | Subscribers
"""What ``PubSub`` takes (``Publish`` is also a syscall: see ``access.py``)."""


class Published(msgspec.Struct, frozen=True, kw_only=True):
    """The reply to an asked ``Publish``: how many subscribers it was told to."""

    topic: str
    delivered: int


class PubSub(Actor):
    """The topic service (``/kernel/pubsub``).

    ``access`` / ``agents``: as for ``ToolService`` — the publisher (``ctx.sender``) is named
    through ``agents`` (a mapping of ``ActorRef`` or path to agent name, read at every
    publish) and checked.
    Subscriptions live in the actor: after a restart, subscribers subscribe again.
    """

    def __init__(
        self, *, access: AccessControl | None = None, agents: Mapping[Any, str] | None = None
    ) -> None:
        self.access = access
        self.agents: Mapping[Any, str] = agents if agents is not None else {}
        # topic -> subscribers (a dict keeps subscription order; refs hash by identity,
        # and one actor has one ref)
        self._topics: dict[str, dict[ActorRef, None]] = {}
        self._watched: dict[ActorRef, set[str]] = {}  # subscriber -> its topics

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case Publish():
                return self._publish(message, ctx)
            case Subscribe(topic=topic, ref=ref):
                self._subscribe(topic, ref, ctx)
                return None
            case Unsubscribe(topic=topic, ref=ref):
                return self._unsubscribe(topic, ref, ctx)
            case Subscribers(topic=topic):
                return list(self._topics.get(topic, ()))
            case Terminated(ref=ref):
                for topic in self._watched.pop(ref, ()):
                    self._drop(topic, ref)
                log.debug("pubsub.subscriber_gone", subscriber=ref.path)
                return None
            case _:  # the sender's error: the service carries on
                refuse(message, ctx, "PubSub", PubSubRequest)
                return None

    def _publish(self, publish: Publish, ctx: Context) -> Published | None:
        if self.access is not None:
            try:
                self.access.check(caller_name(self.agents, ctx.sender), publish)
            except PermissionDenied as exc:
                ctx.defer_reply().fail(exc)  # the asker's error; the service carries on
                return None
        subscribers = self._topics.get(publish.topic, {})
        for ref in subscribers:
            ref.tell(publish, sender=ctx.sender)
        return Published(topic=publish.topic, delivered=len(subscribers))

    def _subscribe(self, topic: str, ref: ActorRef, ctx: Context) -> None:
        self._topics.setdefault(topic, {})[ref] = None
        topics = self._watched.get(ref)
        if topics is None:
            self._watched[ref] = topics = set()
            ctx.watch(ref)  # a ref that is already dead is reported at once
        topics.add(topic)

    def _unsubscribe(self, topic: str, ref: ActorRef, ctx: Context) -> bool:
        topics = self._watched.get(ref)
        if topics is None or topic not in topics:
            return False
        topics.discard(topic)
        self._drop(topic, ref)
        if not topics:
            del self._watched[ref]
            ctx.unwatch(ref)
        return True

    def _drop(self, topic: str, ref: ActorRef) -> None:
        subscribers = self._topics.get(topic)
        if subscribers is not None:
            subscribers.pop(ref, None)
            if not subscribers:
                del self._topics[topic]
