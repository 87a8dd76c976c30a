"""One node's runtime without Ray: the batches it applies, in order, from one process only.

A second ``Codec`` stands for another node (``b``) and writes the batches that node would send;
they are handed to ``NodeRuntime.deliver`` in whatever order the test likes, as Ray may run an
async actor's calls out of order. The link back to ``b`` never sends here (nothing is asked of
``b``), so it needs no handle. Runs on asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from actoros import ActorSystem
from actoros.cluster.node import NodeRuntime
from actoros.cluster.remote import Link
from actoros.cluster.wire import END, ITEM, MSG, STREAM, Codec, Frame, type_tag
from actoros.core.stream import ReplyStream
from actoros.testing import spawn_probe

pytestmark = pytest.mark.timeout(10)


def node_b(runtime: NodeRuntime) -> Codec:
    """The codec of a process of node ``b`` (a new one each call: a restarted ``b``)."""
    return Codec("b", runtime._ref_key, runtime.make_ref)


def batch(codec: Codec, seq: int, *values: Any) -> bytes:
    frames = []
    for value in values:
        tag, body = codec.body(value)
        frames.append(Frame(MSG, "/probe", 0, tag, body))
    return codec.batch(seq, frames)


async def runtime_with_b(system: ActorSystem) -> NodeRuntime:
    runtime = NodeRuntime(system, "a")
    runtime.links["b"] = Link(runtime, "b", handle=None)  # receiving only: no heartbeat
    return runtime


async def test_batches_apply_in_their_order_whatever_order_they_arrive_in(
    system: ActorSystem,
) -> None:
    runtime = await runtime_with_b(system)
    _, probe = await spawn_probe(system, "probe")
    b = node_b(runtime)
    for seq in (3, 1, 4, 2):
        runtime.deliver(batch(b, seq, f"m{seq}.1", f"m{seq}.2"))
    for expected in ("m1.1", "m1.2", "m2.1", "m2.2", "m3.1", "m3.2", "m4.1", "m4.2"):
        assert await probe.expect() == expected
    assert runtime.links["b"].parked == {}


async def test_a_batch_from_an_earlier_process_of_the_node_is_not_applied(
    system: ActorSystem,
) -> None:
    runtime = await runtime_with_b(system)
    _, probe = await spawn_probe(system, "probe")
    old, new = node_b(runtime), node_b(runtime)
    runtime.deliver(batch(old, 2, "stale, early"))  # parked: it waits for a seq 1
    runtime.deliver(batch(new, 1, "first"))  # the link now hears from `new` only
    runtime.deliver(batch(old, 2, "stale, late"))
    runtime.deliver(batch(new, 2, "second"))
    assert await probe.expect() == "first"
    assert await probe.expect() == "second"
    assert probe.unread == 0
    assert runtime.links["b"].parked == {}


async def test_a_lookup_of_a_group_on_another_node_is_a_remote_ref(system: ActorSystem) -> None:
    runtime = await runtime_with_b(system)
    runtime.place({"workers": "b"})
    ref = system.lookup("/workers/faq")
    assert ref is not None and ref.path == "/workers/faq" and getattr(ref, "node", None) == "b"
    assert system.lookup("/workers/faq") is ref  # one remote cell per actor
    assert system.lookup("/elsewhere/x") is None  # no node hosts it
    group = system.lookup("workers")  # a top-level group's bare name finds it there
    assert group is not None and group.path == "/workers" and getattr(group, "node", None) == "b"
    assert system.lookup("faq") is None  # below a group's top: this node's names only


class Words(ReplyStream[str, int]):
    __slots__ = ()

    def __init__(self, label: str, on_close: Any) -> None:
        super().__init__(int, on_close, label)


async def test_a_streamed_reply_keeps_its_order_whatever_order_its_batches_arrive_in(
    system: ActorSystem,
) -> None:
    runtime = await runtime_with_b(system)
    link = runtime.links["b"]
    asked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    corr = link.expect(asked)  # an ask of ours that b answers with a stream
    b = node_b(runtime)

    def item(kind: int, value: Any) -> Frame:
        return Frame(kind, "", corr, *b.body(value))

    opened = Frame(STREAM, "", corr, type_tag(Words), msgspec.Raw(msgspec.msgpack.encode("w")))
    batches = [[opened, item(ITEM, "one")], [item(ITEM, "two")], [item(END, 2)]]
    for seq in (3, 1, 2):
        runtime.deliver(b.batch(seq, batches[seq - 1]))
    stream = await asked
    assert type(stream) is Words and stream._label == "w"
    assert [x async for x in stream] == ["one", "two", 2]
    assert link.streams == {}
