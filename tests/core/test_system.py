"""``ActorSystem``: starting and stopping, the loop and the clock it binds, finding actors,
the live tree ``snapshot()`` (what the metrics and the live page show), dead letters."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from actoros import (
    Actor,
    ActorInfo,
    ActorStopped,
    ActorSystem,
    ChildSpec,
    DeadLetter,
    ManualClock,
    SupervisorSpec,
    run,
)
from actoros.testing import capture_events

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


def test_a_snapshot_row_has_no_node_and_its_json_leaves_node_out():
    # a single process's rows read as they did before clusters; Head.snapshot() sets node
    row = ActorInfo(
        path="/a",
        parent=None,
        name="a",
        kind="K",
        state="running",
        restarts=0,
        mailbox=0,
        processed=0,
        children=0,
    )
    assert row.node is None
    assert "node" not in msgspec.json.decode(msgspec.json.encode(row))
    placed = msgspec.structs.replace(row, node="workers")
    assert msgspec.json.decode(msgspec.json.encode(placed), type=ActorInfo) == placed


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


async def test_runs_on_the_event_loop_the_test_is_parametrized_with(
    system: ActorSystem, request: pytest.FixtureRequest
) -> None:
    assert system.loop == request.node.callspec.id
    assert system.loop in ("asyncio", "uvloop")


async def test_a_manual_clock_does_not_move_on_its_own(
    clock: ManualClock, system: ActorSystem
) -> None:
    ref = await system.spawn(Echo)
    before = clock.time()
    for _ in range(10):
        await ref.ask("tick")
    assert clock.time() == before
    assert system.clock is clock


async def test_before_start_the_system_names_the_fix() -> None:
    system = ActorSystem(clock=ManualClock())
    assert system.loop == "not started" and not system.is_running
    with pytest.raises(RuntimeError, match="async with ActorSystem"):
        await system.spawn(Echo)
    with pytest.raises(RuntimeError, match="async with ActorSystem"):
        _ = ActorSystem().clock
    assert system.lookup("anything") is None and system.snapshot() == []
    await system.shutdown()  # nothing to stop: returns


async def test_start_is_idempotent_and_shutdown_ends_the_system() -> None:
    system = ActorSystem(clock=ManualClock())
    await system.start()
    ref = await system.spawn(Echo, name="echo")
    await system.start()  # already running: the same tree stays
    assert system.lookup("echo") is ref and system.is_running
    await system.shutdown()
    assert not system.is_running and not ref.is_alive
    with pytest.raises(ActorStopped):
        await ref.ask("x")
    await system.shutdown()  # a second shutdown does nothing


async def test_wait_terminated_returns_once_the_system_is_shut_down() -> None:
    system = ActorSystem(clock=ManualClock())
    await system.start()
    waiter = asyncio.ensure_future(system.wait_terminated())
    await system.spawn(Echo)
    assert not waiter.done()
    await system.shutdown()
    await asyncio.wait_for(waiter, 2.0)  # the wall-clock limit only guards against a hang
    await asyncio.wait_for(system.wait_terminated(), 2.0)  # and at once afterwards


def test_invalid_settings_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="throughput must be >= 1"):
        ActorSystem(throughput=0)
    with pytest.raises(ValueError, match="strategy must be one of"):
        ActorSystem(strategy="one_for_some")  # type: ignore[arg-type]


def test_run_runs_a_coroutine_to_completion_on_a_fresh_loop() -> None:
    async def main() -> str:
        async with ActorSystem(clock=ManualClock()) as system:
            ref = await system.spawn(Echo)
            return f"{await ref.ask('hi')} on {system.loop}"

    assert run(main()) in ("hi on uvloop", "hi on asyncio")


async def test_lookup_by_bare_name_prefers_the_top_level_and_refuses_an_ambiguous_one() -> None:
    async with ActorSystem(clock=ManualClock()) as system:
        spec = SupervisorSpec(children=[ChildSpec("a", Echo), ChildSpec("deep", Echo)])
        top = await system.spawn(Echo, name="a")
        await system.spawn_supervisor(spec, name="g1")
        await system.spawn_supervisor(SupervisorSpec(children=[ChildSpec("deep", Echo)]), name="g2")
        assert system.lookup("a") is top  # a top-level actor wins over /g1/a
        assert system.lookup("/g1/a") is not top
        with pytest.raises(LookupError, match="/g1/deep, /g2/deep"):
            system.lookup("deep")
        assert system.lookup("/") is None  # the root supervisor is not an actor to talk to
        assert system.lookup("/g1/a/nothing") is None


async def test_dead_letters_are_counted_and_published() -> None:
    async with ActorSystem(clock=ManualClock()) as system:
        ref = await system.spawn(Echo, name="gone")
        await ref.stop()
        with capture_events(system, DeadLetter) as dead:
            ref.tell("one")
            ref.tell("two")
        assert [d.message for d in dead] == ["one", "two"]
        assert all(d.recipient is ref and d.reason == "recipient stopped" for d in dead)
        assert system.dead_letter_count == 2
