"""``InferenceRouter``: requests spread over several inference actors by queue depth, with
requester affinity; the requester reaches the engine as itself; stats and readiness for all.

On the fake engine and the ``system`` fixture's manual clock: the router asks its engines for
their depth at start and then every ``poll`` seconds of that clock, so between two
``advance`` calls its view of the engines changes only by what it routed itself. Engines held
by a gate (``HeldEngine``) keep every request waiting, so each one's ``waiting`` count says
exactly where the router sent what.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import Actor, ActorRef, ActorSystem, Context, ManualClock
from actoros.inference.actor import CompletionStream, InferenceActor
from actoros.inference.errors import EngineUnavailable, InferenceError
from actoros.inference.events import EngineDown, EngineReady
from actoros.inference.fake_engine import FakeEngine
from actoros.inference.messages import Completion, Generate, InferenceRequestDone, InferenceStats
from actoros.inference.metrics import InferenceMetrics
from actoros.inference.router import InferenceRouter
from actoros.testing import capture_events

from .conftest import HeldEngine

pytestmark = pytest.mark.timeout(10)

HELLO = Generate(prompt="hello", max_tokens=4)
POLL = 0.25


class Asker(Actor):
    """On ``"go"``: asks the router for ``HELLO`` (kept in ``pending``) and says so at once."""

    def __init__(self, router: ActorRef, pending: list[asyncio.Future[Any]]) -> None:
        self.router = router
        self.pending = pending

    def receive(self, message: Any, ctx: Context) -> Any:
        self.pending.append(asyncio.ensure_future(self.router.ask(HELLO, timeout=None)))
        return "sent"


async def stats(ref: ActorRef) -> InferenceMetrics:
    metrics = await ref.ask(InferenceStats())
    assert isinstance(metrics, InferenceMetrics)
    return metrics


async def waiting(engines: list[ActorRef]) -> list[int]:
    return [(await stats(e)).waiting for e in engines]


async def until_routed(engines: list[ActorRef], total: int) -> list[int]:
    """Give the loop turns until the engines hold ``total`` waiting requests; their counts."""
    for _ in range(200):
        counts = await waiting(engines)
        if sum(counts) == total:
            return counts
        await asyncio.sleep(0)
    raise AssertionError(f"the engines hold {await waiting(engines)}, not {total} in all")


async def held_engines(system: ActorSystem, n: int) -> tuple[list[ActorRef], asyncio.Event]:
    gate = asyncio.Event()
    engines = [
        await system.spawn(InferenceActor, lambda: HeldEngine(gate), name=f"e{i}")
        for i in range(1, n + 1)
    ]
    return engines, gate


async def test_requests_spread_by_depth_and_keep_to_their_requesters_engine(
    system: ActorSystem,
) -> None:
    engines, gate = await held_engines(system, 2)
    router = await system.spawn(InferenceRouter, ("/e1", "/e2"), slack=2, name="router")
    await until_routed(engines, 0)  # the router's first reports are in
    pending: list[asyncio.Future[Any]] = []
    a = await system.spawn(Asker, router, pending, name="a")
    b = await system.spawn(Asker, router, pending, name="b")

    async def outsider() -> None:
        pending.append(asyncio.ensure_future(router.ask(HELLO, timeout=None)))

    steps: list[tuple[Any, list[int]]] = [
        (a, [1, 0]),  # a: both idle, the first -> e1 (a's engine from now)
        (None, [1, 1]),  # no requester: the least deep -> e2
        (None, [2, 1]),  # tie -> e1
        (a, [3, 1]),  # a's e1 is 2 deep, e2 1: within slack 2, a stays
        (b, [3, 2]),  # b: the least deep -> e2
        (a, [4, 2]),  # 3 vs 2: a stays (by depth alone it would go to e2)
        (a, [5, 2]),  # 4 vs 2: still within slack
        (a, [5, 3]),  # 5 vs 2: beyond slack, a moves to e2
        (a, [5, 4]),  # and stays there: 3 vs 5
    ]
    for i, (who, expected) in enumerate(steps, start=1):
        if who is None:
            await outsider()
        else:
            assert await who.ask("go") == "sent"
        assert await until_routed(engines, i) == expected, f"step {i}"
    gate.set()
    done = await asyncio.gather(*pending)
    assert all(isinstance(c, Completion) for c in done)


async def test_the_engine_sees_the_requester_not_the_router(system: ActorSystem) -> None:
    await system.spawn(InferenceActor, FakeEngine, name="e1")
    router = await system.spawn(InferenceRouter, ("/e1",), name="router")
    pending: list[asyncio.Future[Any]] = []
    a = await system.spawn(Asker, router, pending, name="a")
    with capture_events(system, InferenceRequestDone) as events:
        await a.ask("go")
        assert isinstance(await pending[0], Completion)
        done = await events.wait_for(InferenceRequestDone)
    assert done.requester == "/a"


async def test_engines_that_do_not_resolve_are_skipped_and_none_is_engine_unavailable(
    system: ActorSystem,
) -> None:
    await system.spawn(InferenceActor, FakeEngine, name="e2")
    router = await system.spawn(InferenceRouter, ("/gone", "/e2"), name="router")
    assert isinstance(await router.ask(HELLO), Completion)  # /gone is passed over
    alone = await system.spawn(InferenceRouter, ("/gone",), name="alone")
    with pytest.raises(EngineUnavailable, match="no inference engine is running"):
        await alone.ask(HELLO)


async def test_readiness_and_stats_cover_all_engines(
    system: ActorSystem, clock: ManualClock
) -> None:
    engines, gate = await held_engines(system, 2)
    with capture_events(system, EngineReady, EngineDown) as events:
        router = await system.spawn(InferenceRouter, ("/e1", "/e2"), model="m", name="router")
        await until_routed(engines, 0)
        assert (await stats(router)).engine_ready is False
        gate.set()
        for path in ("/e1", "/e2"):  # both engines up (they announce it themselves)
            await events.wait_for(lambda e, p=path: isinstance(e, EngineReady) and e.path == p)
        clock.advance(POLL)  # the router's next round of reports
        ready = await events.wait_for(lambda e: isinstance(e, EngineReady) and e.path == "/router")
        assert (ready.model, ready.max_num_seqs) == ("m", 128)  # two fake engines of 64
        for _ in range(3):
            await router.ask(HELLO)
        metrics = await stats(router)
        assert metrics.engine_ready and metrics.max_num_seqs == 128
        clock.advance(POLL)
        await asyncio.sleep(0)
        for engine in engines:
            await engine.stop()
        for _ in range(2):  # one round may have been asked before the engines stopped
            clock.advance(POLL)
            await asyncio.sleep(0)
        await events.wait_for(lambda e: isinstance(e, EngineDown) and e.path == "/router")
    assert (await stats(router)).engine_ready is False


async def test_anything_else_is_refused(system: ActorSystem) -> None:
    router = await system.spawn(InferenceRouter, ("/e1",), name="router")
    with pytest.raises(InferenceError, match="takes Generate or InferenceStats, not str"):
        await router.ask("hello")


def test_the_router_needs_an_engine() -> None:
    with pytest.raises(ValueError, match="at least one engine"):
        InferenceRouter(())


async def test_a_streamed_ask_gets_the_engines_stream(system: ActorSystem) -> None:
    await system.spawn(InferenceActor, FakeEngine, name="e1")
    router = await system.spawn(InferenceRouter, ("/e1",), name="router")
    stream = await router.ask(Generate(prompt="hi", max_tokens=4, stream=True, ignore_eos=True))
    assert isinstance(stream, CompletionStream)
    *deltas, completion = [item async for item in stream]
    assert isinstance(completion, Completion)
    assert "".join(d.text for d in deltas) == completion.text
