"""Actors and messages the cluster tests run on their nodes.

Every node's process imports this module by the name pytest gave it: the fixture puts
``tests/`` on the nodes' ``PYTHONPATH``. A ``Prober`` on the head does the cross-node work
a test asks of it, so the refs it uses are real remote refs inside a node, not the driver's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

from actoros import Actor, ActorStopped, AskTimeout, Terminated
from actoros.cluster import NotPortable


class Point(msgspec.Struct, frozen=True):
    x: int
    y: int
    label: str = ""


class Carrier(msgspec.Struct, frozen=True):
    """A message with an ``Any`` field: it crosses only while that field holds plain values."""

    value: Any


class Opaque:
    """A plain object: only the pickle fallback carries it (with the ref it holds)."""

    def __init__(self, n: int, ref: Any) -> None:
        self.n = n
        self.ref = ref


class Echo(Actor):
    """Replies with what it got; ``"whoami"``: its own ref; ``"boom"``: raises."""

    def receive(self, message: Any, ctx: Any) -> Any:
        match message:
            case "whoami":
                return ctx.self
            case "boom":
                raise ValueError("boom from a remote node")
            case "sender":
                return ctx.sender
            case "throughput":  # what its node's system was started with
                return ctx.system._throughput
            case "exit":
                ctx.stop()
                return "bye"
        return message


class Collector(Actor):
    """Keeps what it is told, in arrival order; ``"drain"`` returns and clears it."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def receive(self, message: Any, ctx: Any) -> Any:
        if message == "drain":
            seen, self.seen = self.seen, []
            return seen
        if isinstance(message, list) and message[:1] == ["ping"]:
            ctx.sender.tell(["pong", message[1]], ctx.self)
            return None
        self.seen.append(message)
        return None


class Silent(Actor):
    """Takes asks and never answers them (the reply is deferred and dropped)."""

    def __init__(self) -> None:
        self.held: list[Any] = []

    def receive(self, message: Any, ctx: Any) -> Any:
        if message == "release":
            for reply in self.held:
                reply.resolve("late")
            self.held.clear()
            return "released"
        self.held.append(ctx.defer_reply())
        return None


class Prober(Actor):
    """Runs the cross-node steps of a test from inside the head node. It never waits for
    messages to itself inside ``receive`` (they would queue behind it): the tests poll."""

    def __init__(self) -> None:
        self.terminated: list[tuple[str, str]] = []

    def _ref(self, ctx: Any, path: str) -> Any:
        ref = ctx.system.lookup(path)
        if ref is None:
            raise LookupError(f"no actor at {path}")
        return ref

    async def receive(self, message: Any, ctx: Any) -> Any:
        if isinstance(message, Terminated):
            self.terminated.append((message.ref.path, message.reason))
            return None
        op, *args = message
        if op == "ask":
            path, body = args
            try:
                return ("ok", await self._ref(ctx, path).ask(body))
            except Exception as exc:
                return ("error", type(exc).__name__, str(exc))
        if op == "point":
            reply = await self._ref(ctx, args[0]).ask(Point(1, 2, "p"))
            return [type(reply).__name__, reply.x, reply.y, reply.label]
        if op == "ref":
            ref = await self._ref(ctx, args[0]).ask("whoami")
            echoed = await ref.ask("through the returned ref")
            return [type(ref).__name__, ref.path, getattr(ref, "node", None), echoed]
        if op == "sender":
            seen = await self._ref(ctx, args[0]).ask("sender")
            return seen is ctx.self
        if op == "tell_order":
            path, n = args
            ref = self._ref(ctx, path)
            for i in range(n):
                ref.tell(i)
                if i % 97 == 0:
                    await asyncio.sleep(0)  # spread over many batches
            return await ref.ask("drain")
        if op == "ping":
            # pings whose pongs go to ``inbox`` (an actor here, not this busy one)
            path, inbox, n = args
            ref, reply_to = self._ref(ctx, path), self._ref(ctx, inbox)
            for i in range(n):
                ref.tell(["ping", i], reply_to)
            return n
        if op == "timeout":
            path, timeout = args
            try:
                await self._ref(ctx, path).ask("wait", timeout=timeout)
            except AskTimeout as exc:
                return ("timeout", str(exc))
            return ("answered",)
        if op == "not_portable":
            path, kind = args
            ref = self._ref(ctx, path)
            value: Any = Opaque(1, None) if kind == "object" else Carrier(Opaque(2, None))
            try:
                ref.tell(value)
            except NotPortable as exc:
                return ("refused", str(exc))
            return ("sent",)
        if op == "watch":
            ref = self._ref(ctx, args[0])
            ctx.watch(ref)
            return ref.path
        if op == "stop":
            ref = self._ref(ctx, args[0])
            await ref.stop()
            try:
                await ref.ask("after stop")
            except ActorStopped as exc:
                return ("stopped", ref.is_alive, str(exc))
            return ("answered",)
        if op == "terminated":
            return list(self.terminated)
        if op == "pending_asks":
            # asks that wait on a node when it dies must fail, not hang
            path, n, timeout = args
            ref = self._ref(ctx, path)
            asks = [asyncio.ensure_future(ref.ask(f"wait-{i}", timeout=timeout)) for i in range(n)]
            self._pending = asks
            return len(asks)
        if op == "pending_results":
            results = await asyncio.gather(*self._pending, return_exceptions=True)
            return [type(r).__name__ for r in results]
        if op == "bench_ask":
            path, n = args
            ref = self._ref(ctx, path)
            start = time.perf_counter()
            for i in range(n):
                await ref.ask(i)
            return n / (time.perf_counter() - start)
        raise ValueError(f"unknown probe {op!r}")
