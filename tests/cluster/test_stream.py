"""Streamed replies across nodes, without Ray: two nodes in one process, on one loop.

Node ``a`` asks an actor on node ``b`` that answers with a ``ReplyStream``; ``a`` gets a local
stream of the same class, fed by ``b``'s relay. Each node's ``NodeRuntime`` reaches the other
through a ``Peer`` handle that stands for a Ray actor handle: ``deliver.remote(data)`` runs
the other node's ``receive`` as a task of its own (as Ray runs an async actor's call) and its
result comes back as the call's. ``Peer.kill()`` makes every later call fail, as Ray fails
the calls to a dead process; the heartbeat then loses the node. Runs on asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest

from actoros import Actor, ActorRef, AskTimeout
from actoros.cluster import NodeUnreachable, NotPortable
from actoros.cluster.node import NodeRuntime
from actoros.core.stream import ReplyStream
from actoros.inference.actor import CompletionStream, InferenceActor, InferenceStats
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import Completion, Generate, TokenDelta
from actoros.testing import test_system

from .actors import Point

pytestmark = pytest.mark.timeout(10)

WITHIN = 5.0
"""Seconds a test's body may take on the loop (its wait for a frame that never comes)."""


class Tally(msgspec.Struct, frozen=True):
    """The final value of a ``PointStream``."""

    count: int


class PointStream(ReplyStream[Point, Tally]):
    """A stream as the cluster carries one: its ``__init__`` takes ``(label, on_close)``."""

    __slots__ = ()

    def __init__(self, label: str, on_close: Callable[[], None]) -> None:
        super().__init__(Tally, on_close, label)


class Count(msgspec.Struct, frozen=True):
    """Stream ``n`` points, ``per_turn`` of them per loop turn, then a ``Tally`` (or, with
    ``fail``, a ``ValueError``); with ``end=False`` the stream stays open after them."""

    n: int
    per_turn: int = 1
    fail: bool = False
    end: bool = True
    held: bool = False  # answer only once the actor's ``release`` event is set


class Streamer(Actor):
    """Answers a ``Count`` with a ``PointStream`` it feeds from a task; ``closed`` records the
    labels of the streams whose reader closed them early (their ``on_close``)."""

    def __init__(self, closed: list[str], wake: asyncio.Event, release: asyncio.Event) -> None:
        self.closed = closed
        self.wake = wake
        self.release = release
        self.feeders: set[asyncio.Task[None]] = set()

    async def receive(self, message: Any, ctx: Any) -> Any:
        if message.held:
            await self.release.wait()
        label = f"count-{message.n}"
        stream = PointStream(label, lambda: self._closed(label))
        task = asyncio.get_running_loop().create_task(self._feed(stream, message))
        self.feeders.add(task)
        task.add_done_callback(self.feeders.discard)
        return stream

    def _closed(self, label: str) -> None:
        self.closed.append(label)
        self.wake.set()

    async def _feed(self, stream: PointStream, count: Count) -> None:
        for i in range(count.n):
            stream._push(Point(i, i * i, f"p{i}"))
            if (i + 1) % count.per_turn == 0:
                await asyncio.sleep(0)
        if count.fail:
            stream._end(ValueError(f"count {count.n} failed"))
        elif count.end:
            stream._end(Tally(count.n))


class Call:
    """What a Ray ``.remote()`` call returns: ``future()`` is awaited by the link."""

    def __init__(self, fut: asyncio.Future[Any]) -> None:
        self._fut = fut

    def future(self) -> asyncio.Future[Any]:
        return self._fut


class Method:
    def __init__(self, call: Callable[..., Call]) -> None:
        self.remote = call


class Peer:
    """Stands for the Ray handle of ``runtime``'s node process (see the module docstring);
    ``calls`` counts the ``deliver`` calls made to it."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.dead = False
        self.calls = 0
        self.deliver = Method(self._deliver)
        self.ping = Method(self._ping)

    def kill(self) -> None:
        self.dead = True

    def _failed(self) -> Call:
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(ConnectionError(f"node {self.runtime.name} died"))
        return Call(fut)

    def _deliver(self, data: bytes) -> Call:
        if self.dead:
            return self._failed()
        self.calls += 1
        return Call(asyncio.get_running_loop().create_task(self.runtime.receive(data)))

    def _ping(self) -> Call:
        if self.dead:
            return self._failed()
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(True)
        return Call(fut)


class Nodes(msgspec.Struct):
    a: NodeRuntime
    b: NodeRuntime
    to_a: Peer  # b's handle of a
    to_b: Peer  # a's handle of b
    closed: list[str]  # on_close calls on b
    wake: asyncio.Event  # set at each of them
    release: asyncio.Event  # lets b's Streamer answer a held Count

    async def closed_on_b(self) -> list[str]:
        await self.wake.wait()
        return self.closed


@asynccontextmanager
async def two_nodes(**system: Any) -> AsyncIterator[Nodes]:
    """Nodes ``a`` and ``b`` linked both ways; ``b`` runs a ``Streamer`` at ``/streams``."""
    async with test_system("a", **system) as sys_a, test_system("b", **system) as sys_b:
        a, b = NodeRuntime(sys_a, "a"), NodeRuntime(sys_b, "b")
        to_a, to_b = Peer(a), Peer(b)
        for runtime, node, handle in ((a, "b", to_b), (b, "a", to_a)):
            runtime.heartbeat = 0.01  # a killed peer is lost within a few loop sleeps
            runtime.connect(node, handle)
            runtime.place({"streams": "b", "llm": "b"})
        closed: list[str] = []
        wake, release = asyncio.Event(), asyncio.Event()
        await sys_b.spawn(Streamer, closed, wake, release, name="streams")
        try:
            # a hang fails the test inside the loop, before pytest-timeout's limit: the
            # nodes and systems are then torn down as after any failure
            async with asyncio.timeout(WITHIN):
                yield Nodes(a, b, to_a, to_b, closed, wake, release)
        finally:
            release.set()  # no actor of b stays blocked in a test that failed
            a.close()
            b.close()


def remote(nodes: Nodes, path: str) -> ActorRef:
    ref = nodes.a.system.lookup(path)
    assert ref is not None and getattr(ref, "node", None) == "b"
    return ref


async def test_a_streamed_reply_arrives_item_by_item_in_order_then_its_final_value() -> None:
    async with two_nodes() as nodes:
        stream = await remote(nodes, "/streams").ask(Count(50, per_turn=7))
        assert type(stream) is PointStream and stream._label == "count-50"
        items = [item async for item in stream]
        assert items[:-1] == [Point(i, i * i, f"p{i}") for i in range(50)]
        assert type(items[0]) is Point  # a Struct item crosses as its own class
        assert items[-1] == Tally(50) and stream.closed
        assert nodes.a.links["b"].streams == {} and nodes.b.links["a"].relays == {}
        assert nodes.closed == []  # read to its end: no on_close


async def test_items_pushed_in_one_loop_turn_cross_in_one_batch() -> None:
    async with two_nodes() as nodes:
        stream = await remote(nodes, "/streams").ask(Count(200, per_turn=200))
        assert await stream.final() == Tally(200)
        # the stream's opening, 200 items and the end: in one or two of b's calls to a
        # (the reply returned with a's call, or one batch of its own), never one per item
        assert nodes.to_a.calls <= 2


async def test_a_stream_that_ends_with_an_error_raises_it_after_its_items() -> None:
    async with two_nodes() as nodes:
        stream = await remote(nodes, "/streams").ask(Count(3, fail=True))
        got = []
        with pytest.raises(ValueError, match="count 3 failed"):
            async for item in stream:
                got.append(item)
        assert [p.x for p in got] == [0, 1, 2]


async def test_closing_the_stream_early_closes_the_real_one_on_the_answering_node() -> None:
    async with two_nodes() as nodes:
        stream = await remote(nodes, "/streams").ask(Count(3, end=False))
        assert [(await stream.__anext__()).x for _ in range(3)] == [0, 1, 2]
        await stream.aclose()
        assert await nodes.closed_on_b() == ["count-3"]
        assert nodes.b.links["a"].relays == {}  # its reader stopped
        assert nodes.a.links["b"].streams == {}


async def test_losing_the_answering_node_ends_the_stream_with_node_unreachable() -> None:
    async with two_nodes() as nodes:
        stream = await remote(nodes, "/streams").ask(Count(2, end=False))
        assert [(await stream.__anext__()).x for _ in range(2)] == [0, 1]
        nodes.to_b.kill()  # a's heartbeat finds b gone
        with pytest.raises(NodeUnreachable, match="node b is unreachable"):
            await stream.__anext__()
        assert nodes.a.links["b"].lost is not None


async def test_losing_the_asking_node_closes_the_real_stream() -> None:
    async with two_nodes() as nodes:
        stream = await remote(nodes, "/streams").ask(Count(2, end=False))
        await stream.__anext__()
        nodes.to_a.kill()  # b's heartbeat finds a gone
        assert await nodes.closed_on_b() == ["count-2"]
        assert nodes.b.links["a"].relays == {}


async def test_a_stream_class_that_is_no_reply_stream_is_refused_and_closed_over_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with two_nodes() as nodes:
        label = msgspec.Raw(msgspec.msgpack.encode("x"))
        # b names another class for the stream it answers with
        monkeypatch.setattr(nodes.b.codec, "stream", lambda _: ("collections:OrderedDict", label))
        with pytest.raises(NotPortable, match="no ReplyStream subclass"):
            await remote(nodes, "/streams").ask(Count(2, end=False))
        assert await nodes.closed_on_b() == ["count-2"]  # a's refusal closed it on b


async def test_a_stream_that_answers_an_ask_already_timed_out_is_closed_over_there() -> None:
    async with two_nodes() as nodes:
        ask = asyncio.ensure_future(
            remote(nodes, "/streams").ask(Count(2, end=False, held=True), timeout=1)
        )
        while not nodes.a.links["b"]._pending:  # the ask is out
            await asyncio.sleep(0)
        nodes.a.system.clock.advance(1.01)  # type: ignore[attr-defined]
        with pytest.raises(AskTimeout):
            await ask
        nodes.release.set()  # b answers with a stream nobody waits for any more
        assert await nodes.closed_on_b() == ["count-2"]
        assert nodes.a.links["b"].streams == {}


# -- the real CompletionStream: an InferenceActor on b --------------------------------------

SHORT = Generate(prompt="tell me", max_tokens=12, ignore_eos=True, stream=True)
ENDLESS = Generate(prompt="keep going", max_tokens=2000, ignore_eos=True, stream=True)


async def idle(llm: ActorRef, engine: FakeEngine) -> int:
    """Wait (asking b's inference actor directly) until nothing is in flight; completions."""
    while (metrics := await llm.ask(InferenceStats())).in_flight:
        await asyncio.sleep(0.005)
    assert engine.num_unfinished() == 0
    return int(metrics.completed)


async def test_a_completion_stream_crosses_and_aborts_when_closed_or_dropped() -> None:
    async with two_nodes(real_time=True) as nodes:
        engines: list[FakeEngine] = []

        def engine() -> FakeEngine:
            engines.append(FakeEngine(token_delay=0.002))
            return engines[-1]

        llm_here = await nodes.b.system.spawn(InferenceActor, engine, name="llm")
        llm = remote(nodes, "/llm")

        stream = await llm.ask(SHORT)
        assert type(stream) is CompletionStream and stream.request_id.startswith("req-")
        items = [item async for item in stream]
        deltas, completion = items[:-1], items[-1]
        assert all(type(d) is TokenDelta for d in deltas) and type(completion) is Completion
        assert [d.index for d in deltas] == list(range(len(deltas)))
        assert "".join(d.text for d in deltas) == completion.text
        assert completion.usage.completion_tokens == SHORT.max_tokens
        assert completion.request_id == stream.request_id

        endless = await llm.ask(ENDLESS)
        assert isinstance(await endless.__anext__(), TokenDelta)  # b's relay pulls it
        await endless.aclose()
        assert await idle(llm_here, engines[-1]) == 1  # aborted, not completed
        assert nodes.b.links["a"].relays == {}

        dropped = await llm.ask(ENDLESS)
        assert isinstance(await dropped.__anext__(), TokenDelta)
        del dropped  # held weakly by a's link: its __del__ closes it, as a local one's does
        gc.collect()
        assert await idle(llm_here, engines[-1]) == 1
        assert nodes.a.links["b"].streams == {} and nodes.b.links["a"].relays == {}
