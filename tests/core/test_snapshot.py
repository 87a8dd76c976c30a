"""``ActorSystem.snapshot()``: the live tree with kinds, states, restarts, mailbox depth and
message counts (what the metrics and the live page show)."""

from __future__ import annotations

import asyncio

import pytest

from actoros import Actor, ActorInfo, ActorSystem, ChildSpec, ManualClock, SupervisorSpec

pytestmark = pytest.mark.timeout(10)


class Echo(Actor):
    def receive(self, message, ctx):
        if message == "boom":
            raise RuntimeError("boom")
        return message


class Blocked(Actor):
    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate

    async def receive(self, message, ctx):
        await self.gate.wait()
        return message


async def test_snapshot_lists_the_tree_parents_first_in_start_order():
    async with ActorSystem(clock=ManualClock()) as system:
        spec = SupervisorSpec(children=[ChildSpec("a", Echo), ChildSpec("b", Echo)])
        await system.spawn_supervisor(spec, name="group")
        await system.spawn(Echo, name="solo")
        infos = system.snapshot()
        assert [i.path for i in infos] == ["/group", "/group/a", "/group/b", "/solo"]
        by_path = {i.path: i for i in infos}
        assert by_path["/group"].children == 2 and by_path["/group"].kind == "Supervisor"
        assert by_path["/group/a"].parent == "/group" and by_path["/solo"].parent is None
        assert all(isinstance(i, ActorInfo) and i.state == "running" for i in infos)


async def test_snapshot_counts_processed_messages_and_restarts():
    async with ActorSystem(clock=ManualClock()) as system:
        ref = await system.spawn(Echo, name="echo")
        for i in range(5):
            assert await ref.ask(i) == i
        with pytest.raises(RuntimeError):
            await ref.ask("boom")
        assert await ref.ask("after") == "after"
        (info,) = system.snapshot()
        assert info.processed == 7  # the failing message counts as handled
        assert info.restarts == 1
        assert info.kind == "Echo"


async def test_snapshot_shows_mailbox_depth_and_drops_stopped_actors():
    gate = asyncio.Event()
    async with ActorSystem(clock=ManualClock()) as system:
        ref = await system.spawn(Blocked, gate, name="slow")
        first = asyncio.ensure_future(ref.ask("first", timeout=None))
        await asyncio.sleep(0)  # the actor takes the first message and blocks on the gate
        for i in range(3):
            ref.tell(i)
        await asyncio.sleep(0)
        (info,) = system.snapshot()
        assert info.mailbox == 3
        gate.set()
        assert await first == "first"
        other = await system.spawn(Echo, name="other")
        await other.stop()
        assert [i.path for i in system.snapshot()] == ["/slow"]
