"""Supervision, OTP semantics: strategies × restart types × exit kinds, intensity and
escalation, start/stop order, backoff and shutdown timeouts on the manual clock, dynamic
children, watching, and what a restart keeps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actoros import (
    Actor,
    ActorRef,
    ActorStopped,
    ActorSystem,
    Backoff,
    ChildSpec,
    Context,
    LifecycleEvent,
    ManualClock,
    RestartIntensityExceeded,
    StartChild,
    Supervisor,
    SupervisorSpec,
    Terminated,
)
from actoros.testing import ProbeRecorder, capture_events, settle, test_system

pytestmark = pytest.mark.timeout(10)


class Boom(Exception):
    pass


class Journal:
    """Starts and stops of every actor of a test, in order, across incarnations."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def add(self, kind: str, name: str) -> None:
        self.entries.append((kind, name))

    def starts(self, name: str) -> int:
        return self.entries.count(("start", name))

    def since(self, mark: int) -> list[tuple[str, str]]:
        return self.entries[mark:]


class Worker(Actor):
    """Records its starts and stops; "crash" raises, "exit" is a normal exit (ctx.stop())."""

    def __init__(self, journal: Journal, label: str) -> None:
        self.journal = journal
        self.label = label
        self.handled = 0

    async def on_start(self) -> None:
        self.journal.add("start", self.label)

    async def on_stop(self) -> None:
        self.journal.add("stop", self.label)

    async def receive(self, message: Any, ctx: Context) -> Any:
        if message == "crash":
            raise Boom(f"{self.label} crashed")
        if message == "exit":
            ctx.stop()
            return "bye"
        self.handled += 1
        return (self.label, message, self.handled)


def find(system: ActorSystem, path: str) -> ActorRef:
    """The live actor at ``path`` (fails the test if there is none)."""
    ref = system.lookup(path)
    assert ref is not None, f"no live actor at {path}"
    return ref


def worker(journal: Journal, name: str, restart: str = "permanent", **kw: Any) -> ChildSpec:
    return ChildSpec(name, Worker, args=(journal, name), restart=restart, **kw)  # type: ignore[arg-type]


async def exit_child(ref: Any, how: str) -> None:
    """Make the child exit: "abnormal" raises in receive, "normal" calls ctx.stop()."""
    if how == "abnormal":
        with pytest.raises(Boom):
            await ref.ask("crash")
    else:
        assert await ref.ask("exit") == "bye"


# -- the OTP matrix ------------------------------------------------------------------------

GROUPS = {
    "one_for_one": ["b"],
    "one_for_all": ["a", "b", "c"],
    "rest_for_one": ["b", "c"],
}


@pytest.mark.parametrize("exit_kind", ["normal", "abnormal"])
@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
async def test_otp_restart_matrix(
    system: ActorSystem, strategy: str, restart: str, exit_kind: str
) -> None:
    """Children a, b, c (a and c permanent); b has the restart type under test and exits.

    OTP: permanent always restarts, transient only after an abnormal exit, temporary never;
    a child that is not restarted is simply removed (its siblings are untouched). A restart
    follows the strategy: the group's other members stop in reverse start order, then the
    whole group starts again in start order.
    """
    journal = Journal()
    spec = SupervisorSpec(
        strategy=strategy,  # type: ignore[arg-type]
        children=[worker(journal, "a"), worker(journal, "b", restart), worker(journal, "c")],
    )
    sup = await system.spawn_supervisor(spec, name="sup")
    refs = {name: find(system, f"/sup/{name}") for name in "abc"}
    assert journal.entries == [("start", "a"), ("start", "b"), ("start", "c")]
    mark = len(journal.entries)

    restarts = restart == "permanent" or (restart == "transient" and exit_kind == "abnormal")
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(refs["b"], exit_kind)
        if restarts:
            group = GROUPS[strategy]
            await events.wait_for(LifecycleEvent(f"/sup/{group[-1]}", "restarted", None))
        else:
            group = []
            await events.wait_for(lambda e: e.path == "/sup/b" and e.kind == "stopped")
        assert await settle()

    expected = [("stop", "b")]
    expected += [("stop", name) for name in reversed(group) if name != "b"]
    expected += [("start", name) for name in group]
    assert journal.since(mark) == expected
    assert [e.path for e in events if e.kind == "restarted"] == [f"/sup/{n}" for n in group]
    assert not [e for e in events if e.kind == "escalated"]

    live = [name for name in "abc" if restarts or name != "b"]
    children = await sup.ask(StartChild(worker(journal, "d")))
    assert children.path == "/sup/d"
    assert [system.lookup(f"/sup/{n}") for n in live] == [refs[n] for n in live]
    for name in live:  # every survivor serves, through its old ref
        assert (await refs[name].ask("ping"))[0] == name
    if not restarts:
        assert not refs["b"].is_alive
        assert system.lookup("/sup/b") is None
        with pytest.raises(ActorStopped):
            await refs["b"].ask("ping")


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_a_temporary_sibling_stopped_by_a_group_restart_is_not_restarted(
    system: ActorSystem, strategy: str
) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        strategy=strategy,  # type: ignore[arg-type]
        children=[
            worker(journal, "a"),
            worker(journal, "b"),
            worker(journal, "t", "temporary"),
            worker(journal, "c", "transient"),
        ],
    )
    await system.spawn_supervisor(spec, name="sup")
    refs = {name: find(system, f"/sup/{name}") for name in ("a", "b", "t", "c")}
    mark = len(journal.entries)
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(refs["b"], "abnormal")
        await events.wait_for(LifecycleEvent("/sup/c", "restarted", None))
        assert await settle()
    group = ["a", "b", "c"] if strategy == "one_for_all" else ["b", "c"]
    # the stopped siblings, reverse start order: c, t (, a); then the group minus t
    stopped = [n for n in ("c", "t", "a") if n in group or n == "t"]
    assert journal.since(mark) == [("stop", "b")] + [("stop", n) for n in stopped] + [
        ("start", n) for n in group
    ]
    assert not refs["t"].is_alive
    assert refs["c"].is_alive  # a transient sibling is restarted with its group


# -- intensity and escalation --------------------------------------------------------------


def nested(journal: Journal, inner: SupervisorSpec, **outer: Any) -> SupervisorSpec:
    return SupervisorSpec(
        children=[ChildSpec("inner", Supervisor, args=(inner,), shutdown=None)], **outer
    )


async def test_exceeding_max_restarts_stops_children_in_reverse_order_and_escalates(
    system: ActorSystem,
) -> None:
    journal = Journal()
    inner = SupervisorSpec(
        max_restarts=1,
        within=5.0,
        children=[worker(journal, "a"), worker(journal, "b"), worker(journal, "c")],
    )
    outer = await system.spawn_supervisor(nested(journal, inner), name="outer")
    old_b = find(system, "/outer/inner/b")
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(old_b, "abnormal")  # restart 1 of 1 allowed
        await events.wait_for(LifecycleEvent("/outer/inner/b", "restarted", None))
        mark = len(journal.entries)
        await exit_child(old_b, "abnormal")  # restart 2 > 1: the inner supervisor gives up
        await events.wait_for(LifecycleEvent("/outer/inner", "restarted", None))
        assert await settle()
    # b already ended; a and c stop in reverse start order; the outer supervisor restarts
    # inner, which starts a fresh a, b, c in order
    assert journal.since(mark) == [
        ("stop", "b"),
        ("stop", "c"),
        ("stop", "a"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]
    escalated = events.of(lambda e: e.kind == "escalated")
    assert [e.path for e in escalated] == ["/outer/inner"]
    inner_failure = events.of(lambda e: e.path == "/outer/inner" and e.kind == "failed")
    assert len(inner_failure) == 1 and "RestartIntensityExceeded" in (inner_failure[0].reason or "")
    assert not old_b.is_alive  # the children of a restarted supervisor are new actors
    new_b = find(system, "/outer/inner/b")
    assert new_b is not old_b
    assert (await new_b.ask("ping"))[0] == "b"
    assert outer.is_alive


async def test_escalation_climbs_nested_supervisors(system: ActorSystem) -> None:
    journal = Journal()
    inner = SupervisorSpec(max_restarts=0, children=[worker(journal, "leaf")])
    middle = SupervisorSpec(
        max_restarts=0, children=[ChildSpec("inner", Supervisor, args=(inner,), shutdown=None)]
    )
    top = SupervisorSpec(
        max_restarts=5, children=[ChildSpec("middle", Supervisor, args=(middle,), shutdown=None)]
    )
    await system.spawn_supervisor(top, name="top")
    leaf = find(system, "/top/middle/inner/leaf")
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(leaf, "abnormal")
        await events.wait_for(LifecycleEvent("/top/middle", "restarted", None))
        assert await settle()
    assert [e.path for e in events if e.kind == "escalated"] == [
        "/top/middle/inner",
        "/top/middle",
    ]
    assert journal.entries == [("start", "leaf"), ("stop", "leaf"), ("start", "leaf")]
    fresh = find(system, "/top/middle/inner/leaf")
    assert fresh is not leaf
    assert (await fresh.ask("ping"))[0] == "leaf"


async def test_escalation_past_the_root_fails_the_system() -> None:
    journal = Journal()
    async with test_system(max_restarts=1) as system:
        ref = await system.spawn(Worker, journal, "top", name="top")
        with capture_events(system, LifecycleEvent) as events:
            await exit_child(ref, "abnormal")  # restart 1 of 1
            await exit_child(ref, "abnormal")  # 2 > 1: the root supervisor gives up
            await asyncio.wait_for(system.wait_terminated(), 2.0)
        # one escalation, published once
        assert [e.path for e in events if e.kind == "escalated"] == ["/"]
        assert isinstance(system.failure, RestartIntensityExceeded)
        assert not system.is_running
        assert not ref.is_alive
        with pytest.raises(ActorStopped):
            await ref.ask("ping")
    assert journal.entries == [
        ("start", "top"),
        ("stop", "top"),
        ("start", "top"),
        ("stop", "top"),
    ]


async def test_restarts_spread_wider_than_the_window_never_escalate(
    system: ActorSystem, clock: ManualClock
) -> None:
    journal = Journal()
    spec = SupervisorSpec(max_restarts=1, within=5.0, children=[worker(journal, "w")])
    await system.spawn_supervisor(spec, name="sup")
    ref = find(system, "/sup/w")
    with capture_events(system, LifecycleEvent) as events:
        for n in range(1, 5):
            await exit_child(ref, "abnormal")
            await events.wait_for(LifecycleEvent("/sup/w", "restarted", None), count=n)
            clock.advance(5.0)  # the previous restart leaves the window
        assert await settle()
    assert journal.starts("w") == 5
    assert not events.of(lambda e: e.kind == "escalated")
    assert ref.is_alive


async def test_restarts_inside_the_window_escalate(system: ActorSystem, clock: ManualClock) -> None:
    journal = Journal()
    spec = SupervisorSpec(max_restarts=1, within=5.0, children=[worker(journal, "w")])
    await system.spawn_supervisor(spec, name="sup")
    ref = find(system, "/sup/w")
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(ref, "abnormal")
        await events.wait_for(LifecycleEvent("/sup/w", "restarted", None))
        clock.advance(4.9)  # still inside the 5 s window
        await exit_child(ref, "abnormal")
        await events.wait_for(lambda e: e.kind == "escalated")
    assert [e.path for e in events if e.kind == "escalated"] == ["/sup"]


async def test_a_normal_exit_of_a_permanent_child_counts_towards_intensity(
    system: ActorSystem,
) -> None:
    journal = Journal()
    spec = SupervisorSpec(max_restarts=1, children=[worker(journal, "w")])
    await system.spawn_supervisor(spec, name="sup")
    ref = find(system, "/sup/w")
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(ref, "normal")
        await events.wait_for(LifecycleEvent("/sup/w", "restarted", None))
        await exit_child(ref, "normal")
        await events.wait_for(lambda e: e.kind == "escalated")
    assert [e.path for e in events if e.kind == "escalated"] == ["/sup"]


# -- start and stop order ------------------------------------------------------------------


async def test_children_start_in_order_and_stop_in_reverse_order(system: ActorSystem) -> None:
    journal = Journal()
    spec = SupervisorSpec(children=[worker(journal, n) for n in ("a", "b", "c")])
    sup = await system.spawn_supervisor(spec, name="sup")
    assert journal.entries == [("start", "a"), ("start", "b"), ("start", "c")]
    await sup.stop()
    assert journal.since(3) == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert system.lookup("/sup/a") is None


async def test_shutdown_stops_everything_children_first_in_reverse_start_order(
    system: ActorSystem,
) -> None:
    journal = Journal()
    await system.spawn(Worker, journal, "x", name="x")
    spec = SupervisorSpec(children=[worker(journal, n) for n in ("a", "b")])
    await system.spawn_supervisor(spec, name="sup")
    await system.spawn(Worker, journal, "z", name="z")
    mark = len(journal.entries)
    await system.shutdown()
    assert journal.since(mark) == [("stop", "z"), ("stop", "b"), ("stop", "a"), ("stop", "x")]
    assert not system.is_running


async def test_a_child_failing_to_start_stops_the_started_ones_and_raises(
    system: ActorSystem,
) -> None:
    class NoStart(Actor):
        async def on_start(self) -> None:
            raise Boom("cannot start")

    journal = Journal()
    spec = SupervisorSpec(
        children=[worker(journal, "a"), worker(journal, "b"), ChildSpec("bad", NoStart)]
    )
    with pytest.raises(Boom):
        await system.spawn_supervisor(spec, name="sup")
    assert journal.entries == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]
    assert system.lookup("/sup") is None


# -- backoff and shutdown timeouts on the manual clock ------------------------------------


async def test_backoff_delays_each_restart_until_the_clock_is_advanced(
    system: ActorSystem, clock: ManualClock
) -> None:
    journal = Journal()
    spec = SupervisorSpec(
        max_restarts=10,
        within=100.0,
        backoff=Backoff(min=1.0, max=3.0),
        children=[worker(journal, "w")],
    )
    await system.spawn_supervisor(spec, name="sup")
    ref = find(system, "/sup/w")
    # delays: 1, 2, 3 (capped), 3
    for n, delay in enumerate([1.0, 2.0, 3.0, 3.0], start=1):
        with capture_events(system, LifecycleEvent) as events:
            await exit_child(ref, "abnormal")
            pending = asyncio.ensure_future(ref.ask("queued while down", timeout=None))
            await settle()
            assert journal.starts("w") == n  # not restarted yet
            clock.advance(delay - 0.01)
            await settle()
            assert journal.starts("w") == n and not pending.done()
            clock.advance(0.01)
            await events.wait_for(LifecycleEvent("/sup/w", "restarted", None))
            assert (await pending)[1] == "queued while down"
    assert journal.starts("w") == 5


async def test_backoff_jitter_stays_within_its_fraction(clock: ManualClock) -> None:
    journal = Journal()
    async with test_system(clock=clock, seed=7) as system:
        spec = SupervisorSpec(
            backoff=Backoff(min=2.0, max=2.0, jitter=0.5), children=[worker(journal, "w")]
        )
        await system.spawn_supervisor(spec, name="sup")
        ref = find(system, "/sup/w")
        with capture_events(system, LifecycleEvent) as events:
            await exit_child(ref, "abnormal")
            clock.advance(0.99)  # below 2 s * (1 - 0.5)
            await settle()
            assert journal.starts("w") == 1
            clock.advance(2.02)  # past 2 s * (1 + 0.5)
            await events.wait_for(LifecycleEvent("/sup/w", "restarted", None))


async def test_a_hanging_on_stop_is_cancelled_after_the_shutdown_timeout(
    system: ActorSystem, clock: ManualClock
) -> None:
    outcome: list[str] = []
    forever = asyncio.Event()

    class Hangs(Actor):
        async def on_stop(self) -> None:
            try:
                await forever.wait()
            except asyncio.CancelledError:
                outcome.append("cancelled")
                raise

    spec = SupervisorSpec(children=[ChildSpec("h", Hangs, shutdown=2.0)])
    await system.spawn_supervisor(spec, name="sup")
    ref = find(system, "/sup/h")
    stopping = asyncio.ensure_future(ref.stop())
    await settle()
    clock.advance(1.99)
    await settle()
    assert not stopping.done() and outcome == []
    clock.advance(0.01)
    await asyncio.wait_for(stopping, 2.0)
    assert outcome == ["cancelled"]
    assert not ref.is_alive


async def test_a_hanging_message_is_cancelled_after_the_shutdown_timeout(
    system: ActorSystem, clock: ManualClock
) -> None:
    forever = asyncio.Event()
    entered = asyncio.Event()

    class Stuck(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            entered.set()
            await forever.wait()

    ref = await system.spawn(Stuck, name="stuck", shutdown=3.0)
    ask = asyncio.ensure_future(ref.ask("hang", timeout=None))
    await entered.wait()
    stopping = asyncio.ensure_future(ref.stop())
    await settle()
    assert not stopping.done()
    clock.advance(3.0)
    await asyncio.wait_for(stopping, 2.0)
    with pytest.raises(ActorStopped):
        await ask
    assert not ref.is_alive


# -- dynamic children ----------------------------------------------------------------------


class Parent(Actor):
    """Spawns workers on request; its ``supervision`` applies to them."""

    supervision = SupervisorSpec(strategy="one_for_all", max_restarts=5)

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def on_start(self) -> None:
        self.journal.add("start", "parent")

    async def on_stop(self) -> None:
        self.journal.add("stop", "parent")

    async def receive(self, message: Any, ctx: Context) -> Any:
        if message == "crash":
            raise Boom("parent crashed")
        if isinstance(message, tuple) and message[0] == "spawn":
            ref = await ctx.spawn(Worker, self.journal, message[1], name=message[1])
            return ref
        if message == "children":
            return [child.name for child in ctx.children]
        return None


async def test_dynamic_children_follow_the_parents_supervision(system: ActorSystem) -> None:
    journal = Journal()
    parent = await system.spawn(Parent, journal, name="parent")
    x = await parent.ask(("spawn", "x"))
    y = await parent.ask(("spawn", "y"))
    assert x.path == "/parent/x" and y.path == "/parent/y"
    assert await parent.ask("children") == ["x", "y"]
    mark = len(journal.entries)
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(x, "abnormal")  # one_for_all: y restarts too
        await events.wait_for(LifecycleEvent("/parent/y", "restarted", None))
    assert journal.since(mark) == [("stop", "x"), ("stop", "y"), ("start", "x"), ("start", "y")]
    assert await parent.ask("children") == ["x", "y"]


async def test_a_restart_stops_the_dynamic_children_for_good(system: ActorSystem) -> None:
    journal = Journal()
    parent = await system.spawn(Parent, journal, name="parent")
    x = await parent.ask(("spawn", "x"))
    with pytest.raises(Boom):
        await parent.ask("crash")
    assert await parent.ask("children") == []
    assert not x.is_alive
    assert journal.entries == [
        ("start", "parent"),
        ("start", "x"),
        ("stop", "x"),
        ("stop", "parent"),
        ("start", "parent"),
    ]


async def test_start_child_asks_a_supervisor_for_a_supervised_child(
    system: ActorSystem,
) -> None:
    journal = Journal()
    sup = await system.spawn_supervisor(SupervisorSpec(), name="sup")
    ref = await sup.ask(StartChild(worker(journal, "late")))
    assert ref.path == "/sup/late" and system.lookup("/sup/late") is ref
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(ref, "abnormal")
        await events.wait_for(LifecycleEvent("/sup/late", "restarted", None))
    assert journal.starts("late") == 2


# -- watching -----------------------------------------------------------------------------


class Watcher(Actor):
    def __init__(self, recorder: ProbeRecorder) -> None:
        self.recorder = recorder

    def receive(self, message: Any, ctx: Context) -> Any:
        match message:
            case ("watch", ref):
                ctx.watch(ref)
            case ("unwatch", ref):
                ctx.unwatch(ref)
            case _:
                self.recorder.record(message)
        return None


async def test_watch_delivers_terminated_with_the_reason(system: ActorSystem) -> None:
    journal, recorder = Journal(), ProbeRecorder()
    watcher = await system.spawn(Watcher, recorder, name="watcher")
    stopped = await system.spawn(Worker, journal, "s", name="s")
    failed = await system.spawn(Worker, journal, "f", name="f", restart="temporary")
    for ref in (stopped, failed):
        await watcher.ask(("watch", ref))
    await stopped.stop()
    assert await recorder.expect(Terminated) == Terminated(stopped, "stopped")
    await exit_child(failed, "abnormal")
    terminated = await recorder.expect(Terminated)
    assert terminated.ref is failed and "Boom" in terminated.reason


async def test_a_restart_is_not_a_termination(system: ActorSystem) -> None:
    journal, recorder = Journal(), ProbeRecorder()
    watcher = await system.spawn(Watcher, recorder, name="watcher")
    ref = await system.spawn(Worker, journal, "w", name="w")
    await watcher.ask(("watch", ref))
    await exit_child(ref, "abnormal")
    assert (await ref.ask("ping"))[0] == "w"  # restarted
    await recorder.expect_no_message()
    await ref.stop()
    assert await recorder.expect(Terminated) == Terminated(ref, "stopped")


async def test_watching_a_dead_ref_delivers_terminated_at_once(system: ActorSystem) -> None:
    recorder = ProbeRecorder()
    watcher = await system.spawn(Watcher, recorder, name="watcher")
    ref = await system.spawn(Worker, Journal(), "gone", name="gone")
    await ref.stop()
    await watcher.ask(("watch", ref))
    assert await recorder.expect(Terminated) == Terminated(ref, "stopped")


async def test_unwatch_stops_the_notification(system: ActorSystem) -> None:
    recorder = ProbeRecorder()
    watcher = await system.spawn(Watcher, recorder, name="watcher")
    ref = await system.spawn(Worker, Journal(), "w", name="w")
    await watcher.ask(("watch", ref))
    await watcher.ask(("unwatch", ref))
    await ref.stop()
    await recorder.expect_no_message()


# -- what a restart keeps -------------------------------------------------------------------


async def test_a_restart_keeps_the_ref_and_the_queued_messages(system: ActorSystem) -> None:
    entered, gate = asyncio.Event(), asyncio.Event()
    instances: list[int] = []

    class Keeper(Actor):
        def __init__(self) -> None:
            instances.append(id(self))
            self.seen: list[Any] = []

        async def receive(self, message: Any, ctx: Context) -> Any:
            if message == "crash after gate":
                entered.set()
                await gate.wait()
                raise Boom("late crash")
            self.seen.append(message)
            return (len(instances), list(self.seen))

    ref = await system.spawn(Keeper, name="keeper")
    crashing = asyncio.ensure_future(ref.ask("crash after gate", timeout=None))
    await entered.wait()
    queued = [asyncio.ensure_future(ref.ask(f"q{i}", timeout=None)) for i in range(3)]
    await settle()
    gate.set()
    with pytest.raises(Boom):
        await crashing
    # handled by the second instance, in order, nothing lost
    assert [await q for q in queued] == [(2, ["q0"]), (2, ["q0", "q1"]), (2, ["q0", "q1", "q2"])]
    assert system.lookup("/keeper") is ref and ref.path == "/keeper"


async def test_a_child_that_cannot_restart_makes_its_supervisor_escalate(
    system: ActorSystem,
) -> None:
    journal = Journal()

    class StartsOnce(Worker):
        async def on_start(self) -> None:
            await super().on_start()
            if journal.starts(self.label) in (2, 3):  # both restarts fail, then it recovers
                raise Boom("cannot start again")

    spec = SupervisorSpec(
        max_restarts=2, children=[ChildSpec("once", StartsOnce, args=(journal, "once"))]
    )
    outer = SupervisorSpec(
        max_restarts=0, children=[ChildSpec("sup", Supervisor, args=(spec,), shutdown=None)]
    )
    top = await system.spawn_supervisor(outer, name="top")
    ref = find(system, "/top/sup/once")
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(ref, "abnormal")
        # each failed restart counts: after max_restarts the supervisor gives up instead of
        # retrying forever, and the failure climbs the tree
        await events.wait_for(LifecycleEvent("/top", "restarted", None))
        assert await settle()
    assert [e.path for e in events if e.kind == "escalated"] == ["/top/sup", "/top"]
    # the first start, two failed restarts, then the start in the fresh tree the root built
    assert journal.starts("once") == 4
    assert top.is_alive
    fresh = find(system, "/top/sup/once")
    assert fresh is not ref
    assert (await fresh.ask("ping"))[0] == "once"


async def test_child_failures_overtake_the_parents_queued_messages(system: ActorSystem) -> None:
    journal = Journal()
    entered, gate = asyncio.Event(), asyncio.Event()

    class BusyParent(Actor):
        async def receive(self, message: Any, ctx: Context) -> Any:
            if message == "spawn":
                return await ctx.spawn(Worker, journal, "kid", name="kid", restart="temporary")
            if message == "block":
                entered.set()
                await gate.wait()
                return None
            return [child.name for child in ctx.children]  # "children"

    parent = await system.spawn(BusyParent, name="parent")
    kid = await parent.ask("spawn")
    blocked = asyncio.ensure_future(parent.ask("block", timeout=None))
    await entered.wait()
    children = asyncio.ensure_future(parent.ask("children", timeout=None))
    await exit_child(kid, "abnormal")  # the kid's exit notice reaches the busy parent
    await settle()
    gate.set()
    await blocked
    # the exit notice was handled (the temporary kid removed) before the user message that
    # had been queued first
    assert await children == []
    assert not kid.is_alive


async def test_an_actor_whose_dynamic_children_exceed_its_intensity_fails_itself(
    system: ActorSystem,
) -> None:
    journal = Journal()

    class StrictParent(Parent):
        supervision = SupervisorSpec(max_restarts=0)

    parent = await system.spawn(StrictParent, journal, name="parent")
    x = await parent.ask(("spawn", "x"))
    with capture_events(system, LifecycleEvent) as events:
        await exit_child(x, "abnormal")
        await events.wait_for(LifecycleEvent("/parent", "restarted", None))
    assert [e.path for e in events if e.kind == "escalated"] == ["/parent"]
    failed = events.of(lambda e: e.path == "/parent" and e.kind == "failed")
    assert len(failed) == 1 and "RestartIntensityExceeded" in (failed[0].reason or "")
    assert not x.is_alive
    assert await parent.ask("children") == []


async def test_stopping_a_child_that_waits_for_its_backoff_restart_is_final(
    system: ActorSystem, clock: ManualClock
) -> None:
    journal = Journal()
    spec = SupervisorSpec(backoff=Backoff(min=1.0), children=[worker(journal, "w")])
    sup = await system.spawn_supervisor(spec, name="sup")
    ref = find(system, "/sup/w")
    await exit_child(ref, "abnormal")
    await settle()
    await asyncio.wait_for(ref.stop(), 2.0)  # no clock advance needed
    clock.advance(1.0)  # the delayed restart comes due and finds nothing to restart
    assert await settle()
    assert journal.starts("w") == 1
    assert not ref.is_alive
    assert await sup.ask(StartChild(worker(journal, "w"))) is not None  # the name is free


async def test_the_root_strategy_applies_to_top_level_actors() -> None:
    """``ActorSystem(strategy="rest_for_one")``: a failing top-level actor restarts the
    top-level actors started after it, not those before it."""
    journal = Journal()
    async with ActorSystem(clock=ManualClock(), strategy="rest_for_one") as system:
        refs = {name: await system.spawn(Worker, journal, name, name=name) for name in "abc"}
        mark = len(journal.entries)
        with capture_events(system, LifecycleEvent) as events:
            with pytest.raises(Boom):
                await refs["b"].ask("crash")
            await events.wait_for(LifecycleEvent("/c", "restarted", None))
        assert journal.since(mark) == [("stop", "b"), ("stop", "c"), ("start", "b"), ("start", "c")]
        assert journal.starts("a") == 1
        assert system.failure is None


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_a_temporary_sibling_that_failed_while_its_group_restarts_is_not_restarted(
    system: ActorSystem, strategy: str
) -> None:
    """OTP: a group restart removes its temporary members, even one whose own exit the
    supervisor has not handled yet (it failed in the same loop turn as the first child)."""
    journal = Journal()
    spec = SupervisorSpec(
        strategy=strategy,  # type: ignore[arg-type]
        children=[worker(journal, "a"), worker(journal, "t", "temporary")],
    )
    await system.spawn_supervisor(spec, name="sup")
    a, t = find(system, "/sup/a"), find(system, "/sup/t")
    with capture_events(system, LifecycleEvent) as events:
        a.tell("crash")
        t.tell("crash")  # its exit report queues behind a's at the supervisor
        await events.wait_for(LifecycleEvent("/sup/a", "restarted", None))
        assert await settle()
    assert journal.starts("t") == 1
    assert not t.is_alive and system.lookup("/sup/t") is None
    assert [e.path for e in events if e.kind == "restarted"] == ["/sup/a"]
