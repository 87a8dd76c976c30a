"""Property tests: random supervision trees under random crash schedules.

Each example builds a tree (a top supervisor with workers and sub-supervisors, random
strategies, restart types and intensities) and drives it with asks: crashes, normal exits,
bursts of concurrent work, and manual-clock advances. Invariants:

* every ask ends (a value or an error) by itself: each is bounded by a wall-clock timeout that
  a correct runtime never reaches, and the manual clock is never advanced to unblock one;
* restarts never exceed a supervisor's intensity: restart decisions per supervisor (one per
  exit, whatever the strategy's group size) within any ``within`` window stay <= max_restarts;
* no actor runs twice at once: an in-flight counter per actor path, held across awaits in
  on_start, receive and on_stop, never exceeds 1 (across incarnations too);
* (sequential schedules) the tree matches a small model of OTP's rules after every step: the
  same supervisors escalate, the same workers are alive.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actoros import (
    Actor,
    ActorStopped,
    ChildSpec,
    Context,
    LifecycleEvent,
    ManualClock,
    Supervisor,
    SupervisorSpec,
)
from actoros.testing import settle, test_system

pytestmark = pytest.mark.timeout(120)

ASK_LIMIT = 5.0  # wall-clock seconds: only a hang reaches it
SETTLE_TURNS = 20_000

PROPERTY_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Boom(Exception):
    pass


# -- the actors ----------------------------------------------------------------------------


class Stats:
    """Shared by every worker of one example: in-flight counts per actor path."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = defaultdict(int)
        self.max_in_flight: dict[str, int] = defaultdict(int)

    def enter(self, path: str) -> None:
        self.in_flight[path] += 1
        self.max_in_flight[path] = max(self.max_in_flight[path], self.in_flight[path])

    def leave(self, path: str) -> None:
        self.in_flight[path] -= 1


class PWorker(Actor):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    async def _busy(self) -> None:
        path = self.ctx.self.path
        self.stats.enter(path)
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        finally:
            self.stats.leave(path)

    async def on_start(self) -> None:
        await self._busy()

    async def on_stop(self) -> None:
        await self._busy()

    async def receive(self, message: Any, ctx: Context) -> Any:
        path = ctx.self.path
        self.stats.enter(path)
        try:
            await asyncio.sleep(0)
            if message == "crash":
                raise Boom(path)
            if message == "exit":
                ctx.stop()
                return "bye"
            await asyncio.sleep(0)
            return "ok"
        finally:
            self.stats.leave(path)


# -- tree descriptions (plain data, drawn by hypothesis) ------------------------------------

RESTARTS = ["permanent", "transient", "temporary"]
STRATEGIES = ["one_for_one", "one_for_all", "rest_for_one"]


@dataclass(frozen=True)
class SupParams:
    strategy: str
    max_restarts: int
    within: float


@dataclass(frozen=True)
class WorkerNode:
    restart: str


@dataclass(frozen=True)
class SupNode:
    params: SupParams
    restart: str
    children: tuple[Any, ...]


sup_params = st.builds(
    SupParams,
    st.sampled_from(STRATEGIES),
    st.integers(0, 3),
    st.sampled_from([1.0, 5.0]),
)
worker_nodes = st.builds(WorkerNode, st.sampled_from(RESTARTS))
sub_supervisors = st.builds(
    SupNode,
    sup_params,
    st.sampled_from(RESTARTS),
    st.lists(worker_nodes, min_size=1, max_size=3).map(tuple),
)
trees = st.builds(
    SupNode,
    sup_params,
    st.just("permanent"),
    st.lists(st.one_of(worker_nodes, worker_nodes, sub_supervisors), min_size=1, max_size=4).map(
        tuple
    ),
)

exit_steps = st.tuples(st.just("exit"), st.integers(0, 63), st.sampled_from(["crash", "exit"]))
burst_steps = st.tuples(st.just("burst"), st.lists(st.integers(0, 63), min_size=1, max_size=5))
advance_steps = st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 2.5, 6.0]))
sequential_steps = st.lists(
    st.one_of(exit_steps, exit_steps, burst_steps, advance_steps), min_size=3, max_size=14
)
chaos_steps = st.lists(
    st.lists(
        st.tuples(st.integers(0, 63), st.sampled_from(["crash", "exit", "ok", "ok"])),
        min_size=1,
        max_size=6,
    ),
    min_size=2,
    max_size=8,
)


def child_name(node: Any, index: int) -> str:
    return f"{'s' if isinstance(node, SupNode) else 'w'}{index}"


def build_spec(node: SupNode, stats: Stats) -> SupervisorSpec:
    children = []
    for i, child in enumerate(node.children):
        name = child_name(child, i)
        if isinstance(child, SupNode):
            children.append(
                ChildSpec(
                    name,
                    Supervisor,
                    args=(build_spec(child, stats),),
                    restart=child.restart,  # type: ignore[arg-type]
                    shutdown=None,
                )
            )
        else:
            children.append(ChildSpec(name, PWorker, args=(stats,), restart=child.restart))  # type: ignore[arg-type]
    return SupervisorSpec(
        strategy=node.params.strategy,  # type: ignore[arg-type]
        max_restarts=node.params.max_restarts,
        within=node.params.within,
        children=children,
    )


def worker_paths(node: SupNode, prefix: str) -> list[str]:
    paths = []
    for i, child in enumerate(node.children):
        path = f"{prefix}/{child_name(child, i)}"
        if isinstance(child, SupNode):
            paths.extend(worker_paths(child, path))
        else:
            paths.append(path)
    return paths


def supervisor_params(node: SupNode, prefix: str) -> dict[str, SupParams]:
    found = {prefix: node.params}
    for i, child in enumerate(node.children):
        if isinstance(child, SupNode):
            found.update(supervisor_params(child, f"{prefix}/{child_name(child, i)}"))
    return found


def parent_of(path: str) -> str:
    parent = path.rsplit("/", 1)[0]
    return parent or "/"


# -- a model of OTP's rules ------------------------------------------------------------------


@dataclass
class MNode:
    path: str
    restart: str
    spec: Any  # WorkerNode | SupNode
    parent: MNode | None = None
    children: list[MNode] = field(default_factory=list)
    history: list[float] = field(default_factory=list)

    @property
    def is_supervisor(self) -> bool:
        return not isinstance(self.spec, WorkerNode)

    def rebuild(self) -> None:
        """A fresh incarnation: a supervisor starts its spec's children anew."""
        self.history = []
        if isinstance(self.spec, SupNode):
            self.children = []
            for i, child in enumerate(self.spec.children):
                node = MNode(f"{self.path}/{child_name(child, i)}", child.restart, child, self)
                node.rebuild()
                self.children.append(node)


class Model:
    def __init__(self, tree: SupNode, root_params: SupParams) -> None:
        root_spec = SupNode(root_params, "permanent", (tree,))
        self.root = MNode("", "permanent", root_spec)
        self.root.children = [MNode("/top", "permanent", tree, self.root)]
        self.root.children[0].rebuild()
        self.failed = False

    def find(self, path: str) -> MNode | None:
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.path == path:
                return node
            stack.extend(node.children)
        return None

    def live_workers(self) -> set[str]:
        live, stack = set(), [self.root]
        while stack:
            node = stack.pop()
            if not node.is_supervisor:
                live.add(node.path)
            stack.extend(node.children)
        return live

    def exit(self, path: str, abnormal: bool, now: float) -> list[str]:
        """Apply one exit; return the supervisors that escalate, in order."""
        escalated: list[str] = []
        node = self.find(path)
        assert node is not None and node.parent is not None
        self._child_exited(node.parent, node, abnormal, now, escalated)
        return escalated

    def _child_exited(
        self, sup: MNode, child: MNode, abnormal: bool, now: float, escalated: list[str]
    ) -> None:
        restart = child.restart == "permanent" or (child.restart == "transient" and abnormal)
        if not restart:
            sup.children.remove(child)
            return
        params = sup.spec.params
        sup.history.append(now)
        sup.history = [t for t in sup.history if t > now - params.within]
        if len(sup.history) > params.max_restarts:
            escalated.append(sup.path or "/")
            sup.children = []
            if sup.parent is None:
                self.failed = True
                return
            self._child_exited(sup.parent, sup, True, now, escalated)
            return
        index = sup.children.index(child)
        if params.strategy == "one_for_one":
            group = [child]
        elif params.strategy == "one_for_all":
            group = list(sup.children)
        else:
            group = sup.children[index:]
        for member in group:
            if member is not child and member.restart == "temporary":
                sup.children.remove(member)
            else:
                member.rebuild()


# -- invariants ---------------------------------------------------------------------------


class IntensityAudit:
    """Counts restart decisions per supervisor incarnation from lifecycle events.

    A decision is one exit answered by a restart; with one exit per step, a supervisor makes at
    most one per step, however many children its strategy restarts.
    """

    def __init__(self, params: dict[str, SupParams]) -> None:
        self.params = params
        self.decisions: dict[str, list[float]] = defaultdict(list)

    def step(self, events: list[LifecycleEvent], now: float) -> None:
        decided: set[str] = set()
        for event in events:
            if event.kind in ("started", "restarted") and event.path in self.params:
                self.decisions[event.path] = []  # a new incarnation counts afresh
                decided.discard(event.path)
            if event.kind == "restarted":
                sup = parent_of(event.path)
                if sup not in decided:
                    decided.add(sup)
                    self.decisions[sup].append(now)
        for sup in decided:
            params = self.params[sup]
            stamps = self.decisions[sup]
            in_window = [t for t in stamps if t > now - params.within]
            assert len(in_window) <= params.max_restarts, (
                f"{sup} restarted {len(in_window)} times within {params.within} s "
                f"(max_restarts={params.max_restarts})"
            )


async def bounded_ask(ref: Any, message: str) -> Any:
    """The ask's outcome: its value or its exception. A hang fails the test."""
    try:
        return await asyncio.wait_for(ref.ask(message, timeout=None), ASK_LIMIT)
    except (Boom, ActorStopped) as exc:
        return exc
    except TimeoutError:
        pytest.fail(f"ask {message!r} to {ref.path} did not end: the runtime hung")


def check_in_flight(stats: Stats) -> None:
    overlapping = {path: n for path, n in stats.max_in_flight.items() if n > 1}
    assert not overlapping, f"actors ran twice at once: {overlapping}"


def tree_system(root: SupParams, clock: ManualClock) -> Any:
    """The example's system: the root supervisor gets the drawn intensity."""
    return test_system(
        clock=clock,
        max_restarts=root.max_restarts,
        within=root.within,
        shutdown_timeout=ASK_LIMIT,
    )


root_params = st.builds(SupParams, st.just("one_for_one"), st.integers(1, 3), st.just(5.0))


# -- the properties -----------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(tree=trees, root=root_params, steps=sequential_steps)
async def test_random_trees_follow_otp_under_sequential_crashes(
    tree: SupNode, root: SupParams, steps: list[Any]
) -> None:
    stats, clock = Stats(), ManualClock()
    workers = worker_paths(tree, "/top")
    model = Model(tree, root)
    audit = IntensityAudit({"/": root, **supervisor_params(tree, "/top")})
    events: list[LifecycleEvent] = []
    async with tree_system(root, clock) as system:
        system.events.subscribe(events.append, LifecycleEvent)
        await system.spawn_supervisor(build_spec(tree, stats), name="top")
        for step in steps:
            events.clear()
            if step[0] == "advance":
                clock.advance(step[1])
                continue
            if step[0] == "burst":
                targets = [workers[i % len(workers)] for i in step[1]]
                refs = [system.lookup(path) for path in targets]
                for path, ref in zip(targets, refs, strict=True):
                    assert (ref is not None) == (path in model.live_workers()), path
                live = [ref for ref in refs if ref is not None]
                for ref in live:
                    ref.tell("ok")
                outcomes = await asyncio.gather(*(bounded_ask(ref, "ok") for ref in live))
                assert outcomes == ["ok"] * len(live)
            else:
                _, index, kind = step
                path = workers[index % len(workers)]
                ref = system.lookup(path)
                assert (ref is not None) == (path in model.live_workers()), path
                if ref is None:
                    continue
                outcome = await bounded_ask(ref, kind)
                if kind == "crash":
                    assert isinstance(outcome, Boom), outcome
                else:
                    assert outcome == "bye"
                assert await settle(SETTLE_TURNS), "the system did not come to rest"
                expected_escalations = model.exit(path, kind == "crash", clock.time())
                escalated = [e.path for e in events if e.kind == "escalated"]
                assert escalated == expected_escalations
                audit.step(list(events), clock.time())
            assert await settle(SETTLE_TURNS), "the system did not come to rest"
            assert {p for p in workers if system.lookup(p) is not None} == model.live_workers()
            assert (system.failure is not None) == model.failed
            check_in_flight(stats)
    check_in_flight(stats)


@PROPERTY_SETTINGS
@given(tree=trees, root=root_params, rounds=chaos_steps)
async def test_random_trees_survive_concurrent_crashes(
    tree: SupNode, root: SupParams, rounds: list[Any]
) -> None:
    stats, clock = Stats(), ManualClock()
    workers = worker_paths(tree, "/top")
    async with tree_system(root, clock) as system:
        await system.spawn_supervisor(build_spec(tree, stats), name="top")
        for round_ in rounds:
            asks = []
            for index, message in round_:
                ref = system.lookup(workers[index % len(workers)])
                if ref is not None:
                    asks.append((message, bounded_ask(ref, message)))
            outcomes = await asyncio.gather(*(ask for _, ask in asks))
            for (message, _), outcome in zip(asks, outcomes, strict=True):
                allowed: tuple[Any, ...] = (ActorStopped,)
                if message == "crash":
                    allowed += (Boom,)
                if isinstance(outcome, BaseException):
                    assert isinstance(outcome, allowed), (message, outcome)
                else:
                    assert outcome == {"ok": "ok", "exit": "bye"}.get(message), (message, outcome)
            assert await settle(SETTLE_TURNS), "the system did not come to rest"
            check_in_flight(stats)
            clock.advance(1.0)
    check_in_flight(stats)
    assert not system.is_running
